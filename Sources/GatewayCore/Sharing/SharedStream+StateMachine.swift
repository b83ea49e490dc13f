import NIOCore

/// The upstream side of one shared stream (`routes[].share`): its connection and reconnections, the events it sends
/// (cut into whole events, kept in the replay ring, deduplicated after a reconnect), its subscribers' count, and the
/// linger and grace timers. No sockets: the gateway's `SharedStream` feeds it events and executes its actions; how
/// each subscriber is written to is each subscriber's own connection state machine.
public struct SharedStreamStateMachine: Sendable {
    public struct Settings: Sendable {
        public var linger: TimeAmount
        public var upstreamGrace: TimeAmount
        public var responseHeaderTimeout: TimeAmount
        /// The first reconnect waits this long (or the upstream's `retry:`), doubling per failed attempt up to
        /// `maxBackoff`, each with up to half again of random jitter.
        public var initialBackoff: TimeAmount
        public var maxBackoff: TimeAmount

        public init(
            linger: TimeAmount = .seconds(2),
            upstreamGrace: TimeAmount = .seconds(10),
            responseHeaderTimeout: TimeAmount = .seconds(30),
            initialBackoff: TimeAmount = .milliseconds(500),
            maxBackoff: TimeAmount = .seconds(30)
        ) {
            self.linger = linger
            self.upstreamGrace = upstreamGrace
            self.responseHeaderTimeout = responseHeaderTimeout
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
        }
    }

    public enum Upstream: Sendable, Equatable {
        case idle
        case dialling
        case awaitingHead
        case streaming
        /// Lost after its head went to subscribers: a reconnect is scheduled (`timers[.backoff]`).
        case waitingToReconnect
        case ended
    }

    public enum Timer: Int, Sendable, CaseIterable {
        case backoff, grace, linger, responseHeader
        public var bit: UInt8 { 1 << UInt8(rawValue) }
    }

    /// How the shared stream ends for its subscribers.
    public enum Ending: Sendable, Equatable {
        /// Before any head went out: subscribers waiting for it are answered this failure.
        case failed(UpstreamFailure)
        /// After the head: every subscriber's stream ends cleanly with a `retry:` hint, as in a drain.
        case closed
        /// No subscriber is left (the linger passed).
        case idle
    }

    public enum Action: Sendable, Equatable {
        case none
        /// Connect to the upstream, then `upstreamConnected` or `upstreamConnectFailed`.
        case dial
        /// Send the request, with `Last-Event-ID` when there is one.
        case sendRequest(lastEventID: String?)
        /// The head is here: every subscriber waiting for it gets it.
        case deliverHead
        /// Close the upstream connection (its response head timed out); a reconnect is scheduled already.
        case closeUpstream
        /// The stream is over: forget it, close its upstream, end its subscribers so.
        case end(Ending)
    }

    public let settings: Settings
    public private(set) var upstream: Upstream = .idle
    public private(set) var subscribers = 0
    /// Whether subscribers got the head (from then on a lost upstream is reconnected behind them).
    public private(set) var headDelivered = false
    public private(set) var ring: ReplayRing
    public private(set) var reconnects = 0
    private var splitter: SSEEventSplitter
    private var deadlines = [NIODeadline?](repeating: nil, count: Timer.allCases.count)
    private var changes: UInt8 = 0
    /// Failed attempts since the last good head.
    private var attempt = 0
    /// After a reconnect, events the ring already holds are dropped until the first new id.
    private var deduplicating = false
    private var dropping = false
    private var events: [SSEEventSplitter.Event] = []

    public init(settings: Settings, ring: ReplayRing, maxEventBytes: Int = 1 << 20) {
        self.settings = settings
        self.ring = ring
        self.splitter = SSEEventSplitter(maxEventBytes: maxEventBytes)
    }

    public subscript(timer: Timer) -> NIODeadline? {
        get { deadlines[timer.rawValue] }
        set {
            guard deadlines[timer.rawValue] != newValue else { return }
            deadlines[timer.rawValue] = newValue
            changes |= timer.bit
        }
    }

    /// The timers whose deadline changed since the last call (test with `Timer.bit`).
    public mutating func takeTimerChanges() -> UInt8 {
        defer { changes = 0 }
        return changes
    }

    /// The upstream's last `retry:`, which a joining subscriber is told first.
    public var retryMilliseconds: Int? { splitter.retryMilliseconds }

    // MARK: Subscribers

    public enum Join: Sendable, Equatable {
        /// The head has not come yet: it comes with the next `deliverHead`.
        case awaitHead
        /// Head now, then these events (possibly none), then live.
        case live(replay: [ByteBuffer])
        /// `Last-Event-ID` is not in the ring: the subscriber needs its own upstream request.
        case miss
        /// The stream ended: join a new one.
        case ended
    }

    /// The first subscriber starts the upstream (`.dial` alongside the join).
    public mutating func subscriberJoined(lastEventID: String?) -> (Join, Action) {
        guard upstream != .ended else { return (.ended, .none) }
        var join = Join.awaitHead
        if headDelivered {
            if let lastEventID {
                guard case .replay(let missed) = ring.events(after: lastEventID) else { return (.miss, .none) }
                join = .live(replay: missed)
            } else {
                join = .live(replay: [])
            }
        } else if let lastEventID, lastEventID != ring.lastEventID {
            // Before the head, the stream can only serve a client that last saw where it starts.
            return (.miss, .none)
        }
        subscribers += 1
        self[.linger] = nil
        guard upstream == .idle else { return (join, .none) }
        upstream = .dialling
        return (join, .dial)
    }

    public mutating func subscriberLeft(now: NIODeadline) -> Action {
        precondition(subscribers > 0, "a subscriber left a shared stream it was not counted in")
        subscribers -= 1
        guard subscribers == 0, upstream != .ended else { return .none }
        if settings.linger <= .zero { return end(.idle) }
        self[.linger] = now + settings.linger
        return .none
    }

    // MARK: Upstream

    public mutating func upstreamConnected(now: NIODeadline) -> Action {
        guard upstream == .dialling else { preconditionFailure("shared upstream connected in \(upstream)") }
        upstream = .awaitingHead
        self[.responseHeader] = now + settings.responseHeaderTimeout
        return .sendRequest(lastEventID: ring.lastEventID)
    }

    public mutating func upstreamConnectFailed(_ failure: UpstreamFailure, now: NIODeadline) -> Action {
        guard upstream == .dialling else { preconditionFailure("shared upstream dial failed in \(upstream)") }
        return lost(failure, now: now)
    }

    /// The upstream's response head: only `200 text/event-stream` can be shared.
    public mutating func upstreamResponseHead(status: Int, isEventStream: Bool, now: NIODeadline) -> Action {
        guard upstream == .awaitingHead else { preconditionFailure("shared upstream head in \(upstream)") }
        self[.responseHeader] = nil
        guard status == 200, isEventStream else {
            // A refusal (401/403, 404, 5xx) or a body that is no event stream is never retried behind subscribers.
            let what = isEventStream || status != 200 ? "status \(status)" : "a response that is not text/event-stream"
            return end(
                headDelivered
                    ? .closed : .failed(UpstreamFailure(.protocolError, message: "shared upstream answered \(what)"))
            )
        }
        upstream = .streaming
        attempt = 0
        self[.grace] = nil
        deduplicating = headDelivered
        dropping = false
        guard !headDelivered else { return .none }
        headDelivered = true
        return .deliverHead
    }

    /// What an upstream read gives every subscriber: whole events in one buffer.
    public struct Delivery: Sendable, Equatable {
        public var bytes: ByteBuffer
        public var events: Int
    }

    /// Decoded body bytes from the upstream. Returns what goes to subscribers (`nil`: no event completed). Throws for
    /// an event over the size limit: close the upstream as for a protocol error.
    public mutating func upstreamBodyReceived(_ buffer: ByteBuffer) throws(SSEEventSplitter.EventTooLarge) -> Delivery? {
        guard upstream == .streaming else { return nil }
        events.removeAll(keepingCapacity: true)
        guard var batch = try splitter.split(buffer, into: &events) else { return nil }
        var kept = events.count
        if deduplicating {
            kept = 0
            var rebuilt = ByteBuffer()
            for event in events where !isRepeat(event) {
                rebuilt.writeImmutableBuffer(event.bytes)
                ring.append(event)
                kept += 1
            }
            batch = rebuilt
        } else {
            for event in events { ring.append(event) }
        }
        return kept > 0 ? Delivery(bytes: batch, events: kept) : nil
    }

    /// After a reconnect: an event whose id the ring holds was relayed already, and so are the id-less events after it.
    private mutating func isRepeat(_ event: SSEEventSplitter.Event) -> Bool {
        if let id = event.id {
            dropping = ring.contains(id: id)
            if !dropping { deduplicating = false }
        }
        return dropping
    }

    /// The upstream connection closed (cleanly or not): reconnect behind the subscribers within the grace period.
    public mutating func upstreamClosed(_ failure: UpstreamFailure?, now: NIODeadline) -> Action {
        switch upstream {
        case .dialling, .awaitingHead, .streaming:
            return lost(failure ?? UpstreamFailure(.closed, message: "shared upstream closed"), now: now)
        case .idle, .waitingToReconnect, .ended:
            return .none
        }
    }

    private mutating func lost(_ failure: UpstreamFailure, now: NIODeadline) -> Action {
        self[.responseHeader] = nil
        splitter.reset()
        guard headDelivered else { return end(.failed(failure)) }
        guard subscribers > 0 else { return end(.idle) }  // lingering: nobody to reconnect for
        if self[.grace] == nil { self[.grace] = now + settings.upstreamGrace }
        upstream = .waitingToReconnect
        reconnects += 1
        var delay = settings.initialBackoff
        if let retry = splitter.retryMilliseconds { delay = .milliseconds(Int64(retry)) }
        for _ in 0..<min(attempt, 16) { delay = delay + delay }
        delay = min(delay, settings.maxBackoff)
        delay = delay + .nanoseconds(Int64.random(in: 0...max(0, delay.nanoseconds / 2)))
        attempt += 1
        self[.backoff] = now + delay
        return .none
    }

    public mutating func timerFired(_ timer: Timer, now: NIODeadline) -> Action {
        guard let deadline = self[timer], deadline <= now else { return .none }
        self[timer] = nil
        switch timer {
        case .backoff:
            guard upstream == .waitingToReconnect else { return .none }
            upstream = .dialling
            return .dial
        case .grace:
            guard upstream != .streaming, upstream != .ended else { return .none }
            return end(.closed)
        case .linger:
            guard subscribers == 0, upstream != .ended else { return .none }
            return end(.idle)
        case .responseHeader:
            guard upstream == .awaitingHead else { return .none }
            let failure = UpstreamFailure(
                .responseHeaderTimeout,
                message: "shared upstream sent no response head within \(settings.responseHeaderTimeout.shortDescription)"
            )
            let action = lost(failure, now: now)
            return action == .none ? .closeUpstream : action
        }
    }

    private mutating func end(_ ending: Ending) -> Action {
        upstream = .ended
        for timer in Timer.allCases { self[timer] = nil }
        return .end(ending)
    }
}
