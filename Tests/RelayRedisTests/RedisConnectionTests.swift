import Testing
@testable import RelayRedis
