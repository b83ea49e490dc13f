import Foundation
import GatewayCore
import GatewayServer
import NIOPosix
import XCTest

/// `/metrics` before any traffic: dashboards and `absent()` alerts need every family and every label set of the
/// configured routes from the first scrape, at zero, plus the process metrics and the build info.
final class MetricsFirstScrapeTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    /// The `status` label values of `sse_gateway_requests_total`.
    static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]

    /// A public route, a route behind an HS256 policy, and a policy with a JWKS URL (whose first fetch fails: the
    /// upstream answers 404) that no route uses.
    private func withOperatedGateway(_ body: (GatewayHarness) async throws -> Void) async throws {
        try await withUpstream(group: group, handler: { _, responder in
            responder.head(.notFound, [("content-length", "0")])
            responder.end()
        }) { upstream in
            try await withGateway(
                routes: [
                    route(upstream: upstream),
                    route("private", prefix: "/private/", upstream: upstream) { $0.auth = "users" },
                ],
                configure: { configuration in
                    configuration.authPolicies = [
                        "users": AuthPolicyConfiguration(
                            tokenSources: [.query("access_token")],
                            jwt: JWTConfiguration(algorithms: [.hs256], secret: String(repeating: "s", count: 32))
                        ),
                        "idp": AuthPolicyConfiguration(
                            tokenSources: [.header("Authorization")],
                            jwt: JWTConfiguration(algorithms: [.rs256], jwksURL: "\(upstream.url)/jwks.json")
                        ),
                    ]
                },
                group: group,
                body
            )
        }
    }

    func testEveryFamilyOfEveryRouteIsThereAtZeroBeforeAnyRequest() async throws {
        try await withOperatedGateway { gateway in
            let exposition = try await Self.scrape(gateway)
            let samples = OperationsIntegrationTests.samples(exposition)
            func expectZero(_ name: String, _ labels: (String, String)...) {
                let key = Self.series(name, labels)
                XCTAssertEqual(samples[key], 0, "\(key) should be 0 at the first scrape; exposition:\n\(exposition)")
            }
            for name in ["events", "private"] {
                let route = ("route", name)
                expectZero("sse_gateway_open_streams", route)
                expectZero("sse_gateway_streams_started_total", route)
                expectZero("sse_gateway_events_relayed_total", route)
                expectZero("sse_gateway_bytes_relayed_total", route)
                expectZero("sse_gateway_slow_clients_dropped_total", route)
                for histogram in ["upstream_connect", "time_to_first_byte", "stream_duration"] {
                    expectZero("sse_gateway_\(histogram)_seconds_count", route)
                }
                for status in Self.statusClasses { expectZero("sse_gateway_requests_total", route, ("status", status)) }
                for outcome in ExchangeOutcome.allCases {
                    expectZero("sse_gateway_streams_ended_total", route, ("outcome", outcome.rawValue))
                }
                for kind in UpstreamFailure.Kind.allCases {
                    expectZero("sse_gateway_upstream_errors_total", route, ("kind", kind.rawValue))
                }
            }
            for reason in AuthFailure.Reason.allCases {
                expectZero("sse_gateway_auth_failures_total", ("route", "private"), ("reason", reason.label))
            }
            XCTAssertFalse(
                exposition.contains(#"sse_gateway_auth_failures_total{route="events""#),
                "a route without a policy has no auth failure series"
            )
            for status in Self.statusClasses {
                expectZero("sse_gateway_requests_total", ("route", "-"), ("status", status))
            }
            expectZero("sse_gateway_connections_rejected_total")
            expectZero("sse_gateway_rate_limited_total")
            expectZero("sse_gateway_tickets_issued_total")
            for result in TicketRedemption.Result.allCases {
                expectZero("sse_gateway_tickets_redeemed_total", ("result", result.rawValue))
            }
            for result in ["success", "failure"] { expectZero("sse_gateway_config_reloads_total", ("result", result)) }
            let fetches = { (result: String) in
                samples[Self.series("sse_gateway_jwks_fetches_total", [("policy", "idp"), ("result", result)])]
            }
            XCTAssertEqual(fetches("success"), 0, exposition)
            let failures = try XCTUnwrap(fetches("failure"), exposition)
            XCTAssertGreaterThanOrEqual(failures, 1, "the start-up fetch got a 404")
            XCTAssertEqual(samples[Self.series("sse_gateway_build_info", [("version", GatewayBuild.version)])], 1)
        }
    }

    func testProcessMetricsArePlausible() async throws {
        try await withOperatedGateway { gateway in
            let first = try await Self.scrape(gateway)
            let samples = OperationsIntegrationTests.samples(first)
            let openFDs = try XCTUnwrap(samples["process_open_fds"], first)
            XCTAssertGreaterThan(openFDs, 2, "stdio and the listeners at least")
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(samples["process_max_fds"]), openFDs)
            XCTAssertGreaterThan(try XCTUnwrap(samples["process_resident_memory_bytes"]), 1_000_000, first)
            let start = try XCTUnwrap(samples["process_start_time_seconds"])
            let now = Date().timeIntervalSince1970
            XCTAssertLessThanOrEqual(start, now + 1)
            XCTAssertGreaterThan(start, now - 86_400, "this test process started today")
            let cpu = try XCTUnwrap(samples["process_cpu_seconds_total"])
            XCTAssertGreaterThan(cpu, 0)
            XCTAssertTrue(first.contains("# TYPE process_cpu_seconds_total counter"), first)

            // Some work between two scrapes: the CPU counter never goes back.
            var spin = 0.0
            for index in 0..<2_000_000 { spin += Double(index).squareRoot() }
            XCTAssertGreaterThan(spin, 0)
            let second = OperationsIntegrationTests.samples(try await Self.scrape(gateway))
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(second["process_cpu_seconds_total"]), cpu)
        }
    }

    func testRoutesAddedByAReloadAreThereBeforeTheirFirstRequest() async throws {
        try await withOperatedGateway { gateway in
            var next = gateway.gateway.configuration
            next.routes.append(
                RouteConfiguration(
                    name: "added",
                    pathPrefix: "/added/",
                    upstream: next.routes[0].upstream,
                    auth: "users"
                )
            )
            try await gateway.gateway.reload(configuration: next)
            let samples = OperationsIntegrationTests.samples(try await Self.scrape(gateway))
            func expectZero(_ name: String, _ labels: (String, String)...) {
                let key = Self.series(name, [("route", "added")] + labels)
                XCTAssertEqual(samples[key], 0, "\(key) should be 0 once the reload added the route")
            }
            expectZero("sse_gateway_open_streams")
            expectZero("sse_gateway_requests_total", ("status", "5xx"))
            for reason in AuthFailure.Reason.allCases {
                expectZero("sse_gateway_auth_failures_total", ("reason", reason.label))
            }
            for outcome in ExchangeOutcome.allCases {
                expectZero("sse_gateway_streams_ended_total", ("outcome", outcome.rawValue))
            }
        }
    }

    /// `GET /metrics` on the admin listener, as Prometheus does it.
    static func scrape(_ gateway: GatewayHarness) async throws -> String {
        let admin = try await RawClient.connect(
            port: try XCTUnwrap(gateway.adminPort),
            group: MultiThreadedEventLoopGroup.singleton
        )
        try await admin.send("GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        let response = try await admin.wait(for: "metrics") { _ in admin.isClosed }
        await admin.close()
        return response
    }

    /// `name{a="x",b="y"}` as the exposition writes it (labels in the order they were made).
    static func series(_ name: String, _ labels: [(String, String)]) -> String {
        labels.isEmpty ? name : name + "{" + labels.map { "\($0.0)=\"\($0.1)\"" }.joined(separator: ",") + "}"
    }
}
