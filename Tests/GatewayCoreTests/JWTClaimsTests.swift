import GatewayCore
import JWTKit
import NIOHTTP1
import XCTest

/// Every claim check, with tokens minted by jwt-kit (HS256).
final class JWTClaimsTests: XCTestCase {
    let now = TestKeys.nowSeconds

    func outcome(
        _ claims: TestClaims,
        _ adjust: (inout JWTConfiguration) -> Void = { _ in }
    ) async throws -> AuthOutcome {
        try Policies.jwt(adjust: adjust).bearer(try await Mint.hs256(claims))
    }

    func testValidTokenAuthenticatesWithSubjectAndExpiry() async throws {
        let request = try await outcome(Mint.valid()).request
        XCTAssertEqual(request?.identity.subject, "user-1")
        XCTAssertEqual(request?.identity.expiresAt, Double(now + 600))
        XCTAssertEqual(request?.identity.method, .jwt)
    }

    func testExpiredBeyondSkewIsRejected() async throws {
        let reason = try await outcome(Mint.valid { $0.exp = self.now - 31 }).reason
        XCTAssertEqual(reason, .expired)
    }

    func testExpiredWithinSkewIsAccepted() async throws {
        let request = try await outcome(Mint.valid { $0.exp = self.now - 29 }).request
        XCTAssertNotNil(request)
    }

    func testMissingExpIsRejected() async throws {
        let reason = try await outcome(Mint.valid { $0.exp = nil }).reason
        XCTAssertEqual(reason, .missingClaim)
    }

    func testNotBeforeInFutureBeyondSkewIsRejectedAndWithinSkewAccepted() async throws {
        let far = try await outcome(Mint.valid { $0.nbf = self.now + 31 }).reason
        XCTAssertEqual(far, .notYetValid)
        let near = try await outcome(Mint.valid { $0.nbf = self.now + 29 }).request
        XCTAssertNotNil(near)
    }

    func testIssuedInFutureBeyondSkewIsRejectedAndWithinSkewAccepted() async throws {
        let far = try await outcome(Mint.valid { $0.iat = self.now + 31 }).reason
        XCTAssertEqual(far, .notYetValid)
        let near = try await outcome(Mint.valid { $0.iat = self.now + 29 }).request
        XCTAssertNotNil(near)
    }

    func testZeroSkewIsStrict() async throws {
        let reason = try await outcome(Mint.valid { $0.exp = self.now - 1 }) { $0.clockSkew = .zero }.reason
        XCTAssertEqual(reason, .expired)
        let nbf = try await outcome(Mint.valid { $0.nbf = self.now + 1 }) { $0.clockSkew = .zero }.reason
        XCTAssertEqual(nbf, .notYetValid)
    }

    func testIssuer() async throws {
        let ok = try await outcome(Mint.valid { $0.iss = "https://issuer" }) { $0.issuer = "https://issuer" }.request
        XCTAssertNotNil(ok)
        let wrong = try await outcome(Mint.valid { $0.iss = "https://evil" }) { $0.issuer = "https://issuer" }.reason
        XCTAssertEqual(wrong, .issuer)
        let missing = try await outcome(Mint.valid()) { $0.issuer = "https://issuer" }.reason
        XCTAssertEqual(missing, .issuer)
    }

    func testAudienceStringArrayAndMismatch() async throws {
        let string = try await outcome(Mint.valid { $0.aud = "api" }) { $0.audience = "api" }.request
        XCTAssertNotNil(string)
        let array = try await outcome(Mint.valid { $0.aud = AudienceClaim(value: ["other", "api"]) }) {
            $0.audience = "api"
        }.request
        XCTAssertNotNil(array)
        let mismatch = try await outcome(Mint.valid { $0.aud = AudienceClaim(value: ["other", "apis"]) }) {
            $0.audience = "api"
        }.reason
        XCTAssertEqual(mismatch, .audience)
        let missing = try await outcome(Mint.valid()) { $0.audience = "api" }.reason
        XCTAssertEqual(missing, .audience)
    }

    func testRequiredClaims() async throws {
        let present = try await outcome(Mint.valid { $0.tenant = "t1" }) { $0.requiredClaims = ["tenant", "sub"] }
        XCTAssertNotNil(present.request)
        let missing = try await outcome(Mint.valid()) { $0.requiredClaims = ["sub", "tenant"] }
        XCTAssertEqual(missing.reason, .missingClaim)
        XCTAssertEqual(missing.failure?.detail, "required claim tenant missing")
    }

    func testMaxLifetime() async throws {
        let ok = try await outcome(
            Mint.valid {
                $0.iat = self.now
                $0.exp = self.now + 3600
            }
        ) {
            $0.maxLifetime = .seconds(3600)
        }
        XCTAssertNotNil(ok.request)
        let long = try await outcome(
            Mint.valid {
                $0.iat = self.now
                $0.exp = self.now + 3601
            }
        ) {
            $0.maxLifetime = .seconds(3600)
        }
        XCTAssertEqual(long.reason, .lifetime)
        let noIat = try await outcome(Mint.valid { $0.iat = nil }) { $0.maxLifetime = .seconds(3600) }
        XCTAssertEqual(noIat.reason, .lifetime)
    }

    func testInvalidTokenChallengeFollowsRFC6750AndNeverContainsTheToken() async throws {
        let token = try await Mint.hs256(Mint.valid { $0.exp = self.now - 100 })
        let failure = try XCTUnwrap(try Policies.jwt().bearer(token).failure)
        XCTAssertEqual(failure.gatewayError, .invalidToken("token expired"))
        XCTAssertEqual(
            failure.wwwAuthenticate,
            #"Bearer realm="sse-gateway", error="invalid_token", error_description="token expired""#
        )
        for text in [failure.wwwAuthenticate, failure.description, failure.gatewayError.jsonBody] {
            XCTAssertFalse(text.contains(token))
            XCTAssertFalse(text.contains(String(token.split(separator: ".")[1])))
        }
    }

    func testReasonLabelsAreStable() {
        XCTAssertEqual(
            AuthFailure.Reason.allCases.map(\.label),
            [
                "missing", "malformed", "bad_signature", "algorithm", "expired", "not_yet_valid", "issuer", "audience",
                "missing_claim", "lifetime", "unknown_key", "unknown_api_key",
            ]
        )
    }
}
