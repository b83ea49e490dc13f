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
    var gaps: UInt64 = 0
    var reorders: UInt64 = 0
    var duplicates: UInt64 = 0
    var badPayloads: UInt64 = 0
    var succeeded: UInt64 = 0
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
        gaps += other.gaps
        reorders += other.reorders
        duplicates += other.duplicates
        badPayloads += other.badPayloads
        succeeded += other.succeeded
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

    func head(credential: Int? = nil) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.add(name: "host", value: target.authority)
        headers.add(name: "accept", value: "text/event-stream")
        headers.add(name: "cache-control", value: "no-cache")
        for (name, value) in self.headers { headers.add(name: name, value: value) }
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

/// One SSE client connection. `.hold` keeps the stream and checks every event; `.firstEvent` (churn) closes after
/// the first event or after a timeout.
final class StreamClientHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    enum Mode { case hold, firstEvent }

    private let loop: LoopTally
    private let progress: Progress
    private let plan: RequestPlan
    private let credential: Int?
    private let mode: Mode
    private let startNanos: UInt64
    private var parser = SSEParser()
    private var streaming = false
    private var settled = false
    private var done = false
    private var lastSequence: UInt64 = 0
    private var seenFirst = false
    private var timeout: Scheduled<Void>?

    init(loop: LoopTally, progress: Progress, plan: RequestPlan, credential: Int?, mode: Mode, startNanos: UInt64) {
        self.loop = loop
        self.progress = progress
        self.plan = plan
        self.credential = credential
        self.mode = mode
        self.startNanos = startNanos
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(plan.head(credential: credential))), promise: nil)
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

    private func settle() {
        guard !settled else { return }
        settled = true
        progress.settled.add(1, ordering: .relaxed)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status == .ok {
                streaming = true
                loop.tally.connected += 1
                if mode == .hold { settle() }
            } else {
                loop.tally.httpErrors += 1
                done = true
                settle()
                context.close(promise: nil)
            }
        case .body(let buffer):
            guard streaming, !done else { return }
            parser.feed(buffer.readableBytesView) { data in self.onEvent(data, context: context) }
        case .end:
            if streaming && !done && !loop.stopping {
                loop.tally.closedEarly += 1
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
        let first = !seenFirst
        if first {
            seenFirst = true
            loop.tally.firstEvent.record(now > startNanos ? (now - startNanos) / 1000 : 0)
            loop.tally.lastFirstEventNanos = Swift.max(loop.tally.lastFirstEventNanos, now)
        }
        if first || payload.sequence == lastSequence + 1 {
            // in order (the first event may be any number: a proxy could resume mid-stream)
        } else if payload.sequence > lastSequence + 1 {
            loop.tally.gaps += payload.sequence - lastSequence - 1
        } else if payload.sequence == lastSequence {
            loop.tally.duplicates += 1
        } else {
            loop.tally.reorders += 1
        }
        lastSequence = Swift.max(lastSequence, payload.sequence)
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
            settle()
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        if !done && !loop.stopping {
            if streaming {
                if mode == .firstEvent { loop.tally.timeouts += 1 } else { loop.tally.closedEarly += 1 }
            } else {
                loop.tally.otherErrors += 1
            }
            done = true
        }
        settle()
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

    init(plan: RequestPlan) {
        self.plan = plan
        group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        loops = group.makeIterator().map { LoopTally(eventLoop: $0) }
    }

    /// Starts one connection on the next loop (round robin); failures to connect are counted on that loop.
    func launch(mode: StreamClientHandler.Mode) {
        let loop = loops[nextLoop]
        nextLoop = (nextLoop + 1) % loops.count
        let credential = plan.credentialIndex(forConnection: launches)
        launches += 1
        let plan = self.plan
        let progress = self.progress
        let start = wallNanos()
        ClientBootstrap(group: loop.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        StreamClientHandler(loop: loop, progress: progress, plan: plan, credential: credential,
                                            mode: mode, startNanos: start))
                }
            }
            .connect(host: plan.target.host, port: plan.target.port)
            .whenFailure { _ in
                if !loop.stopping { loop.tally.connectErrors += 1 }
                progress.settled.add(1, ordering: .relaxed)
            }
    }

    /// Runs `body` on every loop and waits.
    func onEveryLoop(_ body: @escaping @Sendable (LoopTally) -> Void) {
        for loop in loops { try? loop.eventLoop.submit { body(loop) }.wait() }
    }

    /// Stops counting, gathers all tallies and closes every connection.
    func finish() -> ClientTally {
        var total = ClientTally()
        for loop in loops {
            if let tally = try? loop.eventLoop.submit({ () -> ClientTally in
                loop.stopping = true
                return loop.tally
            }).wait() {
                total.merge(tally)
            }
        }
        try? group.syncShutdownGracefully()
        return total
    }
}

/// `sse-load client`: holds `streams` connections for `duration` seconds.
///
/// With `watchPIDs`, the processes' CPU time is read when the steady phase starts and when it ends (before any
/// connection closes), so the report can give the proxy's CPU per event without connection set-up and teardown.
func runClient(
    plan: RequestPlan, streams: Int, duration: Double, rampPerSecond: Double, watchPIDs: [Int32] = []
) -> ClientReport {
    let limit = raiseOpenFileLimit()
    let run = LoadRun(plan: plan)
    let start = monotonicSeconds()
    let end = start + duration
    var launched = 0
    while launched < streams && monotonicSeconds() < end {
        let due = min(streams, Int((monotonicSeconds() - start) * rampPerSecond) + 1)
        while launched < due {
            run.launch(mode: .hold)
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
    sleepSeconds(end - monotonicSeconds())
    run.onEveryLoop { $0.steady = false }
    let steadyEnd = monotonicSeconds()
    let cpuAtSteadyEnd = watchPIDs.isEmpty ? nil : cpuTicks(of: watchPIDs)
    let tally = run.finish()
    var report = ClientReport(
        mode: "client", target: plan.target.authority + plan.target.requestTarget, nofileLimit: limit,
        streamsRequested: streams, streamsLaunched: launched, tally: tally,
        durationSeconds: steadyEnd - start, steadySeconds: steadyEnd - steadyStart
    )
    if let cpuAtSteadyStart, let cpuAtSteadyEnd {
        report.steadyProxyCPUSeconds = Double(cpuAtSteadyEnd - cpuAtSteadyStart) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
    return report
}

/// `sse-load churn`: a new connection per stream at `rate`, each reads one event and closes.
func runChurn(plan: RequestPlan, rate: Double, duration: Double, maxInFlight: Int) -> ClientReport {
    let limit = raiseOpenFileLimit()
    let run = LoadRun(plan: plan)
    run.onEveryLoop { $0.steady = true }
    let start = monotonicSeconds()
    let end = start + duration
    var launched = 0
    var skipped = 0
    while monotonicSeconds() < end {
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
    let tally = run.finish()
    var report = ClientReport(
        mode: "churn", target: plan.target.authority + plan.target.requestTarget, nofileLimit: limit,
        streamsRequested: Int(rate * duration), streamsLaunched: launched, tally: tally,
        durationSeconds: launchEnd - start, steadySeconds: launchEnd - start
    )
    report.skippedInFlightCap = skipped
    report.connectsPerSecond = Double(tally.succeeded) / (launchEnd - start)
    return report
}
