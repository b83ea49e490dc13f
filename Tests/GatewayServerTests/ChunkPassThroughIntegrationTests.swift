import GatewayCore
import GatewayServer
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

/// An upstream's chunked body reaches an HTTP/1.1 client with its framing as it came (one write per upstream read),
/// minus the last chunk and trailers; other clients get the data framed anew. Upstreams here write raw bytes, so
/// size lines split across reads, chunk extensions, trailers and broken framing are the test's to choose.
final class ChunkPassThroughIntegrationTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    static let sseHead = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"

    /// One chunk: hex size, optional extension, CRLF, data, CRLF.
    static func chunk(_ data: String, extension ext: String = "") -> String {
        String(data.utf8.count, radix: 16) + ext + "\r\n" + data + "\r\n"
    }

    /// The bytes after the response head.
    static func body(_ raw: String) -> String {
        guard let end = raw.range(of: "\r\n\r\n") else { return "" }
        return String(raw[end.upperBound...])
    }

    /// Runs `body` with an upstream answering with `handler`, a gateway in front of it (its route changed by
    /// `configureRoute`), and a client of the gateway; all are stopped however `body` ends.
    private func withRelay(
        upstream handler: @escaping TestUpstream.Handler,
        configureRoute: (inout RouteConfiguration) -> Void = { _ in },
        _ body: (TestUpstream, GatewayHarness, RawClient) async throws -> Void
    ) async throws {
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withGateway(routes: [route(upstream: upstream, configure: configureRoute)], group: group) {
                gateway in
                try await body(upstream, gateway, try await gateway.connect(group: group))
            }
        }
    }

    func testUpstreamChunksReachTheClientAsTheyCameWithoutTheLastChunkAndTrailers() async throws {
        let first = Self.chunk("id: 1\ndata: one\n\n", extension: ";source=test")
        let second = Self.chunk("id: 2\ndata: two\n\nid: 3\ndata: three\n\n")
        let splitEvent = Self.chunk("id: 4\ndata: fo") + Self.chunk("ur\n\n")
        let sizeLineSplit = Self.chunk("id: 5\ndata: five\n\n")
        let parts = [
            Self.sseHead + first,
            second,
            splitEvent,
            String(sizeLineSplit.prefix(1)),  // half a size line: held back until the rest arrives
            String(sizeLineSplit.dropFirst()),
            "0\r\nx-upstream-trailer: secret\r\n\r\n",
        ]
        try await withRelay(upstream: { _, responder in responder.rawParts(parts) }) { _, _, client in
            try await client.get("/events/feed")
            let text = try await client.wait(for: "the end of the response") { $0.hasSuffix("0\r\n\r\n") }

            XCTAssertTrue(text.lowercased().contains("transfer-encoding: chunked\r\n"), text)
            XCTAssertEqual(
                Self.body(text),
                first + second + splitEvent + sizeLineSplit + "0\r\n\r\n",
                "the upstream's chunks byte for byte, then the gateway's own last chunk"
            )
            XCTAssertFalse(text.contains("secret"), "upstream trailers are not passed on")
            XCTAssertEqual(
                RawClient.dechunk(text),
                "id: 1\ndata: one\n\nid: 2\ndata: two\n\nid: 3\ndata: three\n\n"
                    + "id: 4\ndata: four\n\nid: 5\ndata: five\n\n"
            )
        }
    }

    func testUpstreamConnectionIsReusedAfterAPassedThroughChunkedResponseWithTrailers() async throws {
        let handler: TestUpstream.Handler = { request, responder in
            responder.sseHead()
            responder.body("data: \(request.head.uri.suffix(3))\n\n")
            responder.end(trailers: ["x-upstream-trailer": "secret"])
        }
        try await withRelay(upstream: handler) { upstream, _, client in
            try await client.get("/events/one")
            try await client.wait(for: "the first response") { $0.hasSuffix("0\r\n\r\n") }
            try await client.get("/events/two")
            let text = try await client.wait(for: "the second response") {
                $0.components(separatedBy: "0\r\n\r\n").count == 3
            }
            let responses = text.components(separatedBy: "HTTP/1.1 200 OK\r\n").filter { !$0.isEmpty }
            XCTAssertEqual(responses.map { Self.body("HTTP/1.1 200 OK\r\n" + $0) }, [
                Self.chunk("data: one\n\n") + "0\r\n\r\n", Self.chunk("data: two\n\n") + "0\r\n\r\n",
            ])
            XCTAssertFalse(text.contains("secret"), "upstream trailers are not passed on")
            XCTAssertEqual(
                upstream.connectionsAccepted, 1, "the response's end was found: the connection went back to the pool"
            )
        }
    }

    func testHTTP10ClientGetsTheDataWithoutChunkFraming() async throws {
        let parts = [Self.sseHead + Self.chunk("data: one\n\n"), Self.chunk("data: two\n\n") + "0\r\n\r\n"]
        try await withRelay(upstream: { _, responder in responder.rawParts(parts) }) { _, _, client in
            try await client.send(
                "GET /events/feed HTTP/1.0\r\nHost: gateway.test\r\nAccept: text/event-stream\r\n\r\n"
            )
            try await client.waitForClose()
            XCTAssertTrue(client.text.hasPrefix("HTTP/1.0 200"), client.text)
            XCTAssertFalse(client.text.lowercased().contains("transfer-encoding"), client.text)
            XCTAssertEqual(Self.body(client.text), "data: one\n\ndata: two\n\n", "close-delimited, framing removed")
        }
    }

    func testUpstreamCloseInsideAChunkStillEndsTheClientsChunkedBodyValidly() async throws {
        // The second chunk promises 20 bytes and delivers 9 ("data: par") before the upstream closes.
        let parts = [Self.sseHead + Self.chunk("data: one\n\n"), "14\r\ndata: par"]
        let handler: TestUpstream.Handler = { _, responder in
            responder.rawParts(parts)
            responder.channel.eventLoop.scheduleTask(in: .milliseconds(150)) { responder.close() }
        }
        try await withRelay(upstream: handler) { _, _, client in
            try await client.get("/events/feed")
            let text = try await client.wait(for: "the end of the response") { $0.hasSuffix("0\r\n\r\n") }
            // The owed 11 bytes are spaces: the cut line stays unterminated, so an EventSource discards the partial
            // event.
            XCTAssertEqual(
                Self.body(text),
                Self.chunk("data: one\n\n") + "14\r\ndata: par" + String(repeating: " ", count: 11) + "\r\n0\r\n\r\n"
            )
        }
    }

    func testMalformedUpstreamFramingIsNeverPassedOn() async throws {
        let parts = [Self.sseHead + Self.chunk("data: one\n\n"), "zz\r\nnot a chunk\r\n"]
        try await withRelay(upstream: { _, responder in responder.rawParts(parts) }) { _, _, client in
            try await client.get("/events/feed")
            let text = try await client.wait(for: "the end of the response") { $0.hasSuffix("0\r\n\r\n") }
            XCTAssertEqual(Self.body(text), Self.chunk("data: one\n\n") + "0\r\n\r\n")
        }
    }

    func testMalformedUpstreamHeadsGet502AndNoRetry() async throws {
        let heads = [
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",  // smuggling-prone
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-folded: a\r\n b\r\n\r\n",  // obsolete folding
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
            "HTTP/2.0 200 OK\r\n\r\n",
        ]
        for head in heads {
            try await withRelay(upstream: { _, responder in responder.raw(head) }) { upstream, gateway, client in
                try await client.get("/events/feed")
                let text = try await client.wait(for: "a 502") { $0.contains("\r\n\r\n{") && $0.hasSuffix("}") }
                XCTAssertTrue(text.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(head): \(text)")
                XCTAssertTrue(text.contains("upstream sent a malformed response"), text)
                XCTAssertEqual(upstream.requests.count, 1, "no retry of a malformed response")
                let samples = OperationsIntegrationTests.samples(gateway.gateway.metricsExposition())
                XCTAssertEqual(samples[#"sse_gateway_upstream_errors_total{route="events",kind="protocol"}"#], 1)
            }
        }
    }

    func testHeartbeatWaitsForTheEndOfAnOpenChunk() async throws {
        // An event boundary inside a chunk whose data continues later: a heartbeat there would break the framing.
        let data = ("data: one\n\n", "data: two, after a pause\n\n")
        let size = String(data.0.utf8.count + data.1.utf8.count, radix: 16)
        let parts = [size + "\r\n" + data.0, data.1 + "\r\n"]
        let handler: TestUpstream.Handler = { _, responder in
            responder.raw(Self.sseHead)
            responder.channel.eventLoop.scheduleTask(in: .milliseconds(20)) { responder.raw(parts[0]) }
            responder.channel.eventLoop.scheduleTask(in: .milliseconds(700)) { responder.raw(parts[1]) }
        }
        try await withRelay(upstream: handler, configureRoute: { $0.heartbeat = .milliseconds(100) }) { _, _, client in
            try await client.get("/events/feed")
            let text = try await client.wait(for: "the second part and a heartbeat after it") {
                $0.contains("after a pause") && $0.hasSuffix(": keep-alive\n\n\r\n")
            }
            XCTAssertTrue(
                Self.body(text).hasPrefix(parts[0] + parts[1] + "e\r\n: keep-alive\n\n\r\n"),
                "no heartbeat inside the open chunk: \(Self.body(text))"
            )
        }
    }
}
