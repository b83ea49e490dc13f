import Logging

/// One access-log line's fields. The connection handler logs it as the single metadata value `access`, so a finished
/// request costs one small dictionary instead of eleven interpolated values, and `GatewayLogHandler` writes the
/// fields straight into the line in the same order and form as any metadata (keys sorted, values quoted or escaped
/// as needed). Another `LogHandler` prints `description`, the text form.
struct AccessRecord: CustomStringConvertible, Sendable {
    /// The metadata key the record travels under.
    static let metadataKey = "access"

    var client: String
    var method: String
    var route: String
    /// Already redacted (no token values).
    var path: String
    var status: Int
    var durationMilliseconds: Int64
    var bytes: Int
    var events: Int
    var subject: String?
    var upstream: String?
    var outcome: String
    var reason: String?

    /// Calls `body` with each field, keys in sorted order (as `GatewayLogHandler` orders metadata).
    func forEachField(_ body: (String, String) -> Void) {
        body("bytes", String(bytes))
        body("client", client)
        body("duration_ms", String(durationMilliseconds))
        body("events", String(events))
        body("method", method)
        body("outcome", outcome)
        body("path", path)
        if let reason { body("reason", reason) }
        body("route", route)
        body("status", String(status))
        body("subject", subject ?? "-")
        body("upstream", upstream ?? "-")
    }

    var description: String {
        var text = ""
        forEachField { key, value in
            if !text.isEmpty { text += " " }
            text += key
            text += "="
            text += value
        }
        return text
    }
}
