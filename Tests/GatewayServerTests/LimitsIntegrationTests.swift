import GatewayCore
import GatewayServer
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

/// Each limit trips with the right answer, and the gateway stays bounded.
final class LimitsIntegrationTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    /// An upstream that opens a stream with one event and keeps it open.
    private static let streaming: TestUpstream.Handler = { _, responder in
        responder.sseHead()
        responder.body("data: open\n\n")
    }

    private func open(_ gateway: GatewayHarness, _ path: String, headers: [String] = []) async throws -> RawClient {
        let client = try await gateway.connect(group: group)
        try await client.get(path, headers: headers)
        try await client.wait(for: "a response head") { $0.contains("\r\n\r\n") }
        return client
    }

    func testRouteStreamLimitAnswers429AndFreesOnClose() async throws {
        try await withUpstream(group: group, handler: Self.streaming) { upstream in
            try await withGateway(routes: [route(upstream: upstream) { $0.maxStreams = 2 }], group: group) { gateway in
                let first = try await open(gateway, "/events/1")
                let second = try await open(gateway, "/events/2")
                let third = try await open(gateway, "/events/3")
                XCTAssertTrue(first.text.hasPrefix("HTTP/1.1 200") && second.text.hasPrefix("HTTP/1.1 200"))
                XCTAssertTrue(third.text.hasPrefix("HTTP/1.1 429"), third.text)
                try await third.wait(for: "body") { $0.contains(#""error":"too_many_requests""#) }
                XCTAssertTrue(third.text.lowercased().contains("retry-after: 1"), third.text)
                await first.close()
                try await Task.sleep(for: .milliseconds(100))
                let fourth = try await open(gateway, "/events/4")
                XCTAssertTrue(fourth.text.hasPrefix("HTTP/1.1 200"), "a closed stream frees its slot: \(fourth.text)")
            }
        }
    }

    func testStreamsPerSubject() async throws {
        let key = "subject-key"
        let policies = [
            "keys": AuthPolicyConfiguration(
                apiKeys: [APIKeyConfiguration(sha256: Self.sha256(key), subject: "svc")],
                maxStreamsPerSubject: 1
            )
        ]
        try await withUpstream(group: group, handler: Self.streaming) { upstream in
            try await withGateway(
                routes: [route(upstream: upstream) { $0.auth = "keys" }],
                configure: { $0.authPolicies = policies },
                group: group
            ) { gateway in
                let first = try await open(gateway, "/events/a", headers: ["Authorization: Bearer \(key)"])
                let second = try await open(gateway, "/events/b", headers: ["Authorization: Bearer \(key)"])
                XCTAssertTrue(first.text.hasPrefix("HTTP/1.1 200"), first.text)
                XCTAssertTrue(second.text.hasPrefix("HTTP/1.1 429"), second.text)
            }
        }
    }

    func testNewStreamsPerSecondPerIP() async throws {
        try await withUpstream(group: group, handler: Self.streaming) { upstream in
            try await withGateway(
                routes: [route(upstream: upstream)],
                configure: { $0.limits.newStreamsPerSecondPerIP = 3 },
                group: group
            ) { gateway in
                var statuses: [String] = []
                for i in 0..<5 {
                    let client = try await open(gateway, "/events/\(i)")
                    statuses.append(String(client.text.prefix(12)))
                }
                XCTAssertEqual(statuses.filter { $0 == "HTTP/1.1 200" }.count, 3, "\(statuses)")
                XCTAssertEqual(statuses.filter { $0 == "HTTP/1.1 429" }.count, 2, "\(statuses)")
                let samples = OperationsIntegrationTests.samples(gateway.gateway.metricsExposition())
                XCTAssertEqual(samples["sse_gateway_rate_limited_total"], 2)
            }
        }
    }

    func testMaxConnectionsRefusesTheExtraConnection() async throws {
        try await withUpstream(group: group, handler: Self.streaming) { upstream in
            try await withGateway(
                routes: [route(upstream: upstream)],
                configure: { $0.limits.maxConnections = 2 },
                group: group
            ) { gateway in
                let first = try await open(gateway, "/events/1")
                _ = try await open(gateway, "/events/2")
                let third = try await gateway.connect(group: group)
                try await third.waitForClose()
                XCTAssertEqual(third.byteCount, 0)
                await first.close()
                try await Task.sleep(for: .milliseconds(100))
                let fourth = try await open(gateway, "/events/4")
                XCTAssertTrue(fourth.text.hasPrefix("HTTP/1.1 200"))
            }
        }
    }

    func testSlowlorisHeadIsClosed() async throws {
        try await withUpstream(group: group, handler: Self.streaming) { upstream in
            try await withGateway(
                routes: [route(upstream: upstream)],
                configure: { $0.limits.requestHeaderTimeout = .milliseconds(300) },
                group: group
            ) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.send("GET /events/x HTTP/1.1\r\nHost: x\r\n")
                for _ in 0..<3 {
                    try await Task.sleep(for: .milliseconds(50))
                    if !client.isClosed { try? await client.send("X-Drip: 1\r\n") }
                }
                try await client.waitForClose(timeout: .seconds(3))
                XCTAssertEqual(upstream.requests.count, 0)
            }
        }
    }

    func testSlowClientIsDroppedAndCounted() async throws {
        try await BackpressureIntegrationTests.withSlowClient(
            total: 50_000, slowClientTimeout: .milliseconds(500), group: group
        ) { source, gateway, client in
            let dropped = #"sse_gateway_slow_clients_dropped_total{route="events"}"#
            try await eventually(
                "the slow client to be dropped and counted",
                read: { OperationsIntegrationTests.samples(gateway.gateway.metricsExposition())[dropped] }
            ) { $0 == 1 }
            XCTAssertLessThan(source.eventsWritten, source.total, "the upstream was throttled, not drained")
            try await client.setAutoRead(true)
            try await client.waitForClose()
            XCTAssertEqual(client.progress.bodiesEnded, 0, "a dropped client gets no clean end: \(client.report)")
        }
    }

    func testMaxStreamDurationEndsAtABoundaryWithRetryHint() async throws {
        let handler: TestUpstream.Handler = { _, responder in
            responder.sseHead()
            responder.body("data: one\n\n")
            responder.channel.eventLoop.scheduleTask(in: .milliseconds(300)) { responder.body("data: partial") }
            responder.channel.eventLoop.scheduleTask(in: .milliseconds(700)) { responder.body(" done\n\ndata: next\n\n") }
        }
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withGateway(
                routes: [route(upstream: upstream) { $0.maxStreamDuration = .milliseconds(500) }],
                configure: { $0.drain.retryJitter = .seconds(1) },
                group: group
            ) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.get("/events/x")
                try await client.waitForEnd()
                let body = client.dechunkedBody
                // The upstream's chunk was passed through; the part after the cut is owed to the client as a comment
                // line.
                let lines = body.split(separator: "\n", omittingEmptySubsequences: false)
                let visible = lines.filter { !$0.hasPrefix(":") }.joined(separator: "\n")
                XCTAssertTrue(
                    visible.hasPrefix("data: one\n\ndata: partial done\n\nretry: "), "cut only after the event: \(body)"
                )
                // "data: next\n\n" is 12 bytes: ":", 10 spaces, "\n".
                let filler = ":" + String(repeating: " ", count: 10) + "\n"
                XCTAssertTrue(
                    body.contains("\n\n" + filler + "retry: "), "the rest of the cut chunk is a comment: \(body)"
                )
                XCTAssertFalse(body.contains("data: next"), body)
            }
        }
    }

    static func sha256(_ s: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(s.utf8)))
    }
}

import Crypto
