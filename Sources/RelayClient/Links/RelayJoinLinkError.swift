// Why a scanned or pasted join link cannot be used, in words a phone app can show.

/// Why a join link was refused. No case carries the join token.
public enum RelayJoinLinkError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No fragment, or a fragment with none of `sid`, `jt` and `relay`: a link for something else.
    case notAJoinLink
    /// `sid`, `jt` or `relay` is absent or empty.
    case missingParameter(String)
    /// `sid`, `jt` or `relay` appears twice.
    case repeatedParameter(String)
    /// A member whose name or value is not valid percent-encoded UTF-8 (the member's raw name).
    case undecodable(String)
    /// `sid` is not an opaque token of 16 to 512 characters from `A-Z a-z 0-9 _ -`.
    case invalidSessionID
    /// `jt` is not an opaque token of 22 to 512 characters from `A-Z a-z 0-9 _ -`.
    case invalidJoinToken
    /// `relay` is not an `http` or `https` base URL; the reason says what is wrong.
    case invalidRelayURL(String)
    /// The end-to-end members (`e2e`, `dk`, `ps`, extension 12) are malformed; the reason says how
    /// (never the secret).
    case invalidEndToEnd(String)

    public var description: String {
        switch self {
        case .notAJoinLink: "not a relay join link: it has no #sid=…&jt=…&relay=… fragment"
        case .missingParameter(let name): "the join link has no \(name)"
        case .repeatedParameter(let name): "the join link has \(name) more than once"
        case .undecodable(let name): "the join link's \(name) member is not valid percent-encoded UTF-8"
        case .invalidSessionID: "the join link's sid is not a session id (16 to 512 characters of A-Z a-z 0-9 _ -)"
        case .invalidJoinToken: "the join link's jt is not a join token (22 to 512 characters of A-Z a-z 0-9 _ -)"
        case .invalidRelayURL(let reason): "the join link's relay is not a relay base URL: \(reason)"
        case .invalidEndToEnd(let reason): "the join link's end-to-end members are invalid: \(reason)"
        }
    }
}
