// An identifier a pairing request must carry, and the shortest it may be.

/// An identifier a request must carry, and the shortest it may be.
struct RequiredIdentifier {
    var value: String
    var minLength: Int

    static func sessionID(_ value: String) -> Self { .init(value: value, minLength: 16) }
    static func token(_ value: String) -> Self { .init(value: value, minLength: 22) }
    static func deviceID(_ value: String) -> Self { .init(value: value, minLength: 8) }
}
