import Crypto
import Foundation
import XCTest
import _CryptoExtras

@testable import sse_load

final class MintTests: XCTestCase {
    private let claims = BenchClaims(subject: "bench-7", tokenID: "run-7", audience: "bench", issuedAt: 1_700_000_000,
                                     expiresAt: 1_700_003_600)

    /// Standard base64url decoding (Foundation, padding restored), independent of the encoder under test.
    private func decode(_ part: Substring) throws -> Data {
        var text = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        XCTAssertFalse(text.contains("="), "no padding in JWS")
        while text.count % 4 != 0 { text += "=" }
        return try XCTUnwrap(Data(base64Encoded: text), "not base64url: \(part)")
    }

    /// Splits a compact JWS, checks header and payload JSON, returns (signing input, signature).
    private func parts(_ token: String, alg: String) throws -> (input: Data, signature: Data) {
        let pieces = token.split(separator: ".", omittingEmptySubsequences: false)
        XCTAssertEqual(pieces.count, 3)
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: decode(pieces[0])) as? [String: Any])
        XCTAssertEqual(header["alg"] as? String, alg)
        XCTAssertEqual(header["typ"] as? String, "JWT")
        let payload = try XCTUnwrap(JSONSerialization.jsonObject(with: decode(pieces[1])) as? [String: Any])
        XCTAssertEqual(payload["sub"] as? String, "bench-7")
        XCTAssertEqual(payload["jti"] as? String, "run-7")
        XCTAssertEqual(payload["aud"] as? String, "bench")
        XCTAssertEqual(payload["iat"] as? Int, 1_700_000_000)
        XCTAssertEqual(payload["exp"] as? Int, 1_700_003_600)
        return (Data((pieces[0] + "." + pieces[1]).utf8), try decode(pieces[2]))
    }

    func testBase64URLMatchesFoundationWithoutPadding() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let expected = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            XCTAssertEqual(base64URL(bytes), expected, "length \(length)")
        }
        XCTAssertEqual(base64URL([0xFB, 0xFF]), "-_8")
    }

    func testHS256VerifiesWithTheSecret() throws {
        let key = try SigningKey.generate(.hs256)
        guard case .hmac(let secret) = key else { return XCTFail("not an HMAC key") }
        XCTAssertGreaterThanOrEqual(secret.utf8.count, 32, "the gateway refuses shorter secrets")
        XCTAssertEqual(key.verificationMaterial, secret)
        let (input, signature) = try parts(try encodeJWT(claims, key: key), alg: "HS256")
        let secretKey = SymmetricKey(data: Array(secret.utf8))
        XCTAssertTrue(HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: input, using: secretKey))
        var tampered = input
        tampered[tampered.startIndex] ^= 1
        XCTAssertFalse(HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: tampered, using: secretKey))
    }

    func testRS256VerifiesWithThePublicPEM() throws {
        let key = try SigningKey.generate(.rs256)
        let pem = key.verificationMaterial
        XCTAssertTrue(pem.hasPrefix("-----BEGIN PUBLIC KEY-----"), pem)
        let publicKey = try _RSA.Signing.PublicKey(pemRepresentation: pem)
        XCTAssertEqual(publicKey.keySizeInBits, 2048)
        let (input, signature) = try parts(try encodeJWT(claims, key: key), alg: "RS256")
        XCTAssertEqual(signature.count, 256)
        let rsaSignature = _RSA.Signing.RSASignature(rawRepresentation: signature)
        XCTAssertTrue(publicKey.isValidSignature(rsaSignature, for: input, padding: .insecurePKCS1v1_5))
        XCTAssertFalse(publicKey.isValidSignature(rsaSignature, for: input, padding: .PSS), "PKCS#1 v1.5, not PSS")
    }

    func testES256SignatureIsRawRAndSAndVerifiesWithThePublicPEM() throws {
        let key = try SigningKey.generate(.es256)
        let pem = key.verificationMaterial
        XCTAssertTrue(pem.hasPrefix("-----BEGIN PUBLIC KEY-----"), pem)
        let publicKey = try P256.Signing.PublicKey(pemRepresentation: pem)
        let (input, signature) = try parts(try encodeJWT(claims, key: key), alg: "ES256")
        XCTAssertEqual(signature.count, 64, "JWS wants r||s, not DER")
        let ecdsa = try P256.Signing.ECDSASignature(rawRepresentation: signature)
        XCTAssertTrue(publicKey.isValidSignature(ecdsa, for: input))
        XCTAssertFalse(publicKey.isValidSignature(ecdsa, for: input + Data([0])))
    }

    func testClaimsJSONEscapesStrings() throws {
        var odd = claims
        odd.audience = "a\"b\\c\nd\u{1}"
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(odd.json.utf8)) as? [String: Any])
        XCTAssertEqual(object["aud"] as? String, "a\"b\\c\nd\u{1}")
    }

    func testMintWritesDistinctTokensAndTheKeyFile() throws {
        let directory = NSTemporaryDirectory() + "sse-load-mint-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try mintTokens(algorithm: .es256, count: 50, directory: directory, audience: "events",
                                    lifetimeSeconds: 600)
        let tokens = try readTokens(path: result.tokensPath)
        XCTAssertEqual(tokens.count, 50)
        XCTAssertEqual(Set(tokens).count, 50, "every token distinct: the gateway caches verified tokens by hash")
        let publicKey = try P256.Signing.PublicKey(pemRepresentation: String(contentsOfFile: result.keyPath,
                                                                              encoding: .utf8))
        var subjects = Set<String>()
        for token in tokens {
            let pieces = token.split(separator: ".")
            let signature = try P256.Signing.ECDSASignature(rawRepresentation: decode(pieces[2]))
            XCTAssertTrue(publicKey.isValidSignature(signature, for: Data((pieces[0] + "." + pieces[1]).utf8)))
            let payload = try XCTUnwrap(JSONSerialization.jsonObject(with: decode(pieces[1])) as? [String: Any])
            XCTAssertEqual(payload["aud"] as? String, "events")
            let iat = try XCTUnwrap(payload["iat"] as? Int)
            XCTAssertEqual(payload["exp"] as? Int, iat + 600)
            XCTAssertLessThan(abs(Double(iat) - Date().timeIntervalSince1970), 60)
            subjects.insert(try XCTUnwrap(payload["sub"] as? String))
        }
        XCTAssertEqual(subjects.count, 50)
    }

    func testReadTokensRefusesAnEmptyFile() throws {
        let path = NSTemporaryDirectory() + "sse-load-empty-\(UUID().uuidString)"
        try "\n  \n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try readTokens(path: path))
        XCTAssertThrowsError(try readTokens(path: path + "-missing"))
    }
}

final class TokenRequestTests: XCTestCase {
    func testBearerHeaderCyclesThroughTokens() throws {
        let plan = RequestPlan(target: try TargetURL("http://127.0.0.1:8080/d?x=1"), headers: [("X-A", "b")],
                               tokens: ["t1", "t2", "t3"], queryName: nil)
        let indexes = (0..<7).map { plan.credentialIndex(forConnection: $0) }
        XCTAssertEqual(indexes, [0, 1, 2, 0, 1, 2, 0])
        let head = plan.head(credential: 1)
        XCTAssertEqual(head.uri, "/d?x=1")
        XCTAssertEqual(head.headers["authorization"], ["Bearer t2"])
        XCTAssertEqual(head.headers["x-a"], ["b"])
        XCTAssertEqual(head.headers["host"], ["127.0.0.1:8080"])
    }

    func testQueryPlacementUsesTheRightSeparator() throws {
        let withQuery = RequestPlan(target: try TargetURL("http://127.0.0.1:8080/d?interval_ms=5"), headers: [],
                                    tokens: ["a.b.c"], queryName: "access_token")
        XCTAssertEqual(withQuery.head(credential: 0).uri, "/d?interval_ms=5&access_token=a.b.c")
        XCTAssertTrue(withQuery.head(credential: 0).headers["authorization"].isEmpty)
        let bare = RequestPlan(target: try TargetURL("http://127.0.0.1:8080/d"), headers: [], tokens: ["a.b.c"],
                               queryName: "token")
        XCTAssertEqual(bare.head(credential: 0).uri, "/d?token=a.b.c")
        XCTAssertEqual(appendingQuery(to: "/d?", name: "t", value: "v"), "/d?t=v")
        XCTAssertEqual(appendingQuery(to: "/d?a=1&", name: "t", value: "v"), "/d?a=1&t=v")
    }

    func testWithoutTokensEveryConnectionSendsTheSameRequest() throws {
        let plan = RequestPlan(target: try TargetURL("http://127.0.0.1:8080/d?x=1"), headers: [])
        XCTAssertNil(plan.credentialIndex(forConnection: 5))
        XCTAssertEqual(plan.head().uri, "/d?x=1")
        XCTAssertTrue(plan.head().headers["authorization"].isEmpty)
    }
}
