import Foundation
import NIOConcurrencyHelpers
import Prometheus

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The standard Prometheus process metrics (the names every official client's process collector exports), read
/// when `/metrics` is scraped.
///
/// Written here because neither dependency has them: swift-prometheus 2.4 has no process collector, and
/// swift-metrics 2.13 no longer ships `SystemMetrics` (it became the swift-system-metrics package, which reports on
/// a timer through the global `MetricsSystem` rather than at scrape time into our own registry). The sources are the
/// ones it reads on Linux: `/proc/self/stat`, `/proc/self/fd`, `getrusage` and `getrlimit`. Elsewhere the resident
/// memory and start time stay at their first value (0 and the time the gateway made its metrics).
final class ProcessMetrics: Sendable {
    private let cpuSeconds: Prometheus.Counter
    private let residentMemory: Gauge
    private let openFDs: Gauge
    private let maxFDs: Gauge
    /// CPU seconds already added to `cpuSeconds`: a scrape adds what was used since (a counter cannot be set).
    private let cpuCounted = NIOLockedValueBox<Double>(0)

    init(registry: PrometheusCollectorRegistry) {
        func gauge(_ name: String, _ unit: String, _ help: String) -> Gauge {
            registry.makeGauge(
                descriptor: MetricNameDescriptor(metricName: name, unitName: unit, helpText: help),
                labels: []
            )
        }
        cpuSeconds = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "process_cpu",
                unitName: "seconds_total",
                helpText: "Total user and system CPU time spent in seconds."
            )
        )
        residentMemory = gauge("process_resident_memory", "bytes", "Resident memory size in bytes.")
        openFDs = gauge("process_open", "fds", "Number of open file descriptors.")
        maxFDs = gauge("process_max", "fds", "Maximum number of open file descriptors.")
        let startTime = gauge(
            "process_start_time", "seconds", "Start time of the process since unix epoch in seconds."
        )
        startTime.set(Self.startTimeSeconds() ?? Date().timeIntervalSince1970)
        sample()
    }

    /// Reads the current figures into the gauges and the CPU counter.
    func sample() {
        let cpu = Self.cpuSeconds()
        let added = cpuCounted.withLockedValue { counted -> Double in
            let added = max(0, cpu - counted)
            counted += added
            return added
        }
        if added > 0 { cpuSeconds.increment(by: added) }
        if let rss = Self.residentMemoryBytes() { residentMemory.set(Int64(rss)) }
        if let open = Self.openFileDescriptors() { openFDs.set(Int64(open)) }
        if let limit = Self.maxFileDescriptors() { maxFDs.set(Int64(limit)) }
    }

    /// User plus system CPU time of the whole process (every thread).
    static func cpuSeconds() -> Double {
        var usage = rusage()
        #if canImport(Glibc)
        let who = __rusage_who_t(RUSAGE_SELF.rawValue)
        #else
        let who = RUSAGE_SELF
        #endif
        guard getrusage(who, &usage) == 0 else { return 0 }
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1_000_000 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// The soft `RLIMIT_NOFILE`: what `accept` runs into first.
    static func maxFileDescriptors() -> Int? {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return nil }
        // `RLIM_INFINITY` is all ones: it clamps to `Int.max`.
        return Int(clamping: limit.rlim_cur)
    }

    /// Entries of `/proc/self/fd` (`/dev/fd` elsewhere), less the one the listing itself holds open.
    static func openFileDescriptors() -> Int? {
        #if os(Linux)
        let directory = "/proc/self/fd"
        #else
        let directory = "/dev/fd"
        #endif
        guard let listing = opendir(directory) else { return nil }
        defer { closedir(listing) }
        var count = 0
        while let entry = readdir(listing) {
            let isDotEntry = withUnsafeBytes(of: entry.pointee.d_name) { name in
                name[0] == UInt8(ascii: ".") && (name[1] == 0 || (name[1] == UInt8(ascii: ".") && name[2] == 0))
            }
            if !isDotEntry { count += 1 }
        }
        return max(count - 1, 0)
    }

    /// Fields of `/proc/self/stat` after the parenthesised command name (which may hold spaces): index 0 is field 3
    /// of proc_pid_stat(5), `state`.
    private static func statFields() -> [Substring]? {
        #if os(Linux)
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
        #else
        return nil
        #endif
    }

    /// Field 24, `rss`, in pages.
    static func residentMemoryBytes() -> Int? {
        guard let fields = statFields(), fields.count > 21, let pages = Int(fields[21]) else { return nil }
        return pages * sysconf(Int32(_SC_PAGESIZE))
    }

    /// Field 22, `starttime`, in clock ticks after boot, plus the boot time (`btime` of `/proc/stat`).
    static func startTimeSeconds() -> Double? {
        #if os(Linux)
        guard let fields = statFields(), fields.count > 19, let ticks = Double(fields[19]),
            let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let bootLine = stat.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let boot = Double(bootLine.dropFirst("btime ".count).trimmingCharacters(in: .whitespaces))
        else { return nil }
        return boot + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
        #else
        return nil
        #endif
    }
}
