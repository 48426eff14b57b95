// Trimming white space from the ends of configured values, header lists and device names.

extension StringProtocol {
    /// Trims ASCII spaces, tabs and line breaks (what environment values and header lists use).
    public func trimmingASCIIWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = lastIndex(where: { !isSpace($0) })!
        return String(self[start...end])
    }
}

extension StringProtocol {
    /// Trims Unicode white space and line breaks from both ends.
    public func trimmingUnicodeWhitespace() -> String {
        guard let start = firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let end = lastIndex(where: { !$0.isWhitespace })!
        return String(self[start...end])
    }
}
