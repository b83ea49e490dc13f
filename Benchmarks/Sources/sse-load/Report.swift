import Foundation

/// The result of `client` or `churn`: printed as a table, or as one JSON object for run.sh.
struct ClientReport: Encodable {
    var mode: String
    var target: String
    var nofileLimit: UInt64
    var streamsRequested: Int
    var streamsLaunched: Int
    var streamsConnected: UInt64
    var streamsFailed: UInt64
    var connectErrors: UInt64
    var httpErrors: UInt64
    var otherErrors: UInt64
    var timeouts: UInt64
    var streamsClosedEarly: UInt64
    /// Connected and neither failed nor closed by the server when the run ended (client mode).
    var streamsHeld: UInt64
    var events: UInt64
    var steadyEvents: UInt64
    /// Steady-phase events per second (after every stream settled).
    var eventsPerSecond: Double
    var sequenceGaps: UInt64
    var reorders: UInt64
    var duplicates: UInt64
    var badPayloads: UInt64
    var succeeded: UInt64
    /// `--stalled-fraction`: streams that stopped reading after their head (not in connected, held or events), and
    /// how many of them the client saw closed by the server (a server that closes a stalled socket with unsent data
    /// usually goes unseen: its end waits behind the bytes the client never reads).
    var streamsStalled: UInt64
    var stalledClosedByServer: UInt64
    var connectsPerSecond: Double?
    var skippedInFlightCap: Int?
    /// Churn with `--watch-pid`: connections launched after `--warmup`, whose CPU `steadyProxyCPUSeconds` is.
    var steadyConnections: Int?
    var durationSeconds: Double
    var steadySeconds: Double
    /// CPU time of the watched proxy processes during the steady phase (`--watch-pid`), seconds.
    var steadyProxyCPUSeconds: Double?
    /// With `--reconnect`: what the held streams lost across reconnects.
    var reconnect: ReconnectReport?
    /// Send-to-receive latency, µs, steady phase (ramp phase if the run never became steady).
    var latencyMicros: Percentiles
    /// Latency during the ramp, µs.
    var rampLatencyMicros: Percentiles
    /// From starting the connect to the first complete event, µs.
    var timeToFirstEventMicros: Percentiles

    init(mode: String, target: String, nofileLimit: UInt64, streamsRequested: Int, streamsLaunched: Int,
         tally: ClientTally, durationSeconds: Double, steadySeconds: Double) {
        self.mode = mode
        self.target = target
        self.nofileLimit = nofileLimit
        self.streamsRequested = streamsRequested
        self.streamsLaunched = streamsLaunched
        streamsConnected = tally.connected
        streamsFailed = tally.failed
        connectErrors = tally.connectErrors
        httpErrors = tally.httpErrors
        otherErrors = tally.otherErrors
        timeouts = tally.timeouts
        streamsClosedEarly = tally.closedEarly
        streamsHeld = mode == "client" ? tally.connected - Swift.min(tally.connected, tally.closedEarly) : 0
        events = tally.events
        steadyEvents = tally.steadyEvents
        eventsPerSecond = steadySeconds > 0 ? Double(tally.steadyEvents) / steadySeconds : 0
        // Held streams' sequence checks live in their ledgers; the caller sets these from the summary.
        sequenceGaps = 0
        reorders = 0
        duplicates = 0
        badPayloads = tally.badPayloads
        succeeded = tally.succeeded
        streamsStalled = tally.stalled
        stalledClosedByServer = tally.stalledClosed
        self.durationSeconds = durationSeconds
        self.steadySeconds = steadySeconds
        latencyMicros = (tally.latency.count > 0 ? tally.latency : tally.rampLatency).summary
        rampLatencyMicros = tally.rampLatency.summary
        timeToFirstEventMicros = tally.firstEvent.summary
    }

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    func table() -> String {
        func ms(_ micros: UInt64) -> String { String(format: "%.2f ms", Double(micros) / 1000) }
        func row(_ name: String, _ value: String) -> String {
            name.padding(toLength: 30, withPad: " ", startingAt: 0) + value
        }
        func percentiles(_ name: String, _ p: Percentiles) -> [String] {
            [row(name, "p50 \(ms(p.p50))  p90 \(ms(p.p90))  p99 \(ms(p.p99))  p99.9 \(ms(p.p999))  max \(ms(p.max))"
                 + "  (n=\(p.count))")]
        }
        var lines = [
            row("mode / target", "\(mode)  \(target)"),
            row("duration", String(format: "%.1f s (steady %.1f s)", durationSeconds, steadySeconds)),
            row("streams requested/launched", "\(streamsRequested) / \(streamsLaunched)"),
            row("streams connected (200)", "\(streamsConnected)"),
            row("streams failed", "\(streamsFailed)  (connect \(connectErrors), non-200 \(httpErrors), "
                + "other \(otherErrors), timeout \(timeouts))"),
            row("streams closed early", "\(streamsClosedEarly)"),
        ]
        if mode == "client" {
            lines.append(row("streams held at end", "\(streamsHeld)"))
            if streamsStalled > 0 {
                lines.append(row("streams stalled (not reading)", "\(streamsStalled)  (seen closed by the server "
                                 + "\(stalledClosedByServer))"))
            }
        } else {
            lines.append(row("succeeded (got 1 event)", "\(succeeded)"))
            lines.append(row("connects/s achieved", String(format: "%.1f", connectsPerSecond ?? 0)))
            if let cpu = steadyProxyCPUSeconds, let connections = steadyConnections, connections > 0 {
                lines.append(row("proxy CPU (after warm-up)", String(format: "%.2f s, %.1f s per million connections",
                                                                     cpu, cpu / Double(connections) * 1e6)))
            }
            if let skipped = skippedInFlightCap, skipped > 0 {
                lines.append(row("skipped (in-flight cap)", "\(skipped)"))
            }
        }
        lines.append(row("events received", "\(events) (steady \(steadyEvents))"))
        lines.append(row("events/s (steady)", String(format: "%.1f", eventsPerSecond)))
        if let cpu = steadyProxyCPUSeconds, steadyEvents > 0 {
            lines.append(row("proxy CPU (steady)", String(format: "%.2f s, %.2f s per million events", cpu,
                                                          cpu / Double(steadyEvents) * 1e6)))
        }
        lines += percentiles("latency", latencyMicros)
        lines += percentiles("time to first event", timeToFirstEventMicros)
        if let r = reconnect {
            lines.append(row("streams hit / not hit", "\(r.streamsHit) / \(r.streamsNotHit)  (never connected "
                             + "\(r.streamsNeverConnected), stale at end \(r.streamsStale))"))
            lines.append(row("disconnects / resumes", "\(r.disconnects) / \(r.resumes)  (max per stream "
                             + "\(r.maxDisconnectsPerStream), reconnected \(r.reconnected), failed retries "
                             + "\(r.failedRetries))"))
            lines.append(row("not hit: events/gaps/dup/reord", "\(r.notHit.events) / \(r.notHit.gaps) / "
                             + "\(r.notHit.duplicates) / \(r.notHit.reorders)"))
            lines.append(row("hit: events/gaps/dup/reord", "\(r.hit.events) / \(r.hit.gaps) / \(r.hit.duplicates)"
                             + " / \(r.hit.reorders)  (gaps at a resume \(r.resumeGaps), rewinds \(r.rewinds))"))
            lines.append(row("comments (heartbeats)", "\(r.comments)"))
        }
        lines.append(row("seq gaps / reorders / dups", "\(sequenceGaps) / \(reorders) / \(duplicates)"
                         + (badPayloads > 0 ? "  (unparseable events \(badPayloads))" : "")))
        return lines.joined(separator: "\n")
    }
}

/// The reconnect-mode part of a client report.
struct ReconnectReport: Encodable {
    var streamsHit: UInt64
    var streamsNotHit: UInt64
    var streamsNeverConnected: UInt64
    var streamsStreamingAtEnd: UInt64
    /// Streaming at the end but without an event for longer than `--stale-after`.
    var streamsStale: UInt64
    var hit: StreamSummary.Group
    var notHit: StreamSummary.Group
    var disconnects: UInt64
    var maxDisconnectsPerStream: UInt64
    var resumes: UInt64
    var resumeGaps: UInt64
    var rewinds: UInt64
    /// Later connections that got a 200.
    var reconnected: UInt64
    /// Later attempts that failed (refused, non-200, closed before the head) and were retried.
    var failedRetries: UInt64
    var comments: UInt64
    /// Disconnects by wall-clock second (epoch seconds).
    var disconnectsBySecond: [String: UInt64]

    init(summary: StreamSummary, tally: ClientTally) {
        streamsHit = summary.hit.streams
        streamsNotHit = summary.notHit.streams
        streamsNeverConnected = summary.neverConnected
        streamsStreamingAtEnd = summary.streamingNow
        streamsStale = summary.stale
        hit = summary.hit
        notHit = summary.notHit
        disconnects = summary.disconnects
        maxDisconnectsPerStream = summary.maxDisconnectsPerStream
        resumes = summary.resumes
        resumeGaps = summary.resumeGaps
        rewinds = summary.rewinds
        reconnected = tally.reconnected
        failedRetries = tally.failedRetries
        comments = summary.comments
        disconnectsBySecond = summary.disconnectsBySecond
    }
}
