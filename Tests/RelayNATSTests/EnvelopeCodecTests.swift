// The envelope's wire form, its canonical signed string and HMAC signatures (PROTOCOL §6.4, §6.5).

import RelayCore
import RelayProtocol
import Testing

@testable import RelayNATS

@Suite(.timeLimit(.minutes(2))) struct EnvelopeCodecTests {
    /// Quote, backslash, every named escape, other control characters, `/`, DEL and non-ASCII.
    static let trickyPayload = "quote\" backslash\\ controls\u{08}\u{0C}\n\r\t\u{00}\u{01}\u{1F} slash/ del\u{7F} é日本😀"

    static let tricky = BusEnvelope(
        sessionID: "sess-ABC_123", sourceInstanceID: "inst-XYZ", target: .mobile, targetDeviceID: "dev/1",
        payload: Array(trickyPayload.utf8), issuedAtMillis: 1_700_000_000_123, nonce: "nonce_0123456789")

    /// Written out by hand from §6.5 (and checked against Python's `json.dumps(…, separators=(',',':'),
    /// ensure_ascii=False)`, which escapes as serde_json does).
    static let trickyCanonical =
        #"{"schema_version":1,"session_id":"sess-ABC_123","source_instance_id":"inst-XYZ","target":"mobile","target_device_id":"dev/1","payload":"quote\" backslash\\ controls\b\f\n\r\t\u0000\u0001\u001f slash/ del"#
        + "\u{7F}" + #" é日本😀","issued_at_ms":1700000000123,"nonce":"nonce_0123456789"}"#

    /// The secret with surrounding white space, as it may come from the environment.
    static let secret = "  0123456789abcdef0123456789abcdef-test \n"

    /// `base64.urlsafe_b64encode(hmac.new(b"0123456789abcdef0123456789abcdef-test", canonical,
    /// hashlib.sha256).digest()).rstrip(b"=")`, computed with Python.
    static let trickySignature = "YxZ3N8dVrlXJs2oCrbeVDngIBUgNVLQdlnQSVhL02iw"
    /// The same with the key `previous-secret-previous-secret-previous`.
    static let trickySignatureWithPreviousSecret = "YSGcGGbW82ZZgnI9NTvuBXJ2t7NWuMmeuM1QN9BGhY0"

    static let plain = BusEnvelope(
        sessionID: "s1", sourceInstanceID: "i1", target: .desktop, payload: Array(#"{"type":"x"}"#.utf8),
        issuedAtMillis: 1, nonce: "")
    static let plainCanonical =
        #"{"schema_version":1,"session_id":"s1","source_instance_id":"i1","target":"desktop","target_device_id":null,"payload":"{\"type\":\"x\"}","issued_at_ms":1,"nonce":""}"#
    static let plainSignature = "l_P1CLD2VVdm79e6QpFqUkjg8L9MwMu8XyTmsqijbxE"

    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    @Test func canonicalStringMatchesTheContractByteForByte() {
        #expect(EnvelopeCodec.canonical(Self.tricky) == Array(Self.trickyCanonical.utf8))
        #expect(EnvelopeCodec.canonical(Self.plain) == Array(Self.plainCanonical.utf8))
    }

    @Test func signatureMatchesAnIndependentlyComputedVector() throws {
        let signer = try #require(EnvelopeSigner(secret: Self.secret))
        #expect(signer.signature(for: EnvelopeCodec.canonical(Self.tricky)) == Self.trickySignature)
        #expect(signer.signature(for: EnvelopeCodec.canonical(Self.plain)) == Self.plainSignature)
        #expect(Self.trickySignature.utf8.count == 43)
    }

    @Test func wireFormAppendsTheSignatureAsTheLastKey() throws {
        let signer = try #require(EnvelopeSigner(secret: Self.secret))
        let signed = text(EnvelopeCodec.encode(Self.plain, signer: signer))
        #expect(signed == String(Self.plainCanonical.dropLast()) + #","signature":"\#(Self.plainSignature)"}"#)
        let unsigned = text(EnvelopeCodec.encode(Self.plain, signer: nil))
        #expect(unsigned == String(Self.plainCanonical.dropLast()) + #","signature":null}"#)
    }

    @Test func decodingGivesBackWhatWasEncoded() throws {
        let signer = try #require(EnvelopeSigner(secret: Self.secret))
        let wire = try #require(EnvelopeCodec.decode(EnvelopeCodec.encode(Self.tricky, signer: signer)))
        #expect(wire.envelope == Self.tricky)
        #expect(wire.schemaVersion == 1)
        #expect(wire.signature == Self.trickySignature)
        #expect(try #require(EnvelopeCodec.decode(EnvelopeCodec.encode(Self.plain, signer: nil))).signature == nil)
    }

    @Test func missingOptionalFieldsTakeTheirDefaultsAndUnknownKeysAreIgnored() throws {
        let bytes = Array(
            #"{"extra":[1,{"x":null}],"target":"session_refresh","payload":"{}","session_id":"s","source_instance_id":"i","schema_version":1}"#
                .utf8)
        let wire = try #require(EnvelopeCodec.decode(bytes))
        #expect(wire.envelope.issuedAtMillis == 0)
        #expect(wire.envelope.nonce == "")
        #expect(wire.envelope.targetDeviceID == nil)
        #expect(wire.envelope.target == .sessionRefresh)
        #expect(wire.signature == nil)
    }

    @Test(arguments: [
        #"not json"#,
        #"[1]"#,
        #"{"schema_version":256,"session_id":"s","source_instance_id":"i","target":"desktop","payload":"{}"}"#,
        #"{"schema_version":-1,"session_id":"s","source_instance_id":"i","target":"desktop","payload":"{}"}"#,
        #"{"schema_version":1.0,"session_id":"s","source_instance_id":"i","target":"desktop","payload":"{}"}"#,
        #"{"schema_version":"1","session_id":"s","source_instance_id":"i","target":"desktop","payload":"{}"}"#,
        #"{"session_id":"s","source_instance_id":"i","target":"desktop","payload":"{}"}"#,
        #"{"schema_version":1,"session_id":"s","source_instance_id":"i","target":"laptop","payload":"{}"}"#,
        #"{"schema_version":1,"session_id":"s","source_instance_id":"i","target":"desktop","payload":{}}"#,
        #"{"schema_version":1,"session_id":"s","source_instance_id":"i","target":"desktop","payload":"{}","issued_at_ms":1.5}"#,
        #"{"schema_version":1,"session_id":"s","source_instance_id":"i","target":"desktop","payload":"{}","issued_at_ms":null}"#,
        #"{"schema_version":1,"session_id":"s","source_instance_id":"i","target":"desktop","payload":"{}","nonce":7}"#,
        #"{"schema_version":1,"session_id":"s","source_instance_id":"i","target":"desktop","payload":"{}","signature":1}"#,
        #"{"schema_version":1,"session_id":"s","source_instance_id":"i","target":"mobile","payload":"{}","target_device_id":2}"#,
    ])
    func malformedEnvelopesDoNotDecode(json: String) {
        #expect(EnvelopeCodec.decode(Array(json.utf8)) == nil)
    }

    @Test func paddedOrMalformedSignaturesAreRejected() throws {
        let signer = try #require(EnvelopeSigner(secret: Self.secret))
        let canonical = EnvelopeCodec.canonical(Self.tricky)
        #expect(signer.verify(Self.trickySignature, canonical: canonical))
        #expect(!signer.verify(Self.trickySignature + "=", canonical: canonical))
        #expect(!signer.verify(String(Self.trickySignature.dropLast()), canonical: canonical))
        // Same first 256 bits, but the unused low bits of the last character set: not canonical.
        #expect(!signer.verify(String(Self.trickySignature.dropLast()) + "x", canonical: canonical))
        #expect(!signer.verify(Self.trickySignature.replacingFirst("_", with: "/"), canonical: canonical))
        #expect(!signer.verify("", canonical: canonical))
    }

    @Test func tamperedFieldsFailVerification() throws {
        let signer = try #require(EnvelopeSigner(secret: Self.secret))
        var tampered = Self.tricky
        tampered.payload = Array(#"{"type":"relay.evil"}"#.utf8)
        #expect(!signer.verify(Self.trickySignature, canonical: EnvelopeCodec.canonical(tampered)))
        tampered = Self.tricky
        tampered.issuedAtMillis += 1
        #expect(!signer.verify(Self.trickySignature, canonical: EnvelopeCodec.canonical(tampered)))
        tampered = Self.tricky
        tampered.targetDeviceID = nil
        #expect(!signer.verify(Self.trickySignature, canonical: EnvelopeCodec.canonical(tampered)))
    }

    @Test func previousSecretIsAcceptedForVerifyingOnly() throws {
        let canonical = EnvelopeCodec.canonical(Self.tricky)
        let previous = "previous-secret-previous-secret-previous"
        let rotating = try #require(EnvelopeSigner(secret: Self.secret, previousSecret: previous))
        #expect(rotating.verify(Self.trickySignatureWithPreviousSecret, canonical: canonical))
        #expect(rotating.verify(Self.trickySignature, canonical: canonical))
        // Signs with the current secret only.
        #expect(rotating.signature(for: canonical) == Self.trickySignature)

        let current = try #require(EnvelopeSigner(secret: Self.secret))
        #expect(!current.verify(Self.trickySignatureWithPreviousSecret, canonical: canonical))
        let unknown = try #require(EnvelopeSigner(secret: "some-other-secret-some-other-secret", previousSecret: previous))
        #expect(!unknown.verify(Self.trickySignature, canonical: canonical))
    }

    @Test func noSecretMeansNoSigner() {
        #expect(EnvelopeSigner(secret: nil) == nil)
        #expect(EnvelopeSigner(secret: " \n ") == nil)
    }

    @Test func base64URLDecodingIsStrict() {
        #expect(Base64URL.decode("") == [])
        #expect(Base64URL.decode("_-8") == [0xFF, 0xEF])
        #expect(Base64URL.decode("AQID") == [1, 2, 3])
        #expect(Base64URL.decode("AQ") == [1])
        #expect(Base64URL.decode("AR") == nil)  // trailing bits not zero
        #expect(Base64URL.decode("AQ==") == nil)
        #expect(Base64URL.decode("A") == nil)
        #expect(Base64URL.decode("A+/B") == nil)
    }
}

extension String {
    fileprivate func replacingFirst(_ target: Character, with replacement: Character) -> String {
        guard let index = firstIndex(of: target) else { return self + String(replacement) }
        var copy = self
        copy.replaceSubrange(index...index, with: String(replacement))
        return copy
    }
}
