/// One entry of `auth_policies:`: where a token is found, how it is verified, and what the upstream receives.
public struct AuthPolicyConfiguration: Sendable, Equatable {
    /// Tried in order; the first source present in the request supplies the token.
    public var tokenSources: [TokenSource]
    /// JWT verification; `nil` if the policy accepts only API keys.
    public var jwt: JWTConfiguration?
    /// Opaque API keys, stored as SHA-256 digests only.
    public var apiKeys: [APIKeyConfiguration]
    /// The header the upstream receives the token in.
    public var forward: ForwardConfiguration
    /// Verified claims copied into upstream request headers, in file order.
    public var claimsToHeaders: [ClaimHeaderMapping]
    /// What an open stream does when its token expires.
    public var onExpiry: ExpiryAction
    /// Most concurrent streams per verified `sub`; `nil` is unlimited.
    public var maxStreamsPerSubject: Int?
    /// Stream tickets; `nil`: this policy mints none.
    public var tickets: TicketConfiguration?

    public enum ExpiryAction: String, Sendable, Equatable {
        /// Write `event: token_expired` with a `retry:` hint at the next event boundary, then end the stream.
        case close
        /// Let the stream run on.
        case ignore
    }

    public init(
        tokenSources: [TokenSource] = [.header("Authorization")],
        jwt: JWTConfiguration? = nil,
        apiKeys: [APIKeyConfiguration] = [],
        forward: ForwardConfiguration = .init(),
        claimsToHeaders: [ClaimHeaderMapping] = [],
        onExpiry: ExpiryAction = .close,
        maxStreamsPerSubject: Int? = nil,
        tickets: TicketConfiguration? = nil
    ) {
        self.tokenSources = tokenSources
        self.jwt = jwt
        self.apiKeys = apiKeys
        self.forward = forward
        self.claimsToHeaders = claimsToHeaders
        self.onExpiry = onExpiry
        self.maxStreamsPerSubject = maxStreamsPerSubject
        self.tickets = tickets
    }
}

/// Where a token may be carried by a request.
public enum TokenSource: Sendable, Hashable {
    /// A query parameter (removed from the forwarded URL).
    case query(String)
    /// A cookie (removed from the forwarded `Cookie` header).
    case cookie(String)
    /// A header, `Bearer <token>` with the scheme matched case-insensitively (removed; the forward header replaces it).
    case header(String)
}

/// `auth_policies.*.jwt`.
public struct JWTConfiguration: Sendable, Equatable {
    /// Allow-list; `none` can never be in it.
    public var algorithms: [JWTAlgorithm]
    /// HMAC secret (at least 32 bytes) for HS256/384/512.
    public var secret: String?
    /// Absolute paths of PEM public keys (RSA, EC or Ed25519).
    public var publicKeyPaths: [String]
    /// A JWKS document fetched at start-up and refreshed in the background.
    public var jwksURL: String?
    /// How often the JWKS is refreshed even without an unknown `kid`.
    public var jwksRefreshInterval: Duration
    public var issuer: String?
    /// Required audience: the token's `aud` (string or array) must contain it.
    public var audience: String?
    public var clockSkew: Duration
    public var requiredClaims: [String]
    /// Reject tokens whose `exp - iat` exceeds this.
    public var maxLifetime: Duration?

    public init(
        algorithms: [JWTAlgorithm],
        secret: String? = nil,
        publicKeyPaths: [String] = [],
        jwksURL: String? = nil,
        jwksRefreshInterval: Duration = .seconds(300),
        issuer: String? = nil,
        audience: String? = nil,
        clockSkew: Duration = .seconds(30),
        requiredClaims: [String] = [],
        maxLifetime: Duration? = nil
    ) {
        self.algorithms = algorithms
        self.secret = secret
        self.publicKeyPaths = publicKeyPaths
        self.jwksURL = jwksURL
        self.jwksRefreshInterval = jwksRefreshInterval
        self.issuer = issuer
        self.audience = audience
        self.clockSkew = clockSkew
        self.requiredClaims = requiredClaims
        self.maxLifetime = maxLifetime
    }
}

/// JWS algorithms the gateway can verify. There is deliberately no `none`.
public enum JWTAlgorithm: String, Sendable, Hashable, CaseIterable {
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
    case es256 = "ES256", es384 = "ES384", es512 = "ES512"
    case eddsa = "EdDSA"

    public var isHMAC: Bool { self == .hs256 || self == .hs384 || self == .hs512 }
}

/// `auth_policies.*.api_keys[]`.
public struct APIKeyConfiguration: Sendable, Equatable {
    /// SHA-256 of the key (32 bytes); the key itself is never stored.
    public var sha256: [UInt8]
    /// Becomes the verified subject (`sub`) of requests using this key.
    public var subject: String

    public init(sha256: [UInt8], subject: String) {
        self.sha256 = sha256
        self.subject = subject
    }
}

/// `auth_policies.*.forward`.
public struct ForwardConfiguration: Sendable, Equatable {
    public var header: String
    /// Prefix before the token, e.g. `Bearer`; empty sends the bare token.
    public var scheme: String

    public init(header: String = "Authorization", scheme: String = "Bearer") {
        self.header = header
        self.scheme = scheme
    }
}

/// One `claims_to_headers` entry: a (possibly dotted) claim path and the upstream header it fills.
public struct ClaimHeaderMapping: Sendable, Equatable {
    /// `sub`, or a dotted path such as `org.id` for nested claims.
    public var claim: String
    public var header: String

    public init(claim: String, header: String) {
        self.claim = claim
        self.header = header
    }
}
