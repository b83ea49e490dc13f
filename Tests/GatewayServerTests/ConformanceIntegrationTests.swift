import GatewayCore
import NIOCore
import NIOPosix
import XCTest

/// HTTP conformance of what clients send, over real sockets: requests the gateway must refuse before any upstream
/// sees them.
final class ConformanceIntegrationTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    /// RFC 9112 §3.2: no Host, two Host lines, or an invalid Host on HTTP/1.1 is a 400 with the JSON body, never
    /// forwarded (and never turned into X-Forwarded-Host); the listener goes on serving; HTTP/1.0 may omit Host.
    func testInvalidHostIsRefusedAndHTTP10WithoutHostIsServed() async throws {
        let ok: TestUpstream.Handler = { _, responder in
            responder.head(.ok, [("content-length", "2")])
            responder.body("ok")
            responder.end()
        }
        try await withUpstream(group: group, handler: ok) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let refused = [
                    "GET /events/x HTTP/1.1\r\n\r\n",
                    "GET /events/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
                    "GET /events/x HTTP/1.1\r\nHost: evil example/\\x\r\n\r\n",
                    "GET /events/x HTTP/1.1\r\nHost: a.example:80x\r\n\r\n",
                    "GET /events/x HTTP/1.1\r\nHost: [::1\r\n\r\n",
                ]
                for request in refused {
                    let client = try await gateway.connect(group: group)
                    try await client.send(request)
                    let text = try await client.wait(for: "400 for \(request.debugDescription)") { $0.contains("}") }
                    XCTAssertTrue(text.hasPrefix("HTTP/1.1 400 "), "\(request.debugDescription): \(text)")
                    XCTAssertTrue(text.contains(#""error":"bad_request""#), text)
                    XCTAssertTrue(text.lowercased().contains("content-type: application/json"), text)
                }
                XCTAssertEqual(upstream.requests.count, 0, "no request with a bad Host reaches the upstream")

                let accepted = [
                    ("GET /events/a HTTP/1.1\r\nHost: gateway.test:8080\r\n\r\n", "HTTP/1.1 200 "),
                    ("GET /events/b HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "HTTP/1.1 200 "),
                    ("GET /events/c HTTP/1.0\r\n\r\n", "HTTP/1.0 200 "),
                ]
                for (request, statusLine) in accepted {
                    let client = try await gateway.connect(group: group)
                    try await client.send(request)
                    let text = try await client.wait(for: "200 for \(request.debugDescription)") { $0.hasSuffix("ok") }
                    XCTAssertTrue(text.hasPrefix(statusLine), "\(request.debugDescription): \(text)")
                }
                XCTAssertEqual(upstream.requests.map(\.head.uri), ["/events/a", "/events/b", "/events/c"])
                XCTAssertEqual(upstream.requests.first?.head.headers["x-forwarded-host"], ["gateway.test:8080"])
            }
        }
    }

    /// An invalid chunked body, or a body longer than its Content-Length, while no response has started: 400 with the
    /// JSON body and `Connection: close`; the upstream never sees a complete request (its connection is closed).
    func testMalformedRequestBodyIsRefusedBeforeTheUpstreamSeesAWholeRequest() async throws {
        let silent: TestUpstream.Handler = { _, _ in }
        let chunked = "POST /events/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        let cases: [(name: String, first: String, rest: String)] = [
            ("size zz", chunked, "zz\r\nhello\r\n0\r\n\r\n"),
            ("size -1", chunked, "-1\r\nhello\r\n0\r\n\r\n"),
            ("size overflow", chunked, "ffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
            ("size 5 5", chunked, "5 5\r\nhello\r\n0\r\n\r\n"),
            ("NUL in size line", chunked, "5\u{0}\r\nhello\r\n0\r\n\r\n"),
            ("data without CRLF", chunked, "5\r\nhelloXX0\r\n\r\n"),
            ("bad chunk after a good one", chunked + "5\r\nhello\r\n", "zz\r\n"),
            (
                "body longer than Content-Length",
                "POST /events/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", "hello world"
            ),
        ]
        for (name, first, rest) in cases {
            try await withUpstream(group: group, handler: silent) { upstream in
                try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                    let client = try await gateway.connect(group: group)
                    try await client.send(first)
                    if first != chunked {
                        // Part of the body went upstream already: the rest comes in a read of its own.
                        try await eventually("\(name): the upstream dialled", read: { upstream.connectionsAccepted }) {
                            $0 == 1
                        }
                    }
                    try await client.send(rest)
                    try await client.waitForClose()
                    let text = client.text
                    XCTAssertTrue(text.hasPrefix("HTTP/1.1 400 "), "\(name): \(text)")
                    XCTAssertTrue(text.contains(#""error":"bad_request""#), "\(name): \(text)")
                    XCTAssertTrue(text.lowercased().contains("connection: close"), "\(name): \(text)")
                    try await eventually("\(name): the upstream connection closed", read: {
                        (upstream.connectionsAccepted, upstream.connectionsClosed)
                    }) { $0.0 == $0.1 }
                    XCTAssertEqual(upstream.requests.count, 0, "\(name): the upstream saw a complete request")
                }
            }
        }
    }
}
