import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import GatewayServer

/// The HTTP/1 response encoder: NIO's framing rules, chunk frames from the per-thread table.
final class ResponseEncoderTests: XCTestCase {
    /// Everything the encoder wrote for `parts` answering a request with `method`, as one string.
    private func wire(_ method: HTTPMethod?, _ parts: [HTTPServerResponsePart]) throws -> String {
        let encoder = HTTP1ResponseEncoder()
        let channel = EmbeddedChannel(handler: encoder)
        if let method { encoder.recordRequestMethod(method) }
        for part in parts { try channel.writeOutbound(part) }
        defer { _ = try? channel.finish() }
        return try channel.outboundText()
    }

    private func head(_ status: HTTPResponseStatus, _ headers: HTTPHeaders = [:], version: HTTPVersion = .http1_1)
        -> HTTPServerResponsePart
    {
        .head(HTTPResponseHead(version: version, status: status, headers: headers))
    }

    private func body(_ text: String) -> HTTPServerResponsePart {
        .body(.byteBuffer(ByteBuffer(string: text)))
    }

    func testEventsAreChunkedWithTableSizeLines() throws {
        let event = "data: " + String(repeating: "x", count: 300) + "\n\n"
        let text = try wire(.GET, [head(.ok, ["content-type": "text/event-stream"]), body("id: 1\n\n"), body(event), .end(nil)])
        XCTAssertEqual(
            text,
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                + "7\r\nid: 1\n\n\r\n" + "134\r\n\(event)\r\n" + "0\r\n\r\n"
        )
    }

    func testAHeadThatCannotBeSentIsRefusedAndTheRestOfTheResponseDropped() throws {
        let heads: [HTTPServerResponsePart] = [
            head(.ok, ["x-a": "1\r\nset-cookie: evil=1"]),
            head(.ok, ["x-a": "nul\u{0}"]),
            head(.ok, ["bad name": "v"]),
            head(.ok, ["": "v"]),
            head(.custom(code: 200, reasonPhrase: "OK\r\nset-cookie: evil=1")),
        ]
        for bad in heads {
            let encoder = HTTP1ResponseEncoder()
            let channel = EmbeddedChannel(handler: encoder)
            encoder.recordRequestMethod(.GET)
            XCTAssertThrowsError(try channel.writeAndFlush(bad).wait()) {
                XCTAssertEqual($0 as? HTTP1ResponseEncoderError, .invalidHead, "\(bad)")
            }
            XCTAssertThrowsError(try channel.throwIfErrorCaught(), "the connection handler hears of it") {
                XCTAssertEqual($0 as? HTTP1ResponseEncoderError, .invalidHead)
            }
            XCTAssertThrowsError(try channel.writeAndFlush(body("data: x\n\n")).wait())
            XCTAssertThrowsError(try channel.writeAndFlush(HTTPServerResponsePart.end(nil)).wait())
            XCTAssertNil(try channel.readOutbound(as: IOData.self), "nothing of the response was written: \(bad)")
            _ = try? channel.finish()
        }
        // The same fields, valid, go out as they are.
        let text = try wire(.GET, [head(.ok, HTTPHeaders([("x-a", "1\tb c~\u{e9}"), ("x!#$%&'*+-.^_`|~", "v")])), .end(nil)])
        XCTAssertTrue(text.contains("x-a: 1\tb c~\u{e9}\r\nx!#$%&'*+-.^_`|~: v\r\n"), text)
    }

    func testTrailersThatCannotBeSentAreRefused() throws {
        let encoder = HTTP1ResponseEncoder()
        let channel = EmbeddedChannel(handler: encoder)
        encoder.recordRequestMethod(.GET)
        try channel.writeAndFlush(head(.ok)).wait()
        XCTAssertThrowsError(try channel.writeAndFlush(HTTPServerResponsePart.end(["x-t": "a\nb"])).wait())
        XCTAssertThrowsError(try channel.throwIfErrorCaught())
        _ = try? channel.finish()
    }

    func testEverySizeLineIsTheHexLength() throws {
        for size in [1, 9, 10, 15, 16, 255, 256, 4095, 4096, 70_000] {
            let text = try wire(.GET, [head(.ok), body(String(repeating: "a", count: size))])
            let sizeLine = text.components(separatedBy: "\r\n\r\n")[1].components(separatedBy: "\r\n")[0]
            XCTAssertEqual(sizeLine, String(size, radix: 16), "size \(size)")
        }
    }

    func testEmptyBodyPartsAreNotFramed() throws {
        // A zero-length chunk would end the body.
        let text = try wire(.GET, [head(.ok), body(""), body("a"), .end(nil)])
        XCTAssertTrue(text.hasSuffix("\r\n\r\n1\r\na\r\n0\r\n\r\n"), text)
    }

    func testContentLengthBodiesAreWrittenAsTheyAre() throws {
        let text = try wire(.GET, [head(.ok, ["content-length": "5", "transfer-encoding": "chunked"]), body("hello"), .end(nil)])
        XCTAssertEqual(text, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
    }

    func testHeadResponsesKeepTheirHeadersButNoBody() throws {
        let encoder = HTTP1ResponseEncoder()
        let channel = EmbeddedChannel(handler: encoder)
        encoder.recordRequestMethod(.HEAD)
        try channel.writeOutbound(head(.ok, ["content-type": "text/event-stream"]))
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.write(body("nope"), promise: promise)
        XCTAssertThrowsError(try promise.futureResult.wait())
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        let written = try XCTUnwrap(channel.readOutbound(as: IOData.self))
        guard case .byteBuffer(let bytes) = written else { return XCTFail("file region") }
        XCTAssertEqual(
            String(buffer: bytes),
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        // No body and no last chunk (an empty write may carry the end's promise, in order).
        while let more = try channel.readOutbound(as: IOData.self) {
            XCTAssertEqual(more.readableBytes, 0, "\(more)")
        }
        // The next response on the connection (a GET) is framed normally again.
        encoder.recordRequestMethod(.GET)
        try channel.writeOutbound(head(.ok))
        try channel.writeOutbound(body("a"))
        XCTAssertNotNil(try channel.readOutbound(as: IOData.self))  // the head
        guard case .byteBuffer(let sizeLine)? = try channel.readOutbound(as: IOData.self) else {
            return XCTFail("no size line")
        }
        XCTAssertEqual(String(buffer: sizeLine), "1\r\n")
        _ = try channel.finish()
    }

    func testStatusesWithoutBodyLoseTheirFramingHeaders() throws {
        for status in [HTTPResponseStatus.noContent, .notModified] {
            let text = try wire(.GET, [head(status, ["content-length": "3", "transfer-encoding": "chunked"]), .end(nil)])
            XCTAssertEqual(text, "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n\r\n")
        }
        // A 100 Continue does not use up the request's method: the final head after it is still a HEAD answer.
        let text = try wire(.HEAD, [head(.continue), head(.ok), .end(nil)])
        XCTAssertEqual(text, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    }

    func testHTTP10ResponsesAreCloseDelimited() throws {
        let text = try wire(.GET, [head(.ok, ["connection": "close"], version: .http1_0), body("abc"), .end(nil)])
        XCTAssertEqual(text, "HTTP/1.0 200 OK\r\nconnection: close\r\n\r\nabc")
    }

    func testTrailersEndTheChunkedBody() throws {
        let text = try wire(.GET, [head(.ok), body("a"), .end(["x-checksum": "1"])])
        XCTAssertTrue(text.hasSuffix("1\r\na\r\n0\r\nx-checksum: 1\r\n\r\n"), text)
    }
}
