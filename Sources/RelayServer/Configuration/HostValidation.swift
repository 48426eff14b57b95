// HOST checked at start: an IP literal, or a name that resolves to this machine (DECISIONS 9).

import NIOCore
import NIOPosix

/// DECISIONS 9: `HOST` is an IP literal or a host name that resolves to an address of this
/// machine (or a wildcard). The resolved socket address is what the server binds.
public enum HostValidation {
    /// Resolves and checks `host`; throws a message naming `HOST` when it is not bindable here.
    public static func resolve(host: String, port: Int) throws(ConfigurationError) -> SocketAddress {
        var literal = host
        if literal.hasPrefix("["), literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
        let address: SocketAddress
        if let ip = try? SocketAddress(ipAddress: literal, port: port) {
            address = ip
        } else {
            guard let resolved = try? SocketAddress.makeAddressResolvingHost(literal, port: port) else {
                throw ConfigurationError("HOST \(host) is neither an IP address nor a resolvable host name.")
            }
            address = resolved
        }
        guard let ip = address.ipAddress else { throw ConfigurationError("HOST \(host) does not resolve to an IP address.") }
        if ip == "0.0.0.0" || ip == "::" || ip.hasPrefix("127.") || ip == "::1" { return address }
        let local = localAddresses()
        guard local.contains(ip) else {
            throw ConfigurationError(
                "HOST \(host) (\(ip)) is not an address of this machine; use one of \(local.sorted().joined(separator: ", ")), 0.0.0.0 or ::.")
        }
        return address
    }

    /// Addresses of this machine's interfaces (loopback, private, link-local, CGNAT/Tailscale alike).
    static func localAddresses() -> Set<String> {
        guard let devices = try? System.enumerateDevices() else { return [] }
        var out = Set<String>()
        for device in devices {
            guard var ip = device.address?.ipAddress else { continue }
            if let percent = ip.firstIndex(of: "%") { ip = String(ip[..<percent]) }
            out.insert(ip)
        }
        return out
    }
}
