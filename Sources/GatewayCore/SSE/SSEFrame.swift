import NIOCore

/// Bytes the gateway writes into an event stream itself. Each is a complete block ending in a blank line, so it can be
/// written whenever `EventBoundaryTracker.isAtEventBoundary` holds.
public enum SSEFrame {
    /// ": keep-alive\n\n" — a comment, ignored by `EventSource`, keeps idle connections (and proxies) alive.
    /// Built once; writing it shares the storage.
    public static let heartbeat = ByteBuffer(string: ": keep-alive\n\n")

    /// "retry: N\n\n" — sets the client's reconnection delay; sent before the gateway ends a stream on purpose.
    public static func retryHint(milliseconds: Int) -> ByteBuffer {
        precondition(milliseconds >= 0, "retry hint must not be negative: \(milliseconds)")
        return ByteBuffer(string: "retry: \(milliseconds)\n\n")
    }

    /// "event: token_expired\ndata: {\"error\":\"token_expired\",...}\nretry: N\n\n" — tells the page to fetch a fresh
    /// token; `retry` also covers pages that ignore the event and let `EventSource` reconnect.
    public static func tokenExpired(retryMilliseconds: Int) -> ByteBuffer {
        precondition(retryMilliseconds >= 0, "retry hint must not be negative: \(retryMilliseconds)")
        return ByteBuffer(
            string: "event: token_expired\n"
                + "data: {\"error\":\"token_expired\",\"message\":\"the token expired; reconnect with a fresh token\"}\n"
                + "retry: \(retryMilliseconds)\n\n"
        )
    }
}
