// RFC 6455 §5.3 unmasking, done while a frame's payload is copied out, a machine word at a time.

import NIOCore
import NIOWebSocket

/// Copies client frame payloads out of NIO's buffers, unmasked.
///
/// The relay used to XOR each byte through `WebSocketMaskingKey`'s subscript on an array held by
/// the handler: a bounds check, a uniqueness check and an exclusivity check per byte, about 7 % of
/// the relay's CPU in the steady-state profile (LoadTests/RESULTS.md). Here the bytes are copied
/// with one `append` and XORed eight at a time with the key repeated twice. NIO's own
/// `webSocketUnmask` is a per-byte loop as well, and would unmask the frame's buffer in place (a
/// copy of the shared read buffer) before this copy.
enum WebSocketUnmasking {
    /// Appends `payload`'s readable bytes to `bytes`, unmasked with `key` (nil: copied as they are).
    /// The key's first byte applies to the payload's first byte (each frame is masked on its own).
    static func append(_ payload: ByteBuffer, key: WebSocketMaskingKey?, to bytes: inout [UInt8]) {
        let start = bytes.count
        payload.withUnsafeReadableBytes { bytes.append(contentsOf: $0) }
        guard let key, bytes.count > start else { return }
        bytes.withUnsafeMutableBytes { all in
            unmask(UnsafeMutableRawBufferPointer(rebasing: all[start...]), key: key)
        }
    }

    /// XORs `region` in place with `key` repeated from its first byte.
    static func unmask(_ region: UnsafeMutableRawBufferPointer, key: WebSocketMaskingKey) {
        var pattern: UInt64 = 0
        for index in 0..<8 { pattern |= UInt64(key[index & 3]) << (8 * index) }
        let count = region.count
        var offset = 0
        while offset + 8 <= count {
            // Little-endian: the word's lowest byte is the one at `offset`, as in `pattern`.
            let word = UInt64(littleEndian: region.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            region.storeBytes(of: (word ^ pattern).littleEndian, toByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < count {
            region[offset] ^= key[offset & 3]
            offset += 1
        }
    }
}
