import Crypto
import Foundation
import GatewayCore
import GatewayServer
import JWTKit
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

private struct TicketClaims: JWTPayload {
    var sub = "user-42"
    var exp = Int(Date().timeIntervalSince1970) + 600

    func verify(using algorithm: some JWTKit.JWTAlgorithm) async throws {}
}

/// Stream tickets end to end: a `POST` mints, an `EventSource`-style `GET` redeems, and the upstream sees exactly what
/// a direct token would have given it.
final class TicketIntegrationTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton
    static let secret = "ticket-secret-0123456789abcdef0123456789abcdef"
    static let origin = "https://app.example"

    private func token(expiresIn seconds: Int = 600) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256)
        return try await keys.sign(TicketClaims(exp: Int(Date().timeIntervalSince1970) + seconds))
    }

    /// `/events/` takes the "users" policy with tickets, `/open/` is public.
    private func withTicketGateway<Value>(
        _ upstream: TestUpstream,
        tickets: TicketConfiguration = TicketConfiguration(),
        logger: Logger = GatewayHarness.silent,
        _ body: (GatewayHarness) async throws -> Value
    ) async throws -> Value {
        let policy = AuthPolicyConfiguration(
            tokenSources: [.query("access_token"), .cookie("sse_token"), .header("Authorization")],
            jwt: JWTConfiguration(algorithms: [.hs256], secret: Self.secret, requiredClaims: ["sub"]),
            claimsToHeaders: [ClaimHeaderMapping(claim: "sub", header: "X-User-Id")],
            tickets: tickets
        )
        return try await withGateway(
            routes: [
                route(upstream: upstream) { $0.auth = "users" },
                route("open", prefix: "/open/", upstream: upstream),
            ],
            configure: {
                $0.authPolicies = ["users": policy]
                $0.cors = CORSConfiguration(allowedOrigins: [Self.origin], allowCredentials: true)
            },
            group: group,
            logger: logger,
            body
        )
    }

    /// An upstream that sends one event and ends the stream.
    private static let oneEvent: TestUpstream.Handler = { _, responder in
        responder.sseHead()
        responder.body("data: hello\n\n")
        responder.end()
    }

    /// An upstream that sends one event and keeps the stream open.
    private static let openStream: TestUpstream.Handler = { _, responder in
        responder.sseHead()
        responder.body("data: hello\n\n")
    }

    private struct Minted: Decodable {
        var ticket: String
        var expires_in: Int
        var url: String
    }

    /// Sends one request on a new connection and returns the complete response.
    private func exchange(_ gateway: GatewayHarness, _ request: String) async throws -> String {
        let client = try await gateway.connect(group: group)
        try await client.send(request)
        return try await client.wait(for: "a complete response") { text in
            guard let headEnd = text.range(of: "\r\n\r\n") else { return false }
            let head = text[..<headEnd.lowerBound].lowercased()
            if let length = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }
            )
            .flatMap({ Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }) {
                return text.utf8.count - text[..<headEnd.upperBound].utf8.count >= length
            }
            return text.hasSuffix("0\r\n\r\n")
        }
    }

    private func mintRequest(_ url: String, headers: [String]) -> String {
        let body = "{\"url\":\"\(url)\"}"
        return "POST /_sse/ticket HTTP/1.1\r\nHost: gw\r\n" + headers.map { $0 + "\r\n" }.joined()
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
    }

    private func mint(_ gateway: GatewayHarness, _ url: String, token: String) async throws -> Minted {
        let response = try await exchange(
            gateway,
            mintRequest(url, headers: ["Authorization: Bearer \(token)"])
        )
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 201 Created"), response)
        XCTAssertTrue(response.lowercased().contains("cache-control: no-store"), response)
        let body = try XCTUnwrap(response.range(of: "\r\n\r\n")).upperBound
        return try JSONDecoder().decode(Minted.self, from: Data(response[body...].utf8))
    }

    private func get(_ gateway: GatewayHarness, _ url: String) async throws -> String {
        try await exchange(
            gateway,
            "GET \(url) HTTP/1.1\r\nHost: gw\r\nAccept: text/event-stream\r\n\r\n"
        )
    }

    func testMintThenRedeemForwardsTheTokenAndClaimsAndStripsTheTicket() async throws {
        let token = try await token()
        try await withUpstream(group: group, handler: Self.oneEvent) { upstream in
            try await withTicketGateway(upstream) { gateway in
                let minted = try await mint(gateway, "/events/orders?x=1", token: token)
                XCTAssertTrue(minted.ticket.hasPrefix("sset_"), minted.ticket)
                XCTAssertEqual(minted.expires_in, 30)
                XCTAssertEqual(minted.url, "/events/orders?x=1&sse_ticket=\(minted.ticket)")
                XCTAssertTrue(upstream.requests.isEmpty, "minting never reaches the upstream")

                let response = try await get(gateway, minted.url)
                XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK"), response)
                XCTAssertEqual(RawClient.dechunk(response), "data: hello\n\n")
                let seen = try XCTUnwrap(upstream.requests.first)
                XCTAssertEqual(seen.head.uri, "/events/orders?x=1")
                XCTAssertEqual(seen.head.headers["authorization"], ["Bearer \(token)"])
                XCTAssertEqual(seen.head.headers["x-user-id"], ["user-42"])

                let metrics = OperationsIntegrationTests.samples(
                    try await MetricsFirstScrapeTests.scrape(gateway)
                )
                XCTAssertEqual(metrics["sse_gateway_tickets_issued_total"], 1)
                XCTAssertEqual(metrics[#"sse_gateway_tickets_redeemed_total{result="ok"}"#], 1)
            }
        }
    }

    func testMintRefusals() async throws {
        let token = try await token()
        try await withUpstream(group: group, handler: Self.oneEvent) { upstream in
            try await withTicketGateway(upstream) { gateway in
                let bearer = "Authorization: Bearer \(token)"
                let cases: [(request: String, status: String)] = [
                    (mintRequest("/events/a", headers: []), "401"),
                    (mintRequest("/events/a", headers: ["Authorization: Bearer nope"]), "401"),
                    (mintRequest("/open/a", headers: [bearer]), "403"),
                    (mintRequest("/nowhere", headers: [bearer]), "404"),
                    (mintRequest("events", headers: [bearer]), "400"),
                    (mintRequest("/events/a?sse_ticket=x", headers: [bearer]), "400"),
                    ("GET /_sse/ticket HTTP/1.1\r\nHost: gw\r\n\r\n", "405"),
                    // Never a token in the mint's own URL.
                    (
                        "POST /_sse/ticket?access_token=\(token) HTTP/1.1\r\nHost: gw\r\nContent-Length: 21\r\n\r\n"
                            + "{\"url\":\"/events/abc\"}", "401"
                    ),
                    // A cookie needs an allowed Origin and a JSON content type.
                    (mintRequest("/events/a", headers: ["Cookie: sse_token=\(token)"]), "403"),
                    (
                        mintRequest(
                            "/events/a",
                            headers: [
                                "Cookie: sse_token=\(token)", "Origin: https://evil.example",
                                "Content-Type: application/json",
                            ]
                        ), "403"
                    ),
                    (
                        mintRequest(
                            "/events/a",
                            headers: [
                                "Cookie: sse_token=\(token)", "Origin: \(Self.origin)",
                                "Content-Type: text/plain",
                            ]
                        ), "403"
                    ),
                    (
                        mintRequest(
                            "/events/a",
                            headers: [
                                "Cookie: sse_token=\(token)", "Origin: \(Self.origin)",
                                "Content-Type: application/json",
                            ]
                        ), "201"
                    ),
                ]
                for (request, status) in cases {
                    let response = try await exchange(gateway, request)
                    XCTAssertTrue(response.hasPrefix("HTTP/1.1 \(status)"), "\(request)\n→\n\(response)")
                }
                XCTAssertTrue(upstream.requests.isEmpty)
            }
        }
    }

    func testReplayWithinTheGraceThenOutOfResumes() async throws {
        let token = try await token()
        try await withUpstream(group: group, handler: Self.oneEvent) { upstream in
            try await withTicketGateway(upstream, tickets: TicketConfiguration(maxResumes: 1)) {
                gateway in
                let minted = try await mint(gateway, "/events/orders", token: token)
                for attempt in ["first use", "resume"] {
                    let response = try await get(gateway, minted.url)
                    XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK"), "\(attempt): \(response)")
                }
                let refused = try await get(gateway, minted.url)
                XCTAssertTrue(refused.hasPrefix("HTTP/1.1 401"), refused)
                XCTAssertTrue(refused.contains("reused"), refused)
                XCTAssertEqual(upstream.requests.count, 2)
            }
        }
    }

    func testStrictSingleUseWithZeroGrace() async throws {
        let token = try await token()
        try await withUpstream(group: group, handler: Self.oneEvent) { upstream in
            try await withTicketGateway(upstream, tickets: TicketConfiguration(reconnectGrace: .zero)) {
                gateway in
                let minted = try await mint(gateway, "/events/orders", token: token)
                let first = try await get(gateway, minted.url)
                XCTAssertTrue(first.hasPrefix("HTTP/1.1 200 OK"), first)
                let second = try await get(gateway, minted.url)
                XCTAssertTrue(second.hasPrefix("HTTP/1.1 401"), second)
            }
        }
    }

    func testASecondConnectionWhileTheFirstIsLiveIsRefused() async throws {
        let token = try await token()
        try await withUpstream(group: group, handler: Self.openStream) { upstream in
            try await withTicketGateway(upstream) { gateway in
                let minted = try await mint(gateway, "/events/orders", token: token)
                let first = try await gateway.connect(group: group)
                try await first.get(minted.url)
                try await first.waitForEvents(1)
                let second = try await get(gateway, minted.url)
                XCTAssertTrue(second.hasPrefix("HTTP/1.1 401"), second)
                XCTAssertTrue(second.contains("reused"), second)
                XCTAssertFalse(first.isClosed, "the first connection keeps its stream")

                // Once the first closes, the ticket reconnects within the grace.
                await first.close()
                var again = ""
                for _ in 0..<50 {
                    let client = try await gateway.connect(group: group)
                    try await client.get(minted.url)
                    again = try await client.wait(for: "a response head") { $0.contains("\r\n\r\n") }
                    if again.hasPrefix("HTTP/1.1 200") { break }
                    try await Task.sleep(for: .milliseconds(100))  // the gateway has yet to see the close
                }
                XCTAssertTrue(again.hasPrefix("HTTP/1.1 200"), again)
            }
        }
    }

    func testATicketIsBoundToItsRoutePathAndQuery() async throws {
        let token = try await token()
        try await withUpstream(group: group, handler: Self.oneEvent) { upstream in
            try await withTicketGateway(upstream) { gateway in
                let minted = try await mint(gateway, "/events/orders?x=1", token: token)
                for other in ["/events/orders?x=2&", "/events/other?x=1&", "/events/orders?"] {
                    let response = try await get(gateway, other + "sse_ticket=" + minted.ticket)
                    XCTAssertTrue(response.hasPrefix("HTTP/1.1 401"), "\(other): \(response)")
                    XCTAssertTrue(response.contains("binding_mismatch"), response)
                }
                let intended = try await get(gateway, minted.url)
                XCTAssertTrue(intended.hasPrefix("HTTP/1.1 200"), "still unused: \(intended)")
                let metrics = OperationsIntegrationTests.samples(
                    try await MetricsFirstScrapeTests.scrape(gateway)
                )
                XCTAssertEqual(
                    metrics[#"sse_gateway_tickets_redeemed_total{result="binding_mismatch"}"#],
                    3
                )
            }
        }
    }

    func testExpiredAndUnknownTickets() async throws {
        let token = try await token()
        try await withUpstream(group: group, handler: Self.oneEvent) { upstream in
            try await withTicketGateway(upstream, tickets: TicketConfiguration(ttl: .milliseconds(300))) {
                gateway in
                let minted = try await mint(gateway, "/events/orders", token: token)
                try await Task.sleep(for: .milliseconds(400))
                let expired = try await get(gateway, minted.url)
                XCTAssertTrue(expired.hasPrefix("HTTP/1.1 401"), expired)
                XCTAssertTrue(expired.contains("expired"), expired)
                let unknown = try await get(gateway, "/events/orders?sse_ticket=sset_nothing")
                XCTAssertTrue(unknown.contains("unknown"), unknown)
                XCTAssertTrue(upstream.requests.isEmpty)
            }
        }
    }

    func testTheStreamEndsAtTheTokensExpiry() async throws {
        let token = try await token(expiresIn: 2)
        try await withUpstream(group: group, handler: Self.openStream) { upstream in
            try await withTicketGateway(upstream) { gateway in
                let minted = try await mint(gateway, "/events/orders", token: token)
                XCTAssertLessThanOrEqual(
                    minted.expires_in,
                    2,
                    "never longer than the token's remaining life"
                )
                let client = try await gateway.connect(group: group)
                try await client.get(minted.url)
                try await client.wait(for: "token_expired", timeout: .seconds(5)) {
                    $0.contains("event: token_expired")
                }
            }
        }
    }

    func testNeitherTicketNorTokenReachesALogLine() async throws {
        let log = CapturedLog()
        let token = try await token()
        var ticket = ""
        try await withUpstream(group: group, handler: Self.oneEvent) { upstream in
            try await withTicketGateway(upstream, logger: log.logger) { gateway in
                let minted = try await mint(gateway, "/events/orders?x=1", token: token)
                ticket = minted.ticket
                _ = try await get(gateway, minted.url)
                _ = try await get(gateway, minted.url + "&x=2")  // refused: binding mismatch
            }
        }
        let text = log.text
        XCTAssertTrue(text.contains("sse_ticket=REDACTED"), text)
        let mintLines = text.split(separator: "\n").filter { $0.contains("outcome=ticket_minted") }
        XCTAssertEqual(mintLines.count, 1, "the mint has its access-log line: \(text)")
        XCTAssertTrue(mintLines.first?.contains("status=201") == true, "\(mintLines)")
        for line in text.split(separator: "\n") {
            XCTAssertFalse(line.contains(ticket), "ticket in: \(line)")
            XCTAssertFalse(line.contains(String(ticket.dropFirst(5))), "ticket body in: \(line)")
            XCTAssertFalse(line.contains(token), "token in: \(line)")
        }
    }

    /// A mint whose token names a key the gateway does not hold yet refreshes the JWKS first, as a direct token does.
    func testMintWithANewlyRotatedKeyRefreshesTheJWKS() async throws {
        let k1 = P256.Signing.PrivateKey()
        let k2 = P256.Signing.PrivateKey()
        let document = NIOLockedValueBox(JWKSFetcherTests.jwks([("k1", k1)]))
        let jwks: TestUpstream.Handler = { _, responder in
            let body = document.withLockedValue { $0 }
            responder.head(.ok, [("content-type", "application/json"), ("content-length", "\(body.utf8.count)")])
            responder.body(body)
            responder.end()
        }
        try await withUpstream(group: group, handler: jwks) { jwksServer in
            try await withUpstream(group: group, handler: Self.oneEvent) { upstream in
                let policy = AuthPolicyConfiguration(
                    tokenSources: [.header("Authorization")],
                    jwt: JWTConfiguration(algorithms: [.es256], jwksURL: "\(jwksServer.url)/jwks.json"),
                    tickets: TicketConfiguration()
                )
                try await withGateway(
                    routes: [route(upstream: upstream) { $0.auth = "users" }],
                    configure: { $0.authPolicies = ["users": policy] },
                    group: group
                ) { gateway in
                    let exp = Date().timeIntervalSince1970 + 600
                    try await eventually("the JWKS fetched at start", read: { jwksServer.requests.count }) { $0 >= 1 }
                    document.withLockedValue { $0 = JWKSFetcherTests.jwks([("k1", k1), ("k2", k2)]) }
                    let before = jwksServer.requests.count
                    let rotated = try JWKSFetcherTests.token(kid: "k2", key: k2, exp: exp)
                    let minted = try await mint(gateway, "/events/x", token: rotated)
                    XCTAssertEqual(jwksServer.requests.count, before + 1, "one refresh for the unknown kid")
                    let redeemed = try await get(gateway, minted.url)
                    XCTAssertTrue(redeemed.hasPrefix("HTTP/1.1 200"), redeemed)
                }
            }
        }
    }
}
