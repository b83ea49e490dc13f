/// Why a request was refused: the `reason` label for metrics plus the `GatewayError` answered to the client.
public struct AuthFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, bounded set of reasons; `label` is the metrics label.
    public enum Reason: String, Sendable, Hashable, CaseIterable {
        case missing
        case malformed
        case badSignature = "bad_signature"
        case algorithm
        case expired
        case notYetValid = "not_yet_valid"
        case issuer
        case audience
        case missingClaim = "missing_claim"
        case lifetime
        case unknownKey = "unknown_key"
        case unknownAPIKey = "unknown_api_key"

        public var label: String { rawValue }
    }

    public let reason: Reason
    /// Safe to show to clients: never contains the token or any secret.
    public let detail: String

    public init(_ reason: Reason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    /// `missingToken` for `.missing`, otherwise `invalidToken(detail)`; both answer 401.
    public var gatewayError: GatewayError {
        reason == .missing ? .missingToken() : .invalidToken(detail)
    }

    /// The RFC 6750 challenge for the 401 answer.
    public var wwwAuthenticate: String {
        if reason == .missing { return #"Bearer realm="sse-gateway""# }
        return #"Bearer realm="sse-gateway", error="invalid_token", error_description=""#
            + Self.quotedStringSafe(detail) + "\""
    }

    public var description: String { "AuthFailure(\(reason.label): \(detail))" }

    /// RFC 6750 restricts `error_description` to printable ASCII without `"` and `\`.
    static func quotedStringSafe(_ text: String) -> String {
        String(
            String.UnicodeScalarView(
                text.unicodeScalars.map { s in
                    (s.value >= 0x20 && s.value <= 0x7E && s != "\"" && s != "\\") ? s : "?"
                }
            )
        )
    }
}

/// A policy that cannot be turned into a `RouteAuthenticator` (unreadable PEM, short secret, ...).
public struct AuthSetupError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The configuration path at fault, e.g. `auth_policies.users.jwt.public_keys[0]`.
    public let path: String
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}
