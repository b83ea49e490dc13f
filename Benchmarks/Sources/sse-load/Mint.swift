import Crypto
import Foundation
import _CryptoExtras

/// JWS algorithms `sse-load mint` signs with: one per verification cost class (HMAC, RSA, ECDSA).
enum JWSAlgorithm: String, CaseIterable, Sendable {
    case hs256 = "HS256"
    case rs256 = "RS256"
    case es256 = "ES256"
}

/// A freshly generated signing key; `verificationMaterial` is what the gateway is configured with.
enum SigningKey {
    /// HS256: the key is the UTF-8 bytes of `secret`, exactly as the gateway reads `jwt.secret` from its config.
    case hmac(secret: String)
    case rsa(_RSA.Signing.PrivateKey)
    case p256(P256.Signing.PrivateKey)

    /// A new random key: a 64-character base64url secret (48 random bytes), RSA-2048 or P-256.
    static func generate(_ algorithm: JWSAlgorithm) throws -> SigningKey {
        switch algorithm {
        case .hs256:
            var generator = SystemRandomNumberGenerator()
            return .hmac(secret: base64URL((0..<48).map { _ in UInt8.random(in: 0...255, using: &generator) }))
        case .rs256: return .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048))
        case .es256: return .p256(P256.Signing.PrivateKey())
        }
    }

    var algorithm: JWSAlgorithm {
        switch self {
        case .hmac: .hs256
        case .rsa: .rs256
        case .p256: .es256
        }
    }

    /// The JWS signature over `input` (RFC 7518 §3): ECDSA as raw r||s (64 bytes), not DER.
    func sign(_ input: some DataProtocol) throws -> [UInt8] {
        switch self {
        case .hmac(let secret):
            return Array(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: Array(secret.utf8))))
        case .rsa(let key):
            return Array(try key.signature(for: input, padding: .insecurePKCS1v1_5).rawRepresentation)
        case .p256(let key):
            return Array(try key.signature(for: input).rawRepresentation)
        }
    }

    /// The secret (HS256) or the SPKI public key PEM (RS256, ES256).
    var verificationMaterial: String {
        switch self {
        case .hmac(let secret): secret
        case .rsa(let key): key.publicKey.pemRepresentation
        case .p256(let key): key.publicKey.pemRepresentation
        }
    }
}

/// The claims of one benchmark token; `sub` and `jti` make every token distinct (the gateway caches by token hash).
struct BenchClaims: Equatable {
    var subject: String
    var tokenID: String
    var audience: String
    var issuedAt: Int
    var expiresAt: Int

    /// Compact JSON with a fixed key order.
    var json: String {
        "{\"sub\":\(jsonString(subject)),\"jti\":\(jsonString(tokenID)),\"aud\":\(jsonString(audience)),"
            + "\"iat\":\(issuedAt),\"exp\":\(expiresAt)}"
    }
}

/// `header.payload.signature` (RFC 7515 compact serialization), every part base64url without padding.
func encodeJWT(_ claims: BenchClaims, key: SigningKey) throws -> String {
    let header = "{\"alg\":\"\(key.algorithm.rawValue)\",\"typ\":\"JWT\"}"
    let signingInput = base64URL(Array(header.utf8)) + "." + base64URL(Array(claims.json.utf8))
    return signingInput + "." + base64URL(try key.sign(Array(signingInput.utf8)))
}

private let base64URLAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

/// Base64url (RFC 4648 §5) without `=` padding, as JWS requires.
func base64URL(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count * 4 + 2) / 3)
    var index = 0
    while index + 3 <= bytes.count {
        let word = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
        for shift in [18, 12, 6, 0] as [UInt32] { out.append(base64URLAlphabet[Int((word >> shift) & 63)]) }
        index += 3
    }
    let rest = bytes.count - index
    if rest > 0 {
        let word = UInt32(bytes[index]) << 16 | (rest == 2 ? UInt32(bytes[index + 1]) << 8 : 0)
        out.append(base64URLAlphabet[Int((word >> 18) & 63)])
        out.append(base64URLAlphabet[Int((word >> 12) & 63)])
        if rest == 2 { out.append(base64URLAlphabet[Int((word >> 6) & 63)]) }
    }
    return String(decoding: out, as: UTF8.self)
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// What `mint` wrote.
struct MintResult {
    let tokensPath: String
    /// secret.txt (HS256) or public.pem.
    let keyPath: String
    let count: Int
    let seconds: Double
}

/// `sse-load mint`: a new key for `algorithm` plus `count` distinct tokens signed with it, written into `directory`.
func mintTokens(algorithm: JWSAlgorithm, count: Int, directory: String, audience: String,
                lifetimeSeconds: Int) throws -> MintResult {
    let start = monotonicSeconds()
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let key = try SigningKey.generate(algorithm)
    let keyPath = directory + (algorithm == .hs256 ? "/secret.txt" : "/public.pem")
    let material = key.verificationMaterial
    try (material.hasSuffix("\n") ? material : material + "\n").write(toFile: keyPath, atomically: true,
                                                                      encoding: .utf8)
    let now = Int(Date().timeIntervalSince1970)
    var generator = SystemRandomNumberGenerator()
    let run = String(generator.next() as UInt64, radix: 36)
    var text = ""
    text.reserveCapacity(count * 600)
    for index in 0..<count {
        let claims = BenchClaims(subject: "bench-\(index)", tokenID: "\(run)-\(index)", audience: audience,
                                 issuedAt: now, expiresAt: now + lifetimeSeconds)
        text += try encodeJWT(claims, key: key)
        text += "\n"
    }
    let tokensPath = directory + "/tokens.txt"
    try text.write(toFile: tokensPath, atomically: true, encoding: .utf8)
    return MintResult(tokensPath: tokensPath, keyPath: keyPath, count: count, seconds: monotonicSeconds() - start)
}

/// Reads a tokens file (one per line; blank lines and surrounding whitespace ignored).
func readTokens(path: String) throws -> [String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw LoadError("cannot read tokens file '\(path)'")
    }
    let tokens = text.split(whereSeparator: \.isNewline)
        .map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty }
    guard !tokens.isEmpty else { throw LoadError("tokens file '\(path)' holds no tokens") }
    return tokens
}
