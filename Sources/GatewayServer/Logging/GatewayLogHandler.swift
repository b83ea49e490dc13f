#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GatewayCore
import Logging

/// Writes one line per log record to standard error, as text or JSON (`--log-format`).
///
/// Metadata values are written as given; callers never put tokens in them (URLs are redacted before logging).
public struct GatewayLogHandler: LogHandler, Sendable {
    public enum Format: String, Sendable, CaseIterable {
        case text
        case json
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let format: Format
    private let sink: @Sendable (String) -> Void

    /// `sink` receives each finished line (with its trailing newline); the default writes to standard error.
    public init(
        label: String,
        format: Format,
        level: Logger.Level,
        sink: @escaping @Sendable (String) -> Void = GatewayLogHandler.standardError
    ) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = ""
        line.reserveCapacity(320)
        let extra = event.metadata ?? [:]
        if metadata.isEmpty, extra.count == 1, case .stringConvertible(let value)? = extra[AccessRecord.metadataKey],
            let record = value as? AccessRecord
        {
            // An access-log line: its fields go straight into the line, already in key order.
            appendPrefix(of: event, to: &line)
            record.forEachField { key, value in appendField(key, value, to: &line) }
            finish(&line)
            return
        }
        let keys: [String]
        if extra.isEmpty {
            keys = metadata.keys.sorted()
        } else if metadata.isEmpty {
            keys = extra.keys.sorted()
        } else {
            keys = Set(metadata.keys).union(extra.keys).sorted()
        }
        appendPrefix(of: event, to: &line)
        for key in keys {
            appendField(key, Self.text(of: extra[key] ?? metadata[key]!), to: &line)
        }
        finish(&line)
    }

    /// The time, level, logger and message: everything before the metadata.
    private func appendPrefix(of event: LogEvent, to line: inout String) {
        switch format {
        case .text:
            Self.appendTimestamp(to: &line)
            line += " "
            line += event.level.rawValue
            line += " "
            line += label
            line += ": "
            line += "\(event.message)"
        case .json:
            line += "{\"time\":\""
            Self.appendTimestamp(to: &line)
            line += "\",\"level\":\""
            line += event.level.rawValue
            line += "\",\"logger\":\""
            line += JSONString.escape(label)
            line += "\",\"message\":\""
            line += JSONString.escape("\(event.message)")
            line += "\""
        }
    }

    /// One metadata field: ` key=value` (quoted if needed) or `,"key":"value"`.
    private func appendField(_ key: String, _ value: String, to line: inout String) {
        switch format {
        case .text:
            line += " "
            line += key
            line += "="
            Self.appendQuotedIfNeeded(value, to: &line)
        case .json:
            line += ",\""
            line += JSONString.escape(key)
            line += "\":\""
            line += JSONString.escape(value)
            line += "\""
        }
    }

    private func finish(_ line: inout String) {
        if format == .json { line += "}" }
        line += "\n"
        sink(line)
    }

    /// The default sink: standard error through `LogWriter`, so logging never blocks an event loop.
    public static let standardError: @Sendable (String) -> Void = { line in
        LogWriter.standardError.append(line)
    }

    private static func text(of value: Logger.Metadata.Value) -> String {
        if case .string(let string) = value { return string }
        return "\(value)"
    }

    private static func appendQuotedIfNeeded(_ value: String, to line: inout String) {
        let needsQuotes = HTTPFieldSyntax.containsByte(in: value) {
            $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "=")
        }
        if needsQuotes {
            line += "\""
            line += JSONString.escape(value)
            line += "\""
        } else {
            line += value
        }
    }

    /// `2026-11-25T23:55:38.123Z` (UTC, milliseconds), formatted without Foundation: this runs for every access-log
    /// line.
    private static func appendTimestamp(to line: inout String) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = time_t(now.tv_sec)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let text = String(unsafeUninitializedCapacity: 24) { buffer in
            var index = 0
            func put(_ value: Int, width: Int, then separator: Unicode.Scalar) {
                var divisor = 1
                for _ in 1..<width { divisor *= 10 }
                while divisor > 0 {
                    buffer[index] = UInt8(ascii: "0") + UInt8(value / divisor % 10)
                    index += 1
                    divisor /= 10
                }
                buffer[index] = UInt8(ascii: separator)
                index += 1
            }
            put(Int(parts.tm_year) + 1900, width: 4, then: "-")
            put(Int(parts.tm_mon) + 1, width: 2, then: "-")
            put(Int(parts.tm_mday), width: 2, then: "T")
            put(Int(parts.tm_hour), width: 2, then: ":")
            put(Int(parts.tm_min), width: 2, then: ":")
            put(Int(parts.tm_sec), width: 2, then: ".")
            put(Int(now.tv_nsec) / 1_000_000, width: 3, then: "Z")
            return index
        }
        line += text
    }
}
