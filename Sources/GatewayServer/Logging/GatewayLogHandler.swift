import Foundation
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
        var merged = metadata
        if let extra = event.metadata {
            merged.merge(extra) { _, new in new }
        }
        let time = Self.timestamp()
        let line: String
        switch format {
        case .text:
            var text = "\(time) \(event.level) \(label): \(event.message)"
            for key in merged.keys.sorted() {
                text += " \(key)=\(Self.quoteIfNeeded("\(merged[key]!)"))"
            }
            line = text + "\n"
        case .json:
            var json = "{\"time\":\"\(time)\",\"level\":\"\(event.level)\",\"logger\":\"\(JSONString.escape(label))\""
            json += ",\"message\":\"\(JSONString.escape("\(event.message)"))\""
            for key in merged.keys.sorted() {
                json += ",\"\(JSONString.escape(key))\":\"\(JSONString.escape("\(merged[key]!)"))\""
            }
            line = json + "}\n"
        }
        sink(line)
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data(line.utf8))
    }

    private static func quoteIfNeeded(_ value: String) -> String {
        value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) ? "\"\(JSONString.escape(value))\"" : value
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = time_t(now.tv_sec)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
            parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
            now.tv_nsec / 1_000_000
        )
    }
}
