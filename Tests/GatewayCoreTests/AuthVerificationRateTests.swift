import GatewayCore
import JWTKit
import NIOHTTP1
import XCTest

/// Prints verifications per second, cold (every call checks the signature) and cached. Asserts correctness only.
final class AuthVerificationRateTests: XCTestCase {
    func testPrintVerificationRates() async throws {
        let cases: [(String, GatewayCore.JWTAlgorithm, String?, (JWTKeyCollection) async -> Void)] = [
            ("HS256", .hs256, nil, { await $0.add(hmac: HMACKey(from: TestKeys.secret), digestAlgorithm: .sha256) }),
            (
                "RS256", .rs256, TestKeys.rsa.publicKey.pemRepresentation,
                { await $0.add(rsa: TestKeys.rsa, digestAlgorithm: .sha256) }
            ),
            ("ES256", .es256, TestKeys.p256.publicKey.pemRepresentation, { await $0.add(ecdsa: TestKeys.p256) }),
            ("EdDSA", .eddsa, TestKeys.ed25519.publicKey.pemRepresentation, { await $0.add(eddsa: TestKeys.ed25519) }),
        ]
        for (name, alg, pem, add) in cases {
            let a = try await Mint.token(Mint.valid { $0.sub = "a" }, add)
            let b = try await Mint.token(Mint.valid { $0.sub = "b" }, add)
            let cold = try Policies.jwt([alg], secret: alg.isHMAC ? TestKeys.secret : nil, pems: pem.map { [$0] } ?? [])
            // Capacity 1 and alternating tokens: every call misses the cache.
            let coldAuth = try RouteAuthenticator(
                name: "bench",
                policy: AuthPolicyConfiguration(
                    jwt: JWTConfiguration(
                        algorithms: [alg],
                        secret: alg.isHMAC ? TestKeys.secret : nil,
                        publicKeyPaths: pem == nil ? [] : ["key0.pem"]
                    )
                ),
                cacheCapacity: 1,
                readFile: { _ in pem ?? "" }
            )
            let coldRate = Self.rate { i in coldAuth.bearer(i % 2 == 0 ? a : b).request != nil }
            let before = coldAuth.signatureVerifications
            _ = coldAuth.bearer(a)
            _ = coldAuth.bearer(b)
            XCTAssertEqual(coldAuth.signatureVerifications, before + 2, "cold calls really verify")
            let cachedRate = Self.rate { _ in cold.bearer(a).request != nil }
            XCTAssertEqual(cold.signatureVerifications, 1, "cached calls do not verify")
            print("verification rate \(name): cold \(Int(coldRate))/s, cached \(Int(cachedRate))/s")
        }
    }

    /// Calls `body` for about 0.3 s and returns calls per second; fails if any call returned false.
    static func rate(_ body: (Int) -> Bool) -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        var calls = 0
        while clock.now - start < .milliseconds(300) {
            for _ in 0..<16 {
                XCTAssertTrue(body(calls))
                calls += 1
            }
        }
        let elapsed = (clock.now - start) / .seconds(1)
        return Double(calls) / elapsed
    }
}
