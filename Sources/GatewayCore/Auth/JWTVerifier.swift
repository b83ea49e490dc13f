import Foundation

/// Verifies a compact JWS synchronously against the policy's keys and claim rules.
///
/// The header's `kid` and `alg` pick the keys here (never a key collection's fallback), `alg` must be in the
/// allow-list and fit the key type, and every failure is a value: nothing throws out, nothing traps.
public struct JWTVerifier: Sendable {
    /// Longer tokens are refused before any parsing.
    public static let maxTokenBytes = 8 * 1024

    /// The result of one verification.
    public enum Outcome: Sendable {
        case verified(VerifiedToken)
        case failed(AuthFailure)
        /// The token names a `kid` the JWKS does not hold (yet).
        case unknownKey(kid: String)
    }

    public let algorithms: Set<JWTAlgorithm>
    let staticKeys: [VerificationKey]
    let jwks: JWKSKeyStore?
    let issuer: String?
    let audience: String?
    let clockSkew: Double
    let requiredClaims: [String]
    let maxLifetime: Double?

    init(configuration c: JWTConfiguration, staticKeys: [VerificationKey], jwks: JWKSKeyStore?) {
        self.algorithms = Set(c.algorithms)
        self.staticKeys = staticKeys
        self.jwks = jwks
        self.issuer = c.issuer
        self.audience = c.audience
        self.clockSkew = c.clockSkew.inSeconds
        self.requiredClaims = c.requiredClaims
        self.maxLifetime = c.maxLifetime?.inSeconds
    }

    public func verify(_ token: String, now: Double) -> Outcome {
        guard token.utf8.count <= Self.maxTokenBytes else { return .failed(.init(.malformed, "token too long")) }
        let bytes = Array(token.utf8)
        guard let firstDot = bytes.firstIndex(of: UInt8(ascii: ".")),
            let secondDot = bytes[(firstDot + 1)...].firstIndex(of: UInt8(ascii: ".")),
            !bytes[(secondDot + 1)...].contains(UInt8(ascii: "."))
        else { return .failed(.init(.malformed, "not a JWT")) }

        guard let headerBytes = Base64URL.decode(bytes[..<firstDot]),
            let header = ClaimValue.parseObject(headerBytes)
        else { return .failed(.init(.malformed, "unreadable JWT header")) }
        guard case .string(let algName)? = header["alg"], let alg = JWTAlgorithm(rawValue: algName),
            algorithms.contains(alg)
        else { return .failed(.init(.algorithm, "token algorithm not allowed")) }
        if header["crit"] != nil { return .failed(.init(.malformed, "unsupported critical header")) }
        let kid: String?
        switch header["kid"] {
        case nil, .null?: kid = nil
        case .string(let value)?: kid = value
        default: return .failed(.init(.malformed, "kid is not a string"))
        }

        guard let signature = Base64URL.decode(bytes[(secondDot + 1)...]), !signature.isEmpty else {
            return .failed(.init(.malformed, "unreadable JWT signature"))
        }
        let signingInput = bytes[..<secondDot]
        let jwksKeys = jwks?.keys(kid: kid) ?? []
        var candidates = 0
        var verified = false
        for key in staticKeys + jwksKeys where key.algorithms.contains(alg) {
            candidates += 1
            if key.verify(signature, signs: signingInput, algorithm: alg) {
                verified = true
                break
            }
        }
        if !verified {
            if let kid, jwks != nil, jwksKeys.isEmpty { return .unknownKey(kid: kid) }
            if candidates == 0 { return .failed(.init(.unknownKey, "no key for this token")) }
            return .failed(.init(.badSignature, "signature verification failed"))
        }

        guard let payloadBytes = Base64URL.decode(bytes[(firstDot + 1)..<secondDot]),
            let claims = ClaimValue.parseObject(payloadBytes)
        else { return .failed(.init(.malformed, "unreadable JWT payload")) }
        return checkClaims(claims, now: now)
    }

    /// RFC 7519 §4.1 checks with `clock_skew` leeway; `exp` is mandatory.
    func checkClaims(_ claims: [String: ClaimValue], now: Double) -> Outcome {
        guard let exp = claims["exp"]?.doubleValue, exp.isFinite else {
            return .failed(.init(.missingClaim, "exp claim missing"))
        }
        if now >= exp + clockSkew { return .failed(.init(.expired, "token expired")) }
        if let nbfValue = claims["nbf"] {
            guard let nbf = nbfValue.doubleValue else { return .failed(.init(.malformed, "nbf is not a number")) }
            if now + clockSkew < nbf { return .failed(.init(.notYetValid, "token not valid yet")) }
        }
        let iat: Double?
        if let iatValue = claims["iat"] {
            guard let value = iatValue.doubleValue else { return .failed(.init(.malformed, "iat is not a number")) }
            if now + clockSkew < value { return .failed(.init(.notYetValid, "token issued in the future")) }
            iat = value
        } else {
            iat = nil
        }
        if let issuer {
            guard case .string(let iss)? = claims["iss"], iss == issuer else {
                return .failed(.init(.issuer, "issuer not accepted"))
            }
        }
        if let audience {
            let accepted: Bool
            switch claims["aud"] {
            case .string(let aud)?: accepted = aud == audience
            case .array(let auds)?: accepted = auds.contains(.string(audience))
            default: accepted = false
            }
            guard accepted else { return .failed(.init(.audience, "audience not accepted")) }
        }
        for name in requiredClaims {
            switch claims[name] {
            case nil, .null?: return .failed(.init(.missingClaim, "required claim \(name) missing"))
            default: continue
            }
        }
        if let maxLifetime {
            guard let iat else { return .failed(.init(.lifetime, "iat required to check the token lifetime")) }
            if exp - iat > maxLifetime { return .failed(.init(.lifetime, "token lifetime too long")) }
        }
        return .verified(VerifiedToken(claims: claims, expiresAt: exp))
    }
}

/// The claims of a token whose signature and claims passed.
public struct VerifiedToken: Sendable {
    public let claims: [String: ClaimValue]
    /// `exp`, unix seconds.
    public let expiresAt: Double
}

