import Crypto
import GatewayCore
import NIOHTTP1
import XCTest

final class APIKeyTests: XCTestCase {
    func policy(jwt: JWTConfiguration? = nil) throws -> RouteAuthenticator {
        let keys = [
            APIKeyConfiguration(sha256: Array(SHA256.hash(data: Array("key-one".utf8))), subject: "svc-one"),
            APIKeyConfiguration(sha256: Array(SHA256.hash(data: Array("key-two".utf8))), subject: "svc-two"),
        ]
        return try RouteAuthenticator(
            name: "svc",
            policy: AuthPolicyConfiguration(
                tokenSources: [.header("X-API-Key"), .query("api_key")],
                jwt: jwt,
                apiKeys: keys,
                forward: ForwardConfiguration(header: "Authorization", scheme: "Bearer"),
                claimsToHeaders: [ClaimHeaderMapping(claim: "sub", header: "X-User")]
            )
        )
    }

    func testMatchingKeyAuthenticatesWithConfiguredSubject() throws {
        let auth = try policy()
        let outcome = auth.authenticate(query: "api_key=key-two&x=1", headers: HTTPHeaders(), now: 0)
        XCTAssertEqual(
            outcome.request?.identity,
            VerifiedIdentity(
                method: .apiKey,
                subject: "svc-two",
                expiresAt: nil,
                claimHeaders: [ClaimHeader(name: "X-User", value: "svc-two")]
            )
        )
        XCTAssertEqual(outcome.request?.query, "x=1")
        XCTAssertEqual(outcome.request?.headers["Authorization"], ["Bearer key-two"])
        XCTAssertEqual(outcome.request?.headers["X-User"], ["svc-two"])
        XCTAssertEqual(auth.signatureVerifications, 0)
    }

    func testBearerHeaderCarriesTheKeyToo() throws {
        let outcome = try policy().authenticate(
            query: nil as String?,
            headers: HTTPHeaders([("X-API-Key", "Bearer key-one")]),
            now: 0
        )
        XCTAssertEqual(outcome.request?.identity.subject, "svc-one")
        XCTAssertFalse(outcome.request?.headers.contains(name: "X-API-Key") ?? true)
    }

    func testMismatchIsUnknownAPIKey() throws {
        let auth = try policy()
        for key in ["key-three", "key-onex", "KEY-ONE", "a.b.c"] {
            XCTAssertEqual(
                auth.authenticate(query: "api_key=\(key)", headers: HTTPHeaders(), now: 0).reason,
                .unknownAPIKey,
                key
            )
        }
    }

    func testWithJWTConfiguredAPIKeysStillMatchAndNonJWTShapesAreUnknownKeys() async throws {
        let auth = try policy(jwt: JWTConfiguration(algorithms: [.hs256], secret: TestKeys.secret))
        XCTAssertEqual(
            auth.authenticate(query: "api_key=key-one", headers: HTTPHeaders(), now: 0).request?.identity.method,
            .apiKey
        )
        XCTAssertEqual(auth.authenticate(query: "api_key=nope", headers: HTTPHeaders(), now: 0).reason, .unknownAPIKey)
        let token = try await Mint.hs256(Mint.valid())
        XCTAssertEqual(
            auth.authenticate(query: "api_key=\(token)", headers: HTTPHeaders(), now: TestKeys.now).request?.identity
                .method,
            .jwt
        )
    }

    func testVerifierComparesAllDigests() {
        let verifier = APIKeyVerifier(keys: [
            APIKeyConfiguration(sha256: Array(SHA256.hash(data: Array("a".utf8))), subject: "first"),
            APIKeyConfiguration(sha256: Array(SHA256.hash(data: Array("a".utf8))), subject: "duplicate"),
        ])
        XCTAssertEqual(verifier.subject(forKey: "a"), "first")
        XCTAssertNil(verifier.subject(forKey: "b"))
    }
}
