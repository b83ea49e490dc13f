/// What one held stream saw over all its connections: the sequence check that spans reconnects.
///
/// The upstream numbers a stream's events 1, 2, 3, ... and, asked with `Last-Event-ID: N`, resumes at N + 1. So across
/// a reconnect the first event must be the one after the last seen: anything else is a gap (events lost) or a rewind
/// (the `Last-Event-ID` did not reach the upstream). Pure value, no clock and no I/O, so the rules are unit-tested.
struct StreamLedger: Sendable, Equatable {
    /// How one event fits the stream so far.
    enum Verdict: Equatable {
        /// The stream's very first event (any number: a resumed stream may start anywhere).
        case first
        /// The one after the last seen.
        case inOrder
        /// `missing` events were skipped.
        case gap(missing: UInt64)
        /// The same number as the last one seen.
        case duplicate
        /// Lower than the last one seen, on the same connection.
        case reorder
        /// The first event after a reconnect is at or before the last one seen: the resume point was ignored.
        case rewind
    }

    private(set) var lastSequence: UInt64 = 0
    private(set) var events: UInt64 = 0
    /// Events missing, summed over every hole (a hole across a reconnect included).
    private(set) var gaps: UInt64 = 0
    /// Of `gaps`, those found at the first event after a reconnect.
    private(set) var resumeGaps: UInt64 = 0
    private(set) var duplicates: UInt64 = 0
    private(set) var reorders: UInt64 = 0
    private(set) var rewinds: UInt64 = 0
    /// Connections that ended after they had started streaming (a 200 head).
    private(set) var disconnects: UInt64 = 0
    /// Reconnections whose first event arrived (after at least one event before the disconnect).
    private(set) var resumes: UInt64 = 0
    private var awaitingResume = false

    /// Accounts one event; returns how it fits.
    @discardableResult
    mutating func record(sequence: UInt64) -> Verdict {
        defer { events += 1 }
        guard events > 0 else {
            lastSequence = sequence
            awaitingResume = false
            return .first
        }
        let resuming = awaitingResume
        if resuming {
            awaitingResume = false
            resumes += 1
            if sequence <= lastSequence {
                rewinds += 1
                lastSequence = sequence  // judge what follows against the new run, not the old one
                return .rewind
            }
        }
        let verdict: Verdict
        if sequence == lastSequence &+ 1 {
            verdict = .inOrder
        } else if sequence > lastSequence {
            let missing = sequence - lastSequence - 1
            gaps += missing
            if resuming { resumeGaps += missing }
            verdict = .gap(missing: missing)
        } else if sequence == lastSequence {
            duplicates += 1
            verdict = .duplicate
        } else {
            reorders += 1
            verdict = .reorder
        }
        lastSequence = Swift.max(lastSequence, sequence)
        return verdict
    }

    /// The connection that was streaming has ended; the next event (on a new connection) is a resume.
    mutating func connectionEnded() {
        disconnects += 1
        if events > 0 { awaitingResume = true }
    }

    /// The value a reconnect sends as `Last-Event-ID`, nil before any event.
    var lastEventID: UInt64? { events > 0 ? lastSequence : nil }
}

/// When to reconnect: after a stream that was serving ends, the server's `retry:` or the base delay; after a failed
/// attempt (refused, non-200, closed before the head), the base delay doubled per failure up to `maxDelay`. Each delay
/// is spread by `jitter` (a factor in 0.5..<1.5) so thousands of streams cut at once do not return in one burst.
struct ReconnectPolicy: Sendable, Equatable {
    var baseSeconds: Double
    var maxSeconds: Double

    /// `failures`: consecutive failed attempts so far (0 after a stream that was serving); `retryMillis`: the last
    /// `retry:` the server sent, if any.
    func delay(failures: Int, retryMillis: UInt64?, jitter: Double) -> Double {
        let base: Double
        if failures == 0 {
            base = retryMillis.map { Double($0) / 1000 } ?? baseSeconds
        } else {
            base = Swift.min(maxSeconds, baseSeconds * Double(1 << Swift.min(failures, 20)))
        }
        return Swift.min(maxSeconds, base) * jitter
    }
}
