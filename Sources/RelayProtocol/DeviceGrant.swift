// What a desktop lets one paired phone do (our extension 10: session-scoped device capabilities).

/// How much of a session a device may drive: `control` (the contract's behaviour) or `view`.
public enum DeviceScope: String, Sendable, CaseIterable, Codable {
    /// Every allowlisted command (or those of ``DeviceGrant/allowedCommands``).
    case control
    /// Watching only: commands are refused with `scope_denied`; snapshot requests and
    /// `relay.resume` stay allowed.
    case view
}

/// The access a desktop granted one device: set by its `relay.pair_decision` or by
/// `POST /devices/scope`, stored with the device and enforced on every node. A device without one
/// sees exactly the contract.
public struct DeviceGrant: Sendable, Equatable {
    /// `control` or `view`.
    public var scope: DeviceScope
    /// The command names the device may send, sorted and without repeats; nil: every allowlisted one.
    public var allowedCommands: [String]?
    /// When the grant ends, in milliseconds since the Unix epoch; nil: no end beyond the contract's.
    public var expiresAtMillis: Int64?

    /// A grant with every field given; `allowedCommands` is kept sorted and without repeats.
    public init(scope: DeviceScope, allowedCommands: [String]? = nil, expiresAtMillis: Int64? = nil) {
        self.scope = scope
        self.allowedCommands = allowedCommands.map { Array(Set($0)).sorted() }
        self.expiresAtMillis = expiresAtMillis
    }

    /// The command names a grant may list: the catalogue of PROTOCOL §4.7.
    public static let commandCatalogue: Set<String> = ["thread.send_message", "thread.select", "project.select", "runtime_request.respond"]

    /// Why a grant's fields were refused: the message of the `invalid_scope` error.
    public struct Refusal: Error, Sendable, Equatable {
        public let message: String
    }

    /// The grant three wire fields ask for (`nil` for an absent field; `null` counts as absent).
    /// Returns nil when none is present and `defaultScope` is `control`: the device then has no
    /// grant. `grantExpiresAt` must be RFC 3339 and later than `now`.
    public static func parse(
        scope: JSONValue?, allowedCommands: JSONValue?, grantExpiresAt: JSONValue?, defaultScope: DeviceScope = .control, now: Int64
    ) throws(Refusal) -> DeviceGrant? {
        func present(_ value: JSONValue?) -> JSONValue? { value?.isNull == false ? value : nil }
        let scopeValue = present(scope), commandsValue = present(allowedCommands), expiryValue = present(grantExpiresAt)
        if scopeValue == nil, commandsValue == nil, expiryValue == nil {
            return defaultScope == .control ? nil : DeviceGrant(scope: defaultScope)
        }
        var grant = DeviceGrant(scope: defaultScope)
        if let scopeValue {
            guard let text = scopeValue.stringValue, let parsed = DeviceScope(rawValue: text) else {
                throw Refusal(message: "scope must be \"control\" or \"view\".")
            }
            grant.scope = parsed
        }
        if let commandsValue {
            guard let list = commandsValue.arrayValue else { throw Refusal(message: "allowedCommands must be an array of command names.") }
            var names: [String] = []
            for entry in list {
                guard let name = entry.stringValue, commandCatalogue.contains(name) else {
                    throw Refusal(message: "allowedCommands may only name \(commandCatalogue.sorted().joined(separator: ", ")).")
                }
                names.append(name)
            }
            grant.allowedCommands = Array(Set(names)).sorted()
        }
        if let expiryValue {
            guard let text = expiryValue.stringValue, let millis = Timestamp.parseMillis(text) else {
                throw Refusal(message: "grantExpiresAt must be an RFC 3339 timestamp.")
            }
            guard millis > now else { throw Refusal(message: "grantExpiresAt must be in the future.") }
            grant.expiresAtMillis = millis
        }
        return grant
    }

    /// The grant a relay frame or `/devices/list` entry carries (`scope`, then `allowedCommands`
    /// and `grantExpiresAt`); nil when it carries none or an unreadable one.
    public init?(fields json: JSONValue) {
        guard let scope = json["scope"]?.stringValue.flatMap(DeviceScope.init(rawValue:)) else { return nil }
        var expiry: Int64?
        if let text = json["grantExpiresAt"]?.stringValue {
            guard let millis = Timestamp.parseMillis(text) else { return nil }
            expiry = millis
        }
        self.init(scope: scope, allowedCommands: json["allowedCommands"]?.arrayValue?.compactMap(\.stringValue), expiresAtMillis: expiry)
    }

    /// Whether the grant has ended at `now`.
    public func hasExpired(at now: Int64) -> Bool {
        expiresAtMillis.map { now >= $0 } ?? false
    }

    /// The `relay.error` for a command named `name`, or nil when the grant allows it. A nil
    /// `name` is a sealed command (extension 12), whose name the relay cannot read: only a `view`
    /// grant refuses it.
    public func denial(ofCommand name: String?) -> MobileError? {
        if scope == .view { return MobileError(.scopeDenied, "This device can view the session but not control it.") }
        if let name, let allowedCommands, !allowedCommands.contains(name) {
            return MobileError(.scopeDenied, "This device is not allowed to send '\(name)'.")
        }
        return nil
    }

    /// The grant as wire fields, in the order they follow the contract's keys: `scope`, then
    /// `allowedCommands` and `grantExpiresAt` when set.
    public var wireFields: [(key: String, value: JSONValue)] {
        var fields: [(key: String, value: JSONValue)] = [("scope", .string(scope.rawValue))]
        if let allowedCommands { fields.append(("allowedCommands", .array(allowedCommands.map(JSONValue.string)))) }
        if let expiresAtMillis { fields.append(("grantExpiresAt", .string(Timestamp.format(millis: expiresAtMillis)))) }
        return fields
    }
}
