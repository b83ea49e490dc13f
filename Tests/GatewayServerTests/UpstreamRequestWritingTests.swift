import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import GatewayServer

/// The upstream handler writes requests itself, in place of NIO's `HTTPRequestEncoder`: the same bytes for every
/// request NIO's encoder accepts, chunk frames from the per-thread table, and no request with a field that cannot be
/// sent.
final class UpstreamRequestWritingTests: XCTestCase {
    /// Everything written for `parts` by a pipeline ending in `handler`, as one string.
    private func wire(_ parts: [HTTPClientRequestPart], through handler: any ChannelHandler) throws -> String {
        let channel = EmbeddedChannel(handler: handler)
        for part in parts { try channel.writeOutbound(part) }
        defer { _ = try? channel.finish() }
        return try channel.outboundText()
    }

    private func request(_ method: HTTPMethod, _ headers: HTTPHeaders, version: HTTPVersion = .http1_1,
                         uri: String = "/events?topic=a") -> HTTPClientRequestPart {
        .head(HTTPRequestHead(version: version, method: method, uri: uri, headers: headers))
    }

    private func body(_ text: String) -> HTTPClientRequestPart { .body(.byteBuffer(ByteBuffer(string: text))) }

    /// Every method NIO treats differently, with and without framing headers, on HTTP/1.1 and 1.0, with bodies
    /// (empty parts, more than the size table holds) and trailers: byte for byte what NIO's encoder writes.
    func testRequestsAreWrittenAsNIOsEncoderWritesThem() throws {
        let large = String(repeating: "y", count: 5000)
        let framings: [HTTPHeaders] = [
            [:],
            ["content-length": "12"],
            ["transfer-encoding": "chunked"],
            ["content-length": "12", "transfer-encoding": "chunked"],
            ["transfer-encoding": "gzip"],
        ]
        var compared = 0
        for method in [HTTPMethod.GET, .HEAD, .DELETE, .OPTIONS, .TRACE, .POST, .PUT, .PATCH, .RAW(value: "PURGE")] {
            for framing in framings {
                for version in [HTTPVersion.http1_1, .http1_0] {
                    for trailers in [nil, HTTPHeaders([("x-sum", "1")])] {
                        var headers: HTTPHeaders = ["host": "upstream", "authorization": "Bearer t"]
                        headers.add(contentsOf: framing)
                        let parts = [
                            request(method, headers, version: version), body("hello "), body(""), body("world!"),
                            body(large), .end(trailers),
                        ]
                        let ours = try wire(parts, through: UpstreamChannelHandler())
                        let nio = try wire(parts, through: HTTPRequestEncoder())
                        XCTAssertEqual(ours, nio, "\(method) \(framing) \(version) \(String(describing: trailers))")
                        compared += 1
                    }
                }
            }
        }
        XCTAssertEqual(compared, 9 * 5 * 2 * 2)
    }

    func testAGetIsOneHeadWithoutFramingAndItsEndWritesNothing() throws {
        let text = try wire([request(.GET, ["host": "upstream", "accept": "text/event-stream"]), .end(nil)],
                            through: UpstreamChannelHandler())
        XCTAssertEqual(text, "GET /events?topic=a HTTP/1.1\r\nhost: upstream\r\naccept: text/event-stream\r\n\r\n")
    }

    func testAnUnframedPostIsChunkedWithTableSizeLines() throws {
        let text = try wire([request(.POST, ["host": "u"]), body("hello"), body(""), .end(nil)],
                            through: UpstreamChannelHandler())
        XCTAssertEqual(text, "POST /events?topic=a HTTP/1.1\r\nhost: u\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    }

    /// A field or target that cannot be sent fails the write and closes the connection: not a byte goes upstream.
    func testARequestThatCannotBeSentIsRefusedAndTheConnectionClosed() throws {
        let requests: [HTTPClientRequestPart] = [
            request(.GET, ["x-sub": "a\r\nx-admin: 1"]),
            request(.GET, ["x-sub": "nul\u{0}"]),
            request(.GET, ["bad name": "v"]),
            request(.GET, ["host": "u"], uri: "/a b"),
            request(.GET, ["host": "u"], uri: "/a\r\nx: 1"),
            request(.GET, ["host": "u"], uri: ""),
        ]
        for bad in requests {
            let channel = EmbeddedChannel(handler: UpstreamChannelHandler())
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
            XCTAssertThrowsError(try channel.writeAndFlush(bad).wait()) {
                XCTAssertEqual($0 as? UpstreamRequestError, .invalidRequest, "\(bad)")
            }
            XCTAssertNil(try channel.readOutbound(as: IOData.self), "nothing was written: \(bad)")
            XCTAssertFalse(channel.isActive, "the connection is closed: \(bad)")
            _ = try? channel.finish()
        }
        // Trailers that cannot be sent end the request the same way, after its body.
        let channel = EmbeddedChannel(handler: UpstreamChannelHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        try channel.writeAndFlush(request(.POST, ["host": "u"])).wait()
        XCTAssertThrowsError(try channel.writeAndFlush(HTTPClientRequestPart.end(["x-a": "1\r\nx-b: 2"])).wait()) {
            XCTAssertEqual($0 as? UpstreamRequestError, .invalidRequest)
        }
        XCTAssertFalse(channel.isActive)
        _ = try? channel.finish()
    }
}
