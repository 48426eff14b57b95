// A self-contained HTML page beside each soak summary: the verdict, the figures, an SVG chart of
// latency over time and a percentile table. No scripts, no external assets: it opens anywhere.

import Foundation

/// A report page.
package struct HTMLReport: Sendable {
    /// One row of the percentile table (µs).
    package struct Row: Sendable {
        package let label: String
        package let count: Int
        package let p50: Int
        package let p95: Int
        package let p99: Int
        package let max: Int

        package init(label: String, count: Int, p50: Int, p95: Int, p99: Int, max: Int) {
            (self.label, self.count, self.p50, self.p95, self.p99, self.max) = (label, count, p50, p95, p99, max)
        }
    }

    /// A moment to mark on the chart (a node killed, a rolling restart).
    package struct Marker: Sendable {
        package let second: Int
        package let label: String
        package init(second: Int, label: String) { (self.second, self.label) = (second, label) }
    }

    package var title: String
    package var passed: Bool
    package var facts: [(String, String)]
    package var failures: [String]
    package var timeline: [LatencyBucket]
    package var rows: [Row]
    package var markers: [Marker]

    package init(
        title: String, passed: Bool, facts: [(String, String)], failures: [String], timeline: [LatencyBucket], rows: [Row],
        markers: [Marker] = []
    ) {
        self.title = title
        self.passed = passed
        self.facts = facts
        self.failures = failures
        self.timeline = timeline
        self.rows = rows
        self.markers = markers
    }

    /// The page.
    package var html: String {
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>
            body{font:14px system-ui,sans-serif;margin:2em;color:#222}
            h1{font-size:1.4em} .pass{color:#1a7f37} .fail{color:#cf222e}
            table{border-collapse:collapse;margin:1em 0} td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
            th:first-child,td:first-child{text-align:left} svg{border:1px solid #ddd;background:#fafafa}
            </style></head><body>
            <h1>\(escape(title)) <span class="\(passed ? "pass" : "fail")">\(passed ? "PASS" : "FAILED")</span></h1>

            """
        if !failures.isEmpty {
            page += "<ul class=\"fail\">" + failures.map { "<li>\(escape($0))</li>" }.joined() + "</ul>\n"
        }
        page += "<table>" + facts.map { "<tr><th>\(escape($0.0))</th><td>\(escape($0.1))</td></tr>" }.joined() + "</table>\n"
        page += "<h2>Latency over time</h2>\n" + chart + "\n"
        page += "<h2>Percentiles (ms)</h2>\n<table><tr><th>run</th><th>samples</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>"
        for row in rows {
            page += "<tr><td>\(escape(row.label))</td><td>\(row.count)</td>" + [row.p50, row.p95, row.p99, row.max].map { "<td>\(ms($0))</td>" }.joined() + "</tr>"
        }
        page += "</table>\n</body></html>\n"
        return page
    }

    /// Writes the page to `path`.
    package func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(html.utf8).write(to: url, options: .atomic)
    }

    /// p50, p95 and p99 per second as polylines, on a log-free linear scale up to the largest p99.
    var chart: String {
        let width = 900.0, height = 300.0, left = 60.0, bottom = 30.0, top = 10.0, right = 110.0
        guard let last = timeline.last else { return "<p>No samples.</p>" }
        let span = Double(Swift.max(last.second, markers.map(\.second).max() ?? 0, 1))
        let peak = Double(Swift.max(timeline.map(\.p99).max() ?? 1, 1))
        func x(_ second: Int) -> Double { left + Double(second) / span * (width - left - right) }
        func y(_ micros: Int) -> Double { top + (1 - Double(micros) / peak) * (height - top - bottom) }
        func line(_ value: (LatencyBucket) -> Int, _ color: String) -> String {
            let points = timeline.map { String(format: "%.1f,%.1f", x($0.second), y(value($0))) }.joined(separator: " ")
            return "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(points)\"/>"
        }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        for fraction in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let micros = Int(peak * fraction)
            svg += String(format: "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>", left, width - right, y(micros), y(micros))
            svg += String(format: "<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">", left - 6, y(micros) + 4) + "\(ms(micros)) ms</text>"
        }
        svg += String(format: "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">0 s</text>", left, height - 8)
        svg += String(format: "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">%d s</text>", width - right, height - 8, Int(span))
        for marker in markers {
            svg += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>", x(marker.second), x(marker.second), top, height - bottom)
            svg += String(format: "<text x=\"%.1f\" y=\"%.0f\" font-size=\"10\" fill=\"#555\">", x(marker.second) + 3, top + 10) + "\(escape(marker.label))</text>"
        }
        svg += line(\.p50, "#1f77b4") + line(\.p95, "#ff7f0e") + line(\.p99, "#d62728")
        for (index, (label, color)) in [("p50", "#1f77b4"), ("p95", "#ff7f0e"), ("p99", "#d62728")].enumerated() {
            let rowY = top + 14 + Double(index) * 16
            svg += String(format: "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" ", width - right + 12, width - right + 32, rowY - 4, rowY - 4)
                + "stroke=\"\(color)\" stroke-width=\"2\"/>"
            svg += String(format: "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">", width - right + 38, rowY) + "\(label)</text>"
        }
        return svg + "</svg>"
    }

    private func ms(_ micros: Int) -> String { String(format: "%.2f", Double(micros) / 1000) }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
