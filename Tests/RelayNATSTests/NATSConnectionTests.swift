import Testing
@testable import RelayNATS
