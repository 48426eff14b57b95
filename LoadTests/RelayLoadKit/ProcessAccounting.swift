// CPU and memory of the relay and of the harness itself, so an artifact can be read honestly:
// on one machine they compete for the same cores.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// CPU time and memory of one process, read from Linux's `/proc`.
package struct ProcessUsage: Sendable, Equatable {
    /// User plus system CPU time, in seconds.
    package let cpuSeconds: Double
    /// Resident set size now, in bytes.
    package let residentBytes: Int
    /// Peak resident set size (`VmHWM`), in bytes.
    package let peakResidentBytes: Int

    package init(cpuSeconds: Double, residentBytes: Int, peakResidentBytes: Int) {
        self.cpuSeconds = cpuSeconds
        self.residentBytes = residentBytes
        self.peakResidentBytes = peakResidentBytes
    }

    /// The usage of process `pid`, or `nil` when it is gone or `/proc` is unavailable.
    package static func of(pid: Int32) -> ProcessUsage? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        else { return nil }
        return parse(stat: stat, status: status, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))))
    }

    /// This process's usage.
    package static var current: ProcessUsage? { of(pid: getpid()) }

    /// Parses `/proc/<pid>/stat` (fields 14 and 15 after the parenthesised command name: utime and
    /// stime in clock ticks) and `/proc/<pid>/status` (`VmRSS`, `VmHWM` in kB).
    static func parse(stat: String, status: String, ticksPerSecond: Double) -> ProcessUsage? {
        // The command name may contain spaces and parentheses; fields start after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3), so utime (field 14) is fields[11] and stime fields[12].
        guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]), ticksPerSecond > 0 else {
            return nil
        }
        func kilobytes(_ key: String) -> Int? {
            for line in status.split(separator: "\n") where line.hasPrefix(key + ":") {
                return line.dropFirst(key.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
            }
            return nil
        }
        guard let rss = kilobytes("VmRSS") else { return nil }
        return ProcessUsage(
            cpuSeconds: (utime + stime) / ticksPerSecond, residentBytes: rss * 1024,
            peakResidentBytes: (kilobytes("VmHWM") ?? rss) * 1024)
    }
}

/// The machine the run happened on.
package enum MachineFacts {
    /// Online CPU cores.
    package static var cores: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// This process's open-file (soft) limit.
    package static var openFileLimit: Int {
        var limit = rlimit()
        return getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Int(limit.rlim_cur) : 0
    }

    /// Raises this process's open-file limit to `wanted` (or as far as allowed), returning the new
    /// soft limit. Thousands of sockets need it; children (a local relay) inherit it.
    @discardableResult
    package static func raiseOpenFileLimit(to wanted: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        let target = rlim_t(wanted)
        if limit.rlim_cur >= target { return Int(limit.rlim_cur) }
        var raised = rlimit(rlim_cur: target, rlim_max: max(limit.rlim_max, target))
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) != 0 {
            // Not privileged to raise the hard limit: go as far as it allows.
            raised = rlimit(rlim_cur: min(target, limit.rlim_max), rlim_max: limit.rlim_max)
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised)
        }
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Int(limit.rlim_cur)
    }
}

/// Usage of the relay (when it is a local process) and of the harness over one run.
package struct RunAccounting: Sendable {
    private let relayAtStart: [Int32: ProcessUsage]
    private let harnessAtStart: ProcessUsage?
    private let started: ContinuousClock.Instant

    /// Starts counting; `relayPIDs` are the local relay processes, empty for a remote relay.
    package init(relayPIDs: [Int32]) {
        var atStart: [Int32: ProcessUsage] = [:]
        for pid in relayPIDs { atStart[pid] = ProcessUsage.of(pid: pid) }
        self.relayAtStart = atStart
        self.harnessAtStart = ProcessUsage.current
        self.started = .now
    }

    /// The figures so far for `relayPIDs` (default: the processes given at start; a cluster passes
    /// its current nodes, and a node started during the run counts from zero). CPU is summed,
    /// memory is the largest single process. Read it before stopping a local relay: `/proc`
    /// forgets a process when it exits.
    package func snapshot(relayPIDs: [Int32]? = nil) -> RunUsage {
        let relayNow = (relayPIDs ?? Array(relayAtStart.keys)).compactMap { pid in ProcessUsage.of(pid: pid).map { (pid, $0) } }
        let harnessNow = ProcessUsage.current
        return RunUsage(
            wallSeconds: (ContinuousClock.now - started).seconds,
            machineCores: MachineFacts.cores,
            relayCPUSeconds: relayNow.isEmpty
                ? nil : relayNow.reduce(0) { $0 + $1.1.cpuSeconds - (relayAtStart[$1.0]?.cpuSeconds ?? 0) },
            relayPeakMemoryBytes: relayNow.map(\.1.peakResidentBytes).max(),
            relayMemoryBytes: relayNow.map(\.1.residentBytes).max(),
            harnessCPUSeconds: harnessNow.map { $0.cpuSeconds - (harnessAtStart?.cpuSeconds ?? 0) },
            harnessPeakMemoryBytes: harnessNow?.peakResidentBytes)
    }
}

/// What a run cost, as recorded in every artifact.
package struct RunUsage: Sendable, Equatable {
    package var wallSeconds: Double
    package var machineCores: Int
    /// CPU seconds the local relay spent during the run; `nil` for a remote relay.
    package var relayCPUSeconds: Double?
    /// The local relay's peak resident memory; `nil` for a remote relay.
    package var relayPeakMemoryBytes: Int?
    /// The local relay's resident memory at the end of the run.
    package var relayMemoryBytes: Int?
    package var harnessCPUSeconds: Double?
    package var harnessPeakMemoryBytes: Int?

    /// The artifact members, appended after the §9 fields.
    package var members: [(String, ArtifactJSON)] {
        [
            ("duration_seconds", .number(wallSeconds)),
            ("machine_cores", .int(machineCores)),
            ("relay_cpu_seconds", .number(relayCPUSeconds)),
            ("relay_peak_memory_bytes", .optionalInt(relayPeakMemoryBytes)),
            ("relay_memory_bytes", .optionalInt(relayMemoryBytes)),
            ("harness_cpu_seconds", .number(harnessCPUSeconds)),
            ("harness_peak_memory_bytes", .optionalInt(harnessPeakMemoryBytes)),
        ]
    }
}
