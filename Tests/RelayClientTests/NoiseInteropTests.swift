// Extension 12's Noise handshakes against an independent implementation: the PyPI package
// noiseprotocol 0.3.1, driven as a child process through Support/noise_peer.py under the Python
// that RELAY_TEST_NOISE_PYTHON names (scripts/noise-python.sh makes it; `make test` exports it).

@testable import RelayClient
import Crypto
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Noise_IKpsk2_25519_ChaChaPoly_SHA256 and Noise_KK_25519_ChaChaPoly_SHA256, both initiator roles:
/// the same bytes on the wire as noiseprotocol for the same keys, the same handshake hash and
/// transport keys, transport messages both ways, and the sealed-envelope nonce.
@Suite("Noise interoperability with noiseprotocol", .timeLimit(.minutes(2)))
struct NoiseInteropTests {
    /// The handshake payloads: a phone's hello, and the desktop's epoch key grant.
    static let firstPayload = Array(#"{"deviceID":"d1"}"#.utf8)
    static let secondPayload = Array(
        #"{"deviceID":"d1","epoch":0,"contentKey":"\#(Base64URL.encode(fixedBytes("content key")))"}"#.utf8)

    /// Fixed keys on both sides: the Swift initiator writes byte for byte what noiseprotocol's
    /// initiator writes, the Swift responder what noiseprotocol's responder writes, and each side
    /// reads the other implementation's messages.
    @Test(arguments: NoisePatternName.allCases)
    func fixedKeysGiveTheSameMessagesAsNoiseprotocol(pattern: NoisePatternName) async throws {
        guard let python = NoisePythonPeer.python() else { return }
        let setup = HandshakeSetup.fixed(pattern)
        var swiftInitiator = try setup.swift(initiator: true)
        var swiftResponder = try setup.swift(initiator: false)
        let pythonInitiator = try await NoisePythonPeer(python: python, setup: setup, initiator: true)
        defer { pythonInitiator.terminate() }
        let pythonResponder = try await NoisePythonPeer(python: python, setup: setup, initiator: false)
        defer { pythonResponder.terminate() }

        // -> message 1: the same bytes from both initiators; each responder reads the other's.
        let swiftFirst = try swiftInitiator.writeMessage(payload: Self.firstPayload)
        let pythonFirst = try await pythonInitiator.write(Self.firstPayload)
        #expect(swiftFirst == pythonFirst, "message 1 differs from noiseprotocol's")
        #expect(swiftFirst.count == Self.firstPayload.count + (pattern == .ikpsk2 ? 32 + 48 + 16 : 32 + 16))
        #expect(try await pythonResponder.read(swiftFirst) == Self.firstPayload)
        let readFirst = try swiftResponder.readMessage(pythonFirst)
        #expect(readFirst == Self.firstPayload)
        let initiatorPublic = try setup.initiatorPublic
        #expect(swiftResponder.remoteStatic == initiatorPublic)

        // <- message 2: the same again from both responders.
        let swiftSecond = try swiftResponder.writeMessage(payload: Self.secondPayload)
        let pythonSecond = try await pythonResponder.write(Self.secondPayload)
        #expect(swiftSecond == pythonSecond, "message 2 differs from noiseprotocol's")
        #expect(swiftSecond.count == Self.secondPayload.count + 32 + 16)
        let readSecond = try swiftInitiator.readMessage(pythonSecond)
        #expect(readSecond == Self.secondPayload)
        #expect(try await pythonInitiator.read(swiftSecond) == Self.secondPayload)

        #expect(swiftInitiator.isComplete && swiftResponder.isComplete)
        let hash = try await pythonInitiator.handshakeHash()
        #expect(swiftInitiator.handshakeHash == hash)
        #expect(swiftResponder.handshakeHash == hash)
        #expect(try await pythonResponder.handshakeHash() == hash)

        // Split(): the same transport keys, initiator-to-responder first.
        let pythonKeys = try await pythonInitiator.keys()
        let swiftKeys = try swiftInitiator.split()
        #expect(bytes(of: swiftKeys.send) == pythonKeys.send)
        #expect(bytes(of: swiftKeys.receive) == pythonKeys.receive)
        let responderKeys = try swiftResponder.split()
        #expect(bytes(of: responderKeys.send) == pythonKeys.receive)
        #expect(bytes(of: responderKeys.receive) == pythonKeys.send)
    }

    /// After a handshake, transport messages both ways: Swift's `NoiseCipherState` under its
    /// split keys against noiseprotocol's, counters advancing, and a tampered message refused by
    /// each side without moving its counter.
    @Test(arguments: NoisePatternName.allCases, [true, false])
    func transportMessagesBothWays(pattern: NoisePatternName, swiftInitiates: Bool) async throws {
        guard let python = NoisePythonPeer.python() else { return }
        let setup = HandshakeSetup.fixed(pattern)
        let peer = try await NoisePythonPeer(python: python, setup: setup, initiator: !swiftInitiates)
        defer { peer.terminate() }
        let swift = try await handshake(setup, swiftInitiates: swiftInitiates, with: peer)
        try await exchangeTransportMessages(swift, with: peer)
    }

    /// Fresh static keys, psk and session, and ephemeral keys each implementation generates.
    @Test(arguments: NoisePatternName.allCases, [true, false])
    func randomKeysHandshake(pattern: NoisePatternName, swiftInitiates: Bool) async throws {
        guard let python = NoisePythonPeer.python() else { return }
        let setup = HandshakeSetup.random(pattern)
        let peer = try await NoisePythonPeer(python: python, setup: setup, initiator: !swiftInitiates)
        defer { peer.terminate() }
        let swift = try await handshake(setup, swiftInitiates: swiftInitiates, with: peer)
        try await exchangeTransportMessages(swift, with: peer)
    }

    /// IKpsk2 mixes the psk in at the end of message 2 (psk2): with different psks message 1 is
    /// still read, and message 2 is refused, whichever implementation initiates.
    @Test(arguments: [true, false])
    func mismatchedPSKIsRefusedAtMessage2(swiftInitiates: Bool) async throws {
        guard let python = NoisePythonPeer.python() else { return }
        let setup = HandshakeSetup.fixed(.ikpsk2)
        var other = setup
        other.psk = fixedBytes("another psk")
        let peer = try await NoisePythonPeer(python: python, setup: other, initiator: !swiftInitiates)
        defer { peer.terminate() }
        var swift = try setup.swift(initiator: swiftInitiates)
        if swiftInitiates {
            let first = try swift.writeMessage(payload: Self.firstPayload)
            #expect(try await peer.read(first) == Self.firstPayload)
            let second = try await peer.write(Self.secondPayload)
            let refusal = thrownError { try swift.readMessage(second) }
            #expect(refusal as? EndToEndError == EndToEndError.authenticationFailed, "message 2 under another psk: \(String(describing: refusal))")
        } else {
            let first = try await peer.write(Self.firstPayload)
            let payload = try swift.readMessage(first)
            #expect(payload == Self.firstPayload)
            let second = try swift.writeMessage(payload: Self.secondPayload)
            let answer = try await peer.answer(["read": hex(second)], for: "read")
            #expect(answer["error"] != nil, "noiseprotocol read message 2 under another psk: \(answer)")
        }
    }

    /// A handshake message with one bit flipped is refused by either implementation.
    @Test(arguments: NoisePatternName.allCases)
    func tamperedHandshakeMessagesAreRefused(pattern: NoisePatternName) async throws {
        guard let python = NoisePythonPeer.python() else { return }
        let setup = HandshakeSetup.fixed(pattern)
        // Swift's message 1, tampered, to noiseprotocol's responder.
        let responder = try await NoisePythonPeer(python: python, setup: setup, initiator: false)
        defer { responder.terminate() }
        var swiftInitiator = try setup.swift(initiator: true)
        var first = try swiftInitiator.writeMessage(payload: Self.firstPayload)
        first[first.count - 1] ^= 0x01
        let answer = try await responder.answer(["read": hex(first)], for: "read")
        #expect(answer["error"] != nil, "noiseprotocol read a tampered message 1: \(answer)")

        // noiseprotocol's message 1, tampered, to Swift's responder.
        let initiator = try await NoisePythonPeer(python: python, setup: setup, initiator: true)
        defer { initiator.terminate() }
        var pythonFirst = try await initiator.write(Self.firstPayload)
        pythonFirst[pythonFirst.count - 1] ^= 0x01
        var swiftResponder = try setup.swift(initiator: false)
        let refusal = thrownError { try swiftResponder.readMessage(pythonFirst) }
        #expect(refusal as? EndToEndError == EndToEndError.authenticationFailed, "a tampered message 1: \(String(describing: refusal))")
    }

    /// A sealed envelope's nonce is 4 zero bytes and `seq` big-endian (unlike Noise's
    /// little-endian counter): Python's ChaCha20Poly1305 (`cryptography`) with those 12 bytes gives
    /// the same ciphertext as `ChaChaPolyBox`, and each opens the other's.
    @Test func sealedEnvelopeNonceMatchesPythonChaChaPoly() async throws {
        guard let python = NoisePythonPeer.python() else { return }
        let seq: UInt64 = 0x0102_0304_0506_0708
        let nonce = ChaChaPolyBox.envelopeNonce(seq: seq)
        #expect(nonce == [0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08])
        #expect(ChaChaPolyBox.noiseNonce(seq) == [0x00, 0x00, 0x00, 0x00, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01])

        let key = fixedBytes("epoch content key")
        let associatedData = Array(
            #"{"schemaVersion":2,"seq":\#(seq),"sessionID":"s-interop","timestamp":"2026-01-01T00:00:00.000Z"}"#.utf8)
        let plaintext = Array(#"{"type":"message","text":"hello from the desktop"}"#.utf8)
        let peer = try await NoisePythonPeer(python: python, setup: HandshakeSetup.fixed(.kk), initiator: true)
        defer { peer.terminate() }

        let sealed = try ChaChaPolyBox.seal(plaintext, key: SymmetricKey(data: key), nonce: nonce, associatedData: associatedData)
        let pythonSealed = try await peer.aeadSeal(key: key, nonce: [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8], associatedData: associatedData, plaintext: plaintext)
        #expect(sealed == pythonSealed, "ChaChaPolyBox.seal differs from Python's ChaCha20Poly1305 with the envelope nonce")
        #expect(try await peer.aeadOpen(key: key, nonce: nonce, associatedData: associatedData, ciphertext: sealed) == plaintext)
        let opened = try ChaChaPolyBox.open(pythonSealed, key: SymmetricKey(data: key), nonce: nonce, associatedData: associatedData)
        #expect(opened == plaintext)
        // The same seq under Noise's nonce layout is another nonce: Python refuses it.
        let answer = try await peer.answer(
            ["aead_open": ["key": hex(key), "nonce": hex(ChaChaPolyBox.noiseNonce(seq)), "ad": hex(associatedData), "ciphertext": hex(sealed)]],
            for: "aead_open")
        #expect(answer["error"] != nil)
    }

    // MARK: Helpers

    /// Both messages between a Swift side and `peer` (the other role), payloads and handshake
    /// hashes checked; the completed Swift side.
    func handshake(_ setup: HandshakeSetup, swiftInitiates: Bool, with peer: NoisePythonPeer) async throws -> NoiseHandshake {
        var swift = try setup.swift(initiator: swiftInitiates)
        if swiftInitiates {
            let first = try swift.writeMessage(payload: Self.firstPayload)
            #expect(try await peer.read(first) == Self.firstPayload)
            let second = try await peer.write(Self.secondPayload)
            let payload = try swift.readMessage(second)
            #expect(payload == Self.secondPayload)
        } else {
            let first = try await peer.write(Self.firstPayload)
            let payload = try swift.readMessage(first)
            #expect(payload == Self.firstPayload)
            let second = try swift.writeMessage(payload: Self.secondPayload)
            #expect(try await peer.read(second) == Self.secondPayload)
            let initiatorPublic = try setup.initiatorPublic
            #expect(swift.remoteStatic == initiatorPublic)
        }
        #expect(swift.isComplete)
        #expect(try await peer.handshakeHash() == swift.handshakeHash)
        return swift
    }

    /// Transport messages both ways in uneven bursts (each direction's counter advances on its
    /// own), an empty one, then a tampered one each way: refused, the counter unmoved, the genuine
    /// message still opening.
    func exchangeTransportMessages(_ swift: NoiseHandshake, with peer: NoisePythonPeer) async throws {
        let keys = try swift.split()
        var sending = NoiseCipherState(key: keys.send)
        var receiving = NoiseCipherState(key: keys.receive)
        for round in 0..<3 {
            for index in 0...round {
                let plaintext = Array("swift to python \(round).\(index)".utf8)
                let ciphertext = try sending.encrypt(plaintext, associatedData: [])
                #expect(ciphertext.count == plaintext.count + 16)
                #expect(try await peer.decrypt(ciphertext) == plaintext)
            }
            let plaintext = Array("python to swift \(round)".utf8)
            let ciphertext = try await peer.encrypt(plaintext)
            let opened = try receiving.decrypt(ciphertext, associatedData: [])
            #expect(opened == plaintext)
        }
        let empty = try sending.encrypt([], associatedData: [])
        #expect(try await peer.decrypt(empty) == [UInt8]())
        #expect(sending.nonce == 7)
        #expect(receiving.nonce == 3)

        let genuine = try sending.encrypt(Array("genuine, to python".utf8), associatedData: [])
        var tampered = genuine
        tampered[tampered.count / 2] ^= 0x01
        let refused = try await peer.answer(["decrypt": hex(tampered)], for: "decrypt")
        #expect(refused["error"] != nil, "noiseprotocol opened a tampered transport message: \(refused)")
        #expect(try await peer.decrypt(genuine) == Array("genuine, to python".utf8))

        let fromPython = try await peer.encrypt(Array("genuine, to swift".utf8))
        var tamperedReply = fromPython
        tamperedReply[0] ^= 0x80
        let refusal = thrownError { try receiving.decrypt(tamperedReply, associatedData: []) }
        #expect(refusal as? EndToEndError == EndToEndError.authenticationFailed, "a tampered transport message: \(String(describing: refusal))")
        #expect(receiving.nonce == 3)
        let opened = try receiving.decrypt(fromPython, associatedData: [])
        #expect(opened == Array("genuine, to swift".utf8))

        // The counters are still in step.
        let last = try await peer.encrypt(Array("last".utf8))
        let openedLast = try receiving.decrypt(last, associatedData: [])
        #expect(openedLast == Array("last".utf8))
        let lastToPython = try sending.encrypt(Array("last".utf8), associatedData: [])
        #expect(try await peer.decrypt(lastToPython) == Array("last".utf8))
    }
}

// MARK: - Keys and prologue

/// 32 bytes from a label, the same on every run.
private func fixedBytes(_ label: String) -> [UInt8] {
    Array(Crypto.SHA256.hash(data: Array("noise-interop/\(label)".utf8)))
}

/// The error `body` throws, or nil.
private func thrownError<Value>(_ body: () throws -> Value) -> (any Error)? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

private func bytes(of key: SymmetricKey) -> [UInt8] {
    key.withUnsafeBytes { Array($0) }
}

private func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}

private func unhex(_ text: String) -> [UInt8]? {
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(digits.count / 2)
    for index in stride(from: 0, to: digits.count, by: 2) {
        guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
        out.append(high << 4 | low)
    }
    return out
}

/// The keys and prologue of one handshake, for a Swift side and a Python side alike.
struct HandshakeSetup: Sendable {
    let pattern: NoisePatternName
    let prologue: [UInt8]
    let initiatorStatic: [UInt8]
    let responderStatic: [UInt8]
    /// Fixed ephemeral private keys; nil lets each implementation generate its own.
    let initiatorEphemeral: [UInt8]?
    let responderEphemeral: [UInt8]?
    /// IKpsk2's psk; nil for KK.
    var psk: [UInt8]?

    /// The product's prologue: `codexchat-relay-e2e/1`, 0, the session id, and for KK 0 and the
    /// device id.
    static func prologue(_ pattern: NoisePatternName, sessionID: String, deviceID: String) -> [UInt8] {
        var out = Array("codexchat-relay-e2e/1".utf8) + [0] + Array(sessionID.utf8)
        if pattern == .kk { out += [0] + Array(deviceID.utf8) }
        return out
    }

    /// Every key derived from a label: the same messages on every run.
    static func fixed(_ pattern: NoisePatternName) -> HandshakeSetup {
        let label = pattern.rawValue
        return HandshakeSetup(
            pattern: pattern, prologue: prologue(pattern, sessionID: "s-interop", deviceID: "d1"),
            initiatorStatic: fixedBytes("\(label) initiator static"), responderStatic: fixedBytes("\(label) responder static"),
            initiatorEphemeral: fixedBytes("\(label) initiator ephemeral"), responderEphemeral: fixedBytes("\(label) responder ephemeral"),
            psk: pattern == .ikpsk2 ? fixedBytes("\(label) psk") : nil)
    }

    /// Fresh static keys, psk and session id; ephemeral keys left to each implementation.
    static func random(_ pattern: NoisePatternName) -> HandshakeSetup {
        func fresh() -> [UInt8] { SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) } }
        return HandshakeSetup(
            pattern: pattern, prologue: prologue(pattern, sessionID: "s-\(UUID().uuidString)", deviceID: "d-\(UUID().uuidString)"),
            initiatorStatic: fresh(), responderStatic: fresh(), initiatorEphemeral: nil, responderEphemeral: nil,
            psk: pattern == .ikpsk2 ? fresh() : nil)
    }

    static func publicKey(_ privateKey: [UInt8]) throws -> [UInt8] {
        try Array(Curve25519.KeyAgreement.PrivateKey(rawRepresentation: privateKey).publicKey.rawRepresentation)
    }

    var initiatorPublic: [UInt8] { get throws { try Self.publicKey(initiatorStatic) } }
    var responderPublic: [UInt8] { get throws { try Self.publicKey(responderStatic) } }

    /// The remote static key a side knows before the handshake: the responder's for IKpsk2's
    /// initiator, none for its responder, the other side's for KK.
    func knownRemoteStatic(initiator: Bool) throws -> [UInt8]? {
        if initiator { return try responderPublic }
        guard pattern == .kk else { return nil }
        return try initiatorPublic
    }

    /// Our implementation's side.
    func swift(initiator: Bool) throws -> NoiseHandshake {
        let ephemeral = initiator ? initiatorEphemeral : responderEphemeral
        return try NoiseHandshake(
            pattern: pattern, initiator: initiator, prologue: prologue,
            staticKey: try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: initiator ? initiatorStatic : responderStatic),
            remoteStatic: try knownRemoteStatic(initiator: initiator), presharedKey: psk,
            ephemeral: try ephemeral.map { try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: $0) })
    }

    /// noise_peer.py's first line for the same side.
    func pythonConfig(initiator: Bool) throws -> PythonPeerConfig {
        PythonPeerConfig(
            pattern: pattern.rawValue, initiator: initiator, s: hex(initiator ? initiatorStatic : responderStatic),
            rs: try knownRemoteStatic(initiator: initiator).map(hex), e: (initiator ? initiatorEphemeral : responderEphemeral).map(hex),
            psk: psk.map(hex), prologue: hex(prologue))
    }
}

/// noise_peer.py's configuration line; absent keys are written as null.
struct PythonPeerConfig: Encodable {
    let pattern: String
    let initiator: Bool
    let s: String
    let rs: String?
    let e: String?
    let psk: String?
    let prologue: String

    private enum CodingKeys: String, CodingKey { case pattern, initiator, s, rs, e, psk, prologue }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(pattern, forKey: .pattern)
        try container.encode(initiator, forKey: .initiator)
        try container.encode(s, forKey: .s)
        try container.encode(rs, forKey: .rs)
        try container.encode(e, forKey: .e)
        try container.encode(psk, forKey: .psk)
        try container.encode(prologue, forKey: .prologue)
    }
}

// MARK: - The Python peer

/// A failure of the Python side: its `{"error": …}` answer, or a peer that cannot be driven.
enum NoisePeerError: Error, CustomStringConvertible {
    /// noiseprotocol (or the peer) refused the command.
    case refused(command: String, reason: String)
    /// No answer in time, the process gone, or an answer that is not the protocol's.
    case broken(String)

    var description: String {
        switch self {
        case .refused(let command, let reason): "the Python peer refused \(command): \(reason)"
        case .broken(let why): why
        }
    }
}

/// Lines the peer wrote, filled by the pipe's readability handler and taken by the test.
private final class ReceivedLines: Sendable {
    enum Next {
        case line([UInt8])
        case ended
        case waiting
    }

    private struct State {
        var buffer: [UInt8] = []
        var ended = false
    }

    private let state = Mutex(State())

    func append(_ data: Data) { state.withLock { $0.buffer.append(contentsOf: data) } }

    func end() { state.withLock { $0.ended = true } }

    func take() -> Next {
        state.withLock { state in
            if let newline = state.buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(state.buffer[..<newline])
                state.buffer.removeSubrange(...newline)
                return .line(line)
            }
            return state.ended ? .ended : .waiting
        }
    }
}

/// Support/noise_peer.py run with Foundation's `Process`: one side of a handshake in
/// noiseprotocol 0.3.1, one JSON line per command and per answer. Reads never block a thread:
/// a readability handler collects the output and the test polls for each answer, which must come
/// within ``answerTimeout``. ``terminate()`` (in a `defer`) ends the process.
final class NoisePythonPeer {
    static let answerTimeout: Duration = .seconds(30)

    let name: String
    private let process = Process()
    private let input: FileHandle
    private let output: FileHandle
    private let received = ReceivedLines()
    private var terminated = false

    /// Writing to a peer that has exited must fail with EPIPE, not kill the test process.
    private static let ignoringSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// The Python named by RELAY_TEST_NOISE_PYTHON; when it is missing, an issue saying how to
    /// provide it (the test fails, it is not skipped) and nil.
    static func python(sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        let variable = "RELAY_TEST_NOISE_PYTHON"
        guard let python = ProcessInfo.processInfo.environment[variable], !python.isEmpty else {
            Issue.record(
                Comment(
                    rawValue: "\(variable) is not set: it names a Python with the PyPI package noiseprotocol 0.3.1, the "
                        + "independent Noise implementation these tests check ours against. Run the tests with `make test` "
                        + "(scripts/with-test-services.sh exports it), or export \(variable)=$(bash scripts/noise-python.sh)."),
                sourceLocation: sourceLocation)
            return nil
        }
        guard FileManager.default.isExecutableFile(atPath: python) else {
            Issue.record(
                Comment(rawValue: "\(variable)=\(python) is not an executable file (bash scripts/noise-python.sh prints one)."),
                sourceLocation: sourceLocation)
            return nil
        }
        return python
    }

    /// Support/noise_peer.py, next to this file in the checkout.
    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Support/noise_peer.py").path
    }

    /// Starts the peer for one side of `setup` and waits until it is ready.
    convenience init(python: String, setup: HandshakeSetup, initiator: Bool) async throws {
        let config = try setup.pythonConfig(initiator: initiator)
        try self.init(python: python, name: "noiseprotocol's \(setup.pattern.rawValue) \(initiator ? "initiator" : "responder")", config: config)
        let ready = try check(try await nextAnswer(for: "the configuration"), holding: ["ready"], for: "the configuration")
        let expected = NoiseHandshake.protocolName(setup.pattern)
        guard ready["ready"] == expected else {
            throw NoisePeerError.broken("\(name) is ready for \(ready["ready"] ?? "?"), not \(expected)")
        }
    }

    private init(python: String, name: String, config: PythonPeerConfig) throws {
        _ = Self.ignoringSIGPIPE
        self.name = name
        let script = Self.script
        guard FileManager.default.fileExists(atPath: script) else { throw NoisePeerError.broken("\(script) does not exist") }
        let inputPipe = Pipe()
        let outputPipe = Pipe()
        input = inputPipe.fileHandleForWriting
        output = outputPipe.fileHandleForReading
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script]
        process.standardInput = inputPipe
        process.standardOutput = outputPipe
        // Standard error is inherited: a traceback shows in the test's output.
        let received = received
        output.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                received.end()
            } else {
                received.append(data)
            }
        }
        do {
            try process.run()
        } catch {
            output.readabilityHandler = nil
            terminated = true
            throw NoisePeerError.broken("cannot start \(python) \(script): \(error)")
        }
        try send(config, for: "the configuration")
    }

    deinit { terminate() }

    /// Stops reading, closes the peer's input (it exits at its end) and kills it if it still runs.
    /// Idempotent.
    func terminate() {
        guard !terminated else { return }
        terminated = true
        output.readabilityHandler = nil
        try? input.close()
        // SIGKILL, not Process.terminate(): on Linux, Foundation starts the child with the
        // spawning thread's signal mask, where SIGTERM may be blocked (a peer that hangs would
        // outlive the test). The peer holds nothing worth a graceful exit.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    // MARK: Commands

    func write(_ payload: [UInt8]) async throws -> [UInt8] {
        try await hexAnswer(to: ["write": hex(payload)], key: "message", for: "write")
    }

    func read(_ message: [UInt8]) async throws -> [UInt8] {
        try await hexAnswer(to: ["read": hex(message)], key: "payload", for: "read")
    }

    func handshakeHash() async throws -> [UInt8] {
        try await hexAnswer(to: ["hash": true], key: "hash", for: "hash")
    }

    /// noiseprotocol's split() keys: (this side sends with, this side receives with).
    func keys() async throws -> (send: [UInt8], receive: [UInt8]) {
        let answer = try check(try await answer(["keys": true], for: "keys"), holding: ["send", "receive"], for: "keys")
        guard let send = unhex(answer["send"] ?? ""), let receive = unhex(answer["receive"] ?? "") else {
            throw NoisePeerError.broken("\(name) answered keys with non-hex keys: \(answer)")
        }
        return (send, receive)
    }

    func encrypt(_ plaintext: [UInt8]) async throws -> [UInt8] {
        try await hexAnswer(to: ["encrypt": hex(plaintext)], key: "ciphertext", for: "encrypt")
    }

    func decrypt(_ ciphertext: [UInt8]) async throws -> [UInt8] {
        try await hexAnswer(to: ["decrypt": hex(ciphertext)], key: "plaintext", for: "decrypt")
    }

    func aeadSeal(key: [UInt8], nonce: [UInt8], associatedData: [UInt8], plaintext: [UInt8]) async throws -> [UInt8] {
        let arguments = ["key": hex(key), "nonce": hex(nonce), "ad": hex(associatedData), "plaintext": hex(plaintext)]
        return try await hexAnswer(to: ["aead_seal": arguments], key: "ciphertext", for: "aead_seal")
    }

    func aeadOpen(key: [UInt8], nonce: [UInt8], associatedData: [UInt8], ciphertext: [UInt8]) async throws -> [UInt8] {
        let arguments = ["key": hex(key), "nonce": hex(nonce), "ad": hex(associatedData), "ciphertext": hex(ciphertext)]
        return try await hexAnswer(to: ["aead_open": arguments], key: "plaintext", for: "aead_open")
    }

    /// The answer to `command` as it came, an `{"error": …}` included.
    func answer(_ command: some Encodable, for description: String) async throws -> [String: String] {
        try send(command, for: description)
        return try await nextAnswer(for: description)
    }

    // MARK: Lines

    /// The bytes under `key` in the answer to `command`.
    private func hexAnswer(to command: some Encodable, key: String, for description: String) async throws -> [UInt8] {
        let answer = try check(try await answer(command, for: description), holding: [key], for: description)
        guard let bytes = unhex(answer[key] ?? "") else {
            throw NoisePeerError.broken("\(name) answered \(description) with a \(key) that is not hex: \(answer)")
        }
        return bytes
    }

    /// `answer` if it holds `keys`; a throw for an `{"error": …}` or another answer.
    private func check(_ answer: [String: String], holding keys: [String], for description: String) throws -> [String: String] {
        if let reason = answer["error"] { throw NoisePeerError.refused(command: "\(description) (\(name))", reason: reason) }
        guard keys.allSatisfy({ answer[$0] != nil }) else {
            throw NoisePeerError.broken("\(name) answered \(description) without \(keys.joined(separator: ", ")): \(answer)")
        }
        return answer
    }

    private func send(_ command: some Encodable, for description: String) throws {
        var line = try JSONEncoder().encode(command)
        line.append(UInt8(ascii: "\n"))
        do {
            try input.write(contentsOf: line)
        } catch {
            throw NoisePeerError.broken("cannot send \(description) to \(name)\(exitStatus): \(error)")
        }
    }

    /// The next line, parsed; waits at most ``answerTimeout``, and about a second once the
    /// process has exited.
    private func nextAnswer(for description: String) async throws -> [String: String] {
        let clock = ContinuousClock()
        let deadline = clock.now + Self.answerTimeout
        var exitedAt: ContinuousClock.Instant?
        while true {
            switch received.take() {
            case .line(let line):
                guard let answer = try? JSONDecoder().decode([String: String].self, from: Data(line)) else {
                    throw NoisePeerError.broken("\(name) answered \(description) with \(String(decoding: line, as: UTF8.self))")
                }
                return answer
            case .ended:
                throw NoisePeerError.broken("\(name) closed its output before answering \(description)\(exitStatus)")
            case .waiting:
                break
            }
            let now = clock.now
            if !process.isRunning {
                if let exitedAt, now - exitedAt > .seconds(1) {
                    throw NoisePeerError.broken("\(name) exited before answering \(description)\(exitStatus)")
                }
                exitedAt = exitedAt ?? now
            }
            guard now < deadline else {
                throw NoisePeerError.broken("\(name) did not answer \(description) within \(Self.answerTimeout)")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    private var exitStatus: String {
        process.isRunning ? "" : " (exit status \(process.terminationStatus))"
    }
}
