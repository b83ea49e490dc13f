import AsyncHTTPClient
import Foundation
import Logging
import GatewayCore
import GatewayServer
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

/// What an operator sees: metrics, access logs, readiness, reload.
final class OperationsIntegrationTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    /// `name{labels} value` lines of a Prometheus exposition, keyed by everything before the value.
    static func samples(_ exposition: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    func testMetricsAndAccessLogAfterScriptedRequests() async throws {
        let handler: TestUpstream.Handler = { _, responder in
            responder.sseHead()
            responder.body("id: 1\ndata: a\n\nid: 2\ndata: b\n\n")
            responder.body("id: 3\ndata: c\n\n")
            responder.end()
        }
        let log = CapturedLog()
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withGateway(
                routes: [
                    route(upstream: upstream),
                    route("private", prefix: "/private/", upstream: upstream) { $0.auth = "users" },
                ],
                configure: {
                    $0.authPolicies = [
                        "users": AuthPolicyConfiguration(
                            tokenSources: [.query("access_token")],
                            jwt: JWTConfiguration(algorithms: [.hs256], secret: String(repeating: "s", count: 32))
                        )
                    ]
                },
                group: group,
                logger: log.logger
            ) { gateway in
                for request in [
                    "GET /events/feed HTTP/1.1\r\nHost: x\r\n\r\n",
                    "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
                    "GET /private/x?access_token=abc.def.ghi HTTP/1.1\r\nHost: x\r\n\r\n",
                    "GET /private/x HTTP/1.1\r\nHost: x\r\n\r\n",
                ] {
                    let client = try await gateway.connect(group: group)
                    try await client.send(request)
                    try await client.wait(for: "response") { $0.hasSuffix("0\r\n\r\n") || $0.hasSuffix("}") }
                    await client.close()
                }
                let exposition = try await adminGet(gateway, "/metrics")
                let samples = Self.samples(exposition)
                XCTAssertEqual(samples[#"sse_gateway_requests_total{route="events",status="2xx"}"#], 1, exposition)
                XCTAssertEqual(samples[#"sse_gateway_requests_total{route="-",status="4xx"}"#], 1)
                XCTAssertEqual(samples[#"sse_gateway_requests_total{route="private",status="4xx"}"#], 2)
                XCTAssertEqual(samples[#"sse_gateway_streams_started_total{route="events"}"#], 1)
                XCTAssertEqual(
                    samples[#"sse_gateway_streams_ended_total{route="events",outcome="upstream_closed"}"#], 1
                )
                XCTAssertEqual(samples[#"sse_gateway_events_relayed_total{route="events"}"#], 3)
                XCTAssertEqual(samples[#"sse_gateway_open_streams{route="events"}"#], 0)
                XCTAssertEqual(samples[#"sse_gateway_auth_failures_total{route="private",reason="missing"}"#], 1)
                // Every reason's series exists (at 0 until counted): the garbage token is one of these two.
                XCTAssertEqual(
                    (samples[#"sse_gateway_auth_failures_total{route="private",reason="bad_signature"}"#] ?? 0)
                        + (samples[#"sse_gateway_auth_failures_total{route="private",reason="malformed"}"#] ?? 0),
                    1
                )
                XCTAssertNotNil(samples[#"sse_gateway_time_to_first_byte_seconds_count{route="events"}"#])
                XCTAssertFalse(exposition.contains("nowhere"), "never a raw URL in a label")

                await gateway.stop()
                let text = log.text
                let accessLines = text.split(separator: "\n").filter { $0.contains(" access ") }
                XCTAssertEqual(accessLines.count, 4, text)
                XCTAssertTrue(
                    accessLines[0].contains("route=events") && accessLines[0].contains("events=3")
                        && accessLines[0].contains("status=200") && accessLines[0].contains("outcome=upstream_closed"),
                    text
                )
                XCTAssertTrue(text.contains("access_token=REDACTED"))
                XCTAssertFalse(text.contains("abc.def.ghi"))
            }
        }
    }

    func testReloadKeepsOpenStreamsAndChangesNewRequests() async throws {
        let responders = NIOLockedValueBox<[UpstreamResponder]>([])
        let handler: TestUpstream.Handler = { request, responder in
            responder.sseHead()
            responder.body("data: hello \(request.head.uri)\n\n")
            responders.withLockedValue { $0.append(responder) }
        }
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let stream = try await gateway.connect(group: group)
                try await stream.get("/events/one")
                try await stream.wait(for: "first event") { $0.contains("hello /events/one") }

                var next = gateway.gateway.configuration
                next.routes = [route("renamed", prefix: "/v2/", upstream: upstream)]
                try await gateway.gateway.reload(configuration: next)

                let old = try await gateway.connect(group: group)
                try await old.get("/events/two")
                try await old.wait(for: "404 after reload") { $0.contains("\"error\":\"not_found\"") }
                let new = try await gateway.connect(group: group)
                try await new.get("/v2/three")
                try await new.wait(for: "new route") { $0.contains("hello /v2/three") }

                for responder in responders.withLockedValue({ $0 }) { responder.body("data: still here\n\n") }
                try await stream.wait(for: "the open stream keeps receiving") { $0.contains("still here") }
                XCTAssertFalse(stream.isClosed)
            }
        }
    }

    func testReloadMovesTheListenerKeepsStreamsOnTheOldOneAndDrainsBoth() async throws {
        let responders = NIOLockedValueBox<[UpstreamResponder]>([])
        let handler: TestUpstream.Handler = { _, responder in
            responder.sseHead()
            responder.body("data: hello\n\n")
            responders.withLockedValue { $0.append(responder) }
        }
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let stream = try await gateway.connect(group: group)
                try await stream.get("/events/one")
                try await stream.wait(for: "event") { $0.contains("data: hello") }

                let newPort = try await RelayIntegrationTests.closedPort(group: group)
                var next = gateway.gateway.configuration
                next.listen = ListenAddress(host: "127.0.0.1", port: newPort)
                try await gateway.gateway.reload(configuration: next)
                XCTAssertEqual(gateway.gateway.boundAddresses?.gateway.port, newPort)

                let moved = try await gateway.connect(group: group, port: newPort)
                try await moved.get("/events/two")
                try await moved.wait(for: "served on the new address") { $0.contains("data: hello") }
                let refused = try? await gateway.connect(group: group, port: gateway.port)
                XCTAssertNil(refused, "the old address no longer accepts")
                for responder in responders.withLockedValue({ $0 }) { responder.body("data: after\n\n") }
                try await stream.wait(for: "the stream accepted by the old listener runs on") {
                    $0.contains("data: after")
                }
                // The drain reaches the connections of both listeners: each stream gets its retry hint and ends.
                await gateway.stop()
                for (client, name) in [(stream, "old"), (moved, "new")] {
                    try await client.waitForClose()
                    XCTAssertTrue(client.text.contains("retry: "), "\(name) listener's stream: \(client.text)")
                }
            }
        }
    }

    func testReloadFromFileRejectsAnInvalidConfigAndKeepsTheRunningOne() async throws {
        let handler: TestUpstream.Handler = { _, responder in
            responder.head(.ok, [("content-length", "2")])
            responder.body("ok")
            responder.end()
        }
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let path = NSTemporaryDirectory() + "reload-\(UUID().uuidString).yml"
                defer { try? FileManager.default.removeItem(atPath: path) }
                let reloader = ConfigurationReloader(
                    path: path,
                    gateway: gateway.gateway,
                    logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
                )
                try "listen: \"127.0.0.1:\(gateway.port)\"\nroutes:\n  - name: v2\n    path_prefx: /v2/\n".write(
                    toFile: path, atomically: true, encoding: .utf8
                )
                let errors = await reloader.reload()
                let typo = errors?.errors.first { $0.keyPath == "routes[0].path_prefx" }
                XCTAssertEqual(typo?.line, 4)
                XCTAssertEqual(typo?.column, 5)
                XCTAssertEqual(gateway.gateway.configuration.routes.map(\.name), ["events"], "the running config stays")

                try "listen: \"127.0.0.1:\(gateway.port)\"\nadmin: {listen: \"127.0.0.1:\(gateway.adminPort!)\"}\nroutes:\n  - name: v2\n    path_prefix: /v2/\n    upstream: \"\(upstream.url)\"\n"
                    .write(toFile: path, atomically: true, encoding: .utf8)
                let none = await reloader.reload()
                XCTAssertNil(none)
                XCTAssertEqual(gateway.gateway.configuration.routes.map(\.name), ["v2"])
                let samples = Self.samples(gateway.gateway.metricsExposition())
                XCTAssertEqual(samples[#"sse_gateway_config_reloads_total{result="failure"}"#], 1)
                XCTAssertEqual(samples[#"sse_gateway_config_reloads_total{result="success"}"#], 1)
                let client = try await gateway.connect(group: group)
                try await client.get("/v2/x", accept: "*/*")
                try await client.wait(for: "served by the reloaded route") { $0.hasSuffix("ok") }
            }
        }
    }

    func testReadinessTurnsUnavailableWhileDraining() async throws {
        let handler: TestUpstream.Handler = { _, responder in
            responder.sseHead()
            responder.body("data: x\n\n")
        }
        try await withUpstream(group: group, handler: handler) { upstream in
            // A plain request that never answers keeps the gateway draining until the grace period ends.
            try await withUpstream(group: group, handler: { _, _ in }) { silent in
                try await withGateway(
                    routes: [route(upstream: upstream)],
                    configure: { $0.drain.grace = .seconds(1) },
                    group: group
                ) { gateway in
                    let before = try await adminGet(gateway, "/readyz")
                    XCTAssertTrue(before.hasPrefix("HTTP/1.1 200"), before)
                    var next = gateway.gateway.configuration
                    next.routes.append(route("silent", prefix: "/silent/", upstream: silent))
                    try await gateway.gateway.reload(configuration: next)
                    let pending = try await gateway.connect(group: group)
                    try await pending.send("GET /silent/x HTTP/1.1\r\nHost: x\r\n\r\n")
                    try await Task.sleep(for: .milliseconds(100))
                    let stopping = Task { await gateway.stop() }
                    try await Task.sleep(for: .milliseconds(200))
                    let during = try await adminGet(gateway, "/readyz")
                    XCTAssertTrue(during.hasPrefix("HTTP/1.1 503"), during)
                    await stopping.value
                    try await pending.waitForClose()
                }
            }
        }
    }

    /// `GET path` on the admin listener with `Connection: close`: the whole response once the gateway closed.
    private func adminGet(_ gateway: GatewayHarness, _ path: String) async throws -> String {
        let admin = try await gateway.connect(group: group, port: try XCTUnwrap(gateway.adminPort))
        try await admin.send("GET \(path) HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        try await admin.waitForClose()
        return admin.text
    }
}
