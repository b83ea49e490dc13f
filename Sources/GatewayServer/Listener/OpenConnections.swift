import NIOConcurrencyHelpers
import NIOCore

/// Every connection the gateway accepted and has not closed yet, whichever listening socket accepted it.
///
/// The drain needs them all: the per-loop sockets of the current listener, and the sockets a reload moved away from,
/// whose connections run on after their listener closed. (NIO's `ServerQuiescingHelper` follows one server channel
/// and completes at once if that channel is closed already, so it cannot wait for a retired listener's connections.)
/// Touched once when a connection opens and once when it closes, never per request or event; it also enforces
/// `limits.max_connections`, since it holds the count anyway.
final class OpenConnections: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        /// Set once the drain began: completed when the last connection closes.
        var drained: EventLoopPromise<Void>?
    }

    private let state = NIOLockedValueBox(State())

    /// Tracks `channel` until it closes, or returns `false` (tracking nothing) if `limit` connections are open
    /// already (`limits.max_connections`). A connection accepted after the drain began is told to quiesce at once.
    func admit(_ channel: any Channel, limit: Int) -> Bool {
        let id = ObjectIdentifier(channel)
        // nil: refused; else whether the drain has begun.
        let draining = state.withLockedValue { state -> Bool? in
            guard state.channels.count < limit else { return nil }
            state.channels[id] = channel
            return state.drained != nil
        }
        guard let draining else { return false }
        channel.closeFuture.whenComplete { [self] _ in
            let emptied = state.withLockedValue { state -> EventLoopPromise<Void>? in
                state.channels[id] = nil
                return state.channels.isEmpty ? state.drained : nil
            }
            emptied?.succeed()
        }
        if draining { Self.quiesce(channel) }
        return true
    }

    /// Tells every open connection to finish (`ChannelShouldQuiesceEvent`); the future completes when all closed.
    /// Close the listeners first, so that no new connection arrives.
    func drain(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let (channels, drained) = state.withLockedValue { state -> ([any Channel], EventLoopPromise<Void>) in
            if let drained = state.drained { return ([], drained) }
            let promise = eventLoop.makePromise(of: Void.self)
            state.drained = promise
            return (Array(state.channels.values), promise)
        }
        if channels.isEmpty, state.withLockedValue({ $0.channels.isEmpty }) {
            drained.succeed()
        }
        for channel in channels { Self.quiesce(channel) }
        return drained.futureResult
    }

    private static func quiesce(_ channel: any Channel) {
        channel.eventLoop.execute {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }
}
