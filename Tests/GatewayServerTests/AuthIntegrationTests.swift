import Crypto
import CryptoExtras
import Foundation
import GatewayCore
import GatewayServer
import JWTKit
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

/// Claims for tokens minted in these tests with jwt-kit's own signer.
private struct Claims: JWTPayload {
    var sub: String = "user-42"
    /// Whole seconds, as every token the gateway's own tools mint.
    var exp = Int(Date().timeIntervalSince1970) + 600
    var iat = Int(Date().timeIntervalSince1970) - 5
    var aud: String? = "events"
    var iss: String? = "https://issuer.test"
    var org: [String: String]? = ["id": "org-7"]

    func verify(using algorithm: some JWTKit.JWTAlgorithm) async throws {}
}

/// Token auth end to end: the gateway verifies before the upstream is touched, and the upstream sees only a header.
final class AuthIntegrationTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton
    static let secret = "integration-secret-0123456789abcdef0123456789"

    private func mint(_ claims: Claims = Claims(), kid: String? = nil, _ add: (JWTKeyCollection) async -> Void)
        async throws -> String
    {
        let keys = JWTKeyCollection()
        await add(keys)
        return try await keys.sign(claims, kid: kid.map { JWKIdentifier(string: $0) })
    }

    private func hs256(_ claims: Claims = Claims()) async throws -> String {
        try await mint(claims) { await $0.add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256) }
    }

    private func policy(
        _ algorithms: [GatewayCore.JWTAlgorithm] = [.hs256],
        publicKeys: [String] = [],
        jwksURL: String? = nil,
        apiKeys: [APIKeyConfiguration] = []
    ) -> AuthPolicyConfiguration {
        AuthPolicyConfiguration(
            tokenSources: [.query("access_token"), .cookie("sse_token"), .header("Authorization")],
            jwt: JWTConfiguration(
                algorithms: algorithms,
                secret: algorithms.contains(where: \.isHMAC) ? Self.secret : nil,
                publicKeyPaths: publicKeys,
                jwksURL: jwksURL,
                issuer: "https://issuer.test",
                audience: "events",
                requiredClaims: ["sub"]
            ),
            apiKeys: apiKeys,
            claimsToHeaders: [ClaimHeaderMapping(claim: "sub", header: "X-User-Id"),
                              ClaimHeaderMapping(claim: "org.id", header: "X-Org-Id")]
        )
    }

    /// Runs `body` with a gateway whose `/events/` route needs `policy` ("users") and whose `/open/` route is open.
    private func withAuthGateway<Value>(
        _ upstream: TestUpstream,
        policy: AuthPolicyConfiguration,
        cors: CORSConfiguration? = nil,
        logger: Logger = GatewayHarness.silent,
        _ body: (GatewayHarness) async throws -> Value
    ) async throws -> Value {
        try await withGateway(
            routes: [
                route(upstream: upstream) { $0.auth = "users" }, route("open", prefix: "/open/", upstream: upstream),
            ],
            configure: {
                $0.authPolicies = ["users": policy]
                $0.cors = cors
            },
            group: group,
            logger: logger,
            body
        )
    }

    /// An upstream that answers every request with one event and ends.
    private static let secretStream: TestUpstream.Handler = { _, responder in
        responder.sseHead()
        responder.body("data: secret stuff\n\n")
        responder.end()
    }

    /// Sends a request and returns the raw response once it is complete.
    private func exchange(_ gateway: GatewayHarness, _ request: String) async throws -> String {
        let client = try await gateway.connect(group: group)  // closed with the gateway
        try await client.send(request)
        return try await client.wait(for: "response") { $0.hasSuffix("0\r\n\r\n") || $0.hasSuffix("}") || $0.hasSuffix("\r\n\r\n") && $0.contains(" 204 ") }
    }

    func testQueryTokenBecomesAuthorizationHeaderAndIsStripped() async throws {
        try await withUpstream(group: group, handler: Self.secretStream) { upstream in
            try await withAuthGateway(upstream, policy: policy()) { gateway in
                let token = try await hs256()
                let response = try await exchange(
                    gateway,
                    "GET /events/feed?a=1&access_token=\(token)&b=%20x+y HTTP/1.1\r\nHost: gw\r\nX-User-Id: spoofed\r\n"
                        + "Cookie: theme=dark; sse_token=\(token); lang=en\r\n\r\n"
                )
                XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK"), response)
                XCTAssertEqual(RawClient.dechunk(response), "data: secret stuff\n\n")
                let seen = try XCTUnwrap(upstream.requests.first)
                XCTAssertEqual(seen.head.uri, "/events/feed?a=1&b=%20x+y", "token removed, other parameters byte for byte")
                XCTAssertEqual(seen.head.headers["authorization"], ["Bearer \(token)"])
                XCTAssertEqual(seen.head.headers["x-user-id"], ["user-42"], "the spoofed header is replaced by the claim")
                XCTAssertEqual(seen.head.headers["x-org-id"], ["org-7"], "nested claims by dotted path")
                XCTAssertEqual(seen.head.headers["cookie"], ["theme=dark; lang=en"])
                XCTAssertFalse(seen.head.description.contains("access_token"))
            }
        }
    }

    func testCookieToken() async throws {
        try await withUpstream(group: group, handler: Self.secretStream) { upstream in
            try await withAuthGateway(upstream, policy: policy()) { gateway in
                let token = try await hs256()
                let response = try await exchange(gateway, "GET /events/feed HTTP/1.1\r\nHost: gw\r\nCookie: sse_token=\(token)\r\n\r\n")
                XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK"), response)
                XCTAssertEqual(upstream.requests.first?.head.headers["authorization"], ["Bearer \(token)"])
                XCTAssertTrue(upstream.requests.first?.head.headers["cookie"].isEmpty ?? false)
            }
        }
    }

    func testRejectionsNeverReachTheUpstream() async throws {
        try await withUpstream(group: group, handler: Self.secretStream) { upstream in
            try await withAuthGateway(upstream, policy: policy()) { gateway in
                let now = Int(Date().timeIntervalSince1970)
                let cases: [(String, String)] = [
                    ("missing", ""),
                    ("wrong signature", try await mint { await $0.add(hmac: HMACKey(from: Self.secret + "x"), digestAlgorithm: .sha256) }),
                    ("expired", try await hs256(Claims(exp: now - 3600, iat: now - 7200))),
                    ("not yet valid (iat in the future)", try await hs256(Claims(exp: now + 7200, iat: now + 3600))),
                    ("wrong audience", try await hs256(Claims(aud: "other"))),
                    ("wrong issuer", try await hs256(Claims(iss: "https://evil.test"))),
                    ("alg none", Mint.unsigned(#"{"alg":"none","typ":"JWT"}"#, #"{"sub":"x","exp":\#(now + 600)}"#)),
                    ("garbage", "not.a.jwt"),
                ]
                for (name, token) in cases {
                    let query = token.isEmpty ? "" : "?access_token=\(token)"
                    let response = try await exchange(gateway, "GET /events/feed\(query) HTTP/1.1\r\nHost: gw\r\n\r\n")
                    XCTAssertTrue(response.hasPrefix("HTTP/1.1 401 "), "\(name): \(response)")
                    if token.isEmpty {
                        XCTAssertTrue(response.contains(#"www-authenticate: Bearer realm="sse-gateway""#), response)
                        XCTAssertTrue(response.contains(#""error":"missing_token""#), response)
                    } else {
                        XCTAssertTrue(response.contains(#"error="invalid_token""#), "\(name): \(response)")
                        XCTAssertTrue(response.contains(#""error":"invalid_token""#), "\(name): \(response)")
                        XCTAssertFalse(response.contains(token), "\(name): the token must not be echoed")
                    }
                }
                XCTAssertEqual(upstream.requests.count, 0)
                XCTAssertEqual(upstream.connectionsAccepted, 0, "the upstream is never contacted")
            }
        }
    }

    func testAsymmetricAlgorithmsFromPEMFiles() async throws {
        let rsa = try JWTKit.Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
        let p256 = ES256PrivateKey()
        let ed = try EdDSA.PrivateKey(curve: .ed25519)
        let edPEM = try Curve25519.Signing.PublicKey(rawRepresentation: ed.publicKey.rawRepresentation).pemRepresentation
        let files = try [rsa.publicKey.pemRepresentation, p256.publicKey.pemRepresentation, edPEM].map(Mint.pemFile)
        defer { for file in files { try? FileManager.default.removeItem(atPath: file) } }
        try await withUpstream(group: group, handler: Self.secretStream) { upstream in
            try await withAuthGateway(upstream, policy: policy([.rs256, .ps256, .es256, .eddsa], publicKeys: files)) { gateway in
                let tokens = [
                    ("RS256", try await mint { await $0.add(rsa: rsa, digestAlgorithm: .sha256) }),
                    ("PS256", try await mint { await $0.add(pss: rsa, digestAlgorithm: .sha256) }),
                    ("ES256", try await mint { await $0.add(ecdsa: p256) }),
                    ("EdDSA", try await mint { await $0.add(eddsa: ed) }),
                ]
                for (name, token) in tokens {
                    let response = try await exchange(gateway, "GET /events/x HTTP/1.1\r\nHost: gw\r\nAuthorization: bearer \(token)\r\n\r\n")
                    XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 "), "\(name): \(response)")
                }
                let rsaPEM = rsa.publicKey.pemRepresentation
                // Key confusion: HS256 signed with the RSA public key's PEM text as the HMAC secret.
                let confused = try await mint { await $0.add(hmac: HMACKey(from: rsaPEM), digestAlgorithm: .sha256) }
                let rejected = try await exchange(gateway, "GET /events/x?access_token=\(confused) HTTP/1.1\r\nHost: gw\r\n\r\n")
                XCTAssertTrue(rejected.hasPrefix("HTTP/1.1 401 "), rejected)
                XCTAssertEqual(upstream.requests.count, tokens.count)
            }
        }
    }

    func testJWKSRotationAndCachedKeysWhenTheEndpointIsDown() async throws {
        let k1 = P256.Signing.PrivateKey()
        let k2 = P256.Signing.PrivateKey()
        let document = NIOLockedValueBox(JWKSFetcherTests.jwks([("k1", k1)]))
        let jwks: TestUpstream.Handler = { _, responder in
            let body = document.withLockedValue { $0 }
            responder.head(.ok, [("content-type", "application/json"), ("content-length", String(body.utf8.count))])
            responder.body(body)
            responder.end()
        }
        try await withUpstream(group: group, handler: jwks) { jwksServer in
            try await withUpstream(group: group, handler: Self.secretStream) { upstream in
                var jwksPolicy = policy([.es256], jwksURL: "\(jwksServer.url)/jwks.json")
                jwksPolicy.jwt?.issuer = nil
                jwksPolicy.jwt?.audience = nil
                try await withAuthGateway(upstream, policy: jwksPolicy) { gateway in
                    let exp = Date().timeIntervalSince1970 + 600
                    func status(_ token: String) async throws -> String {
                        let response = try await exchange(gateway, "GET /events/x?access_token=\(token) HTTP/1.1\r\nHost: gw\r\n\r\n")
                        return String(response.prefix(12))
                    }
                    var first = ""
                    for _ in 0..<50 {  // the JWKS is fetched in the background at start-up
                        first = try await status(try JWKSFetcherTests.token(kid: "k1", key: k1, exp: exp))
                        if first == "HTTP/1.1 200" { break }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    XCTAssertEqual(first, "HTTP/1.1 200")
                    document.withLockedValue { $0 = JWKSFetcherTests.jwks([("k1", k1), ("k2", k2)]) }
                    let rotated = try JWKSFetcherTests.token(kid: "k2", key: k2, exp: exp)
                    let beforeFetches = jwksServer.requests.count
                    let afterRotation = try await status(rotated)
                    XCTAssertEqual(afterRotation, "HTTP/1.1 200", "an unknown kid triggers a refresh, then verifies")
                    XCTAssertEqual(jwksServer.requests.count, beforeFetches + 1)
                    await jwksServer.stop()
                    let whileDown = try await status(rotated)
                    XCTAssertEqual(whileDown, "HTTP/1.1 200", "cached keys keep working while the JWKS is down")
                    let forged = try JWKSFetcherTests.token(kid: "k3", key: P256.Signing.PrivateKey(), exp: exp)
                    let forgedStatus = try await status(forged)
                    XCTAssertEqual(forgedStatus, "HTTP/1.1 401")
                }
            }
        }
    }

    func testAPIKeys() async throws {
        let key = "svc-key-123"
        let digest = Array(SHA256.hash(data: Array(key.utf8)))
        try await withUpstream(group: group, handler: Self.secretStream) { upstream in
            try await withAuthGateway(
                upstream,
                policy: policy(apiKeys: [APIKeyConfiguration(sha256: digest, subject: "service-a")])
            ) { gateway in
                let ok = try await exchange(gateway, "GET /events/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \(key)\r\n\r\n")
                XCTAssertTrue(ok.hasPrefix("HTTP/1.1 200 "), ok)
                XCTAssertEqual(upstream.requests.first?.head.headers["x-user-id"], ["service-a"])
                let bad = try await exchange(gateway, "GET /events/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer svc-key-124\r\n\r\n")
                XCTAssertTrue(bad.hasPrefix("HTTP/1.1 401 "), bad)
            }
        }
    }

    func testCORSPreflightAndCredentialedResponses() async throws {
        try await withUpstream(group: group, handler: Self.secretStream) { upstream in
            try await withAuthGateway(
                upstream,
                policy: policy(),
                cors: CORSConfiguration(allowedOrigins: ["https://app.example"], allowCredentials: true)
            ) { gateway in
                let preflight = try await exchange(
                    gateway,
                    "OPTIONS /events/x HTTP/1.1\r\nHost: gw\r\nOrigin: https://app.example\r\n"
                        + "Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: last-event-id\r\n\r\n"
                )
                XCTAssertTrue(preflight.hasPrefix("HTTP/1.1 204 "), preflight)
                XCTAssertTrue(preflight.contains("Access-Control-Allow-Origin: https://app.example"), preflight)
                XCTAssertTrue(preflight.contains("Access-Control-Allow-Credentials: true"), preflight)
                XCTAssertTrue(preflight.contains("Last-Event-ID"), preflight)
                let foreign = try await exchange(
                    gateway,
                    "OPTIONS /events/x HTTP/1.1\r\nHost: gw\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: GET\r\n\r\n"
                )
                XCTAssertFalse(foreign.contains("Access-Control-Allow-Origin"), foreign)

                let denied = try await exchange(gateway, "GET /events/x HTTP/1.1\r\nHost: gw\r\nOrigin: https://app.example\r\n\r\n")
                XCTAssertTrue(denied.hasPrefix("HTTP/1.1 401 "), denied)
                XCTAssertTrue(denied.contains("Access-Control-Allow-Origin: https://app.example"), "errors are readable by the page")
                let token = try await hs256()
                let allowed = try await exchange(
                    gateway,
                    "GET /events/x HTTP/1.1\r\nHost: gw\r\nOrigin: https://app.example\r\nCookie: sse_token=\(token)\r\n\r\n"
                )
                XCTAssertTrue(allowed.hasPrefix("HTTP/1.1 200 "), allowed)
                XCTAssertTrue(allowed.contains("Access-Control-Allow-Origin: https://app.example"), allowed)
                XCTAssertTrue(allowed.contains("Access-Control-Allow-Credentials: true"), allowed)
                XCTAssertTrue(allowed.contains("Vary: Origin"), allowed)
            }
        }
    }

    func testExpiringTokenEndsStreamWithTokenExpiredEvent() async throws {
        try await withUpstream(group: group, handler: { _, responder in
            responder.sseHead()
            responder.body("id: 1\ndata: before expiry\n\n")
        }) { upstream in
            try await withAuthGateway(upstream, policy: policy()) { gateway in
                let token = try await hs256(Claims(exp: Int((Date().timeIntervalSince1970 + 1.5).rounded(.up))))
                let client = try await gateway.connect(group: group)
                try await client.get("/events/feed?access_token=\(token)")
                let text = try await client.wait(for: "token_expired and end") { $0.hasSuffix("0\r\n\r\n") }
                let body = RawClient.dechunk(text)
                XCTAssertTrue(body.hasPrefix("id: 1\ndata: before expiry\n\nevent: token_expired\n"), body)
                XCTAssertTrue(body.contains("\nretry: "), body)
                XCTAssertTrue(body.hasSuffix("\n\n"), body)
            }
        }
    }

    func testNoTokenInAnyLogLine() async throws {
        let log = CapturedLog()
        let token = try await hs256()
        try await withUpstream(group: group, handler: Self.secretStream) { upstream in
            try await withAuthGateway(upstream, policy: policy(), logger: log.logger) { gateway in
                _ = try await exchange(gateway, "GET /events/feed?access_token=\(token)&x=1 HTTP/1.1\r\nHost: gw\r\n\r\n")
                _ = try await exchange(gateway, "GET /events/feed?access_token=\(token)x HTTP/1.1\r\nHost: gw\r\n\r\n")
            }
        }
        let text = log.text  // read once the gateway has stopped and logged its last line
        XCTAssertTrue(text.contains("access_token=REDACTED&x=1"), text)
        XCTAssertTrue(text.contains("reason=bad_signature") || text.contains("reason=malformed"), text)
        XCTAssertFalse(text.contains(token.split(separator: ".")[2]), "no token signature in any log line")
        XCTAssertFalse(text.contains(Self.secret))
    }
}

enum Mint {
    static func base64url(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func unsigned(_ header: String, _ payload: String) -> String {
        base64url(Array(header.utf8)) + "." + base64url(Array(payload.utf8)) + "."
    }

    static func pemFile(_ pem: String) throws -> String {
        let path = NSTemporaryDirectory() + "sse-gateway-test-\(UUID().uuidString).pem"
        try pem.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
