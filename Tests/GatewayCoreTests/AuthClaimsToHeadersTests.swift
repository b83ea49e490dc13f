import GatewayCore
import JWTKit
import NIOHTTP1
import XCTest

final class AuthClaimsToHeadersTests: XCTestCase {
    let mappings = [
        ClaimHeaderMapping(claim: "sub", header: "X-User"),
        ClaimHeaderMapping(claim: "org.id", header: "X-Org"),
        ClaimHeaderMapping(claim: "org.tier", header: "X-Tier"),
        ClaimHeaderMapping(claim: "admin", header: "X-Admin"),
        ClaimHeaderMapping(claim: "roles", header: "X-Roles"),
        ClaimHeaderMapping(claim: "org", header: "X-Org-JSON"),
        ClaimHeaderMapping(claim: "tenant", header: "X-Tenant"),
    ]

    func testClaimsBecomeHeadersAndSpoofedOnesAreDropped() async throws {
        let auth = try Policies.jwt(claimsToHeaders: mappings)
        let token = try await Mint.hs256(
            Mint.valid {
                $0.org = .init(id: "acme", tier: 3)
                $0.admin = true
                $0.roles = ["a", "b\"c"]
            }
        )
        let headers = HTTPHeaders([
            ("X-User", "spoofed"), ("x-org", "spoofed"), ("X-Tenant", "spoofed"), ("Accept", "text/event-stream"),
            ("Cookie", "sse_token=\(token); theme=dark"),
        ])
        let request = try XCTUnwrap(
            auth.authenticate(query: "access_token=\(token)&since=5", headers: headers, now: TestKeys.now).request
        )
        XCTAssertEqual(request.headers["X-User"], ["user-1"])
        XCTAssertEqual(request.headers["X-Org"], ["acme"])
        XCTAssertEqual(request.headers["X-Tier"], ["3"])
        XCTAssertEqual(request.headers["X-Admin"], ["true"])
        XCTAssertEqual(request.headers["X-Roles"], [#"["a","b\"c"]"#])
        XCTAssertEqual(request.headers["X-Org-JSON"], [#"{"id":"acme","tier":3}"#])
        XCTAssertFalse(request.headers.contains(name: "X-Tenant"), "absent claim: the spoofed header is still dropped")
        XCTAssertEqual(request.headers["Accept"], ["text/event-stream"])
        XCTAssertEqual(request.headers["Cookie"], ["theme=dark"])
        XCTAssertEqual(request.headers["Authorization"], ["Bearer \(token)"])
        XCTAssertEqual(request.query, "since=5")
        XCTAssertEqual(request.source, .query("access_token"))
        XCTAssertEqual(
            request.identity.claimHeaders.map(\.name),
            ["X-User", "X-Org", "X-Tier", "X-Admin", "X-Roles", "X-Org-JSON"]
        )
    }

    func testForwardHeaderReplacesClientValueAndSchemeCanBeEmpty() async throws {
        let token = try await Mint.hs256(Mint.valid())
        let policy = AuthPolicyConfiguration(
            tokenSources: [.cookie("sse_token")],
            jwt: JWTConfiguration(algorithms: [.hs256], secret: TestKeys.secret),
            forward: ForwardConfiguration(header: "X-Upstream-Token", scheme: "")
        )
        let auth = try RouteAuthenticator(name: "p", policy: policy)
        let headers = HTTPHeaders([
            ("X-Upstream-Token", "forged"), ("Cookie", "sse_token=\"\(token)\""), ("Authorization", "Basic x"),
        ])
        let request = try XCTUnwrap(
            auth.authenticate(query: nil as String?, headers: headers, now: TestKeys.now).request
        )
        XCTAssertEqual(request.headers["X-Upstream-Token"], [token])
        XCTAssertEqual(request.headers["Authorization"], ["Basic x"], "not a token source: untouched")
        XCTAssertFalse(request.headers.contains(name: "Cookie"))
    }

    func testClaimValuesWithControlCharactersAreSkipped() throws {
        let payload = #"{"sub":"evil\r\nX-Admin: true","exp":\#(Int(TestKeys.now) + 60)}"#
        let token = Mint.raw(
            header: #"{"alg":"HS256"}"#,
            payload: payload,
            sign: Mint.hmac256(Array(TestKeys.secret.utf8))
        )
        let auth = try Policies.jwt(claimsToHeaders: [ClaimHeaderMapping(claim: "sub", header: "X-User")])
        let request = try XCTUnwrap(auth.bearer(token).request)
        XCTAssertFalse(request.headers.contains(name: "X-User"))
        XCTAssertEqual(request.identity.subject, "evil\r\nX-Admin: true")
    }

    func testTokensWithControlCharactersAreMalformed() throws {
        let auth = try Policies.jwt()
        let outcome = auth.authenticate(
            query: "access_token=abc%0D%0AX-Evil:%201",
            headers: HTTPHeaders(),
            now: TestKeys.now
        )
        XCTAssertEqual(outcome.reason, .malformed)
    }
}
