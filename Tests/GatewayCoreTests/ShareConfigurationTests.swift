import Foundation
import GatewayCore
import XCTest

/// `routes[].share` in gateway.yml: defaults, every key, and errors that name the file, line and key.
final class ShareConfigurationTests: XCTestCase {
    private static let route = """
        routes:
          - name: prices
            path_prefix: /prices/
            upstream: http://127.0.0.1:9000
        """

    private func parse(_ yaml: String, environment: [String: String] = [:]) throws(ConfigurationErrors) -> GatewayConfiguration {
        try GatewayConfiguration.parse(
            yaml: yaml, file: "gw.yml", baseDirectory: NSTemporaryDirectory(), environment: environment
        ).configuration
    }

    private func errors(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        do {
            _ = try parse(yaml)
            XCTFail("expected configuration errors", file: file, line: line)
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    func testDefaults() throws {
        let configuration = try parse(Self.route + "\n    share: {}")
        XCTAssertEqual(configuration.routes[0].share, ShareConfiguration())
        let share = try XCTUnwrap(configuration.routes[0].share)
        XCTAssertEqual(share.key, .route)
        XCTAssertEqual(share.replayEvents, 256)
        XCTAssertEqual(share.replayBytes, 1 << 20)
        XCTAssertEqual(share.subscriberBufferBytes, 256 << 10)
        XCTAssertEqual(share.linger, .seconds(2))
        XCTAssertEqual(share.upstreamGrace, .seconds(10))
        XCTAssertNil(try parse(Self.route).routes[0].share, "sharing is opt-in")
    }

    func testEveryKey() throws {
        let yaml = Self.route + """

                share:
                  key: route
                  upstream_headers:
                    Authorization: "Bearer ${PRICES_SERVICE_TOKEN}"
                  vary_headers: [Accept-Language, X-Tenant]
                  replay_events: 16
                  replay_bytes: 64KiB
                  subscriber_buffer_bytes: 32KiB
                  linger: 500ms
                  upstream_grace: 3s
            """
        let share = try XCTUnwrap(try parse(yaml, environment: ["PRICES_SERVICE_TOKEN": "svc"]).routes[0].share)
        XCTAssertEqual(share.upstreamHeaders.first(name: "authorization"), "Bearer svc")
        XCTAssertEqual(share.varyHeaders, ["accept-language", "x-tenant"])
        XCTAssertEqual(share.replayEvents, 16)
        XCTAssertEqual(share.replayBytes, 64 << 10)
        XCTAssertEqual(share.subscriberBufferBytes, 32 << 10)
        XCTAssertEqual(share.linger, .milliseconds(500))
        XCTAssertEqual(share.upstreamGrace, .seconds(3))
    }

    func testSubjectNeedsAuthAndSendsNoUpstreamHeaders() {
        XCTAssertEqual(
            errors(Self.route + "\n    share: {key: subject, upstream_headers: {X-A: b}}"),
            [
                "gw.yml:5:18: routes[0].share.key: 'subject' needs the route to have `auth` (a verified subject)",
                "gw.yml:5:45: routes[0].share.upstream_headers: only with key: route (key: subject sends the subscriber's own token)",
            ]
        )
    }

    func testCredentialsCannotVary() {
        XCTAssertEqual(
            errors(Self.route + "\n    share: {vary_headers: [Cookie]}"),
            [
                "gw.yml:5:27: routes[0].share.vary_headers: 'Cookie' carries credentials: a route that forwards them cannot be shared (use key: subject)"
            ]
        )
    }

    func testUnknownKeyAndBadValues() {
        XCTAssertEqual(
            errors(Self.route + "\n    share: {ky: route, replay_bytes: lots, linger: -1s}"),
            [
                "gw.yml:5:13: routes[0].share.ky: unknown key 'ky' (did you mean 'key'?)",
                "gw.yml:5:38: routes[0].share.replay_bytes: expected a byte size such as 512, 16KiB or 1MiB (KB/MB are ambiguous), got 'lots'",
                "gw.yml:5:52: routes[0].share.linger: expected a duration such as 250ms, 30s, 5m or 1h, got '-1s'",
            ]
        )
    }
}
