#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOCore

/// Wall-clock nanoseconds (CLOCK_REALTIME): the upstream stamps events with it and the client on the same machine
/// subtracts it, so both sides must read the same clock.
@inline(__always)
func wallNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Raises the soft open-file limit to the hard limit; 20,000 streams need 20,000 descriptors.
@discardableResult
func raiseOpenFileLimit() -> UInt64 {
    var limit = rlimit()
    #if canImport(Glibc)
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    guard getrlimit(resource, &limit) == 0 else { return 0 }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(resource, &limit)
    _ = getrlimit(resource, &limit)
    return UInt64(limit.rlim_cur)
}

/// Errors the tool reports and exits with.
struct LoadError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// True for the only hosts this tool may ever talk to: the loopback range and ::1.
func isLoopback(_ host: String) -> Bool {
    if host == "localhost" || host == "::1" || host == "[::1]" { return true }
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return false }
    return parts[0] == "127"
}

/// Maps `localhost` to 127.0.0.1 so every connection takes the same (IPv4) path.
private func connectHost(_ host: String) -> String {
    switch host {
    case "localhost": return "127.0.0.1"
    case "[::1]": return "::1"
    default: return host
    }
}

/// A `host:port` listen address, loopback only.
struct ListenAddress {
    let host: String
    let port: Int

    init(_ text: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65535).contains(port) else {
            throw LoadError("listen address must be host:port, got '\(text)'")
        }
        let host = String(text[..<colon])
        guard isLoopback(host) else { throw LoadError("refusing non-loopback listen host '\(host)'") }
        self.host = connectHost(host)
        self.port = port
    }
}

/// An `http://host:port/path?query` target, loopback only.
struct TargetURL: Sendable {
    let host: String
    let port: Int
    /// The `Host` header value, as written in the URL.
    let authority: String
    /// Path plus query, sent as the request target.
    let requestTarget: String

    init(_ text: String) throws {
        let prefix = "http://"
        guard text.hasPrefix(prefix) else { throw LoadError("only http:// targets are supported, got '\(text)'") }
        let rest = text.dropFirst(prefix.count)
        let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = String(rest[..<slash])
        var target = String(rest[slash...])
        if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
        var host = authority
        var port = 80
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let parsed = Int(authority[authority.index(after: colon)...]), (1...65535).contains(parsed) else {
                throw LoadError("bad port in '\(text)'")
            }
            host = String(authority[..<colon])
            port = parsed
        }
        guard isLoopback(host) else { throw LoadError("refusing non-loopback target host '\(host)'") }
        self.host = connectHost(host)
        self.port = port
        self.authority = authority
        self.requestTarget = target
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
func parseDuration(_ text: String) throws -> Double {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        if let value = Double(text.dropLast(suffix.count)), value > 0 { return value * scale }
    }
    if let value = Double(text), value > 0 { return value }
    throw LoadError("bad duration '\(text)' (use e.g. 30s, 500ms, 2m)")
}

/// Parses `2000/s` or `2000` (per second).
func parseRate(_ text: String) throws -> Double {
    let trimmed = text.hasSuffix("/s") ? String(text.dropLast(2)) : text
    guard let value = Double(trimmed), value > 0 else { throw LoadError("bad rate '\(text)' (use e.g. 2000/s)") }
    return value
}

/// Parses repeated `--header "Name: value"` options.
func parseHeaders(_ raw: [String]) throws -> [(String, String)] {
    try raw.map { line in
        guard let colon = line.firstIndex(of: ":") else { throw LoadError("header must be 'Name: value': '\(line)'") }
        let name = line[..<colon].trimmingSpaces
        let value = line[line.index(after: colon)...].trimmingSpaces
        guard !name.isEmpty else { throw LoadError("empty header name in '\(line)'") }
        return (name, value)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" })
            .reversed())
    }
}

extension ByteBuffer {
    /// Writes `value` in decimal without going through a `String` (the per-event path stays allocation-free).
    @inline(__always)
    mutating func writeDecimal(_ value: UInt64) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        let start = self.writerIndex
        self.writeRepeatingByte(UInt8(ascii: "0"), count: digits)
        var remaining = value
        var position = start + digits - 1
        while position >= start {
            self.setInteger(UInt8(ascii: "0") &+ UInt8(remaining % 10), at: position)
            remaining /= 10
            position -= 1
        }
    }
}

/// Sleeps the calling (non-event-loop) thread.
func sleepSeconds(_ seconds: Double) {
    guard seconds > 0 else { return }
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 { request = remaining }
}

/// Seconds on the monotonic clock, for the controller's own scheduling.
func monotonicSeconds() -> Double {
    Double(NIODeadline.now().uptimeNanoseconds) / 1e9
}

/// utime + stime of the given processes, in clock ticks (`/proc/PID/stat` fields 14 and 15); a process that is gone
/// counts 0.
func cpuTicks(of pids: [Int32]) -> Int {
    pids.reduce(0) { total, pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let afterName = stat.range(of: ") ", options: .backwards)
        else { return total }
        // Fields after the name start at field 3 (state): utime and stime are the 12th and 13th of them.
        let fields = stat[afterName.upperBound...].split(separator: " ")
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return total }
        return total + user + system
    }
}
