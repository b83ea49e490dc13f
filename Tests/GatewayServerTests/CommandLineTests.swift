import Foundation
import NIOCore
import NIOPosix
import XCTest

/// The real `sse-gateway` binary, as an operator runs it.
final class CommandLineTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    /// The `sse-gateway` built alongside the tests by `swift test`: first beside the running test product, so a build
    /// with its own `--scratch-path` (the sanitizer builds in `.build-tsan`, `.build-asan`) runs its own binary, not
    /// another build's; then `.build/<config>/sse-gateway` above this file.
    static var binary: URL? {
        let productDirectories = [
            Bundle.main.executableURL?.deletingLastPathComponent(),  // Linux: the test product is an executable
            Bundle(for: CommandLineTests.self).bundleURL.deletingLastPathComponent(),  // macOS: an .xctest bundle
        ]
        for directory in productDirectories.compactMap({ $0 }) {
            let candidate = directory.appendingPathComponent("sse-gateway")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        var directory = URL(fileURLWithPath: #filePath)
        while directory.path != "/" {
            directory.deleteLastPathComponent()
            for configuration in ["debug", "release"] {
                let candidate = directory.appendingPathComponent(".build/\(configuration)/sse-gateway")
                if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            }
        }
        return nil
    }

    private func run(_ arguments: [String], timeout: TimeInterval = 60) throws -> (status: Int32, output: String) {
        try runToEnd(try XCTUnwrap(Self.binary, "sse-gateway binary not built"), arguments)
    }

    private func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "gateway-\(UUID().uuidString).yml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testCheckAcceptsTheShippedConfiguration() throws {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        let result = try run(["check", "--config", root.appendingPathComponent("gateway.yml").path])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("OK (3 routes)"), result.output)
    }

    func testCheckReportsEveryErrorWithFileLineColumnAndKey() throws {
        let path = try write(
            """
            listen: "127.0.0.1:8080"
            routes:
              - name: a
                path_prefx: /a/
                upstream: "ftp://x"
                heartbeat: soon
            """
        )
        let result = try run(["check", "--config", path])
        XCTAssertEqual(result.status, 1)
        let lines = result.output.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("\(path):4:5: routes[0].path_prefx: unknown key 'path_prefx' (did you mean 'path_prefix'?)"), result.output)
        XCTAssertTrue(lines.contains { $0.hasPrefix("\(path):5:15: routes[0].upstream: ") }, result.output)
        XCTAssertTrue(lines.contains { $0.hasPrefix("\(path):6:16: routes[0].heartbeat: ") }, result.output)
        XCTAssertTrue(lines.contains { $0.hasPrefix("\(path):3:5: routes[0].path_prefix: ") }, result.output)
    }

    func testServeDrainsOnSIGTERMAndExitsZero() async throws {
        let handler: TestUpstream.Handler = { _, responder in
            responder.sseHead()
            responder.body("data: live\n\n")
        }
        try await withUpstream(group: group, handler: handler) { upstream in
            let port = try await RelayIntegrationTests.closedPort(group: group)
            let path = try write(
                """
                listen: "127.0.0.1:\(port)"
                admin: {listen: "off"}
                routes:
                  - name: events
                    path_prefix: /events/
                    upstream: "\(upstream.url)"
                drain: {retry_jitter: 1s, grace: 2s}
                """
            )
            let process = Process()
            process.executableURL = try XCTUnwrap(Self.binary)
            process.arguments = ["serve", "--config", path, "--log-format", "json"]
            let logs = ProcessOutput()
            process.standardError = logs.pipe
            process.standardOutput = logs.pipe
            try process.run()
            try await withCleanup({ await terminate(process) }) {
                var client: RawClient?
                for _ in 0..<100 where client == nil {
                    client = try? await RawClient.connect(port: port, group: group)
                    if client == nil { try await Task.sleep(for: .milliseconds(100)) }
                }
                let stream = try XCTUnwrap(client, "the gateway did not start listening")
                try await withCleanup(stream.close) {
                    try await stream.get("/events/x")
                    try await stream.wait(for: "event") { $0.contains("data: live") }

                    kill(process.processIdentifier, SIGTERM)
                    let text = try await stream.wait(for: "retry hint and end") { $0.hasSuffix("0\r\n\r\n") }
                    XCTAssertTrue(RawClient.dechunk(text).contains("data: live\n\nretry: "), text)
                    let deadline = ContinuousClock.now + .seconds(10)
                    while process.isRunning && ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    // `terminationStatus` of a running process traps, and would end the whole test run.
                    guard !process.isRunning else {
                        XCTFail("still running 10 s after SIGTERM; its output so far: \(logs.text.suffix(4000))")
                        return
                    }
                    let output = await logs.textAtEnd()
                    XCTAssertEqual(process.terminationStatus, 0, "exit status; its output: \(output.suffix(8000))")
                    XCTAssertTrue(output.contains(#""message":"access""#), output)
                    XCTAssertTrue(output.contains(#""outcome":"drained""#), output)
                }
            }
        }
    }
}
