import Crypto
import Foundation
import NIOHTTP1

/// Who a verified token belongs to, and what the upstream learns about it.
public struct VerifiedIdentity: Sendable, Hashable {
    /// How the token was verified.
    public enum Method: String, Sendable, Hashable {
        case jwt
        case apiKey = "api_key"
    }

    public var method: Method
    /// `sub` of a JWT, or the configured subject of an API key.
    public var subject: String?
    /// `exp` in unix seconds; `nil` for API keys (they do not expire).
    public var expiresAt: Double?
    /// Headers from `claims_to_headers`, in configuration order.
    public var claimHeaders: [ClaimHeader]

    public init(method: Method, subject: String?, expiresAt: Double?, claimHeaders: [ClaimHeader]) {
        self.method = method
        self.subject = subject
        self.expiresAt = expiresAt
        self.claimHeaders = claimHeaders
    }
}

/// One upstream header filled from a verified claim.
public struct ClaimHeader: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A request that passed authentication, rewritten for the upstream.
public struct AuthenticatedRequest: Sendable {
    public var identity: VerifiedIdentity
    /// The query with every configured token parameter removed; `nil` if nothing is left (drop the `?`).
    public var query: String?
    /// Token cookies and headers removed, spoofed claim headers dropped, claim headers and the forward header set.
    public var headers: HTTPHeaders
    /// Where the token came from (a redeemed ticket: its query parameter).
    public var source: TokenSource
    /// The verified token itself, as the upstream receives it (what a minted ticket seals).
    public var token: String
}

/// The answer of `RouteAuthenticator.authenticate`.
public enum AuthOutcome: Sendable {
    case authenticated(AuthenticatedRequest)
    case rejected(AuthFailure)
    /// The token names a `kid` the JWKS does not hold; refresh the JWKS (`JWKSFetcher.refresh(forUnknownKid:)`), then
    /// authenticate once more with `allowKeyRefresh: false`. Unknown `kid`s within the rate limit are rejected with
    /// `unknown_key` instead, so forged kids cannot turn into a flood of fetches.
    case needsKeyRefresh(kid: String)
}

/// Authenticates requests for one `auth_policies` entry: extraction, verification, caching and rewriting.
///
/// Built once at configuration load; `authenticate` is synchronous and safe to call from any event loop.
public final class RouteAuthenticator: Sendable {
    public let name: String
    public let extractor: TokenExtractor
    public let cache: VerifiedTokenCache
    /// The policy this was built from, and a digest of the key material it read (the secret and each PEM file's
    /// text): what a reload compares before it keeps this authenticator's verified tokens.
    public let policy: AuthPolicyConfiguration
    public let keyMaterial: SHA256Digest
    private let jwt: JWTVerifier?
    private let apiKeys: APIKeyVerifier
    private let forward: ForwardConfiguration
    private let claimMappings: [ClaimHeaderMapping]
    private let jwks: JWKSKeyStore?
    private let counters = VerificationCounters()

    /// - Parameters:
    ///   - jwks: the store the server's JWKS fetcher fills; required when the policy has a `jwks_url`.
    ///   - previous: the same policy's authenticator in the configuration a reload replaces. Its verified-token cache
    ///     is kept when the policy and the key material it read are unchanged, so a reload does not send every
    ///     reconnecting client through signature verification again; a changed key (a rotated PEM file) starts empty.
    ///   - readFile: reads a PEM file (injectable for tests); errors name the key's configuration path.
    public init(
        name: String,
        policy: AuthPolicyConfiguration,
        jwks: JWKSKeyStore? = nil,
        cacheCapacity: Int = 10_000,
        previous: RouteAuthenticator? = nil,
        readFile: (String) throws -> String = { try String(contentsOfFile: $0, encoding: .utf8) }
    ) throws(AuthSetupError) {
        let path = "auth_policies.\(name)"
        self.name = name
        self.policy = policy
        var material = SHA256()
        guard !policy.tokenSources.isEmpty else {
            throw AuthSetupError(path: "\(path).token_sources", message: "at least one token source is required")
        }
        guard policy.jwt != nil || !policy.apiKeys.isEmpty else {
            throw AuthSetupError(path: path, message: "either jwt or api_keys is required")
        }
        for (i, key) in policy.apiKeys.enumerated() where key.sha256.count != 32 {
            throw AuthSetupError(path: "\(path).api_keys[\(i)].sha256", message: "must be 32 bytes")
        }
        self.extractor = TokenExtractor(sources: policy.tokenSources)
        self.apiKeys = APIKeyVerifier(keys: policy.apiKeys)
        self.forward = policy.forward
        self.claimMappings = policy.claimsToHeaders
        if let config = policy.jwt {
            let allowed = Set(config.algorithms)
            guard !allowed.isEmpty else {
                throw AuthSetupError(path: "\(path).jwt.algorithms", message: "at least one algorithm is required")
            }
            var keys: [VerificationKey] = []
            if let secret = config.secret {
                material.update(data: Array("secret:\(secret.utf8.count):".utf8) + Array(secret.utf8))
                do throws(VerificationKey.KeyError) {
                    keys.append(try .hmac(secret: secret, allowed: allowed))
                } catch {
                    throw AuthSetupError(path: "\(path).jwt.secret", message: error.message)
                }
            }
            for (i, file) in config.publicKeyPaths.enumerated() {
                let keyPath = "\(path).jwt.public_keys[\(i)]"
                let pem: String
                do {
                    pem = try readFile(file)
                } catch {
                    throw AuthSetupError(path: keyPath, message: "cannot read \(file)")
                }
                material.update(data: Array("pem:\(pem.utf8.count):".utf8) + Array(pem.utf8))
                do throws(VerificationKey.KeyError) {
                    keys.append(try .pem(pem, allowed: allowed))
                } catch {
                    throw AuthSetupError(path: keyPath, message: "\(file): \(error.message)")
                }
            }
            if config.jwksURL != nil && jwks == nil {
                throw AuthSetupError(path: "\(path).jwt.jwks_url", message: "no JWKS key store was provided")
            }
            if keys.isEmpty && config.jwksURL == nil {
                throw AuthSetupError(path: "\(path).jwt", message: "one of secret, public_keys or jwks_url is required")
            }
            self.jwks = config.jwksURL == nil ? nil : jwks
            self.jwt = JWTVerifier(configuration: config, staticKeys: keys, jwks: self.jwks)
        } else {
            self.jwks = nil
            self.jwt = nil
        }
        let keyMaterial = material.finalize()
        self.keyMaterial = keyMaterial
        if let previous, previous.policy == policy, previous.keyMaterial == keyMaterial,
            previous.cache.capacity == cacheCapacity
        {
            self.cache = previous.cache
        } else {
            self.cache = VerifiedTokenCache(capacity: cacheCapacity)
        }
    }

    /// How many tokens reached signature verification (cache hits and API keys do not count).
    public var signatureVerifications: Int { counters.value }

    /// Convenience for a `String` query.
    public func authenticate(
        query: String?,
        headers: HTTPHeaders,
        now: Double,
        allowKeyRefresh: Bool = true
    ) -> AuthOutcome {
        authenticate(query: query.map { Substring($0) }, headers: headers, now: now, allowKeyRefresh: allowKeyRefresh)
    }

    /// Authenticates a request. `query` is the raw request-target part after `?`; `headers` the client's headers
    /// (hop-by-hop ones may already be gone). `now` is unix seconds. Pass `allowKeyRefresh: false` on the retry after
    /// a JWKS refresh, so an unknown `kid` is then rejected as `unknown_key` whatever the rate limit says.
    public func authenticate(
        query: Substring?,
        headers: HTTPHeaders,
        now: Double,
        allowKeyRefresh: Bool = true
    ) -> AuthOutcome {
        guard let found = extractor.token(query: query, headers: headers) else {
            return .rejected(AuthFailure(.missing, "no token"))
        }
        let (token, source) = found
        switch identify(token, now: now, allowKeyRefresh: allowKeyRefresh) {
        case .success(let identity):
            return .authenticated(rewrite(query: query, headers: headers, token: token, source: source, identity))
        case .failure(let outcome):
            return outcome
        }
    }

    private enum Identification {
        case success(VerifiedIdentity)
        case failure(AuthOutcome)
    }

    private func identify(_ token: String, now: Double, allowKeyRefresh: Bool) -> Identification {
        guard token.utf8.count <= JWTVerifier.maxTokenBytes else {
            return .failure(.rejected(AuthFailure(.malformed, "token too long")))
        }
        // RFC 6750 b64token characters are printable ASCII; anything else (spaces, CR/LF) is never a token.
        guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(.rejected(AuthFailure(.malformed, "token contains invalid characters")))
        }
        let digest = SHA256.hash(data: Array(token.utf8))
        if let identity = cache.identity(for: digest, now: now) { return .success(identity) }
        if !apiKeys.isEmpty, let subject = apiKeys.subject(forDigest: digest) {
            let claims: [String: ClaimValue] = ["sub": .string(subject)]
            return .success(
                VerifiedIdentity(method: .apiKey, subject: subject, expiresAt: nil, claimHeaders: claimHeaders(claims))
            )
        }
        guard let jwt else { return .failure(.rejected(AuthFailure(.unknownAPIKey, "unknown API key"))) }
        if !apiKeys.isEmpty && token.utf8.count(where: { $0 == UInt8(ascii: ".") }) != 2 {
            return .failure(.rejected(AuthFailure(.unknownAPIKey, "unknown API key")))
        }
        counters.increment()
        switch jwt.verify(token, now: now) {
        case .verified(let verified):
            let subject: String? = if case .string(let s)? = verified.claims["sub"] { s } else { nil }
            let identity = VerifiedIdentity(
                method: .jwt,
                subject: subject,
                expiresAt: verified.expiresAt,
                claimHeaders: claimHeaders(verified.claims)
            )
            cache.insert(identity, for: digest)
            return .success(identity)
        case .failed(let failure):
            return .failure(.rejected(failure))
        case .unknownKey(let kid):
            if allowKeyRefresh, let jwks, jwks.claimUnknownKeyRefresh(now: now) {
                return .failure(.needsKeyRefresh(kid: kid))
            }
            return .failure(.rejected(AuthFailure(.unknownKey, "unknown key id")))
        }
    }

    /// Claim values for `claims_to_headers`: strings verbatim, numbers/bools/arrays/objects as compact JSON; absent,
    /// `null` or values with control characters (header injection) are skipped.
    func claimHeaders(_ claims: [String: ClaimValue]) -> [ClaimHeader] {
        guard !claimMappings.isEmpty else { return [] }
        let root = ClaimValue.object(claims)
        var headers: [ClaimHeader] = []
        for mapping in claimMappings {
            guard let text = root.value(at: Substring(mapping.claim))?.headerText,
                !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
            else { continue }
            headers.append(ClaimHeader(name: mapping.header, value: text))
        }
        return headers
    }

    private func rewrite(
        query: Substring?,
        headers: HTTPHeaders,
        token: String,
        source: TokenSource,
        _ identity: VerifiedIdentity
    ) -> AuthenticatedRequest {
        var headers = headers
        extractor.strip(&headers)
        for mapping in claimMappings { headers.remove(name: mapping.header) }
        for header in identity.claimHeaders { headers.add(name: header.name, value: header.value) }
        headers.replaceOrAdd(name: forward.header, value: forward.scheme.isEmpty ? token : forward.scheme + " " + token)
        return AuthenticatedRequest(
            identity: identity,
            query: extractor.strippedQuery(query),
            headers: headers,
            source: source,
            token: token
        )
    }

    /// A request that carried a redeemed stream ticket, rewritten exactly as if it had carried the ticket's token:
    /// token sources and the ticket parameter removed, the claim headers and forward header of the grant set.
    public func authenticated(
        byTicket grant: TicketGrant,
        query: Substring?,
        headers: HTTPHeaders,
        ticketParameter: String
    ) -> AuthenticatedRequest {
        var request = rewrite(
            query: query, headers: headers, token: grant.token, source: .query(ticketParameter), grant.identity
        )
        request.query = request.query.flatMap {
            QueryTokenParameters.removing(names: [ticketParameter], from: Substring($0))
        }
        return request
    }
}

/// A lock-guarded counter (verifications happen per new stream, not per event).
private final class VerificationCounters: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    var value: Int { lock.withLock { count } }

    func increment() { lock.withLock { count += 1 } }
}
