import Crypto
import Foundation

@testable import FuzzSupport
@testable import GatewayCore

/// The JWT header and claims parser (`ClaimJSONParser`) and `JWTVerifier`. The first input line is a JWT header, the
/// rest its payload. A parsed value prints (`compactJSON`) to JSON that parses back to the same value, and what it
/// accepts Foundation's JSON parser accepts too. The header and payload, signed with the policy's HS256 secret,
/// verify only if the header allows HS256 and the claims pass the checks written out below; the input as a token
/// itself, or the signed token with its signature changed, never verifies.
let secret = Array("fuzzing-secret-0123456789abcdef!".utf8)
let now = 1_700_000_000.0
let verifier = JWTVerifier(
    configuration: JWTConfiguration(algorithms: [.hs256], secret: String(decoding: secret, as: UTF8.self), issuer: "fuzz"),
    staticKeys: [VerificationKey(material: .hmac(SymmetricKey(data: secret)), kid: nil, algorithms: [.hs256])],
    jwks: nil
)

func base64URL(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// Integral numbers print as integers, so they parse back as `.integer`.
func printable(_ value: ClaimValue) -> ClaimValue {
    switch value {
    case .number(let d) where d == d.rounded() && abs(d) < 1e15: .integer(Int64(d))
    case .array(let items): .array(items.map(printable))
    case .object(let members): .object(members.mapValues(printable))
    default: value
    }
}

func checkParser(_ bytes: [UInt8]) {
    guard let value = ClaimJSONParser.parse(bytes, maxDepth: ClaimValue.maxDepth) else { return }
    let printed = value.compactJSON
    let reparsed = ClaimJSONParser.parse(Array(printed.utf8), maxDepth: ClaimValue.maxDepth)
    invariant(reparsed == printable(value), "\(String(decoding: bytes, as: UTF8.self).debugDescription) prints as \(printed.debugDescription), which parses to \(String(describing: reparsed))")
    if String(validating: bytes, as: UTF8.self) != nil {
        let foundation = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        invariant(foundation != nil, "accepted, but not JSON to Foundation: \(String(decoding: bytes, as: UTF8.self).debugDescription)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let raw = input.rest
    let headerBytes = Array(input.line())
    let payloadBytes = input.rest
    checkParser(raw)
    checkParser(headerBytes)
    checkParser(payloadBytes)

    if case .verified = verifier.verify(String(decoding: raw, as: UTF8.self), now: now) {
        fatalError("invariant failed: an unsigned input verified: \(String(decoding: raw, as: UTF8.self).debugDescription)")
    }
    let signingInput = base64URL(headerBytes) + "." + base64URL(payloadBytes)
    let mac = Array(HMAC<SHA256>.authenticationCode(for: Array(signingInput.utf8), using: SymmetricKey(data: secret)))
    let token = signingInput + "." + base64URL(mac)
    let outcome = verifier.verify(token, now: now)
    var forged = mac
    forged[Int(raw.count % forged.count)] ^= 1
    if case .verified = verifier.verify(signingInput + "." + base64URL(forged), now: now) {
        fatalError("invariant failed: a changed signature verified")
    }

    guard case .verified(let verified) = outcome else { return 0 }
    let header = ClaimValue.parseObject(headerBytes)
    invariant(header?["alg"] == .string("HS256"), "verified with header \(String(describing: header))")
    invariant(header?["crit"] == nil, "verified with a critical header")
    guard let claims = ClaimValue.parseObject(payloadBytes), case .string("fuzz")? = claims["iss"],
        let exp = claims["exp"]?.doubleValue, now < exp + 30
    else { fatalError("invariant failed: verified claims \(verified.claims) fail the rules") }
    invariant(verified.expiresAt == exp, "expiresAt \(verified.expiresAt), exp \(exp)")
    for name in ["nbf", "iat"] {
        if let value = claims[name] {
            guard let time = value.doubleValue, now + 30 >= time else {
                fatalError("invariant failed: verified with \(name) \(value)")
            }
        }
    }
    return 0
}
