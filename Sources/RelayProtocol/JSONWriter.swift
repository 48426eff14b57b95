// Compact JSON output as serde_json writes it: sorted keys, its string escapes, numbers verbatim.

extension JSONValue {
    /// Appends the compact serialization: no whitespace, object keys sorted byte-wise by their
    /// UTF-8 at every level, strings escaped as `appendJSONString(_:to:)` does, numbers
    /// written as their lexeme.
    public func write(into buffer: inout [UInt8]) {
        switch self {
        case .null: appendStatic("null", to: &buffer)
        case .bool(true): appendStatic("true", to: &buffer)
        case .bool(false): appendStatic("false", to: &buffer)
        case .number(let number): buffer.append(contentsOf: number.text.utf8)
        case .string(let string): appendJSONString(string, to: &buffer)
        case .array(let elements):
            buffer.append(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { buffer.append(UInt8(ascii: ",")) }
                first = false
                element.write(into: &buffer)
            }
            buffer.append(UInt8(ascii: "]"))
        case .object(let members):
            writeObject(capacity: members.count, into: &buffer) { add in
                for (key, value) in members { add(key, value) }
            }
        }
    }

    /// The compact serialization (see ``write(into:)``) as a string.
    public var serialized: String {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(256)
        write(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

/// Writes an object whose members `gather` hands to `add`, at most `capacity` of them, with keys
/// sorted byte-wise (as serde_json's sorted maps are). The members and their order are kept on the
/// stack for the small objects frames are made of: no allocation besides the output's.
func writeObject(
    capacity: Int, into buffer: inout [UInt8], _ gather: (_ add: (String, JSONValue) -> Void) -> Void
) {
    withUnsafeTemporaryAllocation(of: ObjectMember.self, capacity: capacity) { storage in
        var count = 0
        gather { key, value in
            precondition(count < capacity, "more members than the object's capacity")
            storage.initializeElement(at: count, to: ObjectMember(key: key, value: value))
            count += 1
        }
        writeMembers(UnsafeBufferPointer(rebasing: storage[..<count]), into: &buffer)
        if count > 0 { storage.baseAddress!.deinitialize(count: count) }
    }
}

/// Writes `members` as an object, sorted byte-wise by key.
private func writeMembers(_ members: UnsafeBufferPointer<ObjectMember>, into buffer: inout [UInt8]) {
    buffer.append(UInt8(ascii: "{"))
    if members.count > 1 {
        // Sorting positions instead of members moves plain integers, not strings and values.
        withUnsafeTemporaryAllocation(of: Int.self, capacity: members.count) { storage in
            var order = storage
            for index in members.indices { order.initializeElement(at: index, to: index) }
            order.sort { utf8Precedes(members[$0].key, members[$1].key) }
            for position in order {
                if position != order[0] { buffer.append(UInt8(ascii: ",")) }
                writeMember(members[position], into: &buffer)
            }
        }
    } else if let member = members.first {
        writeMember(member, into: &buffer)
    }
    buffer.append(UInt8(ascii: "}"))
}

@inline(__always)
private func writeMember(_ member: ObjectMember, into buffer: inout [UInt8]) {
    appendJSONString(member.key, to: &buffer)
    buffer.append(UInt8(ascii: ":"))
    member.value.write(into: &buffer)
}

/// True when the UTF-8 of `lhs` sorts before that of `rhs`, byte by byte.
func utf8Precedes(_ lhs: String, _ rhs: String) -> Bool {
    withUTF8Bytes(lhs) { left in
        withUTF8Bytes(rhs) { right in
            for position in 0..<min(left.count, right.count) where left[position] != right[position] {
                return left[position] < right[position]
            }
            return left.count < right.count
        }
    }
}

/// True when the two strings have the same UTF-8 bytes (Swift's `==` is canonical equivalence, so
/// e.g. `"K" == "\u{212A}"`).
func utf8Equal(_ lhs: String, _ rhs: String) -> Bool {
    guard lhs.utf8.count == rhs.utf8.count else { return false }
    return withUTF8Bytes(lhs) { left in
        withUTF8Bytes(rhs) { right in
            for position in 0..<left.count where left[position] != right[position] { return false }
            return true
        }
    }
}

/// Appends `s` as a JSON string literal, quotes included, escaped as serde_json does: `\"`, `\\`,
/// `\b`, `\f`, `\n`, `\r`, `\t`, other U+0000–U+001F as `\u00xx` with lower-case hex; `/` and
/// non-ASCII characters are written as they are (raw UTF-8).
public func appendJSONString(_ s: String, to buffer: inout [UInt8]) {
    withUTF8Bytes(s) { appendEscapedUTF8($0, to: &buffer) }
}

/// Appends `s` as a JSON string literal (see `appendJSONString(_:to:)`).
public func appendJSONString(_ s: Substring, to buffer: inout [UInt8]) {
    var s = s
    s.withUTF8 { appendEscapedUTF8($0, to: &buffer) }
}

/// Runs `body` on the UTF-8 of `string` without copying it when it is native (small or large).
@inline(__always)
func withUTF8Bytes<Result>(_ string: String, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
    if let result = string.utf8.withContiguousStorageIfAvailable(body) { return result }
    var copy = string
    return copy.withUTF8(body)
}

private let hexDigits: StaticString = "0123456789abcdef"

private func appendEscapedUTF8(_ utf8: UnsafeBufferPointer<UInt8>, to buffer: inout [UInt8]) {
    // Grow geometrically: reserving an exact size on every call would copy the buffer each time.
    let needed = buffer.count + utf8.count + 2
    if buffer.capacity < needed { buffer.reserveCapacity(max(needed, buffer.capacity * 2)) }
    buffer.append(UInt8(ascii: "\""))
    var runStart = 0
    var position = 0
    while position < utf8.count {
        // Skip eight bytes that need no escape at a time.
        while position + 8 <= utf8.count {
            let word = UnsafeRawPointer(utf8.baseAddress! + position).loadUnaligned(as: UInt64.self)
            if StringWord.needsAttention(word) { break }
            position += 8
        }
        guard position < utf8.count else { break }
        let byte = utf8[position]
        position += 1
        if byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") { continue }
        if runStart < position - 1 {
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<(position - 1)]))
        }
        runStart = position
        buffer.append(UInt8(ascii: "\\"))
        switch byte {
        case UInt8(ascii: "\""): buffer.append(UInt8(ascii: "\""))
        case UInt8(ascii: "\\"): buffer.append(UInt8(ascii: "\\"))
        case 0x08: buffer.append(UInt8(ascii: "b"))
        case 0x0C: buffer.append(UInt8(ascii: "f"))
        case 0x0A: buffer.append(UInt8(ascii: "n"))
        case 0x0D: buffer.append(UInt8(ascii: "r"))
        case 0x09: buffer.append(UInt8(ascii: "t"))
        default:
            buffer.append(UInt8(ascii: "u"))
            buffer.append(UInt8(ascii: "0"))
            buffer.append(UInt8(ascii: "0"))
            buffer.append(hexDigits.utf8Start[Int(byte >> 4)])
            buffer.append(hexDigits.utf8Start[Int(byte & 0x0F)])
        }
    }
    if runStart < utf8.count {
        buffer.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
    }
    buffer.append(UInt8(ascii: "\""))
}

@inline(__always)
private func appendStatic(_ literal: StaticString, to buffer: inout [UInt8]) {
    literal.withUTF8Buffer { buffer.append(contentsOf: $0) }
}
