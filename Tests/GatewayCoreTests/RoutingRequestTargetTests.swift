import XCTest

@testable import GatewayCore

/// Asserts that `body` throws a `GatewayError` with the given identifier and a message containing `messagePart`.
func XCTAssertGatewayError<T>(
    _ body: @autoclosure () throws(GatewayError) -> T,
    _ identifier: String,
    _ messagePart: String = "",
    _ context: String = "",
    file: StaticString = #filePath,
    line: UInt = #line
) {
    do {
        let value = try body()
        XCTFail("expected \(identifier) for \(context), got \(value)", file: file, line: line)
    } catch {
        XCTAssertEqual(error.identifier, identifier, "\(context): \(error)", file: file, line: line)
        if !messagePart.isEmpty {
            XCTAssertTrue(error.message.contains(messagePart), "\(context): \(error.message)", file: file, line: line)
        }
    }
}

final class RoutingRequestTargetTests: XCTestCase {
    func testOriginFormSplitsAtFirstQuestionMark() throws {
        let cases: [(uri: String, path: String, query: String?)] = [
            ("/", "/", nil),
            ("/events", "/events", nil),
            ("/events/a%20b", "/events/a%20b", nil),
            ("/events?", "/events", ""),
            ("/events?token=abc", "/events", "token=abc"),
            ("/events?a=1?b=2", "/events", "a=1?b=2"),
            ("/events?next=/x/y%2F", "/events", "next=/x/y%2F"),
            ("//double", "//double", nil),
            ("/a/../b/./c", "/a/../b/./c", nil),
            ("/?", "/", ""),
            ("/{|}^;=@:!$&'()*+,~", "/{|}^;=@:!$&'()*+,~", nil),
        ]
        for (uri, path, query) in cases {
            let target = try RequestTarget.parse(uri)
            XCTAssertEqual(target, RequestTarget(rawPath: path, rawQuery: query), uri)
        }
    }

    func testRejectedTargets() {
        let cases: [(uri: String, message: String)] = [
            ("", "empty"),
            ("*", "asterisk"),
            ("http://example.com/events", "absolute-form"),
            ("https://example.com:8443/", "absolute-form"),
            ("example.com:443", "must start with"),
            ("events", "must start with"),
            ("?a=b", "must start with"),
            ("/events#frag", "fragment"),
            ("/events?a=b#frag", "fragment"),
            ("/a b", "space or control"),
            ("/a\tb", "space or control"),
            ("/a\u{0}b", "space or control"),
            ("/a\u{7F}b", "space or control"),
            ("/a\r\nHost: evil", "space or control"),
            ("/events?x=a b", "space or control"),
            ("/caf\u{E9}", "non-ASCII"),
            ("/a\\..\\b", "backslash"),
            ("/a%", "percent-escape"),
            ("/a%2", "percent-escape"),
            ("/a%G0", "percent-escape"),
            ("/a%0G", "percent-escape"),
            ("/a%%41", "percent-escape"),
            ("/a?x=%zz", "percent-escape"),
            ("/a?x=%", "percent-escape"),
        ]
        for (uri, message) in cases {
            XCTAssertGatewayError(try RequestTarget.parse(uri), "bad_request", message, uri.debugDescription)
        }
    }

    func testValidEscapesAreKeptEncoded() throws {
        let target = try RequestTarget.parse("/a%2Fb%2e%C3%A9?q=%41%2b")
        XCTAssertEqual(target.rawPath, "/a%2Fb%2e%C3%A9")
        XCTAssertEqual(target.rawQuery, "q=%41%2b")
    }
}
