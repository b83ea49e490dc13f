import Crypto
import Foundation
import GatewayCore
import NIOHTTP1
import XCTest

final class AuthCacheTests: XCTestCase {
    func testCacheHitAvoidsReverification() async throws {
        let auth = try Policies.jwt()
        let token = try await Mint.hs256(Mint.valid())
        for i in 0..<5 { XCTAssertNotNil(auth.bearer(token, now: TestKeys.now + Double(i)).request) }
        XCTAssertEqual(auth.signatureVerifications, 1)
        XCTAssertEqual(auth.cache.count, 1)
        // A different token is verified on its own.
        let other = try await Mint.hs256(Mint.valid { $0.sub = "u2" })
        XCTAssertNotNil(auth.bearer(other).request)
        XCTAssertEqual(auth.signatureVerifications, 2)
    }

    func testCacheRespectsExp() async throws {
        let auth = try Policies.jwt(adjust: { $0.clockSkew = .zero })
        let token = try await Mint.hs256(Mint.valid { $0.exp = TestKeys.nowSeconds + 10 })
        XCTAssertNotNil(auth.bearer(token).request)
        XCTAssertNotNil(auth.bearer(token, now: TestKeys.now + 9).request)
        XCTAssertEqual(auth.signatureVerifications, 1)
        XCTAssertEqual(auth.bearer(token, now: TestKeys.now + 10).reason, .expired)
        XCTAssertEqual(auth.signatureVerifications, 2, "an expired entry is not served from the cache")
    }

    func testRejectedTokensAreNotCached() async throws {
        let auth = try Policies.jwt()
        let token = try await Mint.hs256(Mint.valid(), secret: TestKeys.secret + "-other")
        XCTAssertEqual(auth.bearer(token).reason, .badSignature)
        XCTAssertEqual(auth.bearer(token).reason, .badSignature)
        XCTAssertEqual(auth.signatureVerifications, 2)
        XCTAssertEqual(auth.cache.count, 0)
    }

    func testAReloadOfAnUnchangedPolicyKeepsItsVerifiedTokens() async throws {
        let pem = TestKeys.p256.publicKey.pemRepresentation
        let before = try Policies.jwt([.hs256, .es256], pems: [pem])
        let token = try await Mint.hs256(Mint.valid())
        XCTAssertNotNil(before.bearer(token).request)
        XCTAssertEqual(before.signatureVerifications, 1)

        let reloaded = try Policies.jwt([.hs256, .es256], pems: [pem], previous: before)
        XCTAssertTrue(reloaded.cache === before.cache)
        XCTAssertNotNil(reloaded.bearer(token).request)
        XCTAssertEqual(reloaded.signatureVerifications, 0, "served from the kept cache")

        // A rotated key file (same path, new text), a new secret or a changed policy: verified again from scratch.
        let rotated = try Policies.jwt([.hs256, .es256], pems: [P256.Signing.PrivateKey().publicKey.pemRepresentation],
                                       previous: before)
        let resecreted = try Policies.jwt([.hs256, .es256], secret: TestKeys.secret + "-2", pems: [pem],
                                          previous: before)
        let narrowed = try Policies.jwt([.hs256, .es256], pems: [pem], adjust: { $0.audience = "other" },
                                        previous: before)
        for changed in [rotated, resecreted, narrowed] {
            XCTAssertFalse(changed.cache === before.cache)
            XCTAssertEqual(changed.cache.count, 0)
        }
        XCTAssertEqual(resecreted.bearer(token).reason, .badSignature, "the old secret's token is not served")
    }

    func testCacheIsBoundedAndEvictsOldest() {
        let cache = VerifiedTokenCache(capacity: 3)
        let identity = VerifiedIdentity(method: .jwt, subject: "s", expiresAt: 100, claimHeaders: [])
        let digests = (0..<5).map { SHA256.hash(data: [UInt8($0)]) }
        for digest in digests { cache.insert(identity, for: digest) }
        XCTAssertEqual(cache.count, 3)
        XCTAssertNil(cache.identity(for: digests[0], now: 0))
        XCTAssertNil(cache.identity(for: digests[1], now: 0))
        XCTAssertEqual(cache.identity(for: digests[4], now: 0), identity)
        XCTAssertNil(cache.identity(for: digests[4], now: 100))
    }

    func testCacheIsSafeUnderConcurrentUse() async throws {
        let auth = try Policies.jwt()
        var tokens: [String] = []
        for i in 0..<20 { tokens.append(try await Mint.hs256(Mint.valid { $0.sub = "u\(i)" })) }
        let snapshot = tokens
        DispatchQueue.concurrentPerform(iterations: 400) { i in
            XCTAssertEqual(auth.bearer(snapshot[i % 20]).request?.identity.subject, "u\(i % 20)")
        }
        XCTAssertGreaterThanOrEqual(auth.signatureVerifications, 20)
        XCTAssertLessThan(auth.signatureVerifications, 400)
    }
}
