import NIOCore
import NIOWebSocket
import Testing

@testable import RelayServer

/// RFC 6455 §5.3: octet i of the payload is XORed with octet i mod 4 of the key. The word-wise
/// unmasking must agree with that rule at every length and whatever was appended before.
@Suite("WebSocket unmasking")
struct WebSocketUnmaskingTests {
    static let key = WebSocketMaskingKey([0x37, 0xFA, 0x21, 0x3D])!

    /// The rule as the RFC states it, one octet at a time.
    static func reference(_ payload: [UInt8], key: WebSocketMaskingKey) -> [UInt8] {
        payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
    }

    @Test func everyLengthFromZeroToThreeWordsMatchesTheRFCRule() {
        for length in 0...40 {
            let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            var bytes: [UInt8] = []
            WebSocketUnmasking.append(ByteBuffer(bytes: payload), key: Self.key, to: &bytes)
            #expect(bytes == Self.reference(payload, key: Self.key), "length \(length)")
            // NIO hands frames over as slices of the read buffer: the payload need not start at 0,
            // and the output need not either.
            var slice = ByteBuffer(bytes: [0xAA, 0xBB, 0xCC] + payload)
            slice.moveReaderIndex(forwardBy: 3)
            var appended: [UInt8] = [9]
            WebSocketUnmasking.append(slice, key: Self.key, to: &appended)
            #expect(appended == [9] + Self.reference(payload, key: Self.key), "length \(length), offset 3")
        }
    }

    @Test func eachFrameIsUnmaskedFromTheKeysFirstOctetAfterEarlierFragments() {
        // A continuation frame's mask starts again at octet 0, wherever the message is so far.
        let first = Array("Hello, ".utf8), second = Array("fragmented world!".utf8)
        let otherKey = WebSocketMaskingKey([0x01, 0x80, 0xFF, 0x7E])!
        var bytes: [UInt8] = []
        WebSocketUnmasking.append(ByteBuffer(bytes: Self.reference(first, key: Self.key)), key: Self.key, to: &bytes)
        WebSocketUnmasking.append(ByteBuffer(bytes: Self.reference(second, key: otherKey)), key: otherKey, to: &bytes)
        #expect(bytes == first + second)
    }

    @Test func anUnmaskedPayloadIsCopiedAsItIs() {
        var bytes: [UInt8] = [1, 2]
        WebSocketUnmasking.append(ByteBuffer(bytes: [3, 4, 5]), key: nil, to: &bytes)
        #expect(bytes == [1, 2, 3, 4, 5])
    }
}
