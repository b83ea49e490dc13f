/// Held streams summed up, those a disconnect hit apart from those it never did: the soak asks different things of
/// them (no event lost at all; resumed by `Last-Event-ID` with no gap).
struct StreamSummary: Encodable, Sendable, Equatable {
    /// Event counts of a group of streams.
    struct Group: Encodable, Sendable, Equatable {
        var streams: UInt64 = 0
        var events: UInt64 = 0
        var gaps: UInt64 = 0
        var duplicates: UInt64 = 0
        var reorders: UInt64 = 0

        mutating func add(_ ledger: StreamLedger) {
            streams += 1
            events += ledger.events
            gaps += ledger.gaps
            duplicates += ledger.duplicates
            reorders += ledger.reorders
        }

        mutating func merge(_ other: Group) {
            streams += other.streams
            events += other.events
            gaps += other.gaps
            duplicates += other.duplicates
            reorders += other.reorders
        }
    }

    var streams: UInt64 = 0
    /// Streams none of whose attempts ever got a 200.
    var neverConnected: UInt64 = 0
    /// Streams with an open 200 connection now.
    var streamingNow: UInt64 = 0
    /// Streaming now, yet no event for longer than the stale limit.
    var stale: UInt64 = 0
    /// Streams no disconnect ever hit.
    var notHit = Group()
    /// Streams whose connection ended at least once and that were reconnected.
    var hit = Group()
    var disconnects: UInt64 = 0
    var maxDisconnectsPerStream: UInt64 = 0
    /// Reconnections whose first event arrived.
    var resumes: UInt64 = 0
    /// Events missing at a resume (the first event after a reconnect was not the one after the last seen).
    var resumeGaps: UInt64 = 0
    /// Resumes that started at or before an event already seen: `Last-Event-ID` did not take effect.
    var rewinds: UInt64 = 0
    /// Comment lines received (the gateway's heartbeats).
    var comments: UInt64 = 0
    /// Disconnects by wall-clock second (epoch seconds as strings, for JSON).
    var disconnectsBySecond: [String: UInt64] = [:]

    init() {}

    /// One loop's streams; call on that loop.
    init(loop: LoopTally, nowNanos: UInt64, staleAfterNanos: UInt64) {
        for stream in loop.streams {
            add(stream.ledger, everConnected: stream.everConnected, streaming: stream.streaming,
                lastEventNanos: stream.lastEventNanos, comments: stream.parser.comments, nowNanos: nowNanos,
                staleAfterNanos: staleAfterNanos)
        }
        for (second, count) in loop.disconnectsBySecond { disconnectsBySecond[String(second), default: 0] += count }
    }

    /// Accounts one stream.
    mutating func add(_ ledger: StreamLedger, everConnected: Bool, streaming: Bool, lastEventNanos: UInt64,
                      comments: UInt64, nowNanos: UInt64, staleAfterNanos: UInt64) {
        streams += 1
        if !everConnected { neverConnected += 1 }
        if streaming {
            streamingNow += 1
            if nowNanos > lastEventNanos && nowNanos - lastEventNanos > staleAfterNanos { stale += 1 }
        }
        if ledger.disconnects > 0 { hit.add(ledger) } else { notHit.add(ledger) }
        disconnects += ledger.disconnects
        maxDisconnectsPerStream = Swift.max(maxDisconnectsPerStream, ledger.disconnects)
        resumes += ledger.resumes
        resumeGaps += ledger.resumeGaps
        rewinds += ledger.rewinds
        self.comments += comments
    }

    mutating func merge(_ other: StreamSummary) {
        streams += other.streams
        neverConnected += other.neverConnected
        streamingNow += other.streamingNow
        stale += other.stale
        notHit.merge(other.notHit)
        hit.merge(other.hit)
        disconnects += other.disconnects
        maxDisconnectsPerStream = Swift.max(maxDisconnectsPerStream, other.maxDisconnectsPerStream)
        resumes += other.resumes
        resumeGaps += other.resumeGaps
        rewinds += other.rewinds
        comments += other.comments
        disconnectsBySecond.merge(other.disconnectsBySecond, uniquingKeysWith: +)
    }

    var gaps: UInt64 { hit.gaps + notHit.gaps }
    var duplicates: UInt64 { hit.duplicates + notHit.duplicates }
    var reorders: UInt64 { hit.reorders + notHit.reorders }
}
