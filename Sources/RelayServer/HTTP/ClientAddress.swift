// The client IP of a request: the TCP peer, or X-Forwarded-For behind trusted proxies.

import NIOCore

/// The client IP of a request (PROTOCOL §2.4, DECISIONS 7).
enum ClientAddress {
    /// With `trustedHops` > 0, the `X-Forwarded-For` entry that the outermost trusted proxy saw —
    /// the `trustedHops`-th entry from the right — when it parses as an IP; else the TCP peer.
    /// Taking it from the right means a client cannot spoof it by sending its own header.
    static func resolve(peer: SocketAddress?, forwardedFor: [String], trustedHops: Int) -> String {
        let peerIP = peer?.ipAddress ?? "unknown"
        guard trustedHops > 0, !forwardedFor.isEmpty else { return peerIP }
        let entries = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingASCIIWhitespace() }
        guard !entries.isEmpty else { return peerIP }
        let candidate = entries[max(entries.count - trustedHops, 0)]
        return canonicalIP(candidate) ?? peerIP
    }

    /// The canonical text of a bare IPv4/IPv6 address, or nil.
    static func canonicalIP(_ text: String) -> String? {
        guard !text.isEmpty, !text.contains("["), let address = try? SocketAddress(ipAddress: text, port: 0) else {
            return nil
        }
        return address.ipAddress
    }
}

import RelayCore
