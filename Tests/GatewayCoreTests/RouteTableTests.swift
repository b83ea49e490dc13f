import XCTest

@testable import GatewayCore

final class RouteTableTests: XCTestCase {
    private static let upstream = UpstreamURL(scheme: .http, host: "127.0.0.1", port: 9000)

    private static func route(
        _ name: String,
        _ prefix: String,
        strip: Bool = false,
        basePath: String = ""
    ) -> RouteConfiguration {
        RouteConfiguration(
            name: name,
            pathPrefix: prefix,
            upstream: UpstreamURL(scheme: .http, host: "127.0.0.1", port: 9000, basePath: basePath),
            stripPrefix: strip
        )
    }

    func testLongestPrefixWinsRegardlessOfOrder() {
        let routes = [
            Self.route("root", "/"),
            Self.route("events", "/events"),
            Self.route("private", "/events/private/"),
            Self.route("eventsSlash", "/events/"),
            Self.route("admin", "/admin/"),
        ]
        let table = RouteTable(routes: routes)
        let cases: [(path: String, index: Int?)] = [
            ("/", 0),
            ("/other", 0),
            ("/events", 1),
            ("/eventsfoo", 1),  // pure string prefix, like nginx `location /events`
            ("/events/", 3),
            ("/events/a", 3),
            ("/events/private", 3),
            ("/events/private/", 2),
            ("/events/private/x", 2),
            ("/admin", 0),
            ("/admin/x", 4),
        ]
        for (path, index) in cases {
            XCTAssertEqual(table.match(decodedPath: path), index, path)
        }
        XCTAssertEqual(RouteTable(routes: routes.reversed()).match(decodedPath: "/events/private/x"), 2)
    }

    func testNoMatchWithoutCatchAll() {
        let table = RouteTable(routes: [Self.route("events", "/events/")])
        XCTAssertNil(table.match(decodedPath: "/"))
        XCTAssertNil(table.match(decodedPath: "/events"))  // "/events/" does not match its bare name
        XCTAssertNil(table.match(decodedPath: "/Events/a"))  // case-sensitive
        XCTAssertGatewayError(try table.route(uri: "/other"), "not_found")
        XCTAssertGatewayError(try table.route(uri: "/events"), "not_found")
        XCTAssertNil(RouteTable(routes: []).match(decodedPath: "/"))
    }

    func testDuplicatePrefixResolvesToEarliestRoute() {
        let table = RouteTable(routes: [Self.route("first", "/x/"), Self.route("second", "/x/")])
        XCTAssertEqual(table.match(decodedPath: "/x/y"), 0)
    }

    func testMatchesOnDecodedPathBytes() {
        let table = RouteTable(routes: [Self.route("cafe", "/caf\u{E9}/"), Self.route("space", "/a b/")])
        XCTAssertEqual(table.match(decodedPath: "/caf\u{E9}/x"), 0)
        // Byte prefix, not canonical equivalence: "e" + combining acute is a different path.
        XCTAssertNil(table.match(decodedPath: "/cafe\u{301}/x"))
        XCTAssertEqual(table.match(decodedPath: "/a b/c"), 1)
    }

    func testUpstreamPaths() throws {
        let routes = [
            Self.route("plain", "/plain/"),
            Self.route("strip", "/strip/", strip: true),
            Self.route("stripBare", "/bare", strip: true),
            Self.route("based", "/based/", basePath: "/api"),
            Self.route("stripBased", "/sb/", strip: true, basePath: "/api/v1"),
            Self.route("cafe", "/caf\u{E9}/", strip: true),
        ]
        let table = RouteTable(routes: routes)
        let cases: [(uri: String, index: Int, path: String, query: String?)] = [
            ("/plain/a", 0, "/plain/a", nil),
            ("/plain/a?x=1&token=t", 0, "/plain/a", "x=1&token=t"),
            ("/plain/a?", 0, "/plain/a", ""),
            ("/plain/a/../b", 0, "/plain/b", nil),
            ("/plain/a%2Fb", 0, "/plain/a%2Fb", nil),
            ("/plain/a%20b", 0, "/plain/a%20b", nil),
            ("/strip/a", 1, "/a", nil),
            ("/strip/", 1, "/", nil),
            ("/strip/a/b?q", 1, "/a/b", "q"),
            ("/strip//a", 1, "//a", nil),
            ("/strip/a%2Fb", 1, "/a%2Fb", nil),
            ("/strip/./a", 1, "/a", nil),
            // The client percent-encoded characters of the prefix: the rest keeps its own encoding.
            ("/%73trip/a%2Fb", 1, "/a%2Fb", nil),
            ("/strip%2Fa", 1, "/%2Fa", nil),
            ("/%73%74%72%69%70%2f%61", 1, "/%2f%61", nil),
            ("/bare", 2, "/", nil),
            ("/bare/", 2, "/", nil),
            ("/bare/x", 2, "/x", nil),
            ("/barely", 2, "/ly", nil),
            ("/based/a", 3, "/api/based/a", nil),
            ("/sb/a?b=c", 4, "/api/v1/a", "b=c"),
            ("/sb/", 4, "/api/v1/", nil),
            ("/caf%C3%A9/x", 5, "/x", nil),
            ("/caf%c3%a9/%C3%A9", 5, "/%C3%A9", nil),
        ]
        for (uri, index, path, query) in cases {
            let routed = try table.route(uri: uri)
            XCTAssertEqual(routed.routeIndex, index, uri)
            XCTAssertEqual(routed.route, routes[index], uri)
            XCTAssertEqual(routed.upstreamPath, path, uri)
            XCTAssertEqual(routed.query, query, uri)
            XCTAssertTrue(routed.upstreamPath.hasPrefix("/"), uri)
        }
    }

    func testUpstreamURIJoinsQuery() {
        let route = Self.route("r", "/")
        XCTAssertEqual(RoutedRequest(routeIndex: 0, route: route, upstreamPath: "/a", query: nil).upstreamURI, "/a")
        XCTAssertEqual(RoutedRequest(routeIndex: 0, route: route, upstreamPath: "/a", query: "").upstreamURI, "/a?")
        XCTAssertEqual(
            RoutedRequest(routeIndex: 0, route: route, upstreamPath: "/a", query: "b=c").upstreamURI,
            "/a?b=c"
        )
    }

    func testTraversalOutOfARouteIsRejected() {
        let withCatchAll = RouteTable(routes: [
            Self.route("events", "/events/"), Self.route("admin", "/admin/"), Self.route("root", "/"),
        ])
        let withoutCatchAll = RouteTable(routes: [Self.route("events", "/events/"), Self.route("admin", "/admin/")])
        let escapes = [
            "/events/../admin/x",
            "/events/%2e%2e/admin/x",
            "/events/%2E%2E/admin/x",
            "/events/.%2e/admin/x",
            "/events/a/../../admin/x",
            "/events/..",
            "/events/../",
            "/events/./../x",
            "/%65vents/../admin/x",
            "/events%2F..%2Fadmin",  // decodes to a dot-segment: rejected by the normaliser
        ]
        for table in [withCatchAll, withoutCatchAll] {
            for uri in escapes {
                XCTAssertGatewayError(try table.route(uri: uri), "bad_request", "", uri)
            }
            XCTAssertGatewayError(try table.route(uri: "/events/../admin/x"), "bad_request", "escapes its route")
        }
    }

    func testAStrippedPrefixLeavesNoDotSegmentForTheUpstream() {
        // Found by Fuzz/FuzzRequestTarget: under prefix `/feed` (no trailing "/"), `/feed%2E%2E/secret` is the segment
        // `feed..`; stripping the prefix left `%2E%2E/secret`, sent as `/v1/%2E%2E/secret`, which an upstream that
        // decodes before resolving dots reads as `/secret`, outside the base path.
        let table = RouteTable(routes: [Self.route("feed", "/feed", strip: true, basePath: "/v1")])
        for uri in ["/feed%2E%2E/secret", "/feed%2e/x", "/feed..", "/feed.%2E/x", "/feed..;/x"] {
            XCTAssertGatewayError(try table.route(uri: uri), "bad_request", "escapes its route", uri)
        }
        XCTAssertEqual(try table.route(uri: "/feed.x/y").upstreamPath, "/v1/.x/y")
        XCTAssertEqual(try table.route(uri: "/feed/a").upstreamPath, "/v1/a")
    }

    func testTraversalWithinARouteOrIntoOneFromNowhereIsAllowed() throws {
        let table = RouteTable(routes: [Self.route("events", "/events/"), Self.route("admin", "/admin/")])
        XCTAssertEqual(try table.route(uri: "/events/a/../b").upstreamPath, "/events/b")
        XCTAssertEqual(try table.route(uri: "/events/a/%2e%2e/b").upstreamPath, "/events/b")
        XCTAssertEqual(try table.route(uri: "/events/./b").upstreamPath, "/events/b")
        // The raw path matched no route, so no route was escaped; the normalised one is routed.
        XCTAssertEqual(try table.route(uri: "/x/../events/b").routeIndex, 0)
        XCTAssertGatewayError(try table.route(uri: "/x/../other"), "not_found")
    }

    func testTraversalIntoAMoreSpecificRouteIsRejected() {
        // Raw "/events/x/../private/y" matches "events", its normalised form "private": a different policy applies.
        let table = RouteTable(routes: [Self.route("events", "/events/"), Self.route("private", "/events/private/")])
        XCTAssertGatewayError(try table.route(uri: "/events/x/../private/y"), "bad_request", "escapes its route")
        XCTAssertEqual((try? table.route(uri: "/events/private/y"))?.routeIndex, 1)
    }

    func testBadTargetsAreRejectedBeforeRouting() {
        let table = RouteTable(routes: [Self.route("root", "/")])
        for uri in ["", "*", "http://h/x", "/a#b", "/a%zz", "/..", "/%00"] {
            XCTAssertGatewayError(try table.route(uri: uri), "bad_request", "", uri)
        }
    }
}
