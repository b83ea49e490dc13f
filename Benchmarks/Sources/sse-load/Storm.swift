import Foundation

/// One round of `sse-load storm`: N connections launched at once, each reading one event.
struct StormRound: Encodable {
    var round: Int
    var launched: Int
    var succeeded: UInt64
    var failed: UInt64
    var httpErrors: UInt64
    /// From the first launch to the last launch handed to the event loops, µs (the client's own spread).
    var launchMicros: UInt64
    /// From the first launch until the last connection had its first event, µs; 0 when none succeeded.
    var allFirstEventsMicros: UInt64
    /// Per connection, from starting its connect to its first complete event, µs.
    var timeToFirstEventMicros: Percentiles
    /// CPU time of the watched processes from the first launch until every connection settled, seconds.
    var proxyCPUSeconds: Double?

    init(round: Int, launched: Int, tally: ClientTally, startNanos: UInt64, launchEndNanos: UInt64,
         proxyCPUSeconds: Double?) {
        self.round = round
        self.launched = launched
        succeeded = tally.succeeded
        failed = tally.failed + tally.closedEarly
        httpErrors = tally.httpErrors
        launchMicros = launchEndNanos > startNanos ? (launchEndNanos - startNanos) / 1000 : 0
        allFirstEventsMicros = tally.lastFirstEventNanos > startNanos ? (tally.lastFirstEventNanos - startNanos) / 1000 : 0
        timeToFirstEventMicros = tally.firstEvent.summary
        self.proxyCPUSeconds = proxyCPUSeconds
    }
}

/// The result of `storm`: one entry per round.
struct StormReport: Encodable {
    var mode = "storm"
    var target: String
    var connections: Int
    var rounds: [StormRound]

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    func table() -> String {
        func ms(_ micros: UInt64) -> String { String(format: "%.2f", Double(micros) / 1000) }
        var lines = ["storm  \(target)  \(connections) connections per round",
                     "round  succeeded  failed  launch ms  all-first ms  ttfe p50 ms  ttfe p99 ms  proxy CPU s"]
        func cell(_ text: String, _ width: Int) -> String {
            String(repeating: " ", count: max(0, width - text.count)) + text
        }
        for r in rounds {
            lines.append([cell("\(r.round)", 5), cell("\(r.succeeded)", 9), cell("\(r.failed)", 6),
                          cell(ms(r.launchMicros), 9), cell(ms(r.allFirstEventsMicros), 12),
                          cell(ms(r.timeToFirstEventMicros.p50), 11), cell(ms(r.timeToFirstEventMicros.p99), 11),
                          cell(r.proxyCPUSeconds.map { String(format: "%.2f", $0) } ?? "-", 11)]
                .joined(separator: "  "))
        }
        return lines.joined(separator: "\n")
    }
}

/// `sse-load storm`: `rounds` times, launch `connections` connections at once (connection i sends the plan's
/// credential i, the same in every round), wait until each has its first event or failed, close them all.
func runStorm(
    plan: RequestPlan, connections: Int, rounds: Int, pauseSeconds: Double, timeoutSeconds: Double,
    watchPIDs: [Int32]
) -> StormReport {
    raiseOpenFileLimit()
    let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    var results: [StormRound] = []
    for round in 1...rounds {
        if round > 1 { sleepSeconds(pauseSeconds) }
        let run = LoadRun(plan: plan)   // a fresh LoadRun: its launch counter restarts, so token i again
        run.onEveryLoop { $0.steady = true }
        let cpuBefore = watchPIDs.isEmpty ? nil : cpuTicks(of: watchPIDs)
        let start = wallNanos()
        let deadline = monotonicSeconds() + timeoutSeconds
        for _ in 0..<connections { run.launch(mode: .firstEvent) }
        let launchEnd = wallNanos()
        while run.progress.settled.load(ordering: .relaxed) < connections && monotonicSeconds() < deadline {
            sleepSeconds(0.002)
        }
        let cpuAfter = watchPIDs.isEmpty ? nil : cpuTicks(of: watchPIDs)
        let (tally, _) = run.finish()
        let cpu = cpuBefore.flatMap { before in cpuAfter.map { Double($0 - before) / ticksPerSecond } }
        results.append(StormRound(round: round, launched: connections, tally: tally, startNanos: start,
                                  launchEndNanos: launchEnd, proxyCPUSeconds: cpu))
    }
    return StormReport(target: plan.target.authority + plan.target.requestTarget, connections: connections,
                       rounds: results)
}
