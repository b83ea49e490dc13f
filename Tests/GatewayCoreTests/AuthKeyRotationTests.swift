import Crypto
import Foundation
import GatewayCore
import JWTKit
import NIOHTTP1
import XCTest

/// `kid` handling with and without a JWKS, and the pure JWKS refresh policy.
final class AuthKeyRotationTests: XCTestCase {
    static func jwksDocument(_ entries: [(kid: String, key: JWTKit.Insecure.RSA.PrivateKey)]) throws -> [UInt8] {
        let keys = try entries.map { entry -> String in
            let (n, e) = try entry.key.publicKey.getKeyPrimitives()
            return
                #"{"kty":"RSA","kid":"\#(entry.kid)","use":"sig","alg":"RS256","#
                + #""n":"\#(Mint.base64url(n))","e":"\#(Mint.base64url(e))"}"#
        }
        return Array(#"{"keys":[{"kty":"oct","k":"c2VjcmV0"},\#(keys.joined(separator: ","))]}"#.utf8)
    }

    func store() -> JWKSKeyStore {
        JWKSKeyStore(
            allowedAlgorithms: [.rs256],
            policy: JWKSRefreshPolicy(refreshInterval: 300, unknownKeyInterval: 30)
        )
    }

    func testKnownKidVerifiesAndUnknownKidAsksForRefreshOnceThenFails() async throws {
        let jwks = store()
        try jwks.install(jwksDocument: Self.jwksDocument([("k1", TestKeys.rsa)]), now: TestKeys.now)
        XCTAssertEqual(jwks.keyIDs, ["k1"])
        let auth = try Policies.jwt([.rs256], secret: nil, jwks: jwks)
        let known = try await Mint.rs256(Mint.valid(), kid: "k1")
        XCTAssertNotNil(auth.bearer(known).request)

        let rotated = try await Mint.rs256(Mint.valid(), key: TestKeys.otherRSA, kid: "k2")
        guard case .needsKeyRefresh(let kid) = auth.bearer(rotated) else {
            return XCTFail("expected a refresh request")
        }
        XCTAssertEqual(kid, "k2")
        // Within the rate limit the same (or another) unknown kid is rejected as unknown_key, not bad_signature.
        XCTAssertEqual(auth.bearer(rotated, now: TestKeys.now + 1).reason, .unknownKey)

        // The retry after a refresh never asks again, even once the rate limit has passed.
        guard case .rejected(let again) = auth.bearer(rotated, now: TestKeys.now + 60, allowKeyRefresh: false) else {
            return XCTFail("the retry must not ask for another refresh")
        }
        XCTAssertEqual(again.reason, .unknownKey)

        // The server refreshes; the new kid now verifies and the old one still does.
        try jwks.install(
            jwksDocument: Self.jwksDocument([("k1", TestKeys.rsa), ("k2", TestKeys.otherRSA)]),
            now: TestKeys.now + 2
        )
        XCTAssertNotNil(auth.bearer(rotated, now: TestKeys.now + 2).request)
        XCTAssertNotNil(auth.bearer(known, now: TestKeys.now + 2).request)

        // A known kid with another key's signature is a bad signature, never a fallback to a different key.
        let wrongKey = try await Mint.rs256(Mint.valid(), key: TestKeys.otherRSA, kid: "k1")
        XCTAssertEqual(auth.bearer(wrongKey, now: TestKeys.now + 3).reason, .badSignature)
    }

    func testUnknownKidWithoutJWKSIsUnknownKeyAndStaticKeysIgnoreKid() async throws {
        let auth = try Policies.jwt([.rs256], secret: nil, pems: [TestKeys.rsa.publicKey.pemRepresentation])
        let token = try await Mint.rs256(Mint.valid(), kid: "whatever")
        XCTAssertNotNil(auth.bearer(token).request, "a PEM key serves tokens with any kid")
        let other = try await Mint.rs256(Mint.valid(), key: TestKeys.otherRSA, kid: "k9")
        XCTAssertEqual(auth.bearer(other).reason, .badSignature)
        let hmacAuth = try Policies.jwt([.hs256])
        let es = try await Mint.token(Mint.valid(), { await $0.add(ecdsa: TestKeys.p256) }, kid: "k9")
        XCTAssertEqual(hmacAuth.bearer(es).reason, .algorithm)
        let noKey = try Policies.jwt([.hs256, .es256])
        XCTAssertEqual(noKey.bearer(es).reason, .unknownKey)
    }

    func testFailedOrUnusableDocumentKeepsOldKeys() throws {
        let jwks = store()
        try jwks.install(jwksDocument: Self.jwksDocument([("k1", TestKeys.rsa)]), now: 100)
        XCTAssertThrowsError(try jwks.install(jwksDocument: Array("not json".utf8), now: 200))
        XCTAssertThrowsError(try jwks.install(jwksDocument: Array(#"{"keys":[]}"#.utf8), now: 200))
        XCTAssertThrowsError(
            try jwks.install(
                jwksDocument: Array(#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#.utf8),
                now: 200
            )
        )
        XCTAssertEqual(jwks.keyIDs, ["k1"])
        XCTAssertEqual(jwks.refreshPolicy.lastSuccess, 100)
        XCTAssertEqual(jwks.refreshPolicy.lastFailure, 200)
    }

    func testJWKSKeysOutsideTheAllowListAreIgnored() throws {
        let jwks = JWKSKeyStore(allowedAlgorithms: [.es256], policy: JWKSRefreshPolicy(refreshInterval: 60))
        XCTAssertThrowsError(try jwks.install(jwksDocument: Self.jwksDocument([("k1", TestKeys.rsa)]), now: 0))
        let (x, y) = try XCTUnwrap(TestKeys.p256.publicKey.parameters)
        let doc = #"{"keys":[{"kty":"EC","crv":"P-256","kid":"e1","x":"\#(x)","y":"\#(y)"}]}"#
        XCTAssertEqual(try jwks.install(jwksDocument: Array(doc.utf8), now: 0), 1)
        XCTAssertEqual(jwks.keyIDs, ["e1"])
    }

    func testStoreFromConfigurationUsesTheAllowListAndInterval() {
        let store = JWKSKeyStore(
            configuration: JWTConfiguration(algorithms: [.es256, .rs256], jwksRefreshInterval: .seconds(120))
        )
        XCTAssertEqual(store.allowedAlgorithms, [.es256, .rs256])
        XCTAssertEqual(store.refreshPolicy.refreshInterval, 120)
        XCTAssertEqual(store.secondsUntilRefresh(now: 0), 0)
    }

    func testRefreshPolicySchedule() {
        var policy = JWKSRefreshPolicy(refreshInterval: 300, unknownKeyInterval: 30, retryInterval: 15)
        XCTAssertEqual(policy.secondsUntilRefresh(now: 1000), 0, "nothing fetched yet: fetch now")
        policy.recordSuccess(now: 1000)
        XCTAssertEqual(policy.secondsUntilRefresh(now: 1100), 200)
        XCTAssertEqual(policy.secondsUntilRefresh(now: 1400), 0)
        policy.recordFailure(now: 1100)
        XCTAssertEqual(policy.secondsUntilRefresh(now: 1105), 10, "retry soon after a failure")
        policy.recordSuccess(now: 1120)
        XCTAssertEqual(policy.secondsUntilRefresh(now: 1120), 300)
    }

    func testUnknownKeyRefreshIsRateLimited() {
        var policy = JWKSRefreshPolicy(refreshInterval: 300, unknownKeyInterval: 30)
        XCTAssertTrue(policy.claimUnknownKeyRefresh(now: 0))
        XCTAssertFalse(policy.claimUnknownKeyRefresh(now: 29.9))
        XCTAssertTrue(policy.claimUnknownKeyRefresh(now: 30))
        XCTAssertFalse(policy.claimUnknownKeyRefresh(now: 31))
    }
}
