import Foundation
import NIOCore
import NIOPosix
import XCTest

@testable import sse_load

/// `--tokens-file` / `--token-query` as `client`, `churn` and `storm` read them, and `storm`'s rounds.
final class TokenOptionTests: XCTestCase {
    private func tokensFile(_ tokens: [String]) throws -> String {
        let path = NSTemporaryDirectory() + "sse-load-tokens-\(UUID().uuidString).txt"
        try (tokens.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testClientSendsEachStreamTheNextTokenInTheQuery() throws {
        let path = try tokensFile(["t1.a.b", "t2.a.b", "t3.a.b"])
        let command = try SSELoad.Client.parse(["--target", "http://127.0.0.1:9/f?interval_ms=1000", "--streams", "4",
                                                "--tokens-file", path, "--token-query", "access_token"])
        let plan = try RequestPlan(target: try TargetURL(command.target), headers: [],
                                   tokensFile: command.tokensFile, tokenQuery: command.tokenQuery)
        let uris = (0..<4).map { plan.head(credential: plan.credentialIndex(forConnection: $0)).uri }
        XCTAssertEqual(uris, ["/f?interval_ms=1000&access_token=t1.a.b", "/f?interval_ms=1000&access_token=t2.a.b",
                              "/f?interval_ms=1000&access_token=t3.a.b", "/f?interval_ms=1000&access_token=t1.a.b"])
        XCTAssertTrue(plan.head(credential: 0).headers["authorization"].isEmpty)
    }

    func testWithoutQueryNameTheTokenIsABearerHeader() throws {
        let path = try tokensFile(["t1.a.b"])
        let plan = try RequestPlan(target: try TargetURL("http://127.0.0.1:9/f"), headers: [], tokensFile: path,
                                   tokenQuery: nil)
        XCTAssertEqual(plan.head(credential: 0).headers["authorization"], ["Bearer t1.a.b"])
        XCTAssertEqual(plan.head(credential: 0).uri, "/f")
    }

    func testTokenQueryNeedsAFileAndAPlainName() throws {
        let target = try TargetURL("http://127.0.0.1:9/f")
        XCTAssertThrowsError(try RequestPlan(target: target, headers: [], tokensFile: nil, tokenQuery: "access_token"))
        let path = try tokensFile(["t1.a.b"])
        for bad in ["", "a&b", "a=b", "a b", "a?b"] {
            XCTAssertThrowsError(try RequestPlan(target: target, headers: [], tokensFile: path, tokenQuery: bad), bad)
        }
        XCTAssertNil(try RequestPlan(target: target, headers: [], tokensFile: nil, tokenQuery: nil)
            .credentialIndex(forConnection: 3))
    }
}

final class StormTests: XCTestCase {
    func testMergeKeepsTheLatestFirstEvent() {
        var a = ClientTally()
        var b = ClientTally()
        a.lastFirstEventNanos = 5_000
        b.lastFirstEventNanos = 9_000
        a.merge(b)
        XCTAssertEqual(a.lastFirstEventNanos, 9_000)
        b.merge(ClientTally())
        XCTAssertEqual(b.lastFirstEventNanos, 9_000)
    }

    func testRoundMeasuresFromItsStartToTheLastFirstEvent() {
        var tally = ClientTally()
        tally.succeeded = 3
        tally.httpErrors = 1
        tally.lastFirstEventNanos = 1_000_000_000 + 42_000_000
        for micros: UInt64 in [1_000, 2_000, 40_000] { tally.firstEvent.record(micros) }
        let round = StormRound(round: 2, launched: 4, tally: tally, startNanos: 1_000_000_000,
                               launchEndNanos: 1_000_500_000, proxyCPUSeconds: 0.25)
        XCTAssertEqual(round.allFirstEventsMicros, 42_000)
        XCTAssertEqual(round.launchMicros, 500)
        XCTAssertEqual(round.succeeded, 3)
        XCTAssertEqual(round.failed, 1)
        XCTAssertEqual(round.timeToFirstEventMicros.count, 3)
        let none = StormRound(round: 1, launched: 4, tally: ClientTally(), startNanos: 1_000_000_000,
                              launchEndNanos: 1_000_000_000, proxyCPUSeconds: nil)
        XCTAssertEqual(none.allFirstEventsMicros, 0, "no first event: no time, not a negative one")
        XCTAssertTrue(StormReport(target: "x", connections: 4, rounds: [round, none]).json()
            .contains("\"all_first_events_micros\":42000"))
    }

    /// A real storm on loopback against sse-load's own upstream: every connection of both rounds gets its event.
    func testStormAgainstTheUpstream() throws {
        let port = try freeLoopbackPort()
        let upstream = Thread {
            try? runUpstream(listen: try! ListenAddress("127.0.0.1:\(port)"),
                             defaults: StreamSettings(intervalMs: 1000, size: 100, count: nil), duration: 4)
        }
        upstream.start()
        try waitForListener(port: port)
        let path = NSTemporaryDirectory() + "sse-load-storm-\(UUID().uuidString).txt"
        try (0..<10).map { "tok\($0).a.b" }.joined(separator: "\n").write(toFile: path, atomically: true,
                                                                           encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let plan = try RequestPlan(target: try TargetURL("http://127.0.0.1:\(port)/g?interval_ms=1000"), headers: [],
                                   tokensFile: path, tokenQuery: "access_token")
        let report = runStorm(plan: plan, connections: 50, rounds: 2, pauseSeconds: 0.1, timeoutSeconds: 3,
                              watchPIDs: [getpid()])
        XCTAssertEqual(report.rounds.count, 2)
        for round in report.rounds {
            XCTAssertEqual(round.succeeded, 50, "round \(round.round): \(round.failed) failed")
            XCTAssertEqual(round.failed, 0)
            XCTAssertGreaterThan(round.allFirstEventsMicros, 0)
            XCTAssertGreaterThanOrEqual(round.allFirstEventsMicros, round.timeToFirstEventMicros.p50)
            XCTAssertNotNil(round.proxyCPUSeconds)
        }
    }

    private func freeLoopbackPort() throws -> Int {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let channel = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = channel.localAddress?.port ?? 0
        try channel.close().wait()
        return port
    }

    private func waitForListener(port: Int) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        for _ in 0..<100 {
            if let channel = try? ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).wait() {
                try? channel.close().wait()
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("the upstream did not listen on \(port)")
    }
}
