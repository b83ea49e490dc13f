import NIOCore

/// A client connection subscribed to a shared upstream stream (`routes[].share`): it joins, gets the stream's head
/// (rewritten for it: its CORS, its `Connection`), then whole events as the stream delivers them, with its own
/// heartbeats, token expiry, maximum duration and drain, all of which end only this subscriber.
///
/// Nothing reads an upstream on its behalf, so a slow subscriber cannot hold the stream back: once its socket and the
/// gateway's write buffer are full, the bytes it falls behind by are counted, and past `bufferLimit` it is closed
/// (`slow_client`); its browser comes back with `Last-Event-ID`.
extension ClientConnectionStateMachine {
    struct Subscription: Sendable {
        var bufferLimit = 0
        /// Bytes written since the client stopped being writable.
        var bytesBehind = 0
        var events = 0
        var bytes = 0
    }

    /// Events and body bytes relayed to this client in the current exchange (its own upstream's or a shared one's).
    public var relayedEvents: Int { relay?.relayedEvents ?? subscription.events }
    public var relayedBodyBytes: Int { relay?.relayedBodyBytes ?? subscription.bytes }

    /// The connection holds a long-lived event stream and expects no request bytes until it ends (the request
    /// ended, none is queued): the HTTP request decoder can be taken out of the pipeline meanwhile.
    public var isStreamingWithoutRequest: Bool {
        let streaming = phase == .subscribed || (phase == .relaying && relay?.isEventStream == true)
        return streaming && requestEnded && pipelined.isEmpty
    }

    mutating func join(_ plan: ExchangePlan, bufferLimit: Int, now: NIODeadline) -> Action {
        self.plan = plan
        phase = .joining
        // Admitted only without a body: the request is complete as far as any upstream is concerned.
        requestForwardedCompletely = true
        subscription = Subscription(bufferLimit: bufferLimit)
        timers[.responseHeader] = now + plan.responseHeaderTimeout
        if !clientWritable { timers[.slowClient] = now + settings.slowClientTimeout }
        return .join
    }

    /// The shared stream cannot replay from the client's `Last-Event-ID`: it gets an upstream request of its own.
    public mutating func joinMissed(now: NIODeadline) -> Action {
        guard phase == .joining else { return .none }
        timers[.responseHeader] = nil
        requestForwardedCompletely = false
        pendingParts = requestEnded ? [.end(nil)] : []
        phase = .dialling
        return .dial
    }

    /// The shared stream's head is here (at join, or when its upstream answered).
    public mutating func sharedHeadArrived() -> Action {
        guard phase == .joining else { return .none }
        timers[.responseHeader] = nil
        return .writeSharedHead(closeConnection: !settings.isHTTP2 && (!keepAlive || draining))
    }

    public mutating func sharedHeadWritten(now: NIODeadline) -> Action {
        guard phase == .joining else { preconditionFailure("shared head written in phase \(phase)") }
        phase = .subscribed
        lastClientWrite = now
        if let heartbeat = plan.heartbeat { timers[.heartbeat] = now + heartbeat }
        if let expiry = plan.tokenExpiry { timers[.tokenExpiry] = expiry }
        if let maxDuration = plan.maxStreamDuration { timers[.maxDuration] = now + maxDuration }
        return draining ? closeStream(.draining, now: now) : .none
    }

    /// Whole events from the shared stream (`bytes` long); `now` is read once per delivery to a loop.
    public mutating func sharedEventsArrived(bytes: Int, events: Int, now: NIODeadline) -> Action {
        guard phase == .subscribed else { return .none }
        if !clientWritable {
            subscription.bytesBehind += bytes
            if subscription.bytesBehind > subscription.bufferLimit { return abort(outcome: .slowClient) }
        }
        subscription.events += events
        subscription.bytes += bytes
        lastClientWrite = now
        return .writeShared
    }

    /// The shared stream ended: before the head, this request fails; after it, the stream ends cleanly with a
    /// jittered `retry:` hint (the browser reconnects, to a new shared stream).
    public mutating func sharedStreamEnded(failure: UpstreamFailure?, now: NIODeadline) -> Action {
        switch phase {
        case .joining:
            return fail(failure ?? UpstreamFailure(.closed, message: "the shared upstream stream ended"), now: now)
        case .subscribed:
            let frame = SSEFrame.retryHint(milliseconds: Int.random(in: 0...max(1, settings.retryJitterMilliseconds)))
            return finish(closingFrame: frame, outcome: .sharedStreamEnded, reuseUpstream: false, now: now)
        default:
            return .none
        }
    }
}
