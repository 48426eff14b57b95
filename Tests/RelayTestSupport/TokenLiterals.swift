// Token literals in tests: a record written out in a test names its tokens as strings.

import RelayCore

/// A literal token in a test keeps its clear text, as a plain-layout store would.
extension StoredToken: ExpressibleByStringLiteral {
    public init(stringLiteral token: String) { self.init(token, keepingClear: true) }
}

/// A literal token in a test, digested.
extension TokenDigest: ExpressibleByStringLiteral {
    public init(stringLiteral token: String) { self.init(of: token) }
}
