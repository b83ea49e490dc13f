import Crypto
import CryptoExtras
import Foundation
import GatewayCore
import JWTKit
import NIOHTTP1
import XCTest

/// Claims minted by tests through jwt-kit's own signing.
struct TestClaims: JWTPayload {
    struct Org: Codable, Equatable, Sendable {
        var id: String
        var tier: Int
    }

    var sub: String? = "user-1"
    /// Whole seconds, as every token the gateway's own tools mint (see `DemoTokenTests`).
    var exp: Int?
    var nbf: Int?
    var iat: Int?
    var iss: String?
    var aud: AudienceClaim?
    var org: Org?
    var roles: [String]?
    var admin: Bool?
    var level: Int?
    var tenant: String?

    func verify(using algorithm: some JWTKit.JWTAlgorithm) async throws {}
}

/// Keys generated once per test run (RSA generation is slow).
enum TestKeys {
    static let nowSeconds = 1_800_000_000
    static let now = Double(nowSeconds)
    /// 64 bytes: jwt-kit asserts HMAC keys are at least as long as the hash output (HS512).
    static let secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    static let rsa: JWTKit.Insecure.RSA.PrivateKey = try! JWTKit.Insecure.RSA.PrivateKey(
        backing: _RSA.Signing.PrivateKey(keySize: .bits2048)
    )
    static let otherRSA: JWTKit.Insecure.RSA.PrivateKey = try! JWTKit.Insecure.RSA.PrivateKey(
        backing: _RSA.Signing.PrivateKey(keySize: .bits2048)
    )
    static let p256 = ES256PrivateKey()
    static let p384 = ES384PrivateKey()
    static let p521 = ES512PrivateKey()
    static let ed25519 = try! EdDSA.PrivateKey(curve: .ed25519)

    /// Writes `pem` to a fresh temporary file and returns its path.
    static func pemFile(_ pem: String) throws -> String {
        let path = NSTemporaryDirectory() + "sse-gateway-auth-\(UUID().uuidString).pem"
        try pem.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

enum Mint {
    /// Signs with jwt-kit's `JWTKeyCollection`.
    static func token(
        _ claims: TestClaims,
        _ add: (JWTKeyCollection) async -> Void,
        kid: String? = nil
    ) async throws
        -> String
    {
        let keys = JWTKeyCollection()
        await add(keys)
        return try await keys.sign(claims, kid: kid.map { JWKIdentifier(string: $0) })
    }

    static func hs256(_ claims: TestClaims, secret: String = TestKeys.secret, kid: String? = nil) async throws -> String
    {
        try await token(claims, { await $0.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256) }, kid: kid)
    }

    static func rs256(
        _ claims: TestClaims,
        key: JWTKit.Insecure.RSA.PrivateKey = TestKeys.rsa,
        kid: String? = nil
    ) async throws
        -> String
    {
        try await token(claims, { await $0.add(rsa: key, digestAlgorithm: .sha256) }, kid: kid)
    }

    static func base64url(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// A token with a hand-written header and payload, signed by `sign` over the signing input.
    static func raw(header: String, payload: String, sign: ([UInt8]) -> [UInt8]) -> String {
        let input = base64url(Array(header.utf8)) + "." + base64url(Array(payload.utf8))
        return input + "." + base64url(sign(Array(input.utf8)))
    }

    static func hmac256(_ secret: [UInt8]) -> ([UInt8]) -> [UInt8] {
        { Array(HMAC<SHA256>.authenticationCode(for: $0, using: SymmetricKey(data: secret))) }
    }

    static func valid(_ adjust: (inout TestClaims) -> Void = { _ in }) -> TestClaims {
        var claims = TestClaims(exp: TestKeys.nowSeconds + 600, iat: TestKeys.nowSeconds - 10)
        adjust(&claims)
        return claims
    }
}

/// Builds authenticators for tests.
enum Policies {
    static func jwt(
        _ algorithms: [GatewayCore.JWTAlgorithm] = [.hs256],
        secret: String? = TestKeys.secret,
        pems: [String] = [],
        jwks: JWKSKeyStore? = nil,
        adjust: (inout JWTConfiguration) -> Void = { _ in },
        sources: [TokenSource] = [.query("access_token"), .cookie("sse_token"), .header("Authorization")],
        claimsToHeaders: [ClaimHeaderMapping] = [],
        apiKeys: [APIKeyConfiguration] = [],
        previous: RouteAuthenticator? = nil
    ) throws -> RouteAuthenticator {
        var config = JWTConfiguration(
            algorithms: algorithms,
            secret: secret,
            publicKeyPaths: pems.indices.map { "key\($0).pem" },
            jwksURL: jwks == nil ? nil : "https://issuer.example/jwks.json"
        )
        adjust(&config)
        let policy = AuthPolicyConfiguration(
            tokenSources: sources,
            jwt: config,
            apiKeys: apiKeys,
            claimsToHeaders: claimsToHeaders
        )
        return try RouteAuthenticator(name: "users", policy: policy, jwks: jwks, previous: previous) { path in
            guard let index = Int(path.dropFirst(3).dropLast(4)), pems.indices.contains(index) else {
                return try String(contentsOfFile: path, encoding: .utf8)
            }
            return pems[index]
        }
    }
}

extension AuthOutcome {
    var request: AuthenticatedRequest? {
        if case .authenticated(let request) = self { return request }
        return nil
    }

    var failure: AuthFailure? {
        if case .rejected(let failure) = self { return failure }
        return nil
    }

    var reason: AuthFailure.Reason? { failure?.reason }
}

extension RouteAuthenticator {
    /// Authenticates a token sent as `Authorization: Bearer`.
    func bearer(_ token: String, now: Double = TestKeys.now, allowKeyRefresh: Bool = true) -> AuthOutcome {
        authenticate(
            query: nil as String?,
            headers: HTTPHeaders([("Authorization", "Bearer " + token)]),
            now: now,
            allowKeyRefresh: allowKeyRefresh
        )
    }
}

final class AuthMintingTests: XCTestCase {
    func testMintedHS256TokenHasThreeSegmentsAndVerifies() async throws {
        let token = try await Mint.hs256(Mint.valid())
        XCTAssertEqual(token.split(separator: ".").count, 3)
        let auth = try Policies.jwt()
        XCTAssertEqual(auth.bearer(token).request?.identity.subject, "user-1")
    }
}
