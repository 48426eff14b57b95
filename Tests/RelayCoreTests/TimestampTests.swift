import RelayProtocol
import Testing

/// PROTOCOL "Conventions": any RFC 3339 form is accepted; the relay writes `+00:00` with
/// milliseconds only when the value is not a whole second.
@Suite("Timestamp", .timeLimit(.minutes(2)))
struct TimestampTests {
    static let y2k: Int64 = 946_684_800_000

    @Test(arguments: [
        "2000-01-01T00:00:00Z", "2000-01-01T00:00:00z", "2000-01-01t00:00:00Z", "2000-01-01 00:00:00Z",
        "2000-01-01T00:00:00+00:00", "2000-01-01T00:00:00-00:00", "2000-01-01T05:30:00+05:30",
        "1999-12-31T19:00:00-05:00", "2000-01-01T23:59:00+23:59",
    ])
    func equivalentFormsParseToTheSameInstant(text: String) {
        #expect(Timestamp.parseMillis(text) == Self.y2k)
    }

    @Test func parsesTheContractExample() {
        #expect(Timestamp.parseMillis("2026-03-05T12:34:56.789+00:00") == 1_772_714_096_789)
        #expect(Timestamp.parseMillis("1970-01-01T00:00:00Z") == 0)
    }

    @Test(arguments: [
        (".1", 100), (".12", 120), (".123", 123), (".1234", 123), (".123456", 123), (".123456789", 123),
        (".999999999", 999), (".000000001", 0), (".5", 500),
    ] as [(String, Int64)])
    func fractionsOfOneToNineDigitsAreReadAsMilliseconds(fraction: String, millis: Int64) {
        #expect(Timestamp.parseMillis("2000-01-01T00:00:00\(fraction)Z") == Self.y2k + millis)
        #expect(Timestamp.parseMillis("2000-01-01T00:00:00\(fraction)+00:00") == Self.y2k + millis)
    }

    @Test func leapDaysExistOnlyInLeapYears() {
        #expect(Timestamp.parseMillis("2024-02-29T00:00:00Z") == 1_709_164_800_000)
        #expect(Timestamp.parseMillis("2000-02-29T00:00:00Z") != nil)
        #expect(Timestamp.parseMillis("2023-02-29T00:00:00Z") == nil)
        #expect(Timestamp.parseMillis("1900-02-29T00:00:00Z") == nil)
        #expect(Timestamp.parseMillis("2100-02-29T00:00:00Z") == nil)
    }

    @Test func leapSecondIsAccepted() {
        #expect(Timestamp.parseMillis("2016-12-31T23:59:60Z") != nil)
    }

    @Test(arguments: [
        "", "2000-01-01", "2000-01-01T00:00:00", "2000-01-01T00:00Z", "2000-13-01T00:00:00Z",
        "2000-00-01T00:00:00Z", "2000-01-00T00:00:00Z", "2000-01-32T00:00:00Z", "2000-04-31T00:00:00Z",
        "2000-01-01T24:00:00Z", "2000-01-01T00:60:00Z", "2000-01-01T00:00:61Z", "2000-01-01T00:00:00.Z",
        "2000-01-01T00:00:00+0000", "2000-01-01T00:00:00+24:00", "2000-01-01T00:00:00+00:60",
        "2000-01-01T00:00:00ZZ", "2000-01-01T00:00:00Z ", " 2000-01-01T00:00:00Z", "2000-1-01T00:00:00Z",
        "20000-01-01T00:00:00Z", "2000/01/01T00:00:00Z", "2000-01-01X00:00:00Z", "2000-01-01T00:00:00.12a Z",
        "1772714096789", "not a timestamp",
    ])
    func malformedOrImpossibleDatesAreRejected(text: String) {
        #expect(Timestamp.parseMillis(text) == nil)
    }

    @Test func wholeSecondsAreFormattedWithoutAFraction() {
        #expect(Timestamp.format(millis: Self.y2k) == "2000-01-01T00:00:00+00:00")
        #expect(Timestamp.format(millis: 0) == "1970-01-01T00:00:00+00:00")
        #expect(Timestamp.format(millis: 1_709_164_800_000) == "2024-02-29T00:00:00+00:00")
    }

    @Test func otherValuesAreFormattedWithThreeFractionDigits() {
        #expect(Timestamp.format(millis: 1_772_714_096_789) == "2026-03-05T12:34:56.789+00:00")
        #expect(Timestamp.format(millis: Self.y2k + 7) == "2000-01-01T00:00:00.007+00:00")
        #expect(Timestamp.format(millis: Self.y2k + 50) == "2000-01-01T00:00:00.050+00:00")
        #expect(Timestamp.format(millis: -1) == "1969-12-31T23:59:59.999+00:00")
    }

    @Test func formattedValuesParseBackExactly() {
        var values: [Int64] = [0, 1, 999, 1_000, Self.y2k, 1_709_164_799_999, 1_772_714_096_789, 4_102_444_800_000]
        var generator = SystemRandomNumberGenerator()
        values += (0..<200).map { _ in Int64.random(in: 0..<4_102_444_800_000, using: &generator) }
        for value in values {
            let text = Timestamp.format(millis: value)
            #expect(text.hasSuffix("+00:00"))
            #expect(Timestamp.parseMillis(text) == value, "\(text)")
        }
    }
}
