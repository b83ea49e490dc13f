/// Secrets never appear in logs: `print`, string interpolation, `debugPrint` and `dump` show `<redacted>`.
extension JWTConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "JWTConfiguration(algorithms: \(algorithms.map(\.rawValue)), secret: \(secret == nil ? "nil" : "<redacted>"), "
            + "publicKeyPaths: \(publicKeyPaths), jwksURL: \(jwksURL ?? "nil"), issuer: \(issuer ?? "nil"), "
            + "audience: \(audience ?? "nil"), clockSkew: \(clockSkew), requiredClaims: \(requiredClaims), "
            + "maxLifetime: \(maxLifetime.map { "\($0)" } ?? "nil"))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "algorithms": algorithms.map(\.rawValue), "secret": secret == nil ? "nil" : "<redacted>",
                "publicKeyPaths": publicKeyPaths, "jwksURL": jwksURL as Any, "issuer": issuer as Any,
                "audience": audience as Any,
            ]
        )
    }
}
