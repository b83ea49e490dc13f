import ArgumentParser
import NIOCore

/// `sse-load`: an SSE upstream and load clients for benchmarking SSE proxies on loopback only.
@main
struct SSELoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sse-load",
        abstract: "SSE upstream server and load clients for benchmarking SSE proxies (loopback only).",
        subcommands: [Upstream.self, Client.self, Churn.self, Storm.self, Mint.self, FloorProxy.self]
    )
}

extension SSELoad {
    struct Upstream: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve SSE streams on every GET (query: interval_ms, size, count); /healthz answers ok.")

        @Option(help: "Loopback host:port to listen on.") var listen = "127.0.0.1:9100"
        @Option(name: .customLong("interval-ms"), help: "Default milliseconds between events.") var intervalMs = 1000
        @Option(help: "Default event size in bytes on the wire (padded).") var size = 100
        @Option(help: "Stop after this long (e.g. 1h, 600s).") var duration = "1h"

        func run() throws {
            guard intervalMs > 0, size > 0 else { throw ValidationError("interval-ms and size must be positive") }
            try runUpstream(
                listen: try ListenAddress(listen),
                defaults: StreamSettings(intervalMs: Int64(intervalMs), size: size, count: nil),
                duration: try parseDuration(duration))
        }
    }

    struct Client: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hold N concurrent SSE streams, measure latency, first-event time and sequence integrity.")

        @Option(help: "Loopback http:// URL to stream from.") var target: String
        @Option(help: "Concurrent streams to open.") var streams = 100
        @Option(help: "How long to run in total, ramp included (e.g. 30s).") var duration = "30s"
        @Option(help: "Connection opening rate (e.g. 2000/s).") var ramp = "2000/s"
        @Option(name: .customLong("header"), help: "Extra request header 'Name: value' (repeatable).")
        var headers: [String] = []
        @Option(name: .customLong("watch-pid"),
                help: "A proxy process whose CPU time to read at the start and end of the steady phase (repeatable).")
        var watchPIDs: [Int32] = []
        @Flag(help: "Reopen a stream that ends or fails, with Last-Event-ID, and judge gaps across reconnects.")
        var reconnect = false
        @Option(name: .customLong("reconnect-delay"),
                help: "With --reconnect: delay before reopening when the server sent no retry: (x0.5-1.5 jitter).")
        var reconnectDelay = "1s"
        @Option(name: .customLong("reconnect-max-delay"),
                help: "With --reconnect: cap of the doubling delay after failed attempts.")
        var reconnectMaxDelay = "5s"
        @Option(name: .customLong("stale-after"),
                help: "A streaming stream without an event for this long counts as stale in the report.")
        var staleAfter = "30s"
        @Option(help: "Print a line of counts to standard error this often (e.g. 10s).") var progress: String?
        @Option(name: .customLong("stalled-fraction"),
                help: "Share of the streams (0 to 1, e.g. 0.1) that stop reading after the 200 head; not measured.")
        var stalledFraction = 0.0
        @Option(name: .customLong("tokens-file"),
                help: "One token per line (sse-load mint); each stream sends the next one, cycling.")
        var tokensFile: String?
        @Option(name: .customLong("token-query"),
                help: "With --tokens-file: send the token as this query parameter instead of Authorization: Bearer.")
        var tokenQuery: String?
        @Flag(help: "Print one JSON object instead of a table.") var json = false

        func run() throws {
            guard streams > 0 else { throw ValidationError("streams must be positive") }
            guard stalledFraction >= 0, stalledFraction < 1 else {
                throw ValidationError("stalled-fraction must be at least 0 and below 1")
            }
            let plan = try RequestPlan(target: try TargetURL(target), headers: try parseHeaders(headers),
                                       tokensFile: tokensFile, tokenQuery: tokenQuery)
            let policy = reconnect
                ? ReconnectPolicy(baseSeconds: try parseDuration(reconnectDelay),
                                  maxSeconds: try parseDuration(reconnectMaxDelay))
                : nil
            let report = runClient(plan: plan, streams: streams, duration: try parseDuration(duration),
                                   rampPerSecond: try parseRate(ramp), watchPIDs: watchPIDs, reconnect: policy,
                                   progressEvery: try progress.map(parseDuration),
                                   staleAfter: try parseDuration(staleAfter), stalledFraction: stalledFraction)
            print(json ? report.json() : report.table())
        }
    }

    struct Churn: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open a new connection per stream at a fixed rate, read one event, close.")

        @Option(help: "Loopback http:// URL to stream from.") var target: String
        @Option(help: "New connections per second (e.g. 500 or 500/s).") var rate = "200/s"
        @Option(help: "How long to keep opening connections (e.g. 20s).") var duration = "20s"
        @Option(name: .customLong("max-in-flight"), help: "Skip a launch when this many are still pending.")
        var maxInFlight = 5000
        @Option(name: .customLong("header"), help: "Extra request header 'Name: value' (repeatable).")
        var headers: [String] = []
        @Option(name: .customLong("tokens-file"),
                help: "One token per line (sse-load mint); each new connection sends the next one, cycling.")
        var tokensFile: String?
        @Option(name: .customLong("token-query"),
                help: "With --tokens-file: send the token as this query parameter instead of Authorization: Bearer.")
        var tokenQuery: String?
        @Option(name: .customLong("watch-pid"),
                help: "A proxy process whose CPU time per connection to report, after --warmup (repeatable).")
        var watchPIDs: [Int32] = []
        @Option(help: "With --watch-pid: how long to run before reading the proxy's CPU time (e.g. 5s; default none).")
        var warmup: String?
        @Flag(help: "Print one JSON object instead of a table.") var json = false

        func run() throws {
            let plan = try RequestPlan(target: try TargetURL(target), headers: try parseHeaders(headers),
                                       tokensFile: tokensFile, tokenQuery: tokenQuery)
            let report = runChurn(plan: plan, rate: try parseRate(rate), duration: try parseDuration(duration),
                                  maxInFlight: maxInFlight, watchPIDs: watchPIDs,
                                  warmup: try warmup.map(parseDuration) ?? 0)
            print(json ? report.json() : report.table())
        }
    }

    struct Storm: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open N connections at once, each reads one event and closes; repeat for each round.",
            discussion: """
                A reconnect storm: every round launches all N connections as fast as the loops take them, with \
                the same N tokens each round (connection i always sends token i), so round 1 is N first connects \
                and every later round is the same N clients reconnecting at once. Per round: time from the first \
                launch until the last connection has its first event, time to first event, failures, and the CPU \
                time of the --watch-pid processes from the first launch until every connection settled.
                """)

        @Option(help: "Loopback http:// URL to stream from.") var target: String
        @Option(help: "Connections per round, all launched at once.") var connections = 2000
        @Option(help: "Rounds (round 1: first connects; later rounds: reconnects).") var rounds = 2
        @Option(help: "Pause between rounds (e.g. 2s).") var pause = "2s"
        @Option(help: "Give up on a round's stragglers after this long (e.g. 30s).") var timeout = "30s"
        @Option(name: .customLong("header"), help: "Extra request header 'Name: value' (repeatable).")
        var headers: [String] = []
        @Option(name: .customLong("tokens-file"),
                help: "One token per line (sse-load mint); connection i of every round sends token i (cycling).")
        var tokensFile: String?
        @Option(name: .customLong("token-query"),
                help: "With --tokens-file: send the token as this query parameter instead of Authorization: Bearer.")
        var tokenQuery: String?
        @Option(name: .customLong("watch-pid"), help: "A proxy process whose CPU time to read per round (repeatable).")
        var watchPIDs: [Int32] = []
        @Flag(help: "Print one JSON object instead of a table.") var json = false

        func run() throws {
            guard connections > 0, rounds > 0 else { throw ValidationError("connections and rounds must be positive") }
            let plan = try RequestPlan(target: try TargetURL(target), headers: try parseHeaders(headers),
                                       tokensFile: tokensFile, tokenQuery: tokenQuery)
            let report = runStorm(plan: plan, connections: connections, rounds: rounds,
                                  pauseSeconds: try parseDuration(pause), timeoutSeconds: try parseDuration(timeout),
                                  watchPIDs: watchPIDs)
            print(json ? report.json() : report.table())
        }
    }

    struct Mint: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a fresh key and N distinct JWTs signed with it (for authenticated churn).",
            discussion: """
                Writes DIR/tokens.txt (one token per line, each with its own sub and jti, plus aud, iat and \
                exp = now + lifetime) and DIR/secret.txt (HS256) or DIR/public.pem (RS256, ES256).
                """)

        @Option(help: "HS256, RS256 or ES256.") var alg: String
        @Option(help: "Tokens to write.") var count: Int
        @Option(name: .customLong("out-dir"), help: "Directory for tokens.txt and the key file.") var outDir: String
        @Option(help: "The aud claim.") var audience = "bench"
        @Option(help: "exp - iat (e.g. 1h, 30m).") var lifetime = "1h"

        func run() throws {
            guard let algorithm = JWSAlgorithm(rawValue: alg.uppercased()) else {
                throw ValidationError("--alg must be one of HS256, RS256, ES256")
            }
            guard count > 0 else { throw ValidationError("count must be positive") }
            let seconds = try parseDuration(lifetime)
            guard seconds >= 1 else { throw ValidationError("lifetime must be at least 1s") }
            let result = try mintTokens(algorithm: algorithm, count: count, directory: outDir, audience: audience,
                                        lifetimeSeconds: Int(seconds))
            print("minted \(result.count) \(algorithm.rawValue) tokens in "
                  + String(format: "%.2f", result.seconds) + " s: \(result.tokensPath) (key: \(result.keyPath))")
        }
    }

    struct FloorProxy: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "floor-proxy",
            abstract: "The cheapest SwiftNIO proxy: glue each accepted connection's bytes to a new upstream connection.",
            discussion: """
                No HTTP, auth, logging or metrics: what NIO's channels alone cost per connection and per event, \
                the floor under any proxy built on them (sse-gateway's data plane is NIO channels).
                """)

        @Option(help: "Loopback host:port to listen on.") var listen = "127.0.0.1:8070"
        @Option(help: "Loopback host:port of the upstream.") var upstream = "127.0.0.1:9100"
        @Option(help: "Event loops (sse-gateway uses one per core).") var loops = System.coreCount
        @Option(help: "Stop after this long (e.g. 1h, 600s).") var duration = "1h"

        func run() throws {
            guard loops > 0 else { throw ValidationError("loops must be positive") }
            try runFloorProxy(listen: try ListenAddress(listen), upstream: try ListenAddress(upstream), loops: loops,
                              duration: try parseDuration(duration))
        }
    }
}
