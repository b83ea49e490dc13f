import Crypto
import CryptoExtras  // RSA verification; built as part of JWTKit's dependencies.
import Foundation
import JWTKit

/// One key that can check JWS signatures synchronously, with the algorithms it may be used for.
///
/// jwt-kit 5 parses the keys (PEM, JWK), but its signers are internal and its `JWTKeyCollection` is an actor that
/// silently falls back to its first key for an unknown `kid`. So the gateway picks keys itself and checks signatures
/// with the same swift-crypto primitives jwt-kit uses, without an async hop.
public struct VerificationKey: Sendable, CustomStringConvertible {
    enum Material: @unchecked Sendable {
        case hmac(KeyedHMAC)
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
        case p521(P521.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
    }

    let material: Material
    /// `kid` of a JWKS key; `nil` for the HMAC secret and PEM keys, which serve tokens with any `kid`.
    public let kid: String?
    /// Algorithms of the policy's allow-list that fit this key's type (and the JWK's `alg`, if it names one).
    public let algorithms: Set<JWTAlgorithm>

    init(material: Material, kid: String?, algorithms: Set<JWTAlgorithm>) {
        self.material = material
        self.kid = kid
        self.algorithms = algorithms
    }

    /// Never shows key material.
    public var description: String {
        let type: String
        switch material {
        case .hmac: type = "HMAC"
        case .rsa: type = "RSA"
        case .p256: type = "P-256"
        case .p384: type = "P-384"
        case .p521: type = "P-521"
        case .ed25519: type = "Ed25519"
        }
        return "VerificationKey(\(type), kid: \(kid ?? "-"), algorithms: \(algorithms.map(\.rawValue).sorted()))"
    }

    /// Algorithms a key type may ever serve: the guard against algorithm confusion.
    static func family(of material: Material) -> Set<JWTAlgorithm> {
        switch material {
        case .hmac: [.hs256, .hs384, .hs512]
        case .rsa: [.rs256, .rs384, .rs512, .ps256, .ps384, .ps512]
        case .p256: [.es256]
        case .p384: [.es384]
        case .p521: [.es512]
        case .ed25519: [.eddsa]
        }
    }

    /// Checks `signature` over `signingInput`; any crypto error (wrong length, bad encoding) is `false`.
    func verify(_ signature: [UInt8], signs signingInput: ArraySlice<UInt8>, algorithm: JWTAlgorithm) -> Bool {
        guard algorithms.contains(algorithm) else { return false }
        switch (material, algorithm) {
        case (.hmac(let keyed), .hs256):
            return keyed.sha256.isValid(signature, for: signingInput)
        case (.hmac(let keyed), .hs384):
            return keyed.sha384.isValid(signature, for: signingInput)
        case (.hmac(let keyed), .hs512):
            return keyed.sha512.isValid(signature, for: signingInput)
        case (.rsa(let key), _):
            let rsaSignature = _RSA.Signing.RSASignature(rawRepresentation: signature)
            let padding: _RSA.Signing.Padding
            switch algorithm {
            case .ps256, .ps384, .ps512: padding = .PSS
            default: padding = .insecurePKCS1v1_5
            }
            switch algorithm {
            case .rs256, .ps256:
                return key.isValidSignature(rsaSignature, for: SHA256.hash(data: signingInput), padding: padding)
            case .rs384, .ps384:
                return key.isValidSignature(rsaSignature, for: SHA384.hash(data: signingInput), padding: padding)
            case .rs512, .ps512:
                return key.isValidSignature(rsaSignature, for: SHA512.hash(data: signingInput), padding: padding)
            default: return false
            }
        case (.p256(let key), .es256):
            guard let sig = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(sig, for: SHA256.hash(data: signingInput))
        case (.p384(let key), .es384):
            guard let sig = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(sig, for: SHA384.hash(data: signingInput))
        case (.p521(let key), .es512):
            guard let sig = try? P521.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(sig, for: SHA512.hash(data: signingInput))
        case (.ed25519(let key), .eddsa):
            return key.isValidSignature(signature, for: signingInput)
        default:
            return false
        }
    }
}

extension VerificationKey {
    /// HMAC secrets shorter than the SHA-256 output are refused, as RFC 7518 §3.2 requires.
    static let minimumSecretBytes = 32

    /// The policy's HMAC secret, for the HS* algorithms in `allowed`.
    static func hmac(secret: String, allowed: Set<JWTAlgorithm>) throws(KeyError) -> VerificationKey {
        guard secret.utf8.count >= minimumSecretBytes else {
            throw KeyError("the secret must be at least \(minimumSecretBytes) bytes")
        }
        let material = Material.hmac(KeyedHMAC(SymmetricKey(data: Array(secret.utf8))))
        let algorithms = family(of: material).intersection(allowed)
        guard !algorithms.isEmpty else {
            throw KeyError("a secret is set but no HS256/HS384/HS512 algorithm is allowed")
        }
        return VerificationKey(material: material, kid: nil, algorithms: algorithms)
    }

    /// A PEM public key (or certificate): RSA (2048 bits or more), EC P-256/384/521, or Ed25519.
    static func pem(_ pem: String, allowed: Set<JWTAlgorithm>) throws(KeyError) -> VerificationKey {
        if pem.contains("PRIVATE KEY-----") { throw KeyError("expected a public key, found a private key") }
        let isCertificate = pem.contains("BEGIN CERTIFICATE")
        let material: Material
        if let rsa = try?
            (isCertificate ? Insecure.RSA.PublicKey(certificatePEM: pem) : Insecure.RSA.PublicKey(pem: pem)),
            let key = try? _RSA.Signing.PublicKey(derRepresentation: rsa.derRepresentation)
        {
            material = .rsa(key)
        } else if let ec = try? (isCertificate ? ES256PublicKey(certificate: pem) : ES256PublicKey(pem: pem)),
            let key = try? P256.Signing.PublicKey(pemRepresentation: ec.pemRepresentation)
        {
            material = .p256(key)
        } else if let ec = try? (isCertificate ? ES384PublicKey(certificate: pem) : ES384PublicKey(pem: pem)),
            let key = try? P384.Signing.PublicKey(pemRepresentation: ec.pemRepresentation)
        {
            material = .p384(key)
        } else if let ec = try? (isCertificate ? ES512PublicKey(certificate: pem) : ES512PublicKey(pem: pem)),
            let key = try? P521.Signing.PublicKey(pemRepresentation: ec.pemRepresentation)
        {
            material = .p521(key)
        } else if !isCertificate, let ed = try? EdDSA.PublicKey(pem: pem),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: ed.rawRepresentation)
        {
            material = .ed25519(key)
        } else {
            throw KeyError("not a PEM public key of a supported type (RSA >= 2048 bits, EC P-256/384/521, Ed25519)")
        }
        let algorithms = family(of: material).intersection(allowed)
        guard !algorithms.isEmpty else {
            throw KeyError("the key type fits none of the allowed algorithms \(allowed.map(\.rawValue).sorted())")
        }
        return VerificationKey(material: material, kid: nil, algorithms: algorithms)
    }

    /// A JWKS entry; `nil` for keys the gateway cannot use (private-only, unsupported type, alg outside `allowed`).
    static func jwk(_ jwk: JWK, allowed: Set<JWTAlgorithm>) -> VerificationKey? {
        let material: Material
        switch jwk.keyType {
        case .rsa:
            guard let n = jwk.modulus, let e = jwk.exponent,
                let rsa = try? Insecure.RSA.PublicKey(modulus: n, exponent: e),
                let key = try? _RSA.Signing.PublicKey(derRepresentation: rsa.derRepresentation)
            else { return nil }
            material = .rsa(key)
        case .ecdsa:
            guard let x = jwk.x, let y = jwk.y else { return nil }
            switch jwk.curve?.rawValue {
            case "P-256":
                guard let ec = try? ES256PublicKey(parameters: (x, y)),
                    let key = try? P256.Signing.PublicKey(pemRepresentation: ec.pemRepresentation)
                else { return nil }
                material = .p256(key)
            case "P-384":
                guard let ec = try? ES384PublicKey(parameters: (x, y)),
                    let key = try? P384.Signing.PublicKey(pemRepresentation: ec.pemRepresentation)
                else { return nil }
                material = .p384(key)
            case "P-521":
                guard let ec = try? ES512PublicKey(parameters: (x, y)),
                    let key = try? P521.Signing.PublicKey(pemRepresentation: ec.pemRepresentation)
                else { return nil }
                material = .p521(key)
            default: return nil
            }
        case .octetKeyPair:
            guard jwk.curve?.rawValue == "Ed25519", let x = jwk.x, let ed = try? EdDSA.PublicKey(x: x, curve: .ed25519),
                let key = try? Curve25519.Signing.PublicKey(rawRepresentation: ed.rawRepresentation)
            else { return nil }
            material = .ed25519(key)
        default:
            return nil
        }
        var algorithms = family(of: material).intersection(allowed)
        if let named = jwk.algorithm {
            algorithms = algorithms.filter { $0.rawValue == named.rawValue }
        }
        guard !algorithms.isEmpty else { return nil }
        return VerificationKey(material: material, kid: jwk.keyIdentifier?.string, algorithms: algorithms)
    }

    struct KeyError: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }
}

/// A secret's HMAC states, keyed once: `HMAC(key:)` pads the key and hashes both pads (allocating as it goes) on
/// every call, which `isValidAuthenticationCode(_:authenticating:using:)` does per token. A copy of a keyed state
/// (copy-on-write) takes the token's bytes instead.
struct KeyedHMAC: Sendable {
    let sha256: HMAC<SHA256>
    let sha384: HMAC<SHA384>
    let sha512: HMAC<SHA512>

    init(_ key: SymmetricKey) {
        sha256 = HMAC(key: key)
        sha384 = HMAC(key: key)
        sha512 = HMAC(key: key)
    }
}

extension HMAC {
    /// Whether `code` authenticates `data`: the comparison is swift-crypto's constant-time one.
    func isValid(_ code: [UInt8], for data: ArraySlice<UInt8>) -> Bool {
        var mac = self
        mac.update(data: data)
        return mac.finalize() == code
    }
}
