import Yams

/// The rules of `gateway.yml` that tie one value to another, all in one list:
///
/// - a route's `auth` names a policy defined under `auth_policies` (or is `none`);
/// - route names and `path_prefix`es are unique across routes;
/// - a route's `tls` is only used with an `https` upstream, and its `certificate` and `private_key` come together;
/// - a policy has `jwt` or `api_keys` (or both);
/// - `jwt.secret` is required when an HS* algorithm is allowed, `public_keys` or `jwks_url` when any other is;
/// - a CORS origin of `*` cannot be combined with `allow_credentials: true`;
/// - a `tickets.path` is unique across policies and is no route's `path_prefix` (the gateway answers it itself; a
///   path under a route's prefix is fine, only `POST` to that exact path mints);
/// - a `tickets.parameter` is not one of its policy's query token sources.
///
/// Each rule is called by its section's reader as soon as both values are known, so that every error keeps the
/// position and the order it has always had.
extension ConfigurationSchema {
    /// `auth: NAME` on a route: the name if `auth_policies` defines it; otherwise reports it, with the nearest name.
    func definedPolicy(_ policy: String, _ node: Node, _ path: String, among policies: Set<String>) -> String? {
        if policies.contains(policy) { return policy }
        var message = "unknown auth policy '\(policy)'"
        if let suggestion = ConfigurationReader.closest(to: policy, in: policies.sorted()) {
            message += " (did you mean '\(suggestion)'?)"
        } else if policies.isEmpty {
            message += " (auth_policies defines none)"
        }
        reader.fail(node, path, message)
        return nil
    }

    /// Reports `value` if an earlier route used it; `firstUse` maps each value seen to the index of its route.
    func checkUnique(
        _ value: String,
        _ node: Node,
        _ path: String,
        _ what: String,
        firstUse: inout [String: Int],
        route index: Int
    ) {
        if let first = firstUse[value] {
            reader.fail(node, path, "duplicate \(what) '\(value)' (first used by routes[\(first)])")
        } else {
            firstUse[value] = index
        }
    }

    /// A route's `tls` configures the connection to an https upstream; with an http upstream it would do nothing.
    func checkUpstreamTLS(_ node: Node, _ path: String, upstream: UpstreamURL?) {
        if let upstream, upstream.scheme == .http {
            reader.fail(node, path, "is only used with an https upstream, but upstream is http")
        }
    }

    /// The client certificate and key of mutual TLS: one without the other is a mistake.
    func checkClientCertificatePair(_ fields: ConfigurationReader.Fields) {
        switch (fields["certificate"], fields["private_key"]) {
        case (.some, .none):
            reader.fail(fields.node, fields.path("private_key"), "required when certificate is given (mutual TLS)")
        case (.none, .some):
            reader.fail(fields.node, fields.path("certificate"), "required when private_key is given (mutual TLS)")
        default: break
        }
    }

    /// Mint requests are told apart by path alone, so two policies cannot share one.
    func checkTicketPathUnique(
        _ ticketPath: String,
        _ node: Node,
        _ path: String,
        policy: String,
        firstUse: inout [String: String]
    ) {
        if let first = firstUse[ticketPath] {
            reader.fail(node, path, "duplicate tickets path '\(ticketPath)' (first used by policy '\(first)')")
        } else {
            firstUse[ticketPath] = policy
        }
    }

    /// A route whose `path_prefix` is a tickets path would never see its own requests to that path.
    func checkNotTicketPath(_ prefix: String, _ node: Node, _ path: String, ticketPaths: [String: String]) {
        if let policy = ticketPaths[prefix] {
            reader.fail(node, path, "'\(prefix)' is the tickets path of auth policy '\(policy)'")
        }
    }

    /// A policy verifies tokens with a JWT configuration, API keys, or both.
    func checkPolicyVerifies(_ fields: ConfigurationReader.Fields) {
        if fields["jwt"] == nil && fields["api_keys"] == nil {
            reader.fail(fields.node, fields.path, "a policy needs jwt or api_keys (or both)")
        }
    }

    /// Every allowed algorithm needs a key: the secret for HS*, public keys or a JWKS for the others.
    func checkJWTKeys(_ fields: ConfigurationReader.Fields, algorithms: [JWTAlgorithm]) {
        if algorithms.contains(where: \.isHMAC) && fields["secret"] == nil {
            let names = algorithms.filter(\.isHMAC).map(\.rawValue).joined(separator: ", ")
            reader.fail(fields.node, fields.path("secret"), "required because \(names) is allowed")
        }
        if let asymmetric = algorithms.first(where: { !$0.isHMAC }), fields["public_keys"] == nil,
            fields["jwks_url"] == nil
        {
            reader.fail(
                fields.node,
                fields.path,
                "public_keys or jwks_url is required because \(asymmetric.rawValue) is allowed"
            )
        }
    }

    /// Browsers refuse a wildcard origin on credentialed requests, so the combination could never work.
    func checkOrigin(_ origin: String, _ node: Node, _ path: String, allowCredentials: Bool) {
        if origin == "*" && allowCredentials {
            reader.fail(node, path, "'*' cannot be combined with allow_credentials: true (browsers refuse it)")
        }
    }
}
