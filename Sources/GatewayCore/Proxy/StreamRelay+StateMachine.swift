import NIOCore

/// Why the gateway ends a response stream on its own initiative.
public enum StreamCloseReason: String, Sendable, Hashable {
    /// The process is draining (SIGTERM): tell the client to reconnect elsewhere after a jittered delay.
    case draining = "drained"
    /// The verified token expired and the policy says `on_expiry: close`.
    case tokenExpired = "token_expired"
    /// `routes[].max_stream_duration` elapsed: rebalance long-lived connections.
    case maxDuration = "max_duration"
}

/// Decides what the relay writes to the client while one upstream response body streams through the gateway.
///
/// The body bytes themselves are never touched here: the state machine only looks at them through
/// `EventBoundaryTracker` so that anything the gateway adds (heartbeats, `retry:` hints, `token_expired`) is written
/// between two events, never inside one. The channel handler feeds it inputs and applies the returned actions.
public struct StreamRelayStateMachine: Sendable {
    /// What the handler does with an upstream body chunk.
    public enum BodyAction: Sendable, Equatable {
        /// Write the whole chunk to the client.
        case relay
        /// Write only the first `length` bytes (up to and including the end of an event), then the closing frame,
        /// then end the response. The rest of the chunk belongs to an event the client will get after it
        /// reconnects with `Last-Event-ID`.
        case relayPrefixAndFinish(length: Int, closingFrame: ByteBuffer?, reason: StreamCloseReason)
    }

    /// What the handler must do after a timer or a close request.
    public enum Action: Sendable, Equatable {
        /// Nothing beyond relaying the upstream bytes that caused the input (if any).
        case none
        /// Write this frame to the client (a heartbeat).
        case write(ByteBuffer)
        /// Write the frame (if any), end the client's response cleanly and close the upstream.
        case finish(closingFrame: ByteBuffer?, reason: StreamCloseReason)
    }

    private enum State: Sendable {
        /// Bytes flow unchanged; heartbeats may be injected at boundaries.
        case relaying
        /// A close was requested mid-event: finish as soon as the tracker reports a boundary.
        case closingAtNextBoundary(StreamCloseReason, closingFrame: ByteBuffer?)
        /// The relay has decided to finish (or the upstream ended); no further frames.
        case finished
    }

    private var state: State = .relaying
    private var tracker = EventBoundaryTracker()
    /// `true` for `text/event-stream` responses; other bodies are relayed without framing decisions.
    public let isEventStream: Bool

    public init(isEventStream: Bool) {
        self.isEventStream = isEventStream
    }

    /// Events fully relayed so far (SSE only).
    public var relayedEvents: Int { tracker.completedEvents }

    /// Whether the bytes relayed so far end exactly between two events.
    public var isAtEventBoundary: Bool { tracker.isAtEventBoundary }

    /// A body chunk from the upstream, before it is written to the client.
    public mutating func upstreamBodyReceived(_ buffer: ByteBuffer) -> BodyAction {
        guard isEventStream else { return .relay }
        switch state {
        case .relaying, .finished:
            tracker.consume(buffer)
            return .relay
        case .closingAtNextBoundary(let reason, let frame):
            guard let length = tracker.consume(buffer, stoppingAtFirstBoundary: true) else { return .relay }
            state = .finished
            return .relayPrefixAndFinish(length: length, closingFrame: frame, reason: reason)
        }
    }

    /// The heartbeat interval passed without any byte written to the client.
    public mutating func heartbeatDue() -> Action {
        switch state {
        case .relaying where isEventStream && tracker.isAtEventBoundary:
            return .write(SSEFrame.heartbeat)
        case .relaying, .closingAtNextBoundary, .finished:
            return .none
        }
    }

    /// The gateway wants this stream to end (drain, token expiry, max duration).
    ///
    /// `closingFrame` is written just before the end (e.g. a `retry:` hint). Non-SSE bodies cannot be cut at a
    /// boundary, so they are left to finish (the caller enforces its own grace period).
    public mutating func closeRequested(_ reason: StreamCloseReason, closingFrame: ByteBuffer?) -> Action {
        switch state {
        case .finished, .closingAtNextBoundary:
            return .none
        case .relaying:
            guard isEventStream else { return .none }
            if tracker.isAtEventBoundary {
                state = .finished
                return .finish(closingFrame: closingFrame, reason: reason)
            }
            state = .closingAtNextBoundary(reason, closingFrame: closingFrame)
            return .none
        }
    }

    /// The upstream finished its response (cleanly); no more injected frames.
    public mutating func upstreamEnded() {
        state = .finished
    }
}
