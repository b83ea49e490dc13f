import XCTest

@testable import GatewayCore

/// The strict JSON parser that reads JWT headers and payloads.
final class AuthClaimJSONTests: XCTestCase {
    func parse(_ text: String, depth: Int = 16) -> ClaimValue? {
        ClaimJSONParser.parse(Array(text.utf8), maxDepth: depth)
    }

    func testValues() {
        XCTAssertEqual(
            parse(#" {"a": [1, -2.5, 1e3, true, false, null, "x"], "b": {"c": 0}, "big": 12345678901234567890 } "#),
            .object([
                "a": .array([.integer(1), .number(-2.5), .number(1000), .bool(true), .bool(false), .null, .string("x")]
                ),
                "b": .object(["c": .integer(0)]),
                "big": .number(1.2345678901234567e19),
            ])
        )
        XCTAssertEqual(parse("{}"), .object([:]))
        XCTAssertEqual(parse("[]"), .array([]))
    }

    func testStringEscapes() {
        XCTAssertEqual(parse(#""a\"b\\c\/d\n\t\u00e9\ud83d\ude00""#), .string("a\"b\\c/d\n\té😀"))
        XCTAssertEqual(parse(#""héllo""#), .string("héllo"))
        XCTAssertNil(parse(#""\ud83d""#), "lone high surrogate")
        XCTAssertNil(parse(#""\ude00""#), "lone low surrogate")
        XCTAssertNil(parse("\"a\nb\""), "raw control character")
        XCTAssertNil(parse(#""\x""#))
    }

    func testRejectsInvalidDocuments() {
        for text in [
            "", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "-", "1e", "+1", "NaN",
            "Infinity",
            "0x10", "tru", "nul", "{\"a\":1} x", "[1 2]", "{\"a\":1,\"a\":2}", "1e999",
        ] {
            XCTAssertNil(parse(text), text)
        }
    }

    func testDepthIsCapped() {
        XCTAssertNotNil(parse(String(repeating: "[", count: 16) + String(repeating: "]", count: 16)))
        XCTAssertNil(parse(String(repeating: "[", count: 17) + String(repeating: "]", count: 17)))
        XCTAssertNil(parse(String(repeating: "[", count: 100_000)), "deep input fails fast, no stack overflow")
    }

    func testDottedPathsAndRendering() {
        let claims = parse(#"{"org":{"id":"acme","n":3,"flags":[true]},"x":1.5}"#)
        XCTAssertEqual(claims?.value(at: "org.id")?.headerText, "acme")
        XCTAssertEqual(claims?.value(at: "org.n")?.headerText, "3")
        XCTAssertEqual(claims?.value(at: "org.flags")?.headerText, "[true]")
        XCTAssertEqual(claims?.value(at: "x")?.headerText, "1.5")
        XCTAssertNil(claims?.value(at: "org.missing"))
        XCTAssertNil(claims?.value(at: "org.id.deeper"))
    }
}
