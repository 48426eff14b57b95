// The receive pipeline's checks and their order (PROTOCOL §6.5), without a server.

import RelayCore
import Testing

@testable import RelayNATS

@Suite(.timeLimit(.minutes(2))) struct ReceivePipelineTests {
    static let now: Int64 = 1_800_000_000_000
    static let window: Int64 = 120_000
    static let skew: Int64 = 30_000
    static let signer = EnvelopeSigner(secret: TestNATS.secret)!

    private func pipeline(signed: Bool = true, previousSecret: String? = nil) -> ReceivePipeline {
        ReceivePipeline(
            instanceID: "me", signer: signed ? EnvelopeSigner(secret: TestNATS.secret, previousSecret: previousSecret) : nil,
            replayWindowMillis: Self.window, maxClockSkewMillis: Self.skew)
    }

    private func envelope(
        source: String = "peer", issuedAt: Int64 = ReceivePipelineTests.now, nonce: String = "nonce-0001"
    ) -> BusEnvelope {
        BusEnvelope(
            sessionID: "session-1", sourceInstanceID: source, target: .desktop, payload: Array(#"{"type":"event"}"#.utf8),
            issuedAtMillis: issuedAt, nonce: nonce)
    }

    private func signed(_ envelope: BusEnvelope, with signer: EnvelopeSigner? = ReceivePipelineTests.signer) -> [UInt8] {
        EnvelopeCodec.encode(envelope, signer: signer)
    }

    /// The wire form with `schema_version` replaced, signed over the canonical form of that version.
    private func withSchema(_ version: UInt8, _ envelope: BusEnvelope) -> [UInt8] {
        var canonical = EnvelopeCodec.canonical(envelope, schemaVersion: version)
        let signature = Self.signer.signature(for: canonical)
        canonical.removeLast()
        return canonical + Array(#","signature":"\#(signature)"}"#.utf8)
    }

    @Test func freshSignedEnvelopeIsAccepted() {
        let original = envelope()
        #expect(pipeline().check(signed(original), now: Self.now) == .accept(original))
    }

    @Test func replayedNonceIsRejected() {
        let pipeline = pipeline()
        let bytes = signed(envelope())
        #expect(pipeline.check(bytes, now: Self.now) == .accept(envelope()))
        #expect(pipeline.check(bytes, now: Self.now + 1_000) == .reject(.replay))
        // The same nonce from another instance is a different pair.
        #expect(pipeline.check(signed(envelope(source: "other")), now: Self.now) == .accept(envelope(source: "other")))
    }

    @Test func staleEnvelopesAreRejected() {
        let pipeline = pipeline()
        #expect(pipeline.check(signed(envelope(issuedAt: Self.now - Self.window - 1)), now: Self.now) == .reject(.stale))
        #expect(pipeline.check(signed(envelope(issuedAt: 0)), now: Self.now) == .reject(.stale))
        #expect(pipeline.check(signed(envelope(issuedAt: -5)), now: Self.now) == .reject(.stale))
        let edge = envelope(issuedAt: Self.now - Self.window)
        #expect(pipeline.check(signed(edge), now: Self.now) == .accept(edge))
    }

    @Test func futureEnvelopesBeyondTheSkewAreRejected() {
        let pipeline = pipeline()
        #expect(pipeline.check(signed(envelope(issuedAt: Self.now + Self.skew + 1)), now: Self.now) == .reject(.future))
        let edge = envelope(issuedAt: Self.now + Self.skew)
        #expect(pipeline.check(signed(edge), now: Self.now) == .accept(edge))
    }

    @Test(arguments: ["", "short", "1234567", "has space", "nonce.with.dots", String(repeating: "n", count: 513)])
    func nonceMustBeAnOpaqueTokenOfAtLeastEight(nonce: String) {
        #expect(pipeline().check(signed(envelope(nonce: nonce)), now: Self.now) == .reject(.nonce))
    }

    @Test func ownEnvelopesAreDroppedAfterTheSignatureCheck() {
        let pipeline = pipeline()
        #expect(pipeline.check(signed(envelope(source: "me")), now: Self.now) == .own)
        // A forged envelope claiming to be ours is a signature failure first.
        #expect(pipeline.check(signed(envelope(source: "me"), with: nil), now: Self.now) == .reject(.signature))
        // Own envelopes are not subject to the time checks, which come after.
        #expect(pipeline.check(signed(envelope(source: "me", issuedAt: 0)), now: Self.now) == .own)
    }

    @Test func schemaOtherThanOneIsRejectedBeforeTheSignature() {
        let pipeline = pipeline()
        #expect(pipeline.check(withSchema(2, envelope()), now: Self.now) == .reject(.schema))
        #expect(pipeline.check(withSchema(0, envelope()), now: Self.now) == .reject(.schema))
        #expect(pipeline.check(withSchema(1, envelope()), now: Self.now) == .accept(envelope()))
    }

    @Test func undecodableMessagesAreRejected() {
        #expect(pipeline().check(Array("{".utf8), now: Self.now) == .reject(.decode))
        #expect(pipeline(signed: false).check([0xFF, 0x00], now: Self.now) == .reject(.decode))
    }

    @Test func unsignedWrongSecretOrPaddedSignaturesAreRejectedWhenASecretIsConfigured() throws {
        let pipeline = pipeline()
        #expect(pipeline.check(signed(envelope(), with: nil), now: Self.now) == .reject(.signature))
        let stranger = try #require(EnvelopeSigner(secret: "another-secret-another-secret-another"))
        #expect(pipeline.check(signed(envelope(), with: stranger), now: Self.now) == .reject(.signature))
        let good = String(decoding: signed(envelope(nonce: "nonce-0002")), as: UTF8.self)
        let padded = good.replacingOccurrences(of: #""}"#, with: #"="}"#, lastOnly: true)
        #expect(padded != good)
        #expect(pipeline.check(Array(padded.utf8), now: Self.now) == .reject(.signature))
        #expect(pipeline.check(Array(good.utf8), now: Self.now) == .accept(envelope(nonce: "nonce-0002")))
    }

    @Test func tamperedPayloadIsRejected() {
        let good = String(decoding: signed(envelope()), as: UTF8.self)
        let tampered = good.replacingOccurrences(of: "event", with: "evenT", lastOnly: false)
        #expect(pipeline().check(Array(tampered.utf8), now: Self.now) == .reject(.signature))
    }

    /// Our extension: a pairing envelope's `traceparent` is signed with the rest, so a node cannot be
    /// made to continue another trace; an envelope without it (any node that does not trace) signs
    /// and verifies exactly as the contract says.
    @Test func traceparentIsCoveredByTheSignature() {
        var traced = envelope()
        traced.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        let good = String(decoding: signed(traced), as: UTF8.self)
        #expect(good.contains(#","nonce":"nonce-0001","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","signature":"#))
        #expect(pipeline().check(Array(good.utf8), now: Self.now) == .accept(traced))

        let tampered = good.replacingOccurrences(of: "b7ad6b7169203331", with: "b7ad6b7169203332", lastOnly: false)
        #expect(pipeline().check(Array(tampered.utf8), now: Self.now) == .reject(.signature))
        let stripped = good.replacingOccurrences(
            of: #","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01""#, with: "", lastOnly: false)
        #expect(pipeline().check(Array(stripped.utf8), now: Self.now) == .reject(.signature))

        // Without the field the canonical form is the contract's, byte for byte.
        #expect(!String(decoding: EnvelopeCodec.canonical(envelope()), as: UTF8.self).contains("traceparent"))
        // Unsigned clusters carry it too; a field of the wrong type is not an envelope.
        #expect(pipeline(signed: false).check(Array(String(decoding: signed(traced, with: nil), as: UTF8.self).utf8), now: Self.now) == .accept(traced))
        let numeric = good.replacingOccurrences(
            of: #""traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01""#, with: #""traceparent":7"#, lastOnly: false)
        #expect(pipeline().check(Array(numeric.utf8), now: Self.now) == .reject(.decode))
    }

    @Test func previousSecretIsAcceptedDuringARotation() throws {
        let old = "old-secret-old-secret-old-secret-old"
        let oldSigner = try #require(EnvelopeSigner(secret: old))
        let rotating = pipeline(previousSecret: old)
        #expect(rotating.check(signed(envelope(), with: oldSigner), now: Self.now) == .accept(envelope()))
        #expect(pipeline().check(signed(envelope(), with: oldSigner), now: Self.now) == .reject(.signature))
    }

    @Test func unsignedModeRunsNoSignatureTimeOrNonceChecks() {
        let pipeline = pipeline(signed: false)
        let bare = envelope(issuedAt: 0, nonce: "")
        let bytes = signed(bare, with: nil)
        #expect(pipeline.check(bytes, now: Self.now) == .accept(bare))
        #expect(pipeline.check(bytes, now: Self.now) == .accept(bare))
        let ancient = envelope(issuedAt: 1, nonce: "x")
        #expect(pipeline.check(signed(ancient), now: Self.now) == .accept(ancient))
        let future = envelope(issuedAt: Self.now * 2)
        #expect(pipeline.check(signed(future, with: nil), now: Self.now) == .accept(future))
        #expect(pipeline.check(signed(envelope(source: "me"), with: nil), now: Self.now) == .own)
        #expect(pipeline.check(withSchema(2, envelope()), now: Self.now) == .reject(.schema))
        #expect(pipeline.rememberedNonces == 0)
    }

    @Test func seenNoncesExpireAfterWindowPlusSkew() {
        let pipeline = pipeline()
        for index in 0..<100 {
            _ = pipeline.check(signed(envelope(nonce: "nonce-\(1000 + index)")), now: Self.now)
        }
        #expect(pipeline.rememberedNonces == 100)
        // Still remembered at the expiry itself…
        let expiry = Self.now + Self.window + Self.skew
        _ = pipeline.check(signed(envelope(issuedAt: expiry - 1, nonce: "later-0001")), now: expiry)
        #expect(pipeline.rememberedNonces == 101)
        // …and pruned once it has passed. The table is sharded by nonce and each shard is pruned
        // on its own inserts: a thousand new nonces reach every one of the 16 shards (the chance
        // that one is missed is about 10^-27).
        for index in 0..<1000 {
            _ = pipeline.check(signed(envelope(issuedAt: expiry, nonce: "later-\(10_000 + index)")), now: expiry + 1)
        }
        #expect(pipeline.rememberedNonces == 1 + 1000)
    }
}

extension String {
    /// Replaces the first (or last) occurrence of `target`.
    fileprivate func replacingOccurrences(of target: String, with replacement: String, lastOnly: Bool) -> String {
        let ranges = self.ranges(of: target)
        guard let range = lastOnly ? ranges.last : ranges.first else { return self }
        var copy = self
        copy.replaceSubrange(range, with: replacement)
        return copy
    }
}
