import NIOCore
import NIOHTTP1

/// The upstream side of `ClientConnectionStateMachine`: connecting, the request going out, the response coming back,
/// the upstream's reads held for a slow client, and how an upstream failure or close ends the exchange.
extension ClientConnectionStateMachine {
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

    mutating func fail(_ failure: UpstreamFailure, now: NIODeadline) -> Action {
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
    /// `now` is read only if the exchange ends here (no clock read per event).
    public mutating func upstreamBodyReceived(_ buffer: ByteBuffer, now: @autoclosure () -> NIODeadline) -> Action {
        guard phase == .relaying else { preconditionFailure("upstream body in phase \(phase)") }
        // Mutated in place: no copy of the relay per read.
        switch relay!.upstreamBodyReceived(buffer) {
        case .relay:
            needsFlush = true
            return .writeBody
        case .relayPrefixAndFinish(let length, let frame, let reason):
            return finish(
                prefix: .decoded(length: length), closingFrame: frame, outcome: ExchangeOutcome(reason),
                reuseUpstream: false, now: now()
            )
        }
    }

    /// A chunked body's bytes exactly as received (wire mode). Malformed framing throws: the upstream is closed with
    /// that error.
    public mutating func upstreamWireReceived(
        _ buffer: ByteBuffer,
        now: @autoclosure () -> NIODeadline
    ) throws(ChunkedFramingError) -> Action {
        guard phase == .relaying else { preconditionFailure("upstream wire bytes in phase \(phase)") }
        switch try relay!.upstreamWireReceived(buffer) {
        case .relay(let held, let length):
            if held != nil || length > 0 { needsFlush = true }
            return .writeWire(held: held, length: length)
        case .relayPrefixAndFinish(let held, let length, let ending, let frame, let reason):
            return finish(
                prefix: .wire(held: held, length: length), chunkEnding: ending, closingFrame: frame,
                outcome: ExchangeOutcome(reason), reuseUpstream: false, now: now()
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

}
