import GatewayCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// What a shared stream tells a subscriber; called on the subscriber's own event loop.
protocol SharedStreamSubscriber: AnyObject {
    /// The stream's response head (the upstream's, `Set-Cookie` removed); `prelude` (the upstream's last `retry:`,
    /// then the events replayed from the ring) goes out right after it.
    func sharedHead(_ head: HTTPResponseHead, prelude: [ByteBuffer])
    /// Whole events, one buffer for every subscriber (never copied per subscriber).
    func sharedEvents(_ bytes: ByteBuffer, events: Int, now: NIODeadline)
    /// The stream ended (`failure` before its head went out).
    func sharedEnded(failure: UpstreamFailure?)
    /// The stream could not take this subscriber (`Last-Event-ID` not in its ring, or it ended as the subscriber came).
    func joinRefused(streamEnded: Bool)
}

/// Every shared stream of the process, by key. The lock is taken to join and when a stream ends, never per event.
final class SharedStreams: Sendable {
    private let streams = NIOLockedValueBox<[ShareKey: SharedStream]>([:])

    /// Joins the stream of `request.key`, starting one on the caller's loop (with the caller's dialer) if none is
    /// open. The answer reaches `subscriber` on `loop`.
    func join(
        _ request: SharedRequest,
        subscriber: any SharedStreamSubscriber,
        on loop: any EventLoop,
        start: () -> SharedStream
    ) -> SharedSubscription {
        let stream = streams.withLockedValue { streams in
            if let open = streams[request.key] { return open }
            let made = start()
            streams[request.key] = made
            return made
        }
        let subscription = SharedSubscription(stream: stream, subscriber: subscriber, loop: loop)
        stream.eventLoop.execute { stream.join(subscription, request: request) }
        return subscription
    }

    /// A stream that ended is forgotten (only if it is still the one open for its key).
    func remove(_ stream: SharedStream) {
        streams.withLockedValue { streams in
            if streams[stream.key] === stream { streams[stream.key] = nil }
        }
    }

    var count: Int { streams.withLockedValue { $0.count } }

    /// Ends every stream (the gateway stops).
    func closeAll() {
        for stream in streams.withLockedValue({ Array($0.values) }) {
            stream.eventLoop.execute { stream.shutDown() }
        }
    }
}

/// One subscriber's membership of a shared stream; used on the subscriber's loop.
final class SharedSubscription: @unchecked Sendable {
    // @unchecked: created on the subscriber's loop and touched only there (the stream hops to it).
    let stream: SharedStream
    /// Strong, not weak: every delivery reads it, and a weak load costs a side-table look-up per subscriber per batch
    /// (3.9% of the shared gateway's CPU in `Benchmarks/share.sh`). The subscriber holds its subscription until its
    /// exchange ends, and every exchange ends through `leave()`, which lets go of the subscriber and so breaks the cycle.
    private(set) var subscriber: (any SharedStreamSubscriber)?
    let loop: any EventLoop
    /// Its place in the loop's shard while a member.
    var shard: LoopShard?
    var index = -1
    /// The subscriber left before the stream's answer reached it.
    var cancelled = false

    init(stream: SharedStream, subscriber: any SharedStreamSubscriber, loop: any EventLoop) {
        self.stream = stream
        self.subscriber = subscriber
        self.loop = loop
    }

    /// The subscriber is done with the stream (its response ended, or it went away).
    func leave() {
        loop.preconditionInEventLoop()
        subscriber = nil
        guard let shard else {
            cancelled = true
            return
        }
        shard.remove(self)
        self.shard = nil
        let stream = stream
        stream.eventLoop.execute { stream.left(self) }
    }
}

/// A shared stream's subscribers on one event loop: each batch of events reaches them with one hop to this loop, not
/// one per subscriber. Touched only on `loop`.
final class LoopShard: @unchecked Sendable {
    // @unchecked: every method runs on `loop`; the stream reaches it with `loop.execute`.
    let loop: any EventLoop
    private var members: [SharedSubscription] = []
    /// Members waiting for the stream's head.
    private var waiting: [SharedSubscription] = []

    init(loop: any EventLoop) {
        self.loop = loop
    }

    var isEmpty: Bool { members.isEmpty && waiting.isEmpty }

    /// Adds a subscriber the stream accepted; with `head`, it is live at once (after `prelude`).
    func add(_ subscription: SharedSubscription, head: HTTPResponseHead?, prelude: [ByteBuffer]) {
        guard !subscription.cancelled, let subscriber = subscription.subscriber else {
            let stream = subscription.stream
            stream.eventLoop.execute { stream.left(subscription) }
            return
        }
        subscription.shard = self
        if let head {
            subscription.index = members.count
            members.append(subscription)
            subscriber.sharedHead(head, prelude: prelude)
        } else {
            subscription.index = -1
            waiting.append(subscription)
        }
    }

    func remove(_ subscription: SharedSubscription) {
        if subscription.index >= 0 {
            let index = subscription.index
            let last = members.removeLast()
            if index < members.count {
                members[index] = last
                last.index = index
            }
        } else {
            waiting.removeAll { $0 === subscription }
        }
        subscription.index = -1
    }

    func deliverHead(_ head: HTTPResponseHead) {
        let ready = waiting
        waiting.removeAll()
        for subscription in ready {
            subscription.index = members.count
            members.append(subscription)
            subscription.subscriber?.sharedHead(head, prelude: [])
        }
    }

    func deliver(_ bytes: ByteBuffer, events: Int) {
        let now = loop.now
        // A subscriber may leave while it is written to (a slow one is closed): iterate over a snapshot.
        for subscription in members {
            subscription.subscriber?.sharedEvents(bytes, events: events, now: now)
        }
    }

    func end(failure: UpstreamFailure?) {
        let everyone = members + waiting
        for subscription in everyone {
            subscription.subscriber?.sharedEnded(failure: failure)
        }
    }
}
