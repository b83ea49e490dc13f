import GatewayCore
import NIOCore

/// One event loop's client-connection timers: every connection's earliest deadline in one `DeadlineHeap`, and one
/// NIO scheduled callback for the whole loop, at the heap's earliest.
///
/// A connection moves its deadline two or three times as a request goes through (request head, response head, the
/// stream's timers). With a scheduled task per connection, each move was a cancel in NIO's loop, which scans the
/// loop's task heap for the task (O(n) under a lock, a retain and release per entry passed); here a move is O(log n)
/// on the loop, lock-free, and NIO's heap holds one task per loop (plus connect timeouts).
///
/// The loop's callback is moved earlier at once but never later: when the earliest deadline moves later (its
/// connection got its head, or closed), the callback fires at the old time, finds nothing due and re-arms at the new
/// earliest. That is one spare wake-up per loop per timeout period, where moving it at once would re-arm NIO's
/// timer (a `timerfd_settime` per loop tick) for every connection that gets through a phase.
final class ConnectionTimerQueue: NIOScheduledCallbackHandler {
    let eventLoop: any EventLoop
    private var heap = DeadlineHeap<ClientConnectionHandler>()
    private var callback: NIOScheduledCallback?
    private var callbackDeadline: NIODeadline?
    /// The connections due in one firing, kept between firings for its storage.
    private var due: [ClientConnectionHandler] = []

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Connections with a deadline (for tests).
    var count: Int { heap.count }

    /// Sets `handler`'s deadline (`nil`: it has none). Called on the loop only.
    func setDeadline(_ deadline: NIODeadline?, for handler: ClientConnectionHandler) {
        eventLoop.assertInEventLoop()
        heap.setDeadline(deadline, for: handler)
        guard let earliest = heap.earliest else {
            // Nothing left to time: no wake-up for nothing.
            callback?.cancel()
            callback = nil
            callbackDeadline = nil
            return
        }
        if let callbackDeadline, callbackDeadline <= earliest { return }
        arm(at: earliest)
    }

    private func arm(at deadline: NIODeadline) {
        callback?.cancel()
        callbackDeadline = deadline
        // Scheduling fails only on a loop that is shutting down: its connections go with it.
        callback = try? eventLoop.assumeIsolated().scheduleCallback(at: deadline, handler: self)
    }

    /// Every connection whose deadline passed runs its due timers, in deadline order; then the callback is armed at
    /// the new earliest deadline. A connection that sets a deadline already past while its timers run is taken in the
    /// next loop tick, not in this one.
    func handleScheduledCallback(eventLoop: some EventLoop) {
        callback = nil
        callbackDeadline = nil
        let now = eventLoop.now
        while let handler = heap.removeFirst(dueBy: now) { due.append(handler) }
        for handler in due { handler.timersDue(now: now) }
        due.removeAll(keepingCapacity: due.count <= 1024)
        if callback == nil, let earliest = heap.earliest { arm(at: earliest) }
    }
}
