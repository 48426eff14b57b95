// The join link a desktop shows as a QR code (PROTOCOL §0, §3): parsed on the phone, built on the
// desktop.

import Foundation
import RelayProtocol

/// The pairing link a desktop shows as a QR code: a page URL whose fragment carries the session id, the one-time
/// join token and the relay's base URL, `https://app.example/pair#sid=…&jt=…&relay=…`.
///
/// The fragment is read as a form-encoded list (`&`-separated `name=value`, percent escapes, `+` a
/// space), so a link made by a browser's `URLSearchParams` reads the same. Parameters this version
/// does not know (later extensions of the link) are kept, in order, and written back by
/// ``link(page:)``. A description never shows the join token: it is a credential until redeemed.
public struct RelayJoinLink: Sendable, Equatable, CustomStringConvertible {
    /// One `name=value` member of the fragment, decoded.
    public struct Parameter: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// `sid`: the session to join (an opaque token of at least 16 characters).
    public var sessionID: String
    /// `jt`: the one-time join token (an opaque token of at least 22 characters).
    public var joinToken: String
    /// `relay`: the relay's base URL, `http` or `https`, without query or fragment.
    public var relayBaseURL: String
    /// `e2e=1`, `dk`, `ps` (extension 12): the session is end-to-end encrypted; nil for a
    /// contract link.
    public var endToEnd: RelayEndToEndLink?
    /// Members of the fragment other than `sid`, `jt`, `relay`, `e2e`, `dk` and `ps`, in the order
    /// they came.
    public var otherParameters: [Parameter]

    /// A link for `sessionID` and `joinToken` on the relay at `relayBaseURL`; each is checked as
    /// ``init(parsing:)`` checks it.
    public init(
        sessionID: String, joinToken: String, relayBaseURL: String, endToEnd: RelayEndToEndLink? = nil, otherParameters: [Parameter] = []
    ) throws(RelayJoinLinkError) {
        guard Identifiers.isOpaqueToken(sessionID, minLength: 16) else { throw .invalidSessionID }
        guard Identifiers.isOpaqueToken(joinToken, minLength: 22) else { throw .invalidJoinToken }
        try Self.checkRelayURL(relayBaseURL)
        self.sessionID = sessionID
        self.joinToken = joinToken
        self.relayBaseURL = relayBaseURL
        var others = otherParameters
        self.endToEnd = try RelayEndToEndLink.extract(from: &others) ?? endToEnd
        self.otherParameters = others
    }

    /// Reads a link: a whole URL with its fragment, or the fragment alone (with or without `#`).
    ///
    /// - Throws: ``RelayJoinLinkError/notAJoinLink`` for text that is no join link at all (no
    ///   fragment, or none of `sid`, `jt` and `relay` in it); otherwise the first problem found.
    public init(parsing link: String) throws(RelayJoinLinkError) {
        let trimmed = link.trimmingCharacters(in: .whitespacesAndNewlines)
        let fragment: Substring
        if let hash = trimmed.firstIndex(of: "#") {
            fragment = trimmed[trimmed.index(after: hash)...]
        } else if trimmed.contains("://") {
            throw .notAJoinLink
        } else {
            fragment = Substring(trimmed)
        }
        var known: [String: String] = [:]
        var others: [Parameter] = []
        for member in fragment.split(separator: "&", omittingEmptySubsequences: true) {
            let pair = member.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let rawName = pair.first else { continue }
            let name: String, value: String
            do {
                name = try PercentDecoding.decode(rawName, plusIsSpace: true)
                value = pair.count == 2 ? try PercentDecoding.decode(pair[1], plusIsSpace: true) : ""
            } catch {
                throw .undecodable(String(rawName))
            }
            if Self.knownNames.contains(name) {
                guard known[name] == nil else { throw .repeatedParameter(name) }
                known[name] = value
            } else {
                others.append(Parameter(name: name, value: value))
            }
        }
        guard !known.isEmpty else { throw .notAJoinLink }
        for name in Self.knownNames where (known[name] ?? "").isEmpty { throw .missingParameter(name) }
        try self.init(sessionID: known["sid"]!, joinToken: known["jt"]!, relayBaseURL: known["relay"]!, otherParameters: others)
    }

    /// The fragment, `#sid=…&jt=…&relay=…`, then `e2e=1&dk=…&ps=…` for an end-to-end session, then
    /// the other parameters, each value encoded as
    /// a browser's `encodeURIComponent` does.
    public var fragment: String {
        var members = [("sid", sessionID), ("jt", joinToken), ("relay", relayBaseURL)].map { "\($0)=\(Self.encode($1))" }
        members += (endToEnd?.parameters ?? []).map { "\($0.name)=\(Self.encode($0.value))" }
        members += otherParameters.map { "\(Self.encode($0.name))=\(Self.encode($0.value))" }
        return "#" + members.joined(separator: "&")
    }

    /// The link to show: `page` (any fragment it has is replaced) followed by ``fragment``.
    public func link(page: String) -> String {
        let base = page.firstIndex(of: "#").map { String(page[..<$0]) } ?? page
        return base + fragment
    }

    /// The session and the relay; the join token only by its length.
    public var description: String {
        "RelayJoinLink(sessionID: \(sessionID), joinToken: <\(joinToken.count) characters>, relay: \(relayBaseURL)\(endToEnd == nil ? "" : ", e2e"))"
    }

    static let knownNames = ["sid", "jt", "relay"]

    /// `http` or `https`, a host, no user info, query or fragment.
    static func checkRelayURL(_ text: String) throws(RelayJoinLinkError) {
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased() else {
            throw .invalidRelayURL("not a URL")
        }
        guard scheme == "http" || scheme == "https" else { throw .invalidRelayURL("the scheme must be http or https") }
        guard let host = url.host, !host.isEmpty else { throw .invalidRelayURL("no host") }
        guard url.user == nil, url.password == nil else { throw .invalidRelayURL("user info is not allowed") }
        guard url.query == nil, url.fragment == nil else { throw .invalidRelayURL("a query or fragment is not allowed") }
    }

    /// `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` percent-encoded.
    static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "!"), UInt8(ascii: "~"), UInt8(ascii: "*"),
                UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}
