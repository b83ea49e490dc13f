import XCTest

@testable import GatewayCore

final class PathNormalizerTests: XCTestCase {
    func testNormalisationTable() throws {
        let cases: [(input: String, raw: String, decoded: String)] = [
            ("/", "/", "/"),
            ("/events", "/events", "/events"),
            ("/events/", "/events/", "/events/"),
            ("/a/b/c", "/a/b/c", "/a/b/c"),
            // RFC 3986 section 5.2.4 behaviour for plain dot-segments.
            ("/./", "/", "/"),
            ("/.", "/", "/"),
            ("/a/.", "/a/", "/a/"),
            ("/a/./b", "/a/b", "/a/b"),
            ("/a/b/..", "/a/", "/a/"),
            ("/a/b/../", "/a/", "/a/"),
            ("/a/..", "/", "/"),
            ("/a/b/../c", "/a/c", "/a/c"),
            ("/a/b/../../c", "/c", "/c"),
            ("/a/./b/../../c/./d", "/c/d", "/c/d"),
            ("/a/b/c/./../../g", "/a/g", "/a/g"),
            // Encoded dots count as dots.
            ("/a/%2e/b", "/a/b", "/a/b"),
            ("/a/%2E/b", "/a/b", "/a/b"),
            ("/a/b/%2e%2e/c", "/a/c", "/a/c"),
            ("/a/b/%2E%2e/c", "/a/c", "/a/c"),
            ("/a/b/.%2e/c", "/a/c", "/a/c"),
            ("/a/b/%2e./c", "/a/c", "/a/c"),
            ("/a/b/%2e%2e", "/a/", "/a/"),
            // Not dot-segments: more dots, dots inside names.
            ("/a/.../b", "/a/.../b", "/a/.../b"),
            ("/a/.hidden/b..c", "/a/.hidden/b..c", "/a/.hidden/b..c"),
            ("/a/%2e%2e%2e", "/a/%2e%2e%2e", "/a/..."),
            ("/a/file.txt", "/a/file.txt", "/a/file.txt"),
            // "//" is kept, and a dot-segment after an empty segment removes that empty segment.
            ("//", "//", "//"),
            ("/a//b", "/a//b", "/a//b"),
            ("//..", "/", "/"),
            ("/a//../b", "/a/b", "/a/b"),
            // Encoding elsewhere is kept in raw and decoded for matching.
            ("/a%20b", "/a%20b", "/a b"),
            ("/a%2Fb", "/a%2Fb", "/a/b"),
            ("/a%2fb/../c", "/c", "/c"),
            ("/caf%C3%A9", "/caf%C3%A9", "/caf\u{E9}"),
            ("/%65vents/a", "/%65vents/a", "/events/a"),
            ("/a;b=c/d", "/a;b=c/d", "/a;b=c/d"),
        ]
        for (input, raw, decoded) in cases {
            let path = try PathNormalizer.normalize(input)
            XCTAssertEqual(path, NormalizedPath(raw: raw, decoded: decoded), input)
        }
    }

    func testRejectedPaths() {
        let cases: [(input: String, message: String)] = [
            ("/..", "above the root"),
            ("/../a", "above the root"),
            ("/%2e%2e", "above the root"),
            ("/%2E%2E/etc/passwd", "above the root"),
            ("/a/../..", "above the root"),
            ("/a/../../b", "above the root"),
            ("/a/./../../b", "above the root"),
            ("/a/%00", "NUL"),
            ("/a%00b", "NUL"),
            ("/%FF", "UTF-8"),
            ("/%C3", "UTF-8"),
            ("/%C0%AE", "UTF-8"),  // overlong "."
            ("/%ED%A0%80", "UTF-8"),  // surrogate
            ("/a/%2", "percent-escape"),
            ("/a%zz", "percent-escape"),
            ("/a/%2x/..", "percent-escape"),
            ("a/b", "start with"),
            ("", "start with"),
            // A %2F that would turn into a dot-segment after decoding.
            ("/a/..%2Fb", "encoded slash"),
            ("/a/%2e%2e%2fb", "encoded slash"),
            ("/a/b%2F..", "encoded slash"),
            ("/a/b%2F.%2Fc", "encoded slash"),
            // Tomcat-style path parameters on dot-segments.
            ("/a/..;/b", "parameters"),
            ("/a/.;x/b", "parameters"),
            ("/a/%2e%2e%3b/b", "parameters"),
        ]
        for (input, message) in cases {
            XCTAssertGatewayError(try PathNormalizer.normalize(input), "bad_request", message, input)
        }
    }

    func testEveryDotSegmentSpellingIsRecognised() throws {
        let dots = ["%2e", "%2E", "."]
        for first in dots {
            XCTAssertEqual(try PathNormalizer.normalize("/a/\(first)/b").raw, "/a/b", first)
            for second in dots {
                let parent = first + second
                XCTAssertEqual(try PathNormalizer.normalize("/a/b/\(parent)/c").raw, "/a/c", parent)
                XCTAssertGatewayError(try PathNormalizer.normalize("/\(parent)"), "bad_request", "above", parent)
            }
        }
    }

    func testNormalisingTwiceChangesNothing() throws {
        for input in ["/a/b/../c", "/a/%2e/b/", "/x//y/./z/..", "/a%2Fb/c", "/%65/%2e%2e/f"] {
            let once = try PathNormalizer.normalize(input)
            XCTAssertEqual(try PathNormalizer.normalize(once.raw), once, input)
        }
    }
}
