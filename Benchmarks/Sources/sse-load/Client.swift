import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// What the client counts; one per event loop (no locks on the event path), merged at the end.
struct ClientTally: Sendable {
    var connected: UInt64 = 0
    var connectErrors: UInt64 = 0
    var httpErrors: UInt64 = 0
    var otherErrors: UInt64 = 0
    var timeouts: UInt64 = 0
    var closedEarly: UInt64 = 0
    var events: UInt64 = 0
    var steadyEvents: UInt64 = 0
    var badPayloads: UInt64 = 0
    var succeeded: UInt64 = 0
    /// Held streams: later connections that got a 200 (each one a reconnect).
    var reconnected: UInt64 = 0
    /// Held streams: later attempts that failed (refused, non-200, closed before the head).
    var failedRetries: UInt64 = 0
    /// `--stalled-fraction`: streams that got their 200 head and then stopped reading; of those, the ones the server
    /// was seen to close (an RST, or an end the kernel could still deliver) before the run ended.
    var stalled: UInt64 = 0
    var stalledClosed: UInt64 = 0
    var latency = Histogram()
    var rampLatency = Histogram()
    var firstEvent = Histogram()
    /// Wall-clock time (CLOCK_REALTIME ns) of the latest first event of any connection: when a storm was over.
    var lastFirstEventNanos: UInt64 = 0

    var failed: UInt64 { connectErrors + httpErrors + otherErrors + timeouts }

    mutating func merge(_ other: ClientTally) {
        connected += other.connected
        connectErrors += other.connectErrors
        httpErrors += other.httpErrors
        otherErrors += other.otherErrors
        timeouts += other.timeouts
        closedEarly += other.closedEarly
        events += other.events
        steadyEvents += other.steadyEvents
        badPayloads += other.badPayloads
        succeeded += other.succeeded
        reconnected += other.reconnected
        failedRetries += other.failedRetries
        stalled += other.stalled
        stalledClosed += other.stalledClosed
        latency.merge(other.latency)
        rampLatency.merge(other.rampLatency)
        firstEvent.merge(other.firstEvent)
        lastFirstEventNanos = Swift.max(lastFirstEventNanos, other.lastFirstEventNanos)
    }
}

/// One event loop's tally plus the phase flags the controller flips. Confined to its loop, hence unchecked Sendable.
final class LoopTally: @unchecked Sendable {
    let eventLoop: any EventLoop
    var tally = ClientTally()
    /// After the ramp: latencies go to the steady histogram and events to the steady count.
    var steady = false
    /// Measurement over: closes are ours, not the server's.
    var stopping = false
    /// The held streams of this loop (churn's one-event connections are not kept).
    var streams: [HeldStream] = []
    /// Held streams' connections that ended after streaming, by wall-clock second (epoch).
    var disconnectsBySecond: [UInt64: UInt64] = [:]

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }
}

/// Counters the controller thread reads while loops run.
final class Progress: Sendable {
    /// Attempts that reached a verdict: streaming (200 head), failed, or (churn) finished either way.
    let settled = Atomic<Int>(0)
}

/// A request target plus extra headers, shared by `client` and `churn`.
struct RequestPlan: Sendable {
    /// What one connection sends beyond the shared parts: its request target and `Authorization` value.
    struct Credential: Sendable, Equatable {
        let requestTarget: String
        let authorization: String?
    }

    let target: TargetURL
    let headers: [(String, String)]
    /// One per token, taken in turn by successive connections (cycling); empty without tokens. Built before the
    /// run so a launch only picks one.
    private(set) var credentials: [Credential] = []

    init(target: TargetURL, headers: [(String, String)]) {
        self.target = target
        self.headers = headers
    }

    /// Every connection sends the next of `tokens`: as `Authorization: Bearer <token>`, or with `queryName` as a
    /// query parameter on the target.
    init(target: TargetURL, headers: [(String, String)], tokens: [String], queryName: String?) {
        self.init(target: target, headers: headers)
        credentials = tokens.map { token in
            if let queryName {
                Credential(requestTarget: appendingQuery(to: target.requestTarget, name: queryName, value: token),
                           authorization: nil)
            } else {
                Credential(requestTarget: target.requestTarget, authorization: "Bearer " + token)
            }
        }
    }

    /// The plan for `--tokens-file` / `--token-query` as `client`, `churn` and `storm` take them: without a tokens
    /// file no credentials (and `--token-query` alone is an error).
    init(target: TargetURL, headers: [(String, String)], tokensFile: String?, tokenQuery: String?) throws {
        guard let tokensFile else {
            guard tokenQuery == nil else { throw LoadError("--token-query needs --tokens-file") }
            self.init(target: target, headers: headers)
            return
        }
        if let tokenQuery, tokenQuery.isEmpty || tokenQuery.contains(where: { "&=?# ".contains($0) }) {
            throw LoadError("--token-query must be a plain parameter name")
        }
        self.init(target: target, headers: headers, tokens: try readTokens(path: tokensFile), queryName: tokenQuery)
    }

    /// The credential index for the `count`-th connection (0-based), or nil without tokens.
    func credentialIndex(forConnection count: Int) -> Int? {
        credentials.isEmpty ? nil : count % credentials.count
    }

    /// The request of one connection; `lastEventID` (a reconnect's) is sent as `Last-Event-ID`.
    func head(credential: Int? = nil, lastEventID: String? = nil) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.add(name: "host", value: target.authority)
        headers.add(name: "accept", value: "text/event-stream")
        headers.add(name: "cache-control", value: "no-cache")
        for (name, value) in self.headers { headers.add(name: name, value: value) }
        if let lastEventID { headers.add(name: "last-event-id", value: lastEventID) }
        var uri = target.requestTarget
        if let credential {
            let chosen = credentials[credential]
            uri = chosen.requestTarget
            if let authorization = chosen.authorization { headers.add(name: "authorization", value: authorization) }
        }
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers)
    }
}

/// `target` with `name=value` added to its query (`?` or `&` as needed). `value` is used as is: JWTs and the
/// names run.sh passes are URL-safe.
func appendingQuery(to target: String, name: String, value: String) -> String {
    let separator = !target.contains("?") ? "?" : (target.hasSuffix("?") || target.hasSuffix("&")) ? "" : "&"
    return target + separator + name + "=" + value
}

/// One logical stream: what outlives its connections (the sequence ledger, the parser with its last event id and
/// `retry:` hint, the failure count for backoff). Confined to its event loop, hence unchecked Sendable.
final class HeldStream: @unchecked Sendable {
    let credential: Int?
    var parser = SSEParser()
    var ledger = StreamLedger()
    /// Attempts made so far (the first one included).
    var attempts = 0
    /// Consecutive failed attempts (refused, non-200, closed before the head); 0 once a connection streams.
    var failures = 0
    var everConnected = false
    /// A connection of this stream has a 200 head and is still open.
    var streaming = false
    /// Reached a first verdict (streaming or failed), counted once in `Progress.settled`.
    var settled = false
    /// Wall-clock nanoseconds of the last event.
    var lastEventNanos: UInt64 = 0

    init(credential: Int?) { self.credential = credential }
}

/// Opens connections for streams; with `reconnect`, a stream that ends or fails is opened again with `Last-Event-ID`.
struct StreamConnector: Sendable {
    let plan: RequestPlan
    let progress: Progress
    let reconnect: ReconnectPolicy?

    /// Starts one connection of `stream` on `loop`. On `loop`'s event loop or off it.
    func connect(_ stream: HeldStream, on loop: LoopTally, mode: StreamClientHandler.Mode) {
        let start = wallNanos()
        let connector = self
        stream.attempts += 1  // churn: before the bootstrap hands the stream to its loop; held streams: on the loop
        ClientBootstrap(group: loop.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        StreamClientHandler(loop: loop, connector: connector, stream: stream, mode: mode,
                                            startNanos: start))
                }
            }
            .connect(host: plan.target.host, port: plan.target.port)
            .whenFailure { _ in
                if loop.stopping { return }
                if stream.attempts > 1 { loop.tally.failedRetries += 1 } else { loop.tally.connectErrors += 1 }
                connector.settle(stream)
                connector.reconnectLater(stream, on: loop, afterFailure: true)
            }
    }

    func settle(_ stream: HeldStream) {
        guard !stream.settled else { return }
        stream.settled = true
        progress.settled.add(1, ordering: .relaxed)
    }

    /// With a reconnect policy, schedules the next attempt of `stream` (on its loop).
    func reconnectLater(_ stream: HeldStream, on loop: LoopTally, afterFailure: Bool) {
        guard let reconnect, !loop.stopping else { return }
        stream.failures = afterFailure ? stream.failures + 1 : 0
        let seconds = reconnect.delay(failures: stream.failures, retryMillis: stream.parser.retryMillis,
                                      jitter: Double.random(in: 0.5..<1.5))
        let connector = self
        loop.eventLoop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) {
            if !loop.stopping { connector.connect(stream, on: loop, mode: .hold) }
        }
    }
}

/// Whether the `index`-th stream (0-based) of a run with `--stalled-fraction fraction` stalls: every stream whose
/// index carries floor((index + 1) * fraction) past floor(index * fraction), so the first N streams hold
/// floor(N * fraction) stalled ones, spread evenly over the ramp (at 10% every tenth, so with two client loops all
/// on one loop: the client spends nothing on them, and which gateway loop serves a connection does not depend on it).
func streamStalls(index: Int, fraction: Double) -> Bool {
    guard fraction > 0 else { return false }
    return Int(Double(index + 1) * fraction) > Int(Double(index) * fraction)
}

/// One SSE client connection. `.hold` keeps the stream and checks every event; `.firstEvent` (churn) closes after
/// the first event or after a timeout; `.stall` (a client that stopped reading, e.g. a frozen tab) gets the 200 head
/// and then never asks for another read, so the kernel's buffers fill and the server sees it fall behind. Its events
/// are not counted: latency, events and sequence checks are the reading streams' only.
final class StreamClientHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    enum Mode { case hold, firstEvent, stall }

    private let loop: LoopTally
    private let connector: StreamConnector
    private let stream: HeldStream
    private let mode: Mode
    private let startNanos: UInt64
    /// This connection has a 200 head.
    private var streaming = false
    private var done = false
    private var seenFirst = false
    /// `.stall` after the head: every read the channel asks for is swallowed.
    private var stalled = false
    private var timeout: Scheduled<Void>?

    init(loop: LoopTally, connector: StreamConnector, stream: HeldStream, mode: Mode, startNanos: UInt64) {
        self.loop = loop
        self.connector = connector
        self.stream = stream
        self.mode = mode
        self.startNanos = startNanos
    }

    /// A retry of a stream: its errors are counted as failed retries, not as a failed stream.
    private var isRetry: Bool { stream.attempts > 1 }

    func channelActive(context: ChannelHandlerContext) {
        let lastEventID = stream.parser.lastEventID.isEmpty ? nil : String(decoding: stream.parser.lastEventID,
                                                                          as: UTF8.self)
        context.write(wrapOutboundOut(.head(connector.plan.head(credential: stream.credential,
                                                                lastEventID: lastEventID))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if mode == .firstEvent {
            let channel = context.channel
            let tally = loop
            timeout = context.eventLoop.scheduleTask(in: .seconds(10)) {
                if !tally.stopping { channel.close(promise: nil) }
            }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status == .ok, mode == .stall {
                streaming = true
                stalled = true
                done = true  // whatever the current read still decodes is not looked at
                loop.tally.stalled += 1
                connector.settle(stream)
            } else if head.status == .ok {
                streaming = true
                stream.streaming = true
                stream.failures = 0
                stream.parser.startConnection()
                if stream.everConnected {
                    loop.tally.reconnected += 1
                } else {
                    stream.everConnected = true
                    loop.tally.connected += 1
                }
                if mode == .hold { connector.settle(stream) }
            } else {
                if isRetry { loop.tally.failedRetries += 1 } else { loop.tally.httpErrors += 1 }
                done = true
                connector.settle(stream)
                context.close(promise: nil)
            }
        case .body(let buffer):
            guard streaming, !done else { return }
            stream.parser.feed(buffer.readableBytesView) { data in self.onEvent(data, context: context) }
        case .end:
            if streaming && !done && !loop.stopping {
                if connector.reconnect == nil { loop.tally.closedEarly += 1 }
                done = true
            }
            context.close(promise: nil)
        }
    }

    private func onEvent(_ data: ArraySlice<UInt8>, context: ChannelHandlerContext) {
        guard !done else { return }
        let now = wallNanos()
        guard let payload = BenchPayload(data) else {
            loop.tally.badPayloads += 1
            return
        }
        let latencyMicros = now > payload.sendNanos ? (now - payload.sendNanos) / 1000 : 0
        if !seenFirst {
            seenFirst = true
            if stream.attempts == 1 {  // time to first event of a stream, not of its reconnects
                loop.tally.firstEvent.record(now > startNanos ? (now - startNanos) / 1000 : 0)
                loop.tally.lastFirstEventNanos = Swift.max(loop.tally.lastFirstEventNanos, now)
            }
        }
        stream.ledger.record(sequence: payload.sequence)
        stream.lastEventNanos = now
        loop.tally.events += 1
        if loop.steady {
            loop.tally.steadyEvents += 1
            loop.tally.latency.record(latencyMicros)
        } else {
            loop.tally.rampLatency.record(latencyMicros)
        }
        if mode == .firstEvent {
            loop.tally.succeeded += 1
            done = true
            connector.settle(stream)
            context.close(promise: nil)
        }
    }

    /// Held back for good once a `.stall` stream has its head (NIO asks for the next read after each one while
    /// auto-read is on; without it nothing more is read from the socket).
    func read(context: ChannelHandlerContext) {
        if !stalled { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        if stalled && !loop.stopping {
            loop.tally.stalledClosed += 1
        } else if !done && !loop.stopping {
            if streaming {
                if mode == .firstEvent {
                    loop.tally.timeouts += 1
                } else if connector.reconnect == nil {
                    loop.tally.closedEarly += 1
                }
            } else if isRetry {
                loop.tally.failedRetries += 1
            } else {
                loop.tally.otherErrors += 1
            }
            done = true
        }
        connector.settle(stream)
        if streaming {
            stream.streaming = false
            if !loop.stopping && mode == .hold {
                stream.ledger.connectionEnded()
                loop.disconnectsBySecond[wallNanos() / 1_000_000_000, default: 0] += 1
            }
        }
        if mode == .hold { connector.reconnectLater(stream, on: loop, afterFailure: !streaming) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Shared machinery of `client` and `churn`: one loop group, per-loop tallies, connection launching and gathering.
final class LoadRun {
    let group: MultiThreadedEventLoopGroup
    let progress = Progress()
    private let loops: [LoopTally]
    private var nextLoop = 0
    private var launches = 0
    let plan: RequestPlan
    let connector: StreamConnector

    init(plan: RequestPlan, reconnect: ReconnectPolicy? = nil) {
        self.plan = plan
        group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        loops = group.makeIterator().map { LoopTally(eventLoop: $0) }
        connector = StreamConnector(plan: plan, progress: progress, reconnect: reconnect)
    }

    /// Starts one stream on the next loop (round robin); failures to connect are counted on that loop. Held streams
    /// are remembered by their loop for the per-stream summary.
    func launch(mode: StreamClientHandler.Mode) {
        let loop = loops[nextLoop]
        nextLoop = (nextLoop + 1) % loops.count
        let stream = HeldStream(credential: plan.credentialIndex(forConnection: launches))
        launches += 1
        if mode == .hold {
            let connector = self.connector
            loop.eventLoop.execute {
                loop.streams.append(stream)
                connector.connect(stream, on: loop, mode: mode)
            }
        } else {
            connector.connect(stream, on: loop, mode: mode)
        }
    }

    /// Runs `body` on every loop and waits.
    func onEveryLoop(_ body: @escaping @Sendable (LoopTally) -> Void) {
        for loop in loops { try? loop.eventLoop.submit { body(loop) }.wait() }
    }

    /// The held streams' summary now (each loop computes its own on its thread).
    func streamSummary(staleAfterSeconds: Double) -> StreamSummary {
        var total = StreamSummary()
        let now = wallNanos()
        for loop in loops {
            if let part = try? loop.eventLoop.submit({
                StreamSummary(loop: loop, nowNanos: now, staleAfterNanos: UInt64(staleAfterSeconds * 1e9))
            }).wait() {
                total.merge(part)
            }
        }
        return total
    }

    /// Stops counting, gathers all tallies (and, for held streams, their summary) and closes every connection.
    func finish(staleAfterSeconds: Double = 30) -> (ClientTally, StreamSummary) {
        var total = ClientTally()
        var summary = StreamSummary()
        let now = wallNanos()
        for loop in loops {
            if let (tally, part) = try? loop.eventLoop.submit({ () -> (ClientTally, StreamSummary) in
                loop.stopping = true
                return (loop.tally, StreamSummary(loop: loop, nowNanos: now,
                                                  staleAfterNanos: UInt64(staleAfterSeconds * 1e9)))
            }).wait() {
                total.merge(tally)
                summary.merge(part)
            }
        }
        try? group.syncShutdownGracefully()
        return (total, summary)
    }
}

/// `sse-load client`: holds `streams` connections for `duration` seconds; with `stalledFraction`, that share of them
/// stop reading after the head (`streamStalls`).
///
/// With `watchPIDs`, the processes' CPU time is read when the steady phase starts and when it ends (before any
/// connection closes), so the report can give the proxy's CPU per event without connection set-up and teardown.
/// With `reconnect`, a stream whose connection ends or fails is opened again (`Last-Event-ID` set to the last id
/// seen), and the report says per group of streams what was lost across reconnects. With `progressEvery`, one line
/// of counts goes to standard error that often.
func runClient(
    plan: RequestPlan, streams: Int, duration: Double, rampPerSecond: Double, watchPIDs: [Int32] = [],
    reconnect: ReconnectPolicy? = nil, progressEvery: Double? = nil, staleAfter: Double = 30,
    stalledFraction: Double = 0
) -> ClientReport {
    let limit = raiseOpenFileLimit()
    let run = LoadRun(plan: plan, reconnect: reconnect)
    let start = monotonicSeconds()
    let end = start + duration
    var launched = 0
    while launched < streams && monotonicSeconds() < end {
        let due = min(streams, Int((monotonicSeconds() - start) * rampPerSecond) + 1)
        while launched < due {
            run.launch(mode: streamStalls(index: launched, fraction: stalledFraction) ? .stall : .hold)
            launched += 1
        }
        sleepSeconds(0.001)
    }
    // Steady phase: every attempt has settled (streaming or failed), or half the run has passed.
    while run.progress.settled.load(ordering: .relaxed) < launched && monotonicSeconds() < start + duration / 2 {
        sleepSeconds(0.01)
    }
    let cpuAtSteadyStart = watchPIDs.isEmpty ? nil : cpuTicks(of: watchPIDs)
    run.onEveryLoop { $0.steady = true }
    let steadyStart = monotonicSeconds()
    if let progressEvery {
        var next = steadyStart
        while monotonicSeconds() < end {
            let summary = run.streamSummary(staleAfterSeconds: staleAfter)
            printProgress(summary, elapsed: monotonicSeconds() - start)
            next += progressEvery
            sleepSeconds(min(next, end) - monotonicSeconds())
        }
    } else {
        sleepSeconds(end - monotonicSeconds())
    }
    run.onEveryLoop { $0.steady = false }
    let steadyEnd = monotonicSeconds()
    let cpuAtSteadyEnd = watchPIDs.isEmpty ? nil : cpuTicks(of: watchPIDs)
    let (tally, summary) = run.finish(staleAfterSeconds: staleAfter)
    var report = ClientReport(
        mode: "client", target: plan.target.authority + plan.target.requestTarget, nofileLimit: limit,
        streamsRequested: streams, streamsLaunched: launched, tally: tally,
        durationSeconds: steadyEnd - start, steadySeconds: steadyEnd - steadyStart
    )
    report.sequenceGaps = summary.gaps
    report.reorders = summary.reorders
    report.duplicates = summary.duplicates
    if reconnect != nil {
        report.streamsHeld = summary.streamingNow
        report.reconnect = ReconnectReport(summary: summary, tally: tally)
    }
    if let cpuAtSteadyStart, let cpuAtSteadyEnd {
        report.steadyProxyCPUSeconds = Double(cpuAtSteadyEnd - cpuAtSteadyStart) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
    return report
}

/// One line of counts on standard error (the soak keeps them in its log).
private func printProgress(_ summary: StreamSummary, elapsed: Double) {
    let line = String(format: "t=%.0fs", elapsed)
        + " streaming=\(summary.streamingNow)/\(summary.streams) events=\(summary.hit.events + summary.notHit.events)"
        + " disconnects=\(summary.disconnects) resumes=\(summary.resumes) gaps=\(summary.gaps)"
        + " dups=\(summary.duplicates) reorders=\(summary.reorders) rewinds=\(summary.rewinds)"
        + " stale=\(summary.stale) comments=\(summary.comments)\n"
    FileHandle.standardError.write(Data(line.utf8))
}

/// `sse-load churn`: a new connection per stream at `rate`, each reads one event and closes.
///
/// With `watchPIDs`, the processes' CPU time is read once `warmup` seconds have passed and again when every connection
/// launched has settled: the report gives it with the number of connections launched in between, so the proxy's CPU
/// per connection leaves out its first connections (code and allocator warming up), as `client`'s steady phase does.
func runChurn(
    plan: RequestPlan, rate: Double, duration: Double, maxInFlight: Int, watchPIDs: [Int32] = [], warmup: Double = 0
) -> ClientReport {
    let limit = raiseOpenFileLimit()
    let run = LoadRun(plan: plan)
    run.onEveryLoop { $0.steady = true }
    let start = monotonicSeconds()
    let end = start + duration
    var launched = 0
    var skipped = 0
    var warm: (ticks: Int, launched: Int)?
    while monotonicSeconds() < end {
        if warm == nil, !watchPIDs.isEmpty, monotonicSeconds() >= start + warmup {
            warm = (cpuTicks(of: watchPIDs), launched)
        }
        let due = Int((monotonicSeconds() - start) * rate) + 1
        while launched + skipped < due {
            if launched - run.progress.settled.load(ordering: .relaxed) >= maxInFlight {
                skipped += 1
            } else {
                run.launch(mode: .firstEvent)
                launched += 1
            }
        }
        sleepSeconds(0.001)
    }
    let launchEnd = monotonicSeconds()
    // Let in-flight attempts finish (each has its own 10 s timeout).
    while run.progress.settled.load(ordering: .relaxed) < launched && monotonicSeconds() < launchEnd + 11 {
        sleepSeconds(0.01)
    }
    let settledTicks = watchPIDs.isEmpty ? nil : cpuTicks(of: watchPIDs)
    let (tally, _) = run.finish()
    var report = ClientReport(
        mode: "churn", target: plan.target.authority + plan.target.requestTarget, nofileLimit: limit,
        streamsRequested: Int(rate * duration), streamsLaunched: launched, tally: tally,
        durationSeconds: launchEnd - start, steadySeconds: launchEnd - start
    )
    report.skippedInFlightCap = skipped
    report.connectsPerSecond = Double(tally.succeeded) / (launchEnd - start)
    if let warm, let settledTicks {
        report.steadyProxyCPUSeconds = Double(settledTicks - warm.ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))
        report.steadyConnections = launched - warm.launched
    }
    return report
}
