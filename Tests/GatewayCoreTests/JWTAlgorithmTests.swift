import Crypto
import Foundation
import GatewayCore
import JWTKit
import NIOHTTP1
import XCTest

/// Algorithms, key types from PEM files, and the attacks on algorithm selection.
final class JWTAlgorithmTests: XCTestCase {
    let claims = Mint.valid()

    func testHMACFamily() async throws {
        for (alg, digest) in [
            (GatewayCore.JWTAlgorithm.hs256, DigestAlgorithm.sha256), (.hs384, .sha384), (.hs512, .sha512),
        ] {
            let token = try await Mint.token(claims) {
                await $0.add(hmac: HMACKey(from: TestKeys.secret), digestAlgorithm: digest)
            }
            let auth = try Policies.jwt([.hs256, .hs384, .hs512])
            XCTAssertNotNil(auth.bearer(token).request, alg.rawValue)
            XCTAssertEqual(
                try Policies.jwt([.hs256, .hs384, .hs512], secret: TestKeys.secret + "x").bearer(token).reason,
                .badSignature
            )
            let onlyOthers = Set([GatewayCore.JWTAlgorithm.hs256, .hs384, .hs512]).subtracting([alg])
            XCTAssertEqual(try Policies.jwt(Array(onlyOthers)).bearer(token).reason, .algorithm, alg.rawValue)
        }
    }

    /// The secret's HMAC states are keyed once and copied per token: many distinct tokens, bad signatures between
    /// them, from several threads at once, each judged on its own (a shared state written by one verification would
    /// fail the next valid token or pass a forged one).
    func testKeyedHMACStatesServeManyTokensConcurrently() async throws {
        let auth = try Policies.jwt([.hs256, .hs384, .hs512])
        var tokens: [(token: String, valid: Bool)] = []
        for (i, digest) in [DigestAlgorithm.sha256, .sha384, .sha512].enumerated() {
            for n in 0..<20 {
                let token = try await Mint.token(Mint.valid { $0.sub = "user-\(i)-\(n)" }) {
                    await $0.add(hmac: HMACKey(from: TestKeys.secret), digestAlgorithm: digest)
                }
                tokens.append((token, true))
                let parts = token.split(separator: ".")
                let otherSignature = try await Mint.token(Mint.valid { $0.sub = "other-\(i)-\(n)" }) {
                    await $0.add(hmac: HMACKey(from: TestKeys.secret), digestAlgorithm: digest)
                }.split(separator: ".")[2]
                tokens.append((parts[0] + "." + parts[1] + "." + otherSignature, false))
            }
        }
        let all = tokens
        let rounds = await withTaskGroup(of: [Bool].self) { group in
            for _ in 0..<4 {
                group.addTask { all.map { auth.bearer($0.token).request != nil } }
            }
            return await group.reduce(into: [[Bool]]()) { $0.append($1) }
        }
        XCTAssertEqual(rounds.count, 4)
        for (round, verdicts) in rounds.enumerated() {
            XCTAssertEqual(verdicts, all.map(\.valid), "round \(round)")
        }
    }

    func testPublicKeyAlgorithmsFromPEMFiles() async throws {
        let cases: [(GatewayCore.JWTAlgorithm, String, (JWTKeyCollection) async -> Void)] = [
            (
                .rs256, TestKeys.rsa.publicKey.pemRepresentation,
                { await $0.add(rsa: TestKeys.rsa, digestAlgorithm: .sha256) }
            ),
            (
                .rs512, TestKeys.rsa.publicKey.pemRepresentation,
                { await $0.add(rsa: TestKeys.rsa, digestAlgorithm: .sha512) }
            ),
            (
                .ps256, TestKeys.rsa.publicKey.pemRepresentation,
                { await $0.add(pss: TestKeys.rsa, digestAlgorithm: .sha256) }
            ),
            (.es256, TestKeys.p256.publicKey.pemRepresentation, { await $0.add(ecdsa: TestKeys.p256) }),
            (.es384, TestKeys.p384.publicKey.pemRepresentation, { await $0.add(ecdsa: TestKeys.p384) }),
            (.es512, TestKeys.p521.publicKey.pemRepresentation, { await $0.add(ecdsa: TestKeys.p521) }),
            (.eddsa, TestKeys.ed25519.publicKey.pemRepresentation, { await $0.add(eddsa: TestKeys.ed25519) }),
        ]
        for (alg, pem, add) in cases {
            let path = try TestKeys.pemFile(pem)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let token = try await Mint.token(claims, add)
            let policy = AuthPolicyConfiguration(jwt: JWTConfiguration(algorithms: [alg], publicKeyPaths: [path]))
            let auth = try RouteAuthenticator(name: "users", policy: policy)
            XCTAssertEqual(auth.bearer(token).request?.identity.subject, "user-1", alg.rawValue)

            // Same header and payload, signature of a different token: bad signature, no crash.
            let other = try await Mint.token(Mint.valid { $0.sub = "user-2" }, add)
            let forged =
                token.split(separator: ".").prefix(2).joined(separator: ".") + "."
                + other.split(separator: ".")[2]
            XCTAssertEqual(auth.bearer(forged).reason, .badSignature, alg.rawValue)
        }
    }

    func testAlgNoneIsRejected() throws {
        let payload = #"{"sub":"admin","exp":\#(Int(TestKeys.now) + 600)}"#
        for header in [#"{"alg":"none"}"#, #"{"alg":"None","typ":"JWT"}"#, #"{"typ":"JWT"}"#] {
            let unsigned = Mint.raw(header: header, payload: payload) { _ in [] }
            let auth = try Policies.jwt()
            XCTAssertEqual(auth.bearer(unsigned).reason, .algorithm, header)
            XCTAssertEqual(auth.bearer(unsigned + "c2ln").reason, .algorithm, header)
        }
    }

    func testKeyConfusionHS256SignedWithRSAPublicKeyPEMIsRejected() throws {
        let pem = TestKeys.rsa.publicKey.pemRepresentation
        let payload = #"{"sub":"admin","exp":\#(Int(TestKeys.now) + 600)}"#
        let forged = Mint.raw(
            header: #"{"alg":"HS256","typ":"JWT"}"#,
            payload: payload,
            sign: Mint.hmac256(Array(pem.utf8))
        )
        // RS256-only policy: HS256 is not allowed at all.
        XCTAssertEqual(try Policies.jwt([.rs256], secret: nil, pems: [pem]).bearer(forged).reason, .algorithm)
        // Even with HS256 allowed, the PEM is never used as an HMAC secret.
        XCTAssertEqual(try Policies.jwt([.rs256, .hs256], pems: [pem]).bearer(forged).reason, .badSignature)
    }

    func testAlgorithmThatDoesNotFitTheKeyIsRejectedWithoutCrash() async throws {
        let rsaPEM = TestKeys.rsa.publicKey.pemRepresentation
        let ecPEM = TestKeys.p256.publicKey.pemRepresentation
        let auth = try Policies.jwt([.rs256, .es256, .eddsa], secret: nil, pems: [rsaPEM])
        // An ES256 token against an RSA-only policy: there is no key for ES256.
        let es = try await Mint.token(claims) { await $0.add(ecdsa: TestKeys.p256) }
        XCTAssertEqual(auth.bearer(es).reason, .unknownKey)
        // An RS256 header over an ES256 signature (64 bytes): RSA rejects the length, cleanly.
        let parts = es.split(separator: ".")
        let relabelled = Mint.base64url(Array(#"{"alg":"RS256","typ":"JWT"}"#.utf8)) + "." + parts[1] + "." + parts[2]
        XCTAssertEqual(auth.bearer(relabelled).reason, .badSignature)
        // An ES256 header over an RSA signature (256 bytes) against an EC key: no crash, bad signature.
        let ecAuth = try Policies.jwt([.es256, .eddsa], secret: nil, pems: [ecPEM])
        let rs = try await Mint.rs256(claims)
        let rsParts = rs.split(separator: ".")
        let asES = Mint.base64url(Array(#"{"alg":"ES256"}"#.utf8)) + "." + rsParts[1] + "." + rsParts[2]
        XCTAssertEqual(ecAuth.bearer(asES).reason, .badSignature)
        let asEdDSA = Mint.base64url(Array(#"{"alg":"EdDSA"}"#.utf8)) + "." + rsParts[1] + "." + rsParts[2]
        XCTAssertEqual(ecAuth.bearer(asEdDSA).reason, .unknownKey)
    }

    func testSetupErrorsNameTheConfigurationPath() {
        XCTAssertThrowsError(try Policies.jwt([.rs256], secret: nil, pems: ["not a pem"])) { error in
            XCTAssertEqual((error as? AuthSetupError)?.path, "auth_policies.users.jwt.public_keys[0]")
        }
        XCTAssertThrowsError(try Policies.jwt([.es256], secret: nil, pems: [TestKeys.rsa.publicKey.pemRepresentation]))
        {
            XCTAssertEqual(($0 as? AuthSetupError)?.path, "auth_policies.users.jwt.public_keys[0]")
        }
        XCTAssertThrowsError(try Policies.jwt([.rs256], secret: nil, pems: [TestKeys.rsa.pemRepresentation])) {
            XCTAssertEqual(($0 as? AuthSetupError)?.message, "key0.pem: expected a public key, found a private key")
        }
        XCTAssertThrowsError(try Policies.jwt(secret: "short")) {
            XCTAssertEqual(($0 as? AuthSetupError)?.path, "auth_policies.users.jwt.secret")
        }
        let missingFile = AuthPolicyConfiguration(
            jwt: JWTConfiguration(algorithms: [.rs256], publicKeyPaths: ["/nonexistent/key.pem"])
        )
        XCTAssertThrowsError(try RouteAuthenticator(name: "svc", policy: missingFile)) {
            XCTAssertEqual(
                ($0 as? AuthSetupError)?.description,
                "auth_policies.svc.jwt.public_keys[0]: cannot read /nonexistent/key.pem"
            )
        }
    }

    func testGarbageTokensNeverCrashAndAreRejected() async throws {
        let auth = try Policies.jwt([.hs256, .rs256, .es256, .eddsa], pems: [TestKeys.rsa.publicKey.pemRepresentation])
        let valid = try await Mint.hs256(claims)
        XCTAssertNotNil(auth.bearer(valid).request)
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/{}\":,".utf8)
        var samples: [String] = [
            "", ".", "..", "...", "a.b.c", "e30.e30.e30", "e30.e30.", "W10.W10.AA", String(repeating: "A", count: 9000),
            Mint.base64url(Array(#"{"alg":"HS256"}"#.utf8)) + "."
                + Mint.base64url(Array(String(repeating: "[", count: 5000).utf8)) + ".AA",
            Mint.base64url(
                Array((String(repeating: "{\"a\":", count: 100) + "1" + String(repeating: "}", count: 100)).utf8)
            ) + ".e30.AA",
            Mint.base64url(Array(#"{"alg":"HS256","kid":{"x":1}}"#.utf8)) + ".e30.AA",
            Mint.base64url(Array(#"{"alg":"HS256","crit":["b64"]}"#.utf8)) + ".e30.AA",
        ]
        for _ in 0..<300 {
            samples.append(
                String(
                    decoding: (0..<Int.random(in: 1...200, using: &generator)).map { _ in
                        alphabet.randomElement(using: &generator)!
                    },
                    as: UTF8.self
                )
            )
            var bytes = Array(valid.utf8)
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let i = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[i] = alphabet.randomElement(using: &generator)!
                case 1: bytes.remove(at: i)
                default: bytes.insert(alphabet.randomElement(using: &generator)!, at: i)
                }
            }
            samples.append(String(decoding: bytes, as: UTF8.self))
        }
        for sample in samples where sample != valid {
            let outcome = auth.bearer(sample)
            if sample.isEmpty || sample.allSatisfy({ $0 == " " }) {
                XCTAssertEqual(outcome.reason, .missing)
            } else {
                XCTAssertNotNil(outcome.failure, "accepted a mutated token: \(sample)")
            }
        }
    }
}
