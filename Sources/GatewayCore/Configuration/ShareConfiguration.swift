import NIOHTTP1

/// `routes[].share`: clients that ask for the same stream share one upstream connection, and each event the upstream
/// sends is read once and written to every subscriber (issue 14).
public struct ShareConfiguration: Sendable, Equatable {
    /// What makes two requests the same stream (beside the method, the forwarded path and query, and `varyHeaders`).
    public enum Key: String, Sendable, Equatable {
        /// Everyone gets the same content: one upstream per forwarded URL, requested with `upstreamHeaders` (never a
        /// subscriber's token).
        case route
        /// One upstream per verified subject, requested with the freshest unexpired token among its subscribers.
        case subject
    }

    public var key: Key
    /// Headers the shared upstream request carries (`key: route` only), e.g. a service credential.
    public var upstreamHeaders: HTTPHeaders
    /// Request headers whose values make streams differ (lower-cased); part of the key and sent upstream.
    public var varyHeaders: [String]
    /// The replay ring of each shared stream, bounded by events and by bytes.
    public var replayEvents: Int
    public var replayBytes: Int
    /// Bytes a subscriber may fall behind once its socket and the gateway's write buffer are full; past it that
    /// subscriber is closed (its browser reconnects with `Last-Event-ID`).
    public var subscriberBufferBytes: Int
    /// How long the upstream is kept after the last subscriber left (a new join cancels it).
    public var linger: Duration
    /// How long subscribers are kept (with heartbeats) while the upstream reconnects.
    public var upstreamGrace: Duration

    public init(
        key: Key = .route,
        upstreamHeaders: HTTPHeaders = [:],
        varyHeaders: [String] = [],
        replayEvents: Int = 256,
        replayBytes: Int = 1 << 20,
        subscriberBufferBytes: Int = 256 << 10,
        linger: Duration = .seconds(2),
        upstreamGrace: Duration = .seconds(10)
    ) {
        self.key = key
        self.upstreamHeaders = upstreamHeaders
        self.varyHeaders = varyHeaders
        self.replayEvents = replayEvents
        self.replayBytes = replayBytes
        self.subscriberBufferBytes = subscriberBufferBytes
        self.linger = linger
        self.upstreamGrace = upstreamGrace
    }
}
