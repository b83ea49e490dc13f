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
        /// Acquiring an upstream connection.
        case dialling
        /// The request went upstream; its response head has not arrived.
        case awaitingResponseHead
        /// The upstream's body streams through `relay`.
        case relaying
        /// The gateway answered itself; the request's body is still being read and discarded.
        case answered
        /// The connection closes once its last write has gone out (or, on HTTP/2, the stream ends by itself).
        case closing
        case closed
    }

    public private(set) var phase: Phase = .awaitingRequestHead
    /// Every timer's deadline; the handler schedules what changed after each input.
    public var timers = ConnectionTimers()
    public var settings: Settings
    /// The response body's relay, from the response head on (kept after the end, for the access log's counts).
    public private(set) var relay: StreamRelayStateMachine?

    private var plan = ExchangePlan()
    // Request side.
    private var requestEnded = true
    private var keepAlive = true
    private var requestMayHaveBody = false
    private var draining = false
    /// Request parts that arrived before the upstream connection (during admission or dialling).
    private var pendingParts: [HTTPClientRequestPart] = []
    /// HTTP/1.1 pipelining: parts of requests that arrived while an earlier one was answered. Client reads stop while
    /// any wait, so this holds at most what one read decoded.
    private var pipelined = CircularBuffer<HTTPServerRequestPart>(initialCapacity: 0)
    private var replayingPipelined = false
    private var sentRequestBody = false
    private var requestForwardedCompletely = false
    private var retriedStaleConnection = false
    private var lastConnectionWasReused = false
    // Response side.
    private var upstreamAttached = false
    private var upstreamKeepAlive = false
    private var responseEnded = false
    private var needsFlush = false
    private var lastClientWrite = NIODeadline.uptimeNanoseconds(0)
    /// Since when the upstream has sent nothing while a read was requested; `nil` while its reads are held for a
    /// slow client (backpressure is not upstream silence).
    private var upstreamSilentSince: NIODeadline?
    // Reads and writability of both sides.
    private var clientReadHeld = false
    private var upstreamReadHeld = false
    private var clientWritable = true
    private var upstreamWritable = true

    /// After `token_expired`, the browser's own reconnect waits this long: time for the page to fetch a new token and
    /// open a new `EventSource` first.
    public static let tokenExpiryRetryMilliseconds = 2_000

    public init(settings: Settings) {
        self.settings = settings
    }

    /// An exchange holds (or is getting) an upstream.
    private var hasExchange: Bool {
        phase == .dialling || phase == .awaitingResponseHead || phase == .relaying
    }

    /// A response for the current request is still to be completed.
    private var responseInProgress: Bool { phase == .admitting || hasExchange }

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
            return handle(part, now: now)
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
        handle(part, now: now)
    }

    private mutating func handle(_ part: HTTPServerRequestPart, now: NIODeadline) -> Action {
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
            return requestPart(.body(.byteBuffer(buffer)))
        case .end(let trailers):
            requestEnded = true
            if phase == .answered {
                return .turnEnded(endTurn(answeredLocally: true, now: now))
            }
            return requestPart(.end(trailers))
        }
    }

    private mutating func startExchange() {
        pendingParts.removeAll()
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
    }

    private mutating func requestPart(_ part: HTTPClientRequestPart) -> Action {
        switch phase {
        case .admitting, .dialling:
            pendingParts.append(part)
            return .none
        case .awaitingResponseHead, .relaying:
            markForwarded(part)
            return .forwardRequestPart(part)
        case .answered, .closing, .closed:
            return .none  // answered already: the body is discarded
        case .awaitingRequestHead:
            preconditionFailure("request body without a head")
        }
    }

    private mutating func markForwarded(_ part: HTTPClientRequestPart) {
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

    private var mayReadClient: Bool {
        guard pipelined.isEmpty else { return false }
        switch phase {
        case .admitting:
            return requestEnded
        case .dialling, .awaitingResponseHead, .relaying:
            // A request body flows only while the upstream can take it.
            return requestEnded || (upstreamAttached && upstreamWritable)
        case .awaitingRequestHead, .answered, .closing, .closed:
            return true
        }
    }

    /// The end of a client read: request body parts written upstream go out.
    public func clientReadComplete() -> Bool {
        upstreamAttached && sentRequestBody
    }

    public mutating func clientWritabilityChanged(isWritable: Bool, now: NIODeadline) {
        clientWritable = isWritable
        if isWritable {
            timers[.slowClient] = nil
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
            guard phase == .awaitingRequestHead, pipelined.isEmpty else { return .close }
            return answer(LocalAnswer(.error(gatewayError), log: .malformedRequest), now: now)
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
        case .admitting, .dialling, .awaitingResponseHead, .relaying:
            // Whatever is still open after the grace period is closed.
            timers[.drainGrace] = now + settings.drainGrace
            return phase == .relaying ? closeStream(.draining, now: now) : .none
        }
    }

    /// The client connection is gone.
    public mutating func clientInactive() -> Action {
        let abandoned = hasExchange
        phase = .closed
        timers.clearAll()
        pipelined.removeAll()
        pendingParts.removeAll()
        upstreamAttached = false
        return abandoned ? .abandonExchange : .none
    }

    // MARK: Admission

    public mutating func admissionDecided(_ decision: Admission, now: NIODeadline) -> Action {
        switch phase {
        case .admitting:
            break
        case .closing, .closed:
            return .none  // the client left while its keys were refreshed
        default:
            preconditionFailure("admission decided in phase \(phase)")
        }
        switch decision {
        case .answer(let local):
            pendingParts.removeAll()
            return answer(local, now: now)
        case .refreshKeys:
            return .refreshKeys
        case .forward(let plan):
            self.plan = plan
            phase = .dialling
            if !clientWritable { timers[.slowClient] = now + settings.slowClientTimeout }
            return .dial
        }
    }

    private mutating func answer(_ local: LocalAnswer, now: NIODeadline) -> Action {
        if !requestEnded && requestMayHaveBody {
            // An unread request body: rather than wait for it, close after answering.
            keepAlive = false
        }
        let closeConnection = !settings.isHTTP2 && (!keepAlive || draining)
        return .answer(local, closeConnection: closeConnection, then: endTurn(answeredLocally: true, now: now))
    }

    /// After a complete response: close, wait for the request's end, or wait for the next request.
    private mutating func endTurn(answeredLocally: Bool, now: NIODeadline) -> TurnEnd {
        timers.clearExchangeTimers()
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

    // MARK: Upstream side

    public mutating func upstreamConnected(isReused: Bool, now: NIODeadline) -> Action {
        guard phase == .dialling else { preconditionFailure("upstream connected in phase \(phase)") }
        phase = .awaitingResponseHead
        upstreamAttached = true
        upstreamWritable = true
        lastConnectionWasReused = isReused
        timers[.responseHeader] = now + plan.responseHeaderTimeout
        let parts = pendingParts
        pendingParts.removeAll()
        for part in parts { markForwarded(part) }
        return .sendRequest(parts)
    }

    public mutating func upstreamConnectFailed(_ failure: UpstreamFailure, now: NIODeadline) -> Action {
        guard phase == .dialling else { preconditionFailure("upstream dial failed in phase \(phase)") }
        return fail(failure, now: now)
    }

    private mutating func fail(_ failure: UpstreamFailure, now: NIODeadline) -> Action {
        pendingParts.removeAll()
        if !requestEnded && requestMayHaveBody { keepAlive = false }
        let closeConnection = !settings.isHTTP2 && (!keepAlive || draining)
        return .failExchange(failure, closeConnection: closeConnection, then: endTurn(answeredLocally: true, now: now))
    }

    /// The upstream's final response head; `isKeepAlive`: the upstream lets the connection be reused.
    public mutating func upstreamResponseHead(isKeepAlive: Bool) -> Action {
        guard phase == .awaitingResponseHead else { preconditionFailure("response head in phase \(phase)") }
        timers[.responseHeader] = nil
        upstreamKeepAlive = isKeepAlive
        return .writeResponseHead(closeConnection: !settings.isHTTP2 && (!keepAlive || draining))
    }

    /// The response head went to the client; `passesChunkedWire`: the upstream's chunk framing goes to the client as
    /// it came.
    public mutating func responseHeadWritten(isEventStream: Bool, passesChunkedWire: Bool, now: NIODeadline) -> Action {
        guard phase == .awaitingResponseHead else { preconditionFailure("response head written in phase \(phase)") }
        phase = .relaying
        relay = StreamRelayStateMachine(isEventStream: isEventStream, passesChunkedWire: passesChunkedWire)
        needsFlush = true
        lastClientWrite = now
        upstreamSilentSince = upstreamReadHeld ? nil : now
        if let idle = plan.idleTimeout { timers[.upstreamIdle] = now + idle }
        guard isEventStream else { return .none }
        if let heartbeat = plan.heartbeat { timers[.heartbeat] = now + heartbeat }
        if let expiry = plan.tokenExpiry { timers[.tokenExpiry] = expiry }
        if let maxDuration = plan.maxStreamDuration { timers[.maxDuration] = now + maxDuration }
        return draining ? closeStream(.draining, now: now) : .none
    }

    /// Decoded body data from the upstream (the handler still holds the buffer).
    public mutating func upstreamBodyReceived(_ buffer: ByteBuffer, now: NIODeadline) -> Action {
        guard phase == .relaying else { preconditionFailure("upstream body in phase \(phase)") }
        // Mutated in place: no copy of the relay per read.
        switch relay!.upstreamBodyReceived(buffer) {
        case .relay:
            needsFlush = true
            return .writeBody
        case .relayPrefixAndFinish(let length, let frame, let reason):
            return finish(
                prefix: .decoded(length: length), closingFrame: frame, outcome: ExchangeOutcome(reason),
                reuseUpstream: false, now: now
            )
        }
    }

    /// A chunked body's bytes exactly as received (wire mode). Malformed framing throws: the upstream is closed with
    /// that error.
    public mutating func upstreamWireReceived(_ buffer: ByteBuffer, now: NIODeadline) throws(ChunkedFramingError)
        -> Action
    {
        guard phase == .relaying else { preconditionFailure("upstream wire bytes in phase \(phase)") }
        switch try relay!.upstreamWireReceived(buffer) {
        case .relay(let held, let length):
            if held != nil || length > 0 { needsFlush = true }
            return .writeWire(held: held, length: length)
        case .relayPrefixAndFinish(let held, let length, let ending, let frame, let reason):
            return finish(
                prefix: .wire(held: held, length: length), chunkEnding: ending, closingFrame: frame,
                outcome: ExchangeOutcome(reason), reuseUpstream: false, now: now
            )
        }
    }

    /// The upstream's response is complete.
    public mutating func upstreamEnded(now: NIODeadline) -> Action {
        guard phase == .relaying else { preconditionFailure("upstream end in phase \(phase)") }
        relay!.upstreamEnded()
        responseEnded = true
        return finish(closingFrame: nil, outcome: .upstreamClosed, reuseUpstream: true, now: now)
    }

    /// The end of an upstream read: returns whether to flush the client (once per read, not per event).
    public mutating func upstreamReadComplete(now: NIODeadline) -> Bool {
        upstreamSilentSince = now
        guard needsFlush else { return false }
        needsFlush = false
        lastClientWrite = now
        return true
    }

    /// NIO asks to read from the upstream: only while the client can take more bytes. Returns whether to read now;
    /// otherwise the read is held until the client turns writable (`takeUpstreamRead`).
    public mutating func upstreamReadRequested() -> Bool {
        guard clientWritable else {
            upstreamReadHeld = true
            upstreamSilentSince = nil
            return false
        }
        upstreamReadHeld = false
        return true
    }

    /// Whether a held upstream read may go out now (the handler asks after each input); if so it is no longer held.
    public mutating func takeUpstreamRead() -> Bool {
        guard upstreamReadHeld, clientWritable, upstreamAttached else { return false }
        upstreamReadHeld = false
        return true
    }

    public mutating func upstreamWritabilityChanged(isWritable: Bool) {
        upstreamWritable = isWritable
    }

    /// The upstream connection closed (it is no longer the exchange's).
    public mutating func upstreamClosed(_ ending: UpstreamEnding, now: NIODeadline) -> Action {
        upstreamAttached = false
        switch phase {
        case .awaitingResponseHead:
            if case .failed(let failure) = ending, failure.kind == .protocolError {
                return fail(
                    UpstreamFailure(.protocolError, message: "upstream sent a malformed response: \(failure.message)"),
                    now: now
                )
            }
            if lastConnectionWasReused, !retriedStaleConnection, !sentRequestBody, plan.isIdempotent {
                // Nothing relayed yet: a reused keep-alive connection may simply have been stale. Retry once.
                retriedStaleConnection = true
                timers[.responseHeader] = nil
                if requestForwardedCompletely {
                    requestForwardedCompletely = false
                    pendingParts = [.end(nil)]
                }
                phase = .dialling
                return .dial
            }
            let (kind, detail): (UpstreamFailure.Kind, String)
            switch ending {
            case .closed: (kind, detail) = (.closed, "connection closed")
            case .failed(let failure): (kind, detail) = (failure.kind, failure.message)
            }
            return fail(UpstreamFailure(kind, message: "upstream closed before responding: \(detail)"), now: now)
        case .relaying:
            if case .failed(let failure) = ending, failure.kind == .reset {
                // Mid-stream reset: drop the client connection so EventSource reconnects (never fake a clean end).
                return abort(outcome: .upstreamReset, upstreamError: .reset)
            }
            if relay!.isEventStream {
                return finish(closingFrame: nil, outcome: .upstreamClosed, reuseUpstream: false, now: now)
            }
            // A truncated plain body cannot be ended cleanly (its length would lie): close the client.
            return abort(outcome: .upstreamTruncated)
        default:
            preconditionFailure("upstream closed in phase \(phase)")
        }
    }

    // MARK: Timers

    /// A timer's deadline passed (a stale firing, whose deadline was cleared or moved, does nothing).
    public mutating func timerFired(_ kind: ConnectionTimers.Kind, now: NIODeadline) -> Action {
        guard let deadline = timers[kind], deadline <= now else { return .none }
        timers[kind] = nil
        switch kind {
        case .requestHead:
            // An idle keep-alive connection, or a request head that trickles in (slowloris).
            guard phase == .awaitingRequestHead else { return .none }
            return .close
        case .responseHeader:
            guard phase == .awaitingResponseHead else { return .none }
            let failure = UpstreamFailure(
                .responseHeaderTimeout,
                message: "upstream sent no response head within \(plan.responseHeaderTimeout.shortDescription)"
            )
            return fail(failure, now: now)
        case .heartbeat:
            return heartbeatDue(now: now)
        case .upstreamIdle:
            return upstreamIdleCheck(now: now)
        case .tokenExpiry:
            return closeStream(.tokenExpired, now: now)
        case .maxDuration:
            return closeStream(.maxDuration, now: now)
        case .slowClient:
            guard !clientWritable else { return .none }
            return hasExchange ? abort(outcome: .slowClient) : .close
        case .drainGrace:
            return .close
        }
    }

    private mutating func heartbeatDue(now: NIODeadline) -> Action {
        guard phase == .relaying, let interval = plan.heartbeat else { return .none }
        let quietFor = now - lastClientWrite
        guard quietFor >= interval else {
            timers[.heartbeat] = lastClientWrite + interval
            return .none
        }
        timers[.heartbeat] = now + interval
        guard case .write(let frame) = relay!.heartbeatDue() else { return .none }
        lastClientWrite = now
        return .writeFrame(frame)
    }

    /// Silence is time without upstream bytes while a read is requested; reads held for a slow client do not count.
    private mutating func upstreamIdleCheck(now: NIODeadline) -> Action {
        guard phase == .relaying, let idle = plan.idleTimeout else { return .none }
        guard let since = upstreamSilentSince else {
            timers[.upstreamIdle] = now + idle
            return .none
        }
        guard now - since >= idle else {
            timers[.upstreamIdle] = since + idle
            return .none
        }
        if relay!.isEventStream, relay!.isAtEventBoundary {
            return finish(closingFrame: nil, outcome: .upstreamIdle, reuseUpstream: false, now: now)
        }
        return abort(outcome: .upstreamIdle)
    }

    /// The gateway wants the stream to end at its next event boundary (drain, token expiry, max duration).
    private mutating func closeStream(_ reason: StreamCloseReason, now: NIODeadline) -> Action {
        guard phase == .relaying else { return .none }
        let frame: ByteBuffer
        switch reason {
        case .tokenExpired:
            frame = SSEFrame.tokenExpired(retryMilliseconds: Self.tokenExpiryRetryMilliseconds)
        case .draining, .maxDuration:
            frame = SSEFrame.retryHint(milliseconds: Int.random(in: 0...max(1, settings.retryJitterMilliseconds)))
        }
        switch relay!.closeRequested(reason, closingFrame: frame) {
        case .none, .write:
            return .none
        case .finish(let frame, let reason):
            return finish(closingFrame: frame, outcome: ExchangeOutcome(reason), reuseUpstream: false, now: now)
        }
    }

    // MARK: Endings

    /// Ends the client's response cleanly. A chunked body passed through as wire bytes first gets its open chunk
    /// completed; one that cannot be completed cleanly closes the client connection instead.
    private mutating func finish(
        prefix: BodyPrefix? = nil,
        chunkEnding: StreamRelayStateMachine.ChunkEnding? = nil,
        closingFrame: ByteBuffer?,
        outcome: ExchangeOutcome,
        reuseUpstream: Bool,
        now: NIODeadline
    ) -> Action {
        var completion: ByteBuffer?
        if relay!.passesChunkedWire {
            switch chunkEnding ?? relay!.wireEnding() {
            case .complete(let bytes):
                completion = bytes
            case .impossible:
                // The complete events already written still go out.
                return abort(prefix: prefix, outcome: outcome, afterWritten: true)
            }
        }
        let release = reuseUpstream && responseEnded && requestForwardedCompletely && upstreamKeepAlive
        let then = endTurn(answeredLocally: false, now: now)
        return .finishResponse(
            ResponseFinish(
                prefix: prefix, chunkCompletion: completion, closingFrame: closingFrame, releaseUpstream: release,
                outcome: outcome, then: then
            )
        )
    }

    private mutating func abort(
        prefix: BodyPrefix? = nil,
        outcome: ExchangeOutcome,
        upstreamError: UpstreamFailure.Kind? = nil,
        afterWritten: Bool = false
    ) -> Action {
        timers.clearExchangeTimers()
        upstreamAttached = false
        pipelined.removeAll()
        phase = .closing
        return .abort(
            ExchangeAbort(prefix: prefix, outcome: outcome, upstreamError: upstreamError, afterWritten: afterWritten)
        )
    }
}

extension TimeAmount {
    /// `250ms`, `30s`, `5m`: as durations are written in `gateway.yml`.
    public var shortDescription: String {
        let ns = nanoseconds
        if ns % 60_000_000_000 == 0 && ns >= 60_000_000_000 { return "\(ns / 60_000_000_000)m" }
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        return "\(ns)ns"
    }
}
