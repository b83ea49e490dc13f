import GatewayCore
import GatewayServer
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

/// Real sockets on loopback: a test upstream, the gateway, and a raw client.
final class RelayIntegrationTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    func testFirstEventArrivesWhileUpstreamStillWaits() async throws {
        let secondSent = NIOLockedValueBox(false)
        try await withUpstream(group: group, handler: { _, responder in
            responder.sseHead()
            responder.body("id: 1\ndata: one\n\n")
            responder.channel.eventLoop.scheduleTask(in: .seconds(2)) {
                secondSent.withLockedValue { $0 = true }
                responder.body("id: 2\ndata: two\n\n")
                responder.end()
            }
        }) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.get("/events/feed")

                try await client.wait(for: "first event") { RawClient.dechunk($0).contains("data: one\n\n") }
                XCTAssertFalse(secondSent.withLockedValue { $0 }, "the first event must not wait for the second")
                XCTAssertFalse(client.dechunkedBody.contains("two"))

                let text = try await client.wait(for: "end of stream") { $0.hasSuffix("0\r\n\r\n") }
                XCTAssertEqual(RawClient.dechunk(text), "id: 1\ndata: one\n\nid: 2\ndata: two\n\n")
                XCTAssertTrue(text.lowercased().contains("cache-control: no-cache"))
                XCTAssertTrue(text.lowercased().contains("x-accel-buffering: no"))
                XCTAssertTrue(text.lowercased().contains("transfer-encoding: chunked"))
            }
        }
    }

    func testForwardedRequestHeaders() async throws {
        try await withUpstream(group: group, handler: { _, responder in
            responder.head(.ok, [("content-length", "2")])
            responder.body("ok")
            responder.end()
        }) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.get(
                    "/events/feed?x=1&y=2",
                    headers: [
                        "Last-Event-ID: 41", "X-Forwarded-For: 10.1.1.1", "Connection: keep-alive, X-Secret-Hop",
                        "X-Secret-Hop: drop me", "Keep-Alive: timeout=5", "Proxy-Authorization: Basic Zm9v",
                    ]
                )
                try await client.wait(for: "response") { $0.hasSuffix("ok") }
                let seen = try XCTUnwrap(upstream.requests.first)
                XCTAssertEqual(seen.head.uri, "/events/feed?x=1&y=2")
                XCTAssertEqual(seen.head.headers["host"], ["127.0.0.1:\(upstream.port)"])
                XCTAssertEqual(seen.head.headers["last-event-id"], ["41"])
                XCTAssertEqual(seen.head.headers["x-forwarded-for"], ["10.1.1.1, 127.0.0.1"])
                XCTAssertEqual(seen.head.headers["x-forwarded-proto"], ["http"])
                XCTAssertEqual(seen.head.headers["x-forwarded-host"], ["gateway.test"])
                XCTAssertTrue(seen.head.headers["x-secret-hop"].isEmpty)
                XCTAssertTrue(seen.head.headers["keep-alive"].isEmpty)
                XCTAssertTrue(seen.head.headers["proxy-authorization"].isEmpty)
            }
        }
    }

    func testPostAnsweredWithEventStream() async throws {
        try await withUpstream(group: group, handler: { request, responder in
            responder.sseHead()
            for word in request.body.split(separator: " ") {
                responder.body("data: \(word)\n\n")
            }
            responder.body("data: [DONE]\n\n")
            responder.end()
        }) { upstream in
            try await withGateway(
                routes: [route("chat", prefix: "/v1/", upstream: upstream)],
                group: group
            ) { gateway in
                let client = try await gateway.connect(group: group)
                let body = "hello streaming world"
                try await client.send(
                    "POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                )
                let text = try await client.wait(for: "done") { $0.hasSuffix("0\r\n\r\n") }
                XCTAssertEqual(
                    RawClient.dechunk(text),
                    "data: hello\n\ndata: streaming\n\ndata: world\n\ndata: [DONE]\n\n"
                )
                XCTAssertEqual(upstream.requests.first?.head.method, .POST)
                XCTAssertEqual(upstream.requests.first?.body, body)
            }
        }
    }

    func testChunkedUploadIsStreamedUpstream() async throws {
        try await withUpstream(group: group, handler: { request, responder in
            responder.head(.ok, [("content-length", String(request.body.utf8.count))])
            responder.body(request.body)
            responder.end()
        }) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.send("POST /events/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                try await client.send("6\r\n world\r\n0\r\n\r\n")
                try await client.wait(for: "echo") { $0.hasSuffix("hello world") }
            }
        }
    }

    func testClientDisconnectClosesUpstreamPromptly() async throws {
        try await withUpstream(group: group, handler: { _, responder in
            responder.sseHead()
            responder.body("data: hi\n\n")
        }) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.get("/events/feed")
                try await client.wait(for: "event") { $0.contains("data: hi") }
                XCTAssertEqual(upstream.connectionsClosed, 0)
                await client.close()
                let deadline = ContinuousClock.now + .seconds(1)
                while upstream.connectionsClosed == 0 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
                XCTAssertEqual(upstream.connectionsClosed, 1, "upstream must see the disconnect within a second")
            }
        }
    }

    func testUpstreamCloseEndsClientResponseCleanly() async throws {
        try await withUpstream(group: group, handler: { _, responder in
            responder.sseHead()
            responder.body("data: last\n\n")
            responder.channel.eventLoop.scheduleTask(in: .milliseconds(50)) { responder.close() }
        }) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.get("/events/feed")
                let text = try await client.wait(for: "terminator") { $0.hasSuffix("0\r\n\r\n") }
                XCTAssertEqual(RawClient.dechunk(text), "data: last\n\n")
            }
        }
    }

    func testUpstreamResetClosesClientConnection() async throws {
        try await withUpstream(group: group, handler: { _, responder in
            responder.sseHead()
            responder.body("data: first\n\n")
            responder.channel.eventLoop.scheduleTask(in: .milliseconds(50)) { responder.reset() }
        }) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.get("/events/feed")
                try await client.waitForClose()
                XCTAssertTrue(client.dechunkedBody.contains("data: first"))
                XCTAssertFalse(client.text.hasSuffix("0\r\n\r\n"), "a reset must not look like a clean end")
            }
        }
    }

    func testErrorsAreJSON() async throws {
        let empty: TestUpstream.Handler = { _, responder in
            responder.head(.ok, [("content-length", "0")])
            responder.end()
        }
        let closedPort = try await Self.closedPort(group: group)
        try await withUpstream(group: group, handler: empty) { upstream in
            try await withUpstream(group: group, handler: { _, _ in }) { silentUpstream in
                var dead = route("dead", prefix: "/dead/", upstream: upstream)
                dead.upstream = UpstreamURL(scheme: .http, host: "127.0.0.1", port: closedPort)
                let slow = route("slow", prefix: "/slow/", upstream: silentUpstream) {
                    $0.timeouts.responseHeader = .milliseconds(200)
                }
                try await withGateway(
                    routes: [route(upstream: upstream), dead, slow],
                    configure: { $0.limits.maxHeaderBytes = 4096 },
                    group: group
                ) { gateway in
                    let cases: [(String, Int, String)] = [
                        ("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"),
                        ("GET http://evil.example/events/x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
                        ("GET /events/../admin HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
                        ("GET /events/%2e%2e/admin HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
                        ("GET /events/x HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 8000))\r\n\r\n", 431,
                         "headers_too_large"),
                        ("BLAH\r\n\r\n", 400, "bad_request"),
                        ("GET /dead/x HTTP/1.1\r\nHost: x\r\n\r\n", 502, "bad_gateway"),
                        ("GET /slow/x HTTP/1.1\r\nHost: x\r\n\r\n", 504, "gateway_timeout"),
                    ]
                    for (request, status, error) in cases {
                        let client = try await gateway.connect(group: group)
                        try await client.send(request)
                        let text = try await client.wait(for: "\(status) for \(request.prefix(40))") { $0.contains("}") }
                        XCTAssertTrue(text.hasPrefix("HTTP/1.1 \(status) "), "\(request.prefix(40)): \(text)")
                        XCTAssertTrue(text.contains("\"error\":\"\(error)\""), text)
                        XCTAssertTrue(text.lowercased().contains("content-type: application/json"), text)
                        await client.close()
                    }
                    XCTAssertEqual(upstream.requests.count, 0, "no rejected request may reach the upstream")
                }
            }
        }
    }

    func testKeepAliveClientReusesIdleUpstreamConnection() async throws {
        try await withUpstream(group: group, handler: { request, responder in
            responder.head(.ok, [("content-length", "3")])
            responder.body(String(request.head.uri.suffix(3)))
            responder.end()
        }) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.get("/events/one", accept: "*/*")
                try await client.wait(for: "first") { $0.hasSuffix("one") }
                try await client.get("/events/two", accept: "*/*")
                try await client.wait(for: "second") { $0.hasSuffix("two") }
                XCTAssertEqual(upstream.requests.map(\.head.uri), ["/events/one", "/events/two"])
                XCTAssertEqual(upstream.connectionsAccepted, 1, "the idle upstream connection is reused")
            }
        }
    }

    func testPipelinedRequestsAreAnsweredOneAfterAnotherInOrder() async throws {
        try await withUpstream(group: group, handler: { request, responder in
            let name = String(request.head.uri.dropFirst("/events/".count))
            // The first answer comes late: a later request must neither be answered nor forwarded before it.
            responder.channel.eventLoop.scheduleTask(in: .milliseconds(name == "slow" ? 300 : 0)) {
                responder.head(.ok, [("content-length", "\(name.utf8.count)")])
                responder.body(name)
                responder.end()
            }
        }) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let client = try await gateway.connect(group: group)
                // One write: the slow request, one the gateway answers itself (no route), a fast one, and a last one.
                let request = { (path: String) in "GET \(path) HTTP/1.1\r\nHost: gateway.test\r\nAccept: */*\r\n\r\n" }
                try await client.send(request("/events/slow") + request("/nowhere") + request("/events/fast")
                    + request("/events/last"))

                let text = try await client.wait(for: "four responses") { $0.hasSuffix("last") }
                let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
                XCTAssertEqual(statuses, ["200", "404", "200", "200"])
                let slow = try XCTUnwrap(text.range(of: "\r\n\r\nslow"))
                let notFound = try XCTUnwrap(text.range(of: "HTTP/1.1 404"))
                let fast = try XCTUnwrap(text.range(of: "\r\n\r\nfast"))
                XCTAssertTrue(slow.upperBound <= notFound.lowerBound && notFound.upperBound <= fast.lowerBound,
                              "responses in request order: \(text)")
                XCTAssertEqual(upstream.requests.map(\.head.uri), ["/events/slow", "/events/fast", "/events/last"])
                XCTAssertEqual(upstream.connectionsAccepted, 1, "one request at a time: the idle connection is reused")
                XCTAssertFalse(client.isClosed)
            }
        }
    }

    func testRequestSentDuringAStreamWaitsForTheStreamToEnd() async throws {
        let streamResponder = NIOLockedValueBox<UpstreamResponder?>(nil)
        try await withUpstream(group: group, handler: { request, responder in
            if request.head.uri.hasSuffix("stream") {
                responder.sseHead()
                responder.body("data: a\n\n")
                streamResponder.withLockedValue { $0 = responder }
            } else {
                responder.head(.ok, [("content-length", "5")])
                responder.body("after")
                responder.end()
            }
        }) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.get("/events/stream")
                try await client.wait(for: "first event") { RawClient.dechunk($0).contains("data: a\n\n") }
                try await client.get("/events/after", accept: "*/*")
                // The stream goes on while the next request waits behind it.
                streamResponder.withLockedValue { $0 }?.body("data: b\n\n")
                try await client.wait(for: "second event") { $0.contains("data: b\n\n") }
                XCTAssertEqual(upstream.requests.map(\.head.uri), ["/events/stream"], "not forwarded while the stream lasts")
                XCTAssertFalse(client.text.contains("after"))

                streamResponder.withLockedValue { $0 }?.end()
                let text = try await client.wait(for: "the waiting response") { $0.hasSuffix("after") }
                let streamEnd = try XCTUnwrap(text.range(of: "0\r\n\r\n"))
                let next = try XCTUnwrap(text.range(of: "HTTP/1.1 200", range: streamEnd.upperBound..<text.endIndex))
                XCTAssertTrue(streamEnd.upperBound <= next.lowerBound)
                XCTAssertEqual(upstream.requests.map(\.head.uri), ["/events/stream", "/events/after"])
            }
        }
    }

    func testRequestAfterAConnectionCloseRequestIsNotAnswered() async throws {
        try await withUpstream(group: group, handler: { request, responder in
            responder.head(.ok, [("content-length", "2")])
            responder.body("ok")
            responder.end()
        }) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.send(
                    "GET /events/one HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n"
                        + "GET /events/two HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
                try await client.waitForClose()
                XCTAssertEqual(client.text.components(separatedBy: "HTTP/1.1 200").count, 2, client.text)
                XCTAssertEqual(upstream.requests.map(\.head.uri), ["/events/one"])
            }
        }
    }

    func testHeartbeatOnlyBetweenEvents() async throws {
        try await withUpstream(group: group, handler: { request, responder in
            responder.sseHead()
            if request.head.uri.hasSuffix("half") {
                responder.body("data: partial")  // an event that never completes
            } else {
                responder.body("data: whole\n\n")
            }
        }) { upstream in
            try await withGateway(
                routes: [route(upstream: upstream) { $0.heartbeat = .milliseconds(100) }],
                group: group
            ) { gateway in
                let whole = try await gateway.connect(group: group)
                try await whole.get("/events/whole")
                try await whole.wait(for: "heartbeat") { RawClient.dechunk($0).contains("data: whole\n\n: keep-alive\n\n") }

                let half = try await gateway.connect(group: group)
                try await half.get("/events/half")
                try await half.wait(for: "partial event") { $0.contains("data: partial") }
                try await Task.sleep(for: .milliseconds(400))
                XCTAssertFalse(half.text.contains("keep-alive"), "a heartbeat must never split an event")
            }
        }
    }

    func testDrainEndsStreamsWithRetryHint() async throws {
        try await withUpstream(group: group, handler: { _, responder in
            responder.sseHead()
            responder.body("data: before\n\n")
        }) { upstream in
            try await withGateway(
                routes: [route(upstream: upstream)],
                configure: { $0.drain.retryJitter = .seconds(2) },
                group: group
            ) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.get("/events/feed")
                try await client.wait(for: "event") { $0.contains("data: before") }
                await gateway.stop()
                try await client.waitForEnd()
                let body = client.dechunkedBody
                XCTAssertTrue(body.hasPrefix("data: before\n\nretry: "), body)
                let retry = Int(body.dropFirst("data: before\n\nretry: ".count).prefix { $0.isNumber }) ?? -1
                XCTAssertTrue((0...2000).contains(retry), "retry hint \(retry) must be within the jitter")
                try await client.waitForClose()
            }
        }
    }

    func testHeadRequestAndUpstreamIdleTimeout() async throws {
        try await withUpstream(group: group, handler: { request, responder in
            if request.head.method == .HEAD {
                responder.head(.ok, [("content-type", "text/plain"), ("content-length", "42")])
                responder.end()
            } else {
                responder.sseHead()
                responder.body("data: then silence\n\n")
            }
        }) { upstream in
            try await withGateway(
                routes: [route(upstream: upstream) { $0.timeouts.idle = .milliseconds(300) }],
                group: group
            ) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.send("HEAD /events/x HTTP/1.1\r\nHost: x\r\n\r\n")
                let head = try await client.wait(for: "HEAD response") { $0.contains("\r\n\r\n") }
                XCTAssertTrue(head.hasPrefix("HTTP/1.1 200"), head)
                XCTAssertTrue(head.lowercased().contains("content-length: 42"), head)
                try await Task.sleep(for: .milliseconds(100))
                XCTAssertTrue(client.text.hasSuffix("\r\n\r\n"), "a HEAD response has no body: \(client.text)")

                try await client.get("/events/idle")
                let text = try await client.wait(for: "idle end") { $0.hasSuffix("0\r\n\r\n") }
                XCTAssertEqual(RawClient.dechunk(String(text.dropFirst(head.count))), "data: then silence\n\n", text)
            }
        }
    }

    /// A port on which nothing listens (bound then closed).
    static func closedPort(group: any EventLoopGroup) async throws -> Int {
        let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }
}
