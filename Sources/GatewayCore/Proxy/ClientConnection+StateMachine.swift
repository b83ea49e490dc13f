import NIOCore
import NIOHTTP1

/// The life of one client connection (an HTTP/1.1 keep-alive connection, or one HTTP/2 stream), from request head to
/// the end of its response and on to the next request: no sockets, no event loop, only inputs and the actions they
/// call for.
///
/// It owns everything that decides: the phase of the exchange, both sides' held reads (a read NIO asked for that
/// must wait until the other side can take bytes), request parts that wait for an upstream, pipelined requests that
/// wait for the response before them, the `StreamRelayStateMachine` of the response body, and one deadline per timer
/// (`timers`, on the event loop's clock). `ClientConnectionHandler` feeds it channel events and executes the actions.
/// Modelled on async-http-client's `HTTP1ConnectionStateMachine`; impossible transitions stop the process.
public struct ClientConnectionStateMachine: Sendable {
    public enum Phase: Sendable, Equatable {
        /// Waiting for a request head (the request-head timer runs).
        case awaitingRequestHead
        /// A head is being admitted (routing, auth; a key refresh may be in flight).
        case admitting
        /// Admission needs the request's body (a ticket mint): it is read, up to a limit, within the request-head
        /// timeout; its end hands it to admission (`admitBody`), back in `admitting`.
        case readingBody
        /// Acquiring an upstream connection.
        case dialling
        /// The request went upstream; its response head has not arrived.
        case awaitingResponseHead
        /// The upstream's body streams through `relay`.
        case relaying
        /// Subscribed to a shared upstream stream (`routes[].share`), waiting for its head.
        case joining
        /// A subscriber of a shared stream: whole events arrive from it (`ClientConnection+Subscriber`).
        case subscribed
        /// The gateway answered itself; the request's body is still being read and discarded.
        case answered
        /// The connection closes once its last write has gone out (or, on HTTP/2, the stream ends by itself).
        case closing
        case closed
    }

    public internal(set) var phase: Phase = .awaitingRequestHead
    /// Every timer's deadline; the handler schedules what changed after each input.
    public var timers = ConnectionTimers()
    public var settings: Settings
    /// The response body's relay, from the response head on (kept after the end, for the access log's counts).
    public internal(set) var relay: StreamRelayStateMachine?

    var plan = ExchangePlan()
    // Request side.
    var requestEnded = true
    var keepAlive = true
    var requestMayHaveBody = false
    var draining = false
    /// Request parts that arrived before the upstream connection (during admission or dialling).
    var pendingParts: [HTTPClientRequestPart] = []
    /// The body admission asked for (`readingBody`), and its limit in bytes.
    var collectedBody: ByteBuffer?
    var collectedBodyLimit = 0
    /// HTTP/1.1 pipelining: parts of requests that arrived while an earlier one was answered. Client reads stop while
    /// any wait, so this holds at most what one read decoded: an array, not a `CircularBuffer`, whose storage every
    /// connection would allocate at once (48 B per held stream) where an empty array allocates nothing.
    var pipelined: [HTTPServerRequestPart] = []
    var replayingPipelined = false
    var sentRequestBody = false
    var requestForwardedCompletely = false
    /// The request's end, held until the end of the client read it came in.
    var requestEndHeld: HTTPClientRequestPart?
    var retriedStaleConnection = false
    var lastConnectionWasReused = false
    // Response side.
    var upstreamAttached = false
    var upstreamKeepAlive = false
    var responseEnded = false
    var needsFlush = false
    var lastClientWrite = NIODeadline.uptimeNanoseconds(0)
    /// Since when the upstream has sent nothing while a read was requested; `nil` while its reads are held for a
    /// slow client (backpressure is not upstream silence).
    var upstreamSilentSince: NIODeadline?
    // A subscriber of a shared stream.
    var subscription = Subscription()
    // Reads and writability of both sides.
    var clientReadHeld = false
    var upstreamReadHeld = false
    var clientWritable = true
    var upstreamWritable = true

    /// After `token_expired`, the browser's own reconnect waits this long: time for the page to fetch a new token and
    /// open a new `EventSource` first.
    public static let tokenExpiryRetryMilliseconds = 2_000

    public init(settings: Settings) {
        self.settings = settings
    }

    /// An exchange holds (or is getting) an upstream.
    var hasExchange: Bool {
        switch phase {
        case .dialling, .awaitingResponseHead, .relaying, .joining, .subscribed: true
        default: false
        }
    }

    /// A response for the current request is still to be completed.
    var responseInProgress: Bool { phase == .admitting || phase == .readingBody || hasExchange }

    // MARK: Client side

    /// The connection is active (or the handler was added to an active one): the first request head is due.
    public mutating func connectionActive(now: NIODeadline) {
        guard phase == .awaitingRequestHead else { return }
        timers[.requestHead] = now + settings.requestHeaderTimeout
    }

    /// A decoded request part from the client.
    public mutating func requestPartReceived(_ part: HTTPServerRequestPart, now: NIODeadline) -> Action {
        switch phase {
        case .closing, .closed:
            return .none
        default:
            if !pipelined.isEmpty || (requestEnded && responseInProgress) {
                // The next request, while this one is still answered (a stream may last hours): it waits.
                pipelined.append(part)
                return .none
            }
            return handle(part, inClientRead: true, now: now)
        }
    }

    /// The next queued pipelined part to hand on (`pipelinedPartReplayed`), or `nil`: the replay is over (the queue is
    /// empty, or a request it started is in progress).
    public mutating func nextPipelinedPart() -> HTTPServerRequestPart? {
        guard phase != .closing, phase != .closed, !pipelined.isEmpty, !(requestEnded && responseInProgress) else {
            replayingPipelined = false
            return nil
        }
        return pipelined.removeFirst()
    }

    public mutating func pipelinedPartReplayed(_ part: HTTPServerRequestPart, now: NIODeadline) -> Action {
        handle(part, inClientRead: false, now: now)
    }

    mutating func handle(_ part: HTTPServerRequestPart, inClientRead: Bool, now: NIODeadline) -> Action {
        switch part {
        case .head(let head):
            guard phase == .awaitingRequestHead else {
                preconditionFailure("request head in phase \(phase)")
            }
            timers[.requestHead] = nil
            requestEnded = false
            keepAlive = head.isKeepAlive
            requestMayHaveBody =
                head.headers.contains(name: "transfer-encoding")
                || (head.headers.first(name: "content-length").map { $0 != "0" } ?? false)
            phase = .admitting
            startExchange()
            return .admit(head)
        case .body(let buffer):
            if phase == .readingBody { return collect(.body(.byteBuffer(buffer)), now: now) }
            return requestPart(.body(.byteBuffer(buffer)), inClientRead: inClientRead)
        case .end(let trailers):
            requestEnded = true
            if phase == .answered {
                return .turnEnded(endTurn(answeredLocally: true, now: now))
            }
            if phase == .readingBody { return collect(.end(trailers), now: now) }
            return requestPart(.end(trailers), inClientRead: inClientRead)
        }
    }

    mutating func startExchange() {
        pendingParts.removeAll()
        requestEndHeld = nil
        sentRequestBody = false
        requestForwardedCompletely = false
        retriedStaleConnection = false
        lastConnectionWasReused = false
        upstreamAttached = false
        upstreamKeepAlive = false
        responseEnded = false
        needsFlush = false
        relay = nil
        upstreamReadHeld = false
        upstreamWritable = true
        upstreamSilentSince = nil
        subscription = Subscription()
    }

    mutating func requestPart(_ part: HTTPClientRequestPart, inClientRead: Bool) -> Action {
        switch phase {
        case .readingBody:
            preconditionFailure("a body admission reads goes to collect(_:now:)")
        case .admitting, .dialling:
            pendingParts.append(part)
            return .none
        case .awaitingResponseHead, .relaying:
            if case .end = part, inClientRead {
                // Held until the end of this client read: if the rest of the read is malformed (a bad chunk, a body
                // longer than its Content-Length), the upstream must never have seen a complete request.
                requestEndHeld = part
                return .none
            }
            markForwarded(part)
            return .forwardRequestPart(part)
        case .answered, .closing, .closed, .joining, .subscribed:
            return .none  // answered already, or a shared stream's GET (admitted without a body): discarded
        case .awaitingRequestHead:
            preconditionFailure("request body without a head")
        }
    }

    mutating func markForwarded(_ part: HTTPClientRequestPart) {
        switch part {
        case .body: sentRequestBody = true
        case .end: requestForwardedCompletely = true
        case .head: preconditionFailure("request head forwarded twice")
        }
    }

    /// NIO asks to read from the client. Returns whether to read now; otherwise the read is held and issued when
    /// `takeClientRead` says so.
    public mutating func clientReadRequested() -> Bool {
        clientReadHeld = !mayReadClient
        return !clientReadHeld
    }

    /// Whether a held client read may go out now (the handler asks after each input); if so it is no longer held.
    public mutating func takeClientRead() -> Bool {
        guard clientReadHeld, mayReadClient else { return false }
        clientReadHeld = false
        return true
    }

    var mayReadClient: Bool {
        guard pipelined.isEmpty else { return false }
        switch phase {
        case .admitting:
            return requestEnded
        case .readingBody:
            return true
        case .dialling, .awaitingResponseHead, .relaying:
            // A request body flows only while the upstream can take it.
            return requestEnded || (upstreamAttached && upstreamWritable)
        case .joining, .subscribed:
            return true
        case .awaitingRequestHead, .answered, .closing, .closed:
            return true
        }
    }

    /// The end of a client read: request body parts written upstream go out, and the request's end if it came.
    public mutating func clientReadComplete() -> ClientReadCompletion {
        if let end = requestEndHeld {
            requestEndHeld = nil
            guard upstreamAttached, phase == .awaitingResponseHead || phase == .relaying else { return .none }
            markForwarded(end)
            return .forwardEnd(end)
        }
        return upstreamAttached && sentRequestBody ? .flushUpstream : .none
    }

    public enum ClientReadCompletion: Sendable, Equatable {
        case none
        /// Flush the body parts written upstream.
        case flushUpstream
        /// Write and flush the request's end (with its trailers).
        case forwardEnd(HTTPClientRequestPart)
    }

    public mutating func clientWritabilityChanged(isWritable: Bool, now: NIODeadline) {
        clientWritable = isWritable
        if isWritable {
            timers[.slowClient] = nil
            subscription.bytesBehind = 0
            if upstreamReadHeld { upstreamSilentSince = now }
        } else if timers[.slowClient] == nil, hasExchange {
            timers[.slowClient] = now + settings.slowClientTimeout
        }
    }

    /// The request could not be decoded.
    public mutating func requestFailed(_ error: RequestError, now: NIODeadline) -> Action {
        switch error {
        case .bytesAfterClose:
            keepAlive = false
            pipelined.removeAll()
            return .none
        case .malformed(let gatewayError):
            keepAlive = false
            // Bytes after a request whose end already went upstream belong to a later request: this one is answered
            // as it goes, then the connection closes. Before that, the malformed bytes are this request's (a bad
            // chunk, a body longer than its Content-Length).
            let currentRequestIsWhole = requestForwardedCompletely
            switch phase {
            case .awaitingRequestHead:
                guard pipelined.isEmpty else { return .close }
                return answer(LocalAnswer(.error(gatewayError), log: .malformedRequest), now: now)
            case .admitting, .readingBody:
                guard !currentRequestIsWhole else { return .none }
                pendingParts.removeAll()
                collectedBody = nil
                return answer(LocalAnswer(.error(gatewayError), log: .malformedRequest), now: now)
            case .dialling, .awaitingResponseHead:
                guard !currentRequestIsWhole else { return .none }
                // No response has started: answer 400 and close; the upstream never saw a complete request.
                pendingParts.removeAll()
                requestEndHeld = nil
                return .rejectExchange(
                    gatewayError, closeConnection: !settings.isHTTP2, then: endTurn(answeredLocally: true, now: now)
                )
            case .relaying:
                guard !currentRequestIsWhole else { return .none }
                requestEndHeld = nil
                return abort(outcome: .error)
            case .joining, .subscribed:
                return .none  // a later request's bytes: this stream goes on, then the connection closes
            case .answered:
                return .close
            case .closing, .closed:
                return .none
            }
        }
    }

    /// The gateway begins to drain (SIGTERM).
    public mutating func quiesce(now: NIODeadline) -> Action {
        draining = true
        switch phase {
        case .awaitingRequestHead, .answered:
            return .close
        case .closing, .closed:
            return .none
        case .admitting, .readingBody, .dialling, .awaitingResponseHead, .relaying, .joining, .subscribed:
            // Whatever is still open after the grace period is closed.
            timers[.drainGrace] = now + settings.drainGrace
            return phase == .relaying || phase == .subscribed ? closeStream(.draining, now: now) : .none
        }
    }

    /// The client connection is gone.
    public mutating func clientInactive() -> Action {
        let abandoned = hasExchange
        phase = .closed
        timers.clearAll()
        pipelined.removeAll()
        pendingParts.removeAll()
        collectedBody = nil
        upstreamAttached = false
        return abandoned ? .abandonExchange : .none
    }

    // MARK: Ending a turn

    mutating func answer(_ local: LocalAnswer, now: NIODeadline) -> Action {
        if !requestEnded && requestMayHaveBody {
            // An unread request body: rather than wait for it, close after answering.
            keepAlive = false
        }
        let closeConnection = !settings.isHTTP2 && (!keepAlive || draining)
        return .answer(local, closeConnection: closeConnection, then: endTurn(answeredLocally: true, now: now))
    }

    /// After a complete response: close, wait for the request's end, or wait for the next request.
    mutating func endTurn(answeredLocally: Bool, now: NIODeadline) -> TurnEnd {
        timers.clearExchangeTimers()
        requestEndHeld = nil
        upstreamAttached = false
        upstreamReadHeld = false
        if settings.isHTTP2 {
            phase = .closing
            return requestEnded ? .streamDone : .closeAfterWrite
        }
        if !keepAlive || draining {
            pipelined.removeAll()  // nothing after a closing response is answered (RFC 9112 section 9.6)
            phase = .closing
            return .closeAfterWrite
        }
        if !requestEnded {
            guard answeredLocally else {
                // The upstream answered before the client finished its body: the connection cannot be resynchronised.
                phase = .closing
                return .closeAfterWrite
            }
            phase = .answered
            return .awaitRequestEnd
        }
        phase = .awaitingRequestHead
        timers[.requestHead] = now + settings.requestHeaderTimeout
        guard !pipelined.isEmpty, !replayingPipelined else { return .keepAlive(replayPipelined: false) }
        replayingPipelined = true
        return .keepAlive(replayPipelined: true)
    }
}
