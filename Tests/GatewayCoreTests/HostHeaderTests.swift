import GatewayCore
import NIOHTTP1
import XCTest

/// RFC 9112 §3.2 and RFC 9113 §8.3.1 for the `Host` header.
final class HostHeaderTests: XCTestCase {
    private func head(_ version: HTTPVersion, _ hosts: [String]) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: .GET, uri: "/", headers: HTTPHeaders(hosts.map { ("Host", $0) }))
    }

    func testValidValues() {
        for value in [
            "", "example.com", "example.com:8080", "a-b.c_d~e", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:443",
            "[v1.fe80::a+en1]", "xn--nxasmq6b.example", "%41b.example", "ex!$&'()*+,;=ample",
        ] {
            XCTAssertTrue(HostHeader.isValid(value), value)
        }
    }

    func testInvalidValues() {
        for value in [
            "evil example", "a/b", "a\\x", "a:b", "a:80:80", "a:123456", "[::1", "[]", "[::1]x", "[::1]:a", "%4", "%zz",
            "a@b", "a\u{0}b", "a\tb", "é.example", "a?b", "a#b",
        ] {
            XCTAssertFalse(HostHeader.isValid(value), value)
        }
    }

    func testHTTP11NeedsExactlyOneHost() {
        XCTAssertEqual(HostHeader.problem(in: head(.http1_1, [])), "the request has no Host header")
        XCTAssertNil(HostHeader.problem(in: head(.http1_1, ["a"])))
        XCTAssertEqual(HostHeader.problem(in: head(.http1_1, ["a", "a"])), "the request has more than one Host header")
        XCTAssertEqual(HostHeader.problem(in: head(.http1_1, ["a b"])), "the Host header is not a valid host[:port]")
    }

    func testHTTP10MayOmitHost() {
        XCTAssertNil(HostHeader.problem(in: head(.http1_0, [])))
        XCTAssertNotNil(HostHeader.problem(in: head(.http1_0, ["a b"])))
    }

    func testHTTP2AuthorityAndHostMustAgree() {
        let h2 = HTTPVersion(major: 2, minor: 0)
        XCTAssertNil(HostHeader.problem(in: head(h2, ["a.example", "a.example"])))
        XCTAssertNotNil(HostHeader.problem(in: head(h2, ["a.example", "b.example"])))
        XCTAssertNotNil(HostHeader.problem(in: head(h2, [])), "an HTTP/2 request names its authority")
    }
}
