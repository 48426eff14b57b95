// PEM certificate blocks to DER, without a TLS library: both platforms' trust APIs take DER.

import Foundation

/// Reads the `CERTIFICATE` blocks of a PEM text (RFC 7468 §2).
enum PEMCertificates {
    /// The DER bytes of every `-----BEGIN CERTIFICATE-----` block in `text`, in order; blocks that
    /// are not valid base64 are skipped.
    static func derBlocks(in text: String) -> [[UInt8]] {
        let begin = "-----BEGIN CERTIFICATE-----", end = "-----END CERTIFICATE-----"
        var blocks: [[UInt8]] = []
        var rest = Substring(text)
        while let start = rest.range(of: begin), let stop = rest.range(of: end, range: start.upperBound..<rest.endIndex) {
            let body = rest[start.upperBound..<stop.lowerBound].filter { !$0.isWhitespace }
            if let data = Data(base64Encoded: String(body)), !data.isEmpty { blocks.append(Array(data)) }
            rest = rest[stop.upperBound...]
        }
        return blocks
    }
}
