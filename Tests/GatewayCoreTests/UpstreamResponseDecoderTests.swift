import NIOCore
import NIOHTTP1
import XCTest

@testable import GatewayCore

/// The upstream response decoder, driven as the proxy drives it: `requestSent`, then `next` on every read until
/// `.needMore`, `passChunkedWire()` right after a chunked head when passing the wire through, `endOfInput()` at EOF.
final class UpstreamResponseDecoderTests: XCTestCase {
    /// One decoded response.
    private struct Response: CustomStringConvertible {
        var head: HTTPResponseHead
        var framing: UpstreamResponseDecoder.BodyFraming
        var body: [UInt8] = []
        var wire: [UInt8] = []
        var ended = false

        var fields: [String] { head.headers.map { "\($0.name): \($0.value)" } }

        var description: String {
            "\(head.version) \(head.status.code) \(framing) body \(show(body)) wire \(show(wire)) ended \(ended)"
        }
    }

    private struct UnexpectedOutcome: Error {}

    private struct Outcome {
        var responses: [Response] = []
        /// Event kinds in order ("head", "body", "wire", "end").
        var trace: [String] = []
        var decoder: UpstreamResponseDecoder
    }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Decodes `reads` for requests with `methods` (the next request is sent as soon as a response ends).
    private func decode(
        _ reads: [[UInt8]],
        methods: [HTTPMethod] = [.GET],
        passWire: Bool = false,
        maxHeadBytes: Int = 65536,
        file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> Outcome {
        var outcome = Outcome(decoder: UpstreamResponseDecoder(maxHeadBytes: maxHeadBytes))
        var methods = methods[...]
        if let method = methods.popFirst() { outcome.decoder.requestSent(method: method) }
        for read in reads {
            var buffer = ByteBuffer(bytes: read)
            reading: while true {
                let event = try outcome.decoder.next(&buffer)
                switch event {
                case .head(let head, let framing):
                    outcome.trace.append("head")
                    XCTAssertFalse(outcome.responses.last.map { !$0.ended } ?? false, "a head while a body is open", file: file, line: line)
                    outcome.responses.append(Response(head: head, framing: framing))
                    XCTAssertFalse(outcome.decoder.isIdle, file: file, line: line)
                    if passWire, framing == .chunked { outcome.decoder.passChunkedWire() }
                case .body(let data):
                    outcome.trace.append("body")
                    XCTAssertGreaterThan(data.readableBytes, 0, "no empty body events", file: file, line: line)
                    XCTAssertFalse(outcome.responses.isEmpty, file: file, line: line)
                    outcome.responses[outcome.responses.count - 1].body += data.bytes
                case .wire(let data):
                    outcome.trace.append("wire")
                    XCTAssertTrue(passWire, file: file, line: line)
                    XCTAssertGreaterThan(data.readableBytes, 0, "no empty wire events", file: file, line: line)
                    outcome.responses[outcome.responses.count - 1].wire += data.bytes
                case .end:
                    outcome.trace.append("end")
                    XCTAssertFalse(outcome.responses.isEmpty, file: file, line: line)
                    outcome.responses[outcome.responses.count - 1].ended = true
                    XCTAssertTrue(outcome.decoder.isIdle, "idle after the end", file: file, line: line)
                    if let method = methods.popFirst() { outcome.decoder.requestSent(method: method) }
                case .needMore:
                    XCTAssertEqual(buffer.readableBytes, 0, ".needMore only once the read is consumed", file: file, line: line)
                    break reading
                }
            }
        }
        return outcome
    }

    private func decodeOne(_ text: String, method: HTTPMethod = .GET, passWire: Bool = false) throws -> Response {
        let outcome = try decode([bytes(text)], methods: [method], passWire: passWire)
        guard let response = outcome.responses.first, outcome.responses.count == 1 else {
            XCTFail("expected exactly one response, got \(outcome.responses)")
            throw UnexpectedOutcome()
        }
        return response
    }

    private func assertRefused(
        _ text: String,
        _ expected: UpstreamResponseError,
        method: HTTPMethod = .GET,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try decode([bytes(text)], methods: [method]), text.debugDescription, file: file, line: line) {
            XCTAssertEqual($0 as? UpstreamResponseError, expected, text.debugDescription, file: file, line: line)
        }
        // Byte by byte: the same error.
        XCTAssertThrowsError(try decode(bytes(text).map { [$0] }, methods: [method]), text.debugDescription, file: file, line: line) {
            XCTAssertEqual($0 as? UpstreamResponseError, expected, "\(text.debugDescription) byte by byte", file: file, line: line)
        }
    }

    private func framing(of fields: String, status: String = "200 OK", method: HTTPMethod = .GET) throws
        -> UpstreamResponseDecoder.BodyFraming
    {
        var decoder = UpstreamResponseDecoder()
        decoder.requestSent(method: method)
        var buffer = ByteBuffer(string: "HTTP/1.1 \(status)\r\n\(fields)\r\n")
        guard case .head(_, let framing) = try decoder.next(&buffer) else {
            XCTFail("no head for \(fields.debugDescription)")
            return .none
        }
        return framing
    }

    private func assertFramingRefused(
        _ fields: String,
        _ expected: UpstreamResponseError,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try framing(of: fields), fields.debugDescription, file: file, line: line) {
            XCTAssertEqual($0 as? UpstreamResponseError, expected, fields.debugDescription, file: file, line: line)
        }
    }

    // MARK: Status line

    func testStatusLineVariants() throws {
        let cases: [(line: String, minor: Int, status: HTTPResponseStatus)] = [
            ("HTTP/1.1 200 OK", 1, .ok),
            ("HTTP/1.0 200 OK", 0, .ok),
            ("HTTP/1.1 404 Not Found", 1, .notFound),
            ("HTTP/1.1 299 Custom Thing", 1, .custom(code: 299, reasonPhrase: "Custom Thing")),
            ("HTTP/1.1 299", 1, .custom(code: 299, reasonPhrase: "")),
            ("HTTP/1.1 299 ", 1, .custom(code: 299, reasonPhrase: "")),
            ("HTTP/1.0 599 Reason: with colon,\ttab and caf\u{E9}", 0, .custom(code: 599, reasonPhrase: "Reason: with colon,\ttab and caf\u{E9}")),
            ("HTTP/1.1 200", 1, .ok),
        ]
        for (statusLine, minor, status) in cases {
            let response = try decodeOne("\(statusLine)\r\nContent-Length: 0\r\n\r\n")
            XCTAssertEqual(response.head.version, HTTPVersion(major: 1, minor: minor), statusLine)
            XCTAssertEqual(response.head.status, status, statusLine)
            XCTAssertEqual(response.head.status.code, status.code, statusLine)
            XCTAssertEqual(response.head.status.reasonPhrase, status.reasonPhrase, statusLine)
            XCTAssertTrue(response.ended, statusLine)
        }
    }

    func testBadVersions() {
        for line in ["HTTP/2.0 200 OK", "HTTP/2 200 OK", "HTTP/0.9 200 OK", "HTTPS/1.1 200 OK"] {
            XCTAssertThrowsError(try decode([bytes("\(line)\r\n\r\n")]), line) { error in
                let known: [UpstreamResponseError] = [.invalidStatusLine, .unsupportedVersion]
                XCTAssertTrue(known.contains(error as? UpstreamResponseError ?? .headTooLarge), "\(line): \(error)")
            }
        }
        assertRefused("HTTP/1.2 200 OK\r\n\r\n", .unsupportedVersion)
        assertRefused("HTTP/1.9 200 OK\r\n\r\n", .unsupportedVersion)
    }

    func testBadStatusLines() {
        let lines = [
            "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 abc OK", "HTTP/1.1 099 Low", "HTTP/1.1 -20 OK",
            "http/1.1 200 OK", "HTTP/1.1  200 OK", "HTTP/1.1\t200 OK", " HTTP/1.1 200 OK", "HTTP/1.1 200\tOK",
            "HTTP/1.1 200 O\u{01}K", "HTTP/1.1 200 OK\u{7F}", "HTTP/1.1", "HTTP/1.1 2", "", "Content-Length: 0",
            "HTTP/1.1 20x OK",
        ]
        for line in lines {
            assertRefused("\(line)\r\nContent-Length: 0\r\n\r\n", .invalidStatusLine)
        }
    }

    // MARK: Fields

    func testFieldsWithOptionalWhitespace() throws {
        let response = try decodeOne(
            "HTTP/1.1 200 OK\r\n"
                + "X-A:   spaced value \t \r\n"
                + "X-B:\tv\r\n"
                + "X-C:\r\n"
                + "X-D: a\t b\r\n"
                + "x-lower:v\r\n"
                + "Set-Cookie: a=1\r\n"
                + "Set-Cookie: b=2\r\n"
                + "X-Utf8: caf\u{E9}\r\n"
                + "X-Colon: a:b: c\r\n"
                + "!#$%&'*+-.^_`|~09az: token\r\n"
                + "Content-Length: 0\r\n\r\n"
        )
        XCTAssertEqual(
            response.fields,
            [
                "X-A: spaced value", "X-B: v", "X-C: ", "X-D: a\t b", "x-lower: v", "Set-Cookie: a=1", "Set-Cookie: b=2",
                "X-Utf8: caf\u{E9}", "X-Colon: a:b: c", "!#$%&'*+-.^_`|~09az: token", "Content-Length: 0",
            ]
        )
        XCTAssertEqual(response.head.headers["x-a"], ["spaced value"])
    }

    func testObsoleteLineFoldingIsRefused() {
        assertRefused("HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", .invalidField)
        assertRefused("HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\nContent-Length: 0\r\n\r\n", .invalidField)
        assertRefused("HTTP/1.1 200 OK\r\n Content-Length: 0\r\n\r\n", .invalidField)
    }

    func testMalformedFieldNamesAreRefused() {
        for field in ["X : a", ": a", "X a", "X@: a", "X\u{01}: a", "X\"Y: a", "X(: a", "caf\u{E9}: a", "\tX: a"] {
            assertRefused("HTTP/1.1 200 OK\r\n\(field)\r\nContent-Length: 0\r\n\r\n", .invalidField)
        }
    }

    func testControlCharactersInFieldValuesAreRefused() {
        for value in ["a\u{01}b", "a\u{7F}", "\u{00}", "a\rb", "\u{1B}[0m", "a\u{0B}b"] {
            assertRefused("HTTP/1.1 200 OK\r\nX: \(value)\r\nContent-Length: 0\r\n\r\n", .invalidField)
        }
    }

    // MARK: Head across reads, line endings, size

    func testHeadSplitAtEveryPosition() throws {
        let heads = [
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Long:  v a l \r\nContent-Length: 7\r\n\r\n",
            "HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 7\n\n",
            "HTTP/1.0 200 OK\r\nX: y\nContent-Length: 7\r\n\n",
            "HTTP/1.1 299\r\nContent-Length: 7\r\n\r\n",
        ]
        for head in heads {
            let text = head + "payload"
            let whole = try decodeOne(text)
            XCTAssertEqual(whole.body, bytes("payload"), head.debugDescription)
            XCTAssertTrue(whole.ended)
            XCTAssertEqual(whole.framing, .contentLength(7))
            XCTAssertTrue(whole.fields.contains("Content-Length: 7"))
            for split in 0...text.utf8.count {
                let outcome = try decode(splitReads(bytes(text), at: [split]))
                XCTAssertEqual(outcome.responses.count, 1, "\(head.debugDescription) split at \(split)")
                guard let response = outcome.responses.first else { continue }
                XCTAssertEqual(response.head.version, whole.head.version, "split at \(split)")
                XCTAssertEqual(response.head.status, whole.head.status, "split at \(split)")
                XCTAssertEqual(response.fields, whole.fields, "\(head.debugDescription) split at \(split)")
                XCTAssertEqual(response.framing, whole.framing, "split at \(split)")
                XCTAssertEqual(response.body, bytes("payload"), "split at \(split)")
                XCTAssertTrue(response.ended, "split at \(split)")
                XCTAssertEqual(outcome.trace.first, "head")
                XCTAssertEqual(outcome.trace.last, "end")
            }
        }
    }

    func testHeadSplitAtEveryPairOfPositions() throws {
        let text = "HTTP/1.1 200 OK\r\nA: b\r\n\r\n"
        for first in 0...text.utf8.count {
            for second in first...text.utf8.count {
                let outcome = try decode(splitReads(bytes(text), at: [first, second]))
                XCTAssertEqual(outcome.responses.map(\.fields), [["A: b"]], "split at \(first), \(second)")
                XCTAssertEqual(outcome.responses.first?.framing, .untilClose)
            }
        }
    }

    func testHeadByteByByte() throws {
        let text = "HTTP/1.1 200 OK\r\nA: b\r\n\r\n"
        var decoder = UpstreamResponseDecoder()
        decoder.requestSent(method: .GET)
        for (offset, byte) in bytes(text).enumerated() {
            var buffer = ByteBuffer(bytes: [byte])
            let event = try decoder.next(&buffer)
            if offset < text.utf8.count - 1 {
                guard case .needMore = event else { return XCTFail("event at \(offset) before the head ended: \(event)") }
            } else {
                guard case .head(let head, .untilClose) = event else { return XCTFail("no head at the last byte: \(event)") }
                XCTAssertEqual(head.headers["A"], ["b"])
            }
            XCTAssertEqual(buffer.readableBytes, 0)
        }
    }

    func testHeadTooLarge() throws {
        let limit = 64
        let exact = "HTTP/1.1 200 OK\r\nX: " + String(repeating: "v", count: limit - 17 - 3 - 4) + "\r\n\r\n"
        XCTAssertEqual(exact.utf8.count, limit)
        let over = "HTTP/1.1 200 OK\r\nX: " + String(repeating: "v", count: limit - 17 - 3 - 4 + 1) + "\r\n\r\n"
        for split in 0...exact.utf8.count {
            let outcome = try decode(splitReads(bytes(exact + "body"), at: [split]), maxHeadBytes: limit)
            XCTAssertEqual(outcome.responses.first?.body, bytes("body"), "exactly the limit is accepted, split at \(split)")
        }
        for split in 0...over.utf8.count {
            XCTAssertThrowsError(try decode(splitReads(bytes(over + "body"), at: [split]), maxHeadBytes: limit)) {
                XCTAssertEqual($0 as? UpstreamResponseError, .headTooLarge, "one byte over, split at \(split)")
            }
        }
        // A head that never ends is refused once it passes the limit, without waiting for the blank line.
        let endless = bytes("HTTP/1.1 200 OK\r\nX: " + String(repeating: "v", count: 200))
        XCTAssertThrowsError(try decode([endless], maxHeadBytes: limit)) {
            XCTAssertEqual($0 as? UpstreamResponseError, .headTooLarge)
        }
        XCTAssertThrowsError(try decode(endless.map { [$0] }, maxHeadBytes: limit)) {
            XCTAssertEqual($0 as? UpstreamResponseError, .headTooLarge)
        }
        // The limit applies to each head: an interim head does not count against the final one.
        let interim = "HTTP/1.1 100 Continue\r\n\r\n"
        let outcome = try decode([bytes(interim + exact + "body")], maxHeadBytes: limit)
        XCTAssertEqual(outcome.responses.first?.body, bytes("body"))
    }

    // MARK: Informational responses

    func testInformationalResponsesAreSkipped() throws {
        let text = "HTTP/1.1 100 Continue\r\n\r\n"
            + "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            + "HTTP/1.1 102 Processing\n\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        for split in 0...text.utf8.count {
            let outcome = try decode(splitReads(bytes(text), at: [split]))
            XCTAssertEqual(outcome.responses.count, 1, "split at \(split)")
            XCTAssertEqual(outcome.responses.first?.head.status, .ok, "split at \(split)")
            XCTAssertEqual(outcome.responses.first?.fields, ["Content-Length: 5"], "split at \(split)")
            XCTAssertEqual(outcome.responses.first?.body, bytes("hello"), "split at \(split)")
            XCTAssertEqual(outcome.trace.first, "head")
            XCTAssertEqual(outcome.trace.last, "end")
        }
    }

    func testSwitchingProtocolsIsRefused() {
        assertRefused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", .switchingProtocols)
        assertRefused("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n", .switchingProtocols)
    }

    // MARK: Framing

    func testResponsesWithoutBody() throws {
        // HEAD: whatever the fields say, no body.
        for fields in ["Content-Length: 10\r\n", "Transfer-Encoding: chunked\r\n", ""] {
            let outcome = try decode([bytes("HTTP/1.1 200 OK\r\n\(fields)\r\n")], methods: [.HEAD])
            XCTAssertEqual(outcome.responses.first?.framing, UpstreamResponseDecoder.BodyFraming.none, fields)
            XCTAssertEqual(outcome.trace, ["head", "end"], fields)
        }
        for status in ["204 No Content", "304 Not Modified"] {
            for fields in ["Content-Length: 10\r\n", "Transfer-Encoding: chunked\r\n", ""] {
                let outcome = try decode([bytes("HTTP/1.1 \(status)\r\n\(fields)\r\n")])
                XCTAssertEqual(outcome.responses.first?.framing, UpstreamResponseDecoder.BodyFraming.none, status + fields)
                XCTAssertEqual(outcome.trace, ["head", "end"], status + fields)
            }
            // Bytes after a body-less response are not a body: with no request outstanding they are refused.
            XCTAssertThrowsError(try decode([bytes("HTTP/1.1 \(status)\r\nContent-Length: 3\r\n\r\nabc")])) {
                XCTAssertEqual($0 as? UpstreamResponseError, .unexpectedBytes)
            }
        }
        // HEAD then GET on the same connection, in one read.
        let outcome = try decode(
            [bytes("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")],
            methods: [.HEAD, .GET]
        )
        XCTAssertEqual(outcome.responses.map(\.body), [[], bytes("ok")])
        XCTAssertEqual(outcome.trace, ["head", "end", "head", "body", "end"])
    }

    func testContentLength() throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"
        let whole = try decode([bytes(text)])
        XCTAssertEqual(whole.responses.first?.framing, .contentLength(11))
        XCTAssertEqual(whole.responses.first?.body, bytes("hello world"))
        XCTAssertEqual(whole.trace, ["head", "body", "end"])
        for first in 0...text.utf8.count {
            for second in first...text.utf8.count {
                let outcome = try decode(splitReads(bytes(text), at: [first, second]))
                XCTAssertEqual(outcome.responses.first?.body, bytes("hello world"), "split at \(first), \(second)")
                XCTAssertEqual(outcome.responses.first?.ended, true, "split at \(first), \(second)")
            }
        }
        // The body ends at exactly 11 bytes: the rest belongs to the next response.
        let twice = try decode([bytes(text + text)], methods: [.GET, .GET])
        XCTAssertEqual(twice.responses.map(\.body), [bytes("hello world"), bytes("hello world")])
    }

    func testZeroContentLength() throws {
        let outcome = try decode([bytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")])
        XCTAssertEqual(outcome.responses.first?.framing, .contentLength(0))
        XCTAssertEqual(outcome.trace, ["head", "end"])
    }

    func testRepeatedEqualContentLengthsAreAccepted() throws {
        XCTAssertEqual(try framing(of: "Content-Length: 5\r\nContent-Length: 5\r\n"), .contentLength(5))
        XCTAssertEqual(try framing(of: "Content-Length: 5, 5\r\n"), .contentLength(5))
        XCTAssertEqual(try framing(of: "content-length:5\r\nCONTENT-LENGTH:  5 \r\n"), .contentLength(5))
        XCTAssertEqual(try framing(of: "Content-Length: 007\r\n"), .contentLength(7))
        XCTAssertEqual(try framing(of: "Content-Length: 999999999999999999\r\n"), .contentLength(999_999_999_999_999_999))
    }

    func testDifferingContentLengthsAreRefused() {
        assertFramingRefused("Content-Length: 5\r\nContent-Length: 6\r\n", .invalidContentLength)
        assertFramingRefused("Content-Length: 5, 6\r\n", .invalidContentLength)
        assertFramingRefused("Content-Length: 5\r\nContent-Length: 05\r\n", .invalidContentLength)
    }

    func testNonDigitContentLengthIsRefused() {
        for value in ["5a", "-5", "+5", "0x5", "5 5", "1e3", "5.0", "five", "\u{FF15}", "1000000000000000000"] {
            assertFramingRefused("Content-Length: \(value)\r\n", .invalidContentLength)
        }
    }

    /// RFC 9112 §6.3 (5): an invalid Content-Length (here: empty) is an unrecoverable error for a proxy (502), not a
    /// body read until close. The decoder's `!first.isEmpty` check shows the intent.
    func testEmptyContentLengthIsRefused() {
        assertFramingRefused("Content-Length:\r\n", .invalidContentLength)
        assertFramingRefused("Content-Length: 5\r\nContent-Length: \r\n", .invalidContentLength)
        assertFramingRefused("Content-Length: 5,\r\n", .invalidContentLength)
    }

    /// RFC 9112 §6.3 (3): a Transfer-Encoding field next to Content-Length is refused, even when its value is empty.
    func testEmptyTransferEncodingWithContentLengthIsRefused() {
        assertFramingRefused("Transfer-Encoding:\r\nContent-Length: 5\r\n", .conflictingFraming)
    }

    func testTransferEncodingWithContentLengthIsRefused() {
        assertFramingRefused("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", .conflictingFraming)
        assertFramingRefused("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", .conflictingFraming)
        assertFramingRefused("Transfer-Encoding: gzip\r\nContent-Length: 5\r\n", .conflictingFraming)
    }

    func testTransferCodings() throws {
        XCTAssertEqual(try framing(of: "Transfer-Encoding: chunked\r\n"), .chunked)
        XCTAssertEqual(try framing(of: "Transfer-Encoding: Chunked\r\n"), .chunked)
        XCTAssertEqual(try framing(of: "Transfer-Encoding: gzip, chunked\r\n"), .chunked)
        XCTAssertEqual(try framing(of: "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), .chunked)
        XCTAssertEqual(try framing(of: "Transfer-Encoding: gzip\r\n"), .untilClose)
        XCTAssertEqual(try framing(of: "Transfer-Encoding: identity\r\n"), .untilClose)
        XCTAssertEqual(try framing(of: ""), .untilClose)
        XCTAssertEqual(try framing(of: "X: y\r\n", status: "200 OK"), .untilClose)
    }

    /// RFC 9112 §6.3 (4): chunked present but not the final coding: read until the connection closes.
    func testChunkedNotLastReadsUntilClose() throws {
        XCTAssertEqual(try framing(of: "Transfer-Encoding: chunked, gzip\r\n"), .untilClose)
        XCTAssertEqual(try framing(of: "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"), .untilClose)
    }

    func testChunkedTwiceIsRefused() {
        assertFramingRefused("Transfer-Encoding: chunked, chunked\r\n", .conflictingFraming)
        assertFramingRefused("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", .conflictingFraming)
        assertFramingRefused("Transfer-Encoding: gzip, chunked, chunked\r\n", .conflictingFraming)
    }

    func testUntilCloseBodyEndsWithTheConnection() throws {
        let text = "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\n\ndata: b"
        for split in 0...text.utf8.count {
            var outcome = try decode(splitReads(bytes(text), at: [split]))
            XCTAssertEqual(outcome.responses.first?.framing, .untilClose)
            XCTAssertEqual(outcome.responses.first?.body, bytes("data: a\n\ndata: b"), "split at \(split)")
            XCTAssertEqual(outcome.responses.first?.ended, false, "only the close ends it")
            XCTAssertFalse(outcome.decoder.isIdle)
            XCTAssertEqual(outcome.decoder.endOfInput(), .ended, "split at \(split)")
            XCTAssertTrue(outcome.decoder.isIdle)
            XCTAssertEqual(outcome.decoder.endOfInput(), .idle)
        }
    }

    func testTruncatedResponses() throws {
        let cases: [(text: String, wire: Bool)] = [
            ("H", false),
            ("HTTP/1.1 200 OK\r\n", false),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r", false),
            ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false),
            ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", false),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", false),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", false),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", false),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: v\r\n\r", false),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", true),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r", true),
            ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", false),
        ]
        for (text, wire) in cases {
            var outcome = try decode([bytes(text)], passWire: wire)
            XCTAssertFalse(outcome.responses.contains(where: \.ended), text.debugDescription)
            XCTAssertEqual(outcome.decoder.endOfInput(), .truncated, "\(text.debugDescription) wire: \(wire)")
            XCTAssertTrue(outcome.decoder.isIdle, "reset after the end of input")
        }
    }

    func testEndOfInputWithNothingArriving() throws {
        var fresh = UpstreamResponseDecoder()
        XCTAssertTrue(fresh.isIdle)
        XCTAssertEqual(fresh.endOfInput(), .idle)

        var waiting = UpstreamResponseDecoder()
        waiting.requestSent(method: .GET)
        XCTAssertFalse(waiting.isIdle)
        var empty = ByteBuffer()
        guard case .needMore = try waiting.next(&empty) else { return XCTFail("no bytes, no event") }
        XCTAssertEqual(waiting.endOfInput(), .idle)

        var done = try decode([bytes("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")])
        XCTAssertEqual(done.decoder.endOfInput(), .idle)
    }

    /// An interim response arrived, then the connection closed before the final one: bytes of the response had
    /// arrived, so this is a truncated response, not an idle connection (which a caller may retry on).
    func testEndOfInputAfterAnInterimResponseIsTruncated() throws {
        for interim in ["HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"] {
            var outcome = try decode([bytes(interim)])
            XCTAssertTrue(outcome.responses.isEmpty)
            XCTAssertEqual(outcome.decoder.endOfInput(), .truncated, interim.debugDescription)
        }
    }

    func testBytesWithNoRequestOutstandingAreRefused() throws {
        var decoder = UpstreamResponseDecoder()
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n")
        XCTAssertThrowsError(try decoder.next(&buffer)) {
            XCTAssertEqual($0 as? UpstreamResponseError, .unexpectedBytes)
        }
        var empty = ByteBuffer()
        guard case .needMore = try decoder.next(&empty) else { return XCTFail("nothing to decode") }

        // After a complete response, in the same read or the next.
        let response = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
        XCTAssertThrowsError(try decode([bytes(response + "H")])) {
            XCTAssertEqual($0 as? UpstreamResponseError, .unexpectedBytes)
        }
        XCTAssertThrowsError(try decode([bytes(response), bytes("\r\n")])) {
            XCTAssertEqual($0 as? UpstreamResponseError, .unexpectedBytes)
        }
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
        for wire in [false, true] {
            XCTAssertThrowsError(try decode([bytes(chunked + "x")], passWire: wire)) {
                XCTAssertEqual($0 as? UpstreamResponseError, .unexpectedBytes, "wire: \(wire)")
            }
        }
    }

    func testChunkedFramingErrorsPropagate() {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWikiX"
        for wire in [false, true] {
            XCTAssertThrowsError(try decode([bytes(text)], passWire: wire)) {
                XCTAssertEqual($0 as? ChunkedFramingError, .invalidLineEnding, "wire: \(wire)")
            }
        }
    }

    // MARK: Keep-alive

    func testBackToBackResponsesInOneBuffer() throws {
        let short = ChunkedBody.short
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
            + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + String(decoding: short.wire, as: UTF8.self)
            + "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
            + "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
            + "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"
        let methods: [HTTPMethod] = [.GET, .GET, .HEAD, .POST, .GET]
        for wire in [false, true] {
            for split in 0...text.utf8.count {
                var outcome = try decode(splitReads(bytes(text), at: [split]), methods: methods, passWire: wire)
                let label = "wire: \(wire), split at \(split)"
                XCTAssertEqual(outcome.responses.count, 5, label)
                XCTAssertEqual(outcome.responses.map(\.ended), [true, true, true, true, true], label)
                XCTAssertEqual(
                    outcome.responses.map(\.framing),
                    [.contentLength(3), .chunked, .none, .none, .contentLength(2)],
                    label
                )
                XCTAssertEqual(outcome.responses.map(\.head.status.code), [200, 200, 200, 204, 200], label)
                XCTAssertEqual(outcome.responses.map(\.body), [bytes("abc"), wire ? [] : short.data, [], [], bytes("ok")], label)
                XCTAssertEqual(outcome.responses.map(\.wire), [[], wire ? short.wire : [], [], [], []], label)
                XCTAssertEqual(outcome.decoder.endOfInput(), .idle, label)
            }
        }
    }

    // MARK: Chunked bodies

    private func chunkedResponse(_ body: ChunkedBody) -> [UInt8] {
        bytes("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n") + body.wire
    }

    func testChunkedBodyDecodedAtEverySplit() throws {
        let next = bytes("HTTP/1.1 204 No Content\r\n\r\n")
        for body in ChunkedBody.representative + ChunkedBody.eventStreams + [ChunkedBody.short] {
            let text = chunkedResponse(body) + next
            for split in 0...text.count {
                let outcome = try decode(splitReads(text, at: [split]), methods: [.GET, .GET])
                XCTAssertEqual(outcome.responses.count, 2, "\(body) split at \(split)")
                XCTAssertEqual(outcome.responses.first?.framing, .chunked)
                XCTAssertEqual(outcome.responses.first?.body, body.data, "\(body) split at \(split)")
                XCTAssertEqual(outcome.responses.map(\.ended), [true, true], "\(body) split at \(split)")
            }
        }
    }

    func testChunkedBodyDecodedByteByByte() throws {
        for body in ChunkedBody.representative + ChunkedBody.eventStreams {
            let outcome = try decode(chunkedResponse(body).map { [$0] })
            XCTAssertEqual(outcome.responses.first?.body, body.data, "\(body)")
            XCTAssertEqual(outcome.responses.first?.ended, true, "\(body)")
        }
    }

    func testWireModePassesTheBodyExactlyAtEverySplit() throws {
        let next = bytes("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
        for body in ChunkedBody.representative + ChunkedBody.eventStreams + [ChunkedBody.short] {
            let text = chunkedResponse(body) + next
            for split in 0...text.count {
                let outcome = try decode(splitReads(text, at: [split]), methods: [.GET, .GET], passWire: true)
                let label = "\(body) split at \(split)"
                XCTAssertEqual(outcome.responses.count, 2, label)
                XCTAssertEqual(outcome.responses.first?.wire, body.wire, label)
                XCTAssertEqual(outcome.responses.first?.body, [], label)
                XCTAssertEqual(outcome.responses.last?.body, bytes("next"), label)
                XCTAssertEqual(outcome.responses.map(\.ended), [true, true], label)
                // The wire bytes decode to the body (they are a complete chunked body, trailers included).
                XCTAssertEqual(referenceDechunk(outcome.responses.first?.wire ?? [])?.data, body.data, label)
                XCTAssertEqual(referenceDechunk(outcome.responses.first?.wire ?? [])?.trailers, body.trailerLines, label)
            }
        }
    }

    func testWireModeAtEveryPairOfSplits() throws {
        let body = ChunkedBody.short
        let text = chunkedResponse(body)
        for first in 0...text.count {
            for second in first...text.count {
                let outcome = try decode(splitReads(text, at: [first, second]), passWire: true)
                XCTAssertEqual(outcome.responses.first?.wire, body.wire, "split at \(first), \(second)")
                XCTAssertEqual(outcome.responses.first?.ended, true, "split at \(first), \(second)")
            }
        }
    }

    func testWireModeByteByByteHandsOnEveryByteAsItComes() throws {
        for body in ChunkedBody.representative {
            let head = bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            let outcome = try decode((head + body.wire).map { [$0] }, passWire: true)
            XCTAssertEqual(outcome.responses.first?.wire, body.wire, "\(body)")
            // One wire event per read: nothing is held back.
            XCTAssertEqual(outcome.trace.filter { $0 == "wire" }.count, body.wire.count, "\(body)")
            XCTAssertEqual(outcome.trace.last, "end")
        }
    }

    func testWireModeEndsAfterTheTrailersAndLeavesTheRest() throws {
        var decoder = UpstreamResponseDecoder()
        decoder.requestSent(method: .GET)
        var buffer = ByteBuffer(
            string: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
        )
        guard case .head(_, .chunked) = try decoder.next(&buffer) else { return XCTFail("no chunked head") }
        decoder.passChunkedWire()
        guard case .wire(let wire) = try decoder.next(&buffer) else { return XCTFail("no wire bytes") }
        XCTAssertEqual(wire.bytes, bytes("3\r\nabc\r\n0\r\nT: 1\r\n\r\n"))
        guard case .end = try decoder.next(&buffer) else { return XCTFail("no end") }
        XCTAssertEqual(buffer.bytes, bytes("HTTP/1.1 204 No Content\r\n\r\n"))
        decoder.requestSent(method: .GET)
        guard case .head(let head, .none) = try decoder.next(&buffer) else { return XCTFail("no second head") }
        XCTAssertEqual(head.status, .noContent)
        guard case .end = try decoder.next(&buffer) else { return XCTFail("no second end") }
        XCTAssertEqual(buffer.readableBytes, 0)
    }
}
