// The standard process_* families, read from /proc at scrape time.

#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
/// `process_open_fds`, `process_max_fds` and `process_start_time_seconds`, as Prometheus's client
/// libraries name them. Open descriptors against their limit is what a node at tens of thousands
/// of sockets runs out of first (EMFILE). Read at each scrape, from /proc on Linux; elsewhere only
/// what `getrlimit` gives.
enum ProcessMetrics {
    /// The families in the text format, HELP and TYPE included.
    static func exposition() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ value: Double?) {
            guard let value else { return }
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(format(value))\n"
        }
        let stat = selfStat()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        family(
            "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
            stat.map { Double($0.userTicks + $0.systemTicks) / ticks })
        family(
            "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", stat.map { Double($0.virtualBytes) })
        family(
            "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
            stat.map { Double($0.residentPages) * Double(sysconf(Int32(_SC_PAGESIZE))) })
        family(
            "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
            stat.flatMap { stat in bootTime().map { $0 + Double(stat.startTicks) / ticks } })
        family("process_open_fds", "gauge", "Number of open file descriptors.", openDescriptors())
        var limit = rlimit()
        family(
            "process_max_fds", "gauge", "Maximum number of open file descriptors.",
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Double(limit.rlim_cur) : nil)
        return out
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    private struct Stat {
        var userTicks: UInt64, systemTicks: UInt64, startTicks: UInt64, virtualBytes: UInt64, residentPages: UInt64
    }

    /// Fields 14, 15, 22, 23 and 24 of /proc/self/stat (proc(5)); the command name may hold spaces,
    /// so fields are counted after its closing parenthesis.
    private static func selfStat() -> Stat? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state).
        func field(_ number: Int) -> UInt64? { fields.count > number - 3 ? UInt64(fields[number - 3]) : nil }
        guard let user = field(14), let system = field(15), let start = field(22), let virtual = field(23),
            let resident = field(24)
        else { return nil }
        return Stat(userTicks: user, systemTicks: system, startTicks: start, virtualBytes: virtual, residentPages: resident)
    }

    /// `btime` of /proc/stat: when the machine booted (Unix time).
    private static func bootTime() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Entries of /proc/self/fd, less the one the listing itself opens.
    private static func openDescriptors() -> Double? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return nil }
        return Double(max(entries.count - 1, 0))
    }
}
