// Shared fixtures for the protocol tests: frames, a two-phase validation driver, a seeded RNG.

import RelayProtocol

/// The authenticated session every validation test runs in.
let testSessionID = "sess_ABC-123"

/// Default limits, as the reference ships them.
let defaultLimits = MobileValidationLimits()

/// Parses `text` the way the relay does before classifying it.
func parseFrame(_ text: String) -> Result<JSONValue, JSONParseError> {
    Result { () throws(JSONParseError) in try JSONValue.parse(text) }
}

/// Runs both stateless phases on a frame, as the relay does when steps 13–15 pass.
/// Returns nil when the frame would be forwarded.
func rejection(
    _ frame: JSONValue,
    limits: MobileValidationLimits = defaultLimits
) -> MobileError? {
    rejection(of: .success(frame), limits: limits)
}

/// Runs both stateless phases on raw frame text.
func rejection(text: String, limits: MobileValidationLimits = defaultLimits) -> MobileError? {
    rejection(of: parseFrame(text), limits: limits)
}

private func rejection(of parsed: Result<JSONValue, JSONParseError>, limits: MobileValidationLimits) -> MobileError? {
    switch MobileFrameValidator.classify(parsed, sessionID: testSessionID, limits: limits) {
    case .failure(let error):
        return error
    case .success(.snapshotRequest), .success(.resume), .success(.sealed), .success(.handshake):
        return nil
    case .success(.command):
        guard case .success(let value) = parsed else { return nil }
        return MobileFrameValidator.validateCommandName(value, limits: limits)
    }
}

/// A canonical command envelope around `command`, with optional overrides of top-level members.
func envelope(
    _ command: [String: JSONValue],
    seq: JSONValue = 1,
    extra: [String: JSONValue?] = [:]
) -> JSONValue {
    var members: [String: JSONValue] = [
        "schemaVersion": 2,
        "sessionID": .string(testSessionID),
        "seq": seq,
        "timestamp": "2026-03-05T12:34:56.789+00:00",
        "payload": ["type": "command", "payload": .object(command)],
    ]
    for (key, value) in extra { members[key] = value }
    return .object(members)
}

/// A valid `thread.select` command, to be altered by a test.
let threadSelect: [String: JSONValue] = ["name": "thread.select", "commandID": "cmd-1", "threadID": "thr_1"]

/// A valid `runtime_request.respond` command with the given response, to be altered by a test.
func respond(_ response: JSONValue, id: JSONValue = "42", kind: JSONValue? = "approval") -> [String: JSONValue] {
    var command: [String: JSONValue] = [
        "name": "runtime_request.respond",
        "commandID": "cmd-7",
        "runtimeRequestID": id,
        "runtimeRequestResponse": response,
    ]
    if let kind { command["runtimeRequestKind"] = kind }
    return command
}

/// A snapshot request with the given extra members.
func snapshotRequest(_ extra: [String: JSONValue] = [:]) -> JSONValue {
    var members: [String: JSONValue] = ["type": "relay.snapshot_request", "sessionID": .string(testSessionID)]
    for (key, value) in extra { members[key] = value }
    return .object(members)
}

/// Shorthand for an `invalid_command` rejection.
func invalidCommand(_ message: String) -> MobileError { MobileError(.invalidCommand, message) }

/// Shorthand for an `invalid_snapshot_request` rejection.
func invalidSnapshot(_ message: String) -> MobileError { MobileError(.invalidSnapshotRequest, message) }

/// SplitMix64: a small deterministic generator so property loops are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SeededGenerator {
    /// A random string mixing ASCII, control characters, escapes-worthy bytes and non-ASCII scalars.
    mutating func string(maxLength: Int = 12) -> String {
        let pool: [Unicode.Scalar] = [
            "a", "Z", "0", "_", "-", ":", " ", "/", "\"", "\\", "\u{0}", "\u{1}", "\u{8}", "\u{C}", "\n", "\r",
            "\t", "\u{1F}", "\u{7F}", "é", "\u{212A}", "K", "€", "\u{2028}", "😀", "\u{FFFF}", "中",
        ]
        var scalars = String.UnicodeScalarView()
        for _ in 0..<Int.random(in: 0...maxLength, using: &self) {
            scalars.append(pool.randomElement(using: &self)!)
        }
        return String(scalars)
    }

    /// A random JSON value, at most `depth` containers deep.
    mutating func value(depth: Int = 4) -> JSONValue {
        let pick = Int.random(in: 0..<(depth > 0 ? 8 : 5), using: &self)
        switch pick {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &self))
        case 2: return .number(number())
        case 3, 4: return .string(string())
        case 5: return .array((0..<Int.random(in: 0...4, using: &self)).map { _ in value(depth: depth - 1) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0...4, using: &self) { members[string(maxLength: 6)] = value(depth: depth - 1) }
            return .object(members)
        }
    }

    /// A random number lexeme: integers of any size, fractions and exponents.
    mutating func number() -> JSONNumber {
        let lexemes = [
            String(Int64.random(in: Int64.min...Int64.max, using: &self)),
            String(UInt64.random(in: 0...UInt64.max, using: &self)),
            "123456789012345678901234567890",
            "-0", "0", "1.5", "-2.25e-3", "6.02E+23", "1e2", "0.0",
        ]
        return JSONNumber(lexeme: lexemes.randomElement(using: &self)!)!
    }
}
