import NIOCore

/// Timers and endings of `ClientConnectionStateMachine`: what each deadline does when it passes, and how a response
/// ends, cleanly (`finish`) or not (`abort`).
extension ClientConnectionStateMachine {
    /// A timer's deadline passed (a stale firing, whose deadline was cleared or moved, does nothing).
    public mutating func timerFired(_ kind: ConnectionTimers.Kind, now: NIODeadline) -> Action {
        guard let deadline = timers[kind], deadline <= now else { return .none }
        timers[kind] = nil
        switch kind {
        case .requestHead:
            // An idle keep-alive connection, or a request head that trickles in (slowloris).
            if phase == .readingBody {
                collectedBody = nil
                let error = GatewayError.requestTimeout("the request body did not arrive in time")
                return answer(LocalAnswer(.error(error), log: .malformedRequest), now: now)
            }
            guard phase == .awaitingRequestHead else { return .none }
            return .close
        case .responseHeader:
            guard phase == .awaitingResponseHead || phase == .joining else { return .none }
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

    mutating func heartbeatDue(now: NIODeadline) -> Action {
        guard phase == .relaying || phase == .subscribed, let interval = plan.heartbeat else { return .none }
        let quietFor = now - lastClientWrite
        guard quietFor >= interval else {
            timers[.heartbeat] = lastClientWrite + interval
            return .none
        }
        timers[.heartbeat] = now + interval
        // A subscriber only ever gets whole events: any moment is between two.
        let due = phase == .subscribed ? .write(SSEFrame.heartbeat) : relay!.heartbeatDue()
        guard case .write(let frame) = due else { return .none }
        lastClientWrite = now
        return .writeFrame(frame)
    }

    /// Silence is time without upstream bytes while a read is requested; reads held for a slow client do not count.
    mutating func upstreamIdleCheck(now: NIODeadline) -> Action {
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
    mutating func closeStream(_ reason: StreamCloseReason, now: NIODeadline) -> Action {
        guard phase == .relaying || phase == .subscribed else { return .none }
        let frame: ByteBuffer
        switch reason {
        case .tokenExpired:
            frame = SSEFrame.tokenExpired(retryMilliseconds: Self.tokenExpiryRetryMilliseconds)
        case .draining, .maxDuration:
            frame = SSEFrame.retryHint(milliseconds: Int.random(in: 0...max(1, settings.retryJitterMilliseconds)))
        }
        if phase == .subscribed {
            return finish(closingFrame: frame, outcome: ExchangeOutcome(reason), reuseUpstream: false, now: now)
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
    mutating func finish(
        prefix: BodyPrefix? = nil,
        chunkEnding: StreamRelayStateMachine.ChunkEnding? = nil,
        closingFrame: ByteBuffer?,
        outcome: ExchangeOutcome,
        reuseUpstream: Bool,
        now: NIODeadline
    ) -> Action {
        var completion: ByteBuffer?
        if let relay, relay.passesChunkedWire {
            switch chunkEnding ?? self.relay!.wireEnding() {
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

    mutating func abort(
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
