import NIOHTTP1
import XCTest

@testable import GatewayCore

final class HeaderRewritingTests: XCTestCase {
    private static let upstream = UpstreamURL(scheme: .http, host: "10.0.0.5", port: 9000)
    private static let context = ForwardingContext(clientAddress: "192.0.2.7", clientScheme: "https")

    private func pairs(_ headers: HTTPHeaders) -> [String] {
        headers.map { "\($0.name): \($0.value)" }
    }

    // MARK: Hop-by-hop

    func testEachHopByHopHeaderIsRemovedInAnyCase() {
        let hopByHop = [
            "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
            "Proxy-Authenticate", "Proxy-Authorization",
        ]
        for name in hopByHop {
            for spelling in [name, name.lowercased(), name.uppercased()] {
                var headers = HTTPHeaders([("Accept", "text/event-stream"), (spelling, "x"), ("Last-Event-ID", "7")])
                HopByHopHeaders.remove(from: &headers)
                XCTAssertEqual(pairs(headers), ["Accept: text/event-stream", "Last-Event-ID: 7"], spelling)
            }
        }
    }

    func testHeadersNamedByConnectionAreRemoved() {
        var headers = HTTPHeaders([
            ("X-Keep", "1"),
            ("Connection", "close, X-Secret-Hop"),
            ("x-secret-hop", "a"),
            ("connection", " x-other ,,Keep-Alive"),
            ("X-Other", "b"),
            ("X-Keep", "2"),
        ])
        HopByHopHeaders.remove(from: &headers)
        XCTAssertEqual(pairs(headers), ["X-Keep: 1", "X-Keep: 2"])
    }

    func testConnectionCannotRemoveContentLength() {
        var headers = HTTPHeaders([("Content-Length", "5"), ("Connection", "Content-Length")])
        HopByHopHeaders.remove(from: &headers)
        XCTAssertEqual(pairs(headers), ["Content-Length: 5"])
    }

    func testNothingToRemoveLeavesHeadersUntouched() {
        var headers = HTTPHeaders([("B", "1"), ("A", "2"), ("b", "3")])
        HopByHopHeaders.remove(from: &headers)
        XCTAssertEqual(pairs(headers), ["B: 1", "A: 2", "b: 3"])
    }

    // MARK: Request

    func testRequestHeadersLayout() {
        let client = HTTPHeaders([
            ("Host", "gw.example"),
            ("Accept", "text/event-stream"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "gone"),
            ("Last-Event-ID", "42"),
            ("Cookie", "a=b"),
            ("Accept", "application/json"),
        ])
        let headers = RequestHeaderRewriter.upstreamHeaders(
            from: client,
            upstream: Self.upstream,
            context: Self.context
        )
        XCTAssertEqual(
            pairs(headers),
            [
                "host: 10.0.0.5:9000",
                "Accept: text/event-stream",
                "Last-Event-ID: 42",
                "Cookie: a=b",
                "Accept: application/json",
                "x-forwarded-for: 192.0.2.7",
                "x-forwarded-proto: https",
                "x-forwarded-host: gw.example",
            ]
        )
    }

    func testHostUsesUpstreamHostHeader() {
        let cases: [(UpstreamURL, String)] = [
            (UpstreamURL(scheme: .http, host: "api.internal"), "api.internal"),
            (UpstreamURL(scheme: .https, host: "api.internal", port: 443), "api.internal"),
            (UpstreamURL(scheme: .https, host: "api.internal", port: 8443), "api.internal:8443"),
            (UpstreamURL(scheme: .http, host: "::1", port: 9000), "[::1]:9000"),
        ]
        for (upstream, host) in cases {
            let client = HTTPHeaders([("Host", "client.example"), ("HOST", "dup.example")])
            let headers = RequestHeaderRewriter.upstreamHeaders(from: client, upstream: upstream, context: Self.context)
            XCTAssertEqual(headers["host"], [host])
        }
    }

    func testForwardedForIsAppended() {
        let cases: [(client: [(String, String)], address: String?, expected: [String])] = [
            ([], "192.0.2.7", ["192.0.2.7"]),
            ([], "::1", ["::1"]),
            ([], nil, []),
            ([("X-Forwarded-For", "203.0.113.1")], "192.0.2.7", ["203.0.113.1, 192.0.2.7"]),
            ([("x-forwarded-for", "203.0.113.1, 198.51.100.2")], "::1", ["203.0.113.1, 198.51.100.2, ::1"]),
            (
                [("X-Forwarded-For", "203.0.113.1"), ("X-FORWARDED-FOR", "198.51.100.2")], "192.0.2.7",
                ["203.0.113.1, 198.51.100.2, 192.0.2.7"]
            ),
            ([("X-Forwarded-For", "203.0.113.1")], nil, ["203.0.113.1"]),
        ]
        for (client, address, expected) in cases {
            let headers = RequestHeaderRewriter.upstreamHeaders(
                from: HTTPHeaders(client),
                upstream: Self.upstream,
                context: ForwardingContext(clientAddress: address, clientScheme: "http")
            )
            XCTAssertEqual(headers["x-forwarded-for"], expected, "\(client) \(String(describing: address))")
        }
    }

    func testForwardedProtoAndHostAreSetNotTrusted() {
        let spoofed = HTTPHeaders([("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example")])
        let headers = RequestHeaderRewriter.upstreamHeaders(
            from: spoofed,
            upstream: Self.upstream,
            context: ForwardingContext(clientAddress: nil, clientScheme: "http")
        )
        XCTAssertEqual(headers["x-forwarded-proto"], ["http"])
        XCTAssertEqual(headers["x-forwarded-host"], [], "no client Host: no X-Forwarded-Host, and the spoof is gone")

        var withHost = spoofed
        withHost.add(name: "host", value: "gw.example:8443")
        let rewritten = RequestHeaderRewriter.upstreamHeaders(
            from: withHost,
            upstream: Self.upstream,
            context: Self.context
        )
        XCTAssertEqual(rewritten["x-forwarded-proto"], ["https"])
        XCTAssertEqual(rewritten["x-forwarded-host"], ["gw.example:8443"])
    }

    func testRemovingIsCaseInsensitiveAndOnlyTouchesClientHeaders() {
        let client = HTTPHeaders([
            ("X-User-Id", "spoofed"),
            ("x-user-roles", "admin"),
            ("Authorization", "Bearer client"),
            ("X-Keep", "1"),
            ("X-USER-ID", "again"),
        ])
        let headers = RequestHeaderRewriter.upstreamHeaders(
            from: client,
            upstream: Self.upstream,
            context: Self.context,
            removing: ["x-user-id", "X-User-Roles", "AUTHORIZATION", "host"]
        )
        XCTAssertEqual(
            pairs(headers),
            ["host: 10.0.0.5:9000", "X-Keep: 1", "x-forwarded-for: 192.0.2.7", "x-forwarded-proto: https"]
        )
    }

    func testStreamedRequestBodyKeepsChunkedFraming() {
        let client = HTTPHeaders([
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "10"),
        ])
        let headers = RequestHeaderRewriter.upstreamHeaders(
            from: client,
            upstream: Self.upstream,
            context: Self.context
        )
        XCTAssertEqual(headers["transfer-encoding"], ["chunked"])
        XCTAssertEqual(headers["content-length"], [])
        XCTAssertEqual(pairs(headers).last, "transfer-encoding: chunked")

        let gzipChunked = HTTPHeaders([("transfer-encoding", "gzip, Chunked")])
        let rewritten = RequestHeaderRewriter.upstreamHeaders(
            from: gzipChunked,
            upstream: Self.upstream,
            context: Self.context
        )
        XCTAssertEqual(rewritten["transfer-encoding"], ["chunked"])
    }

    func testFixedLengthBodyKeepsContentLength() {
        let client = HTTPHeaders([("Content-Length", "10"), ("Connection", "content-length")])
        let headers = RequestHeaderRewriter.upstreamHeaders(
            from: client,
            upstream: Self.upstream,
            context: Self.context
        )
        XCTAssertEqual(headers["content-length"], ["10"])
        XCTAssertEqual(headers["transfer-encoding"], [])
    }

    func testRequestHopByHopHeadersAreNotForwarded() {
        let client = HTTPHeaders([
            ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("TE", "trailers"), ("Proxy-Authorization", "Basic x"),
            ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"), ("Trailer", "X"),
        ])
        let headers = RequestHeaderRewriter.upstreamHeaders(
            from: client,
            upstream: Self.upstream,
            context: Self.context
        )
        XCTAssertEqual(
            pairs(headers),
            ["host: 10.0.0.5:9000", "x-forwarded-for: 192.0.2.7", "x-forwarded-proto: https"]
        )
    }

    // MARK: Response

    func testIsEventStream() {
        let cases: [(contentType: String?, expected: Bool)] = [
            ("text/event-stream", true),
            ("TEXT/Event-Stream", true),
            ("text/event-stream; charset=utf-8", true),
            ("text/event-stream;charset=utf-8", true),
            (" text/event-stream ; charset=utf-8", true),
            ("\ttext/event-stream\t", true),
            ("text/event-streams", false),
            ("text/event", false),
            ("application/json", false),
            ("text/plain; x=text/event-stream", false),
            ("", false),
            (nil, false),
        ]
        for (contentType, expected) in cases {
            var headers = HTTPHeaders([("X-Other", "1")])
            if let contentType { headers.add(name: "Content-Type", value: contentType) }
            XCTAssertEqual(ResponseHeaderRewriter.isEventStream(headers), expected, String(describing: contentType))
        }
    }

    func testEventStreamResponseHeaders() {
        let upstream = HTTPHeaders([
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "max-age=60"),
            ("Content-Length", "1000"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "1"),
            ("Content-Encoding", "gzip"),
            ("X-Request-Id", "r1"),
            ("cache-control", "private"),
            ("X-Accel-Buffering", "yes"),
        ])
        let headers = ResponseHeaderRewriter.clientHeaders(from: upstream, isEventStream: true)
        XCTAssertEqual(
            pairs(headers),
            [
                "Content-Type: text/event-stream",
                "Content-Encoding: gzip",
                "X-Request-Id: r1",
                "cache-control: no-cache",
                "x-accel-buffering: no",
            ]
        )
    }

    func testOtherResponseHeadersKeepLengthAndCaching() {
        let upstream = HTTPHeaders([
            ("Content-Type", "application/json"),
            ("Cache-Control", "max-age=60"),
            ("Content-Length", "17"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authenticate", "Basic"),
            ("Set-Cookie", "a=b"),
            ("Set-Cookie", "c=d"),
        ])
        let headers = ResponseHeaderRewriter.clientHeaders(from: upstream, isEventStream: false)
        XCTAssertEqual(
            pairs(headers),
            [
                "Content-Type: application/json", "Cache-Control: max-age=60", "Content-Length: 17", "Set-Cookie: a=b",
                "Set-Cookie: c=d",
            ]
        )
    }
}
