import Foundation
import Yams

/// `auth_policies:`, named ways of checking a request's token, which routes refer to by name:
///
/// ```yaml
/// auth_policies:
///   users:                          # [A-Za-z0-9_.-]+, not "none"; needs jwt or api_keys (or both)
///     token_sources: [{query: access_token}, {cookie: sse_token}, {header: Authorization}]  # default: header
///     jwt:
///       algorithms: [HS256, RS256]  # required; "none" is refused
///       secret: "${JWT_SECRET}"     # required with HS*; >= 32 bytes
///       public_keys: [keys/issuer.pem]   # readable PEM files
///       jwks_url: "https://issuer.example/.well-known/jwks.json"   # non-HMAC algorithms need keys or a JWKS
///       jwks_refresh: 5m            # default 5m, > 0
///       issuer: "https://issuer.example"
///       audience: "events"
///       clock_skew: 30s             # default 30s
///       required_claims: [sub]
///       max_lifetime: 24h           # > 0
///     api_keys: [{sha256: "<64 hex>", subject: "service-a"}]
///     forward: {header: Authorization, scheme: Bearer}   # defaults; scheme "" sends the bare token
///     claims_to_headers: {sub: X-User-Id, org.id: X-Org-Id}   # kept in file order
///     on_expiry: close              # close (default) | ignore
///     max_streams_per_subject: 10   # >= 1
///     tickets:                      # stream tickets (TicketConfiguration); absent: none are minted
///       path: /_sse/ticket          # default; a plain path, unique across policies, not a route's path_prefix
///       ttl: 30s                    # default 30s, > 0
///       parameter: sse_ticket       # default; not one of this policy's query token sources
///       reconnect_grace: 30s        # default 30s; 0 = strictly single use
///       max_resumes: 3              # default 3, >= 0
///       max_outstanding_per_subject: 20    # default 20, >= 1
///       mints_per_minute_per_subject: 60   # default 60 (bursts of 10), >= 1
/// ```
extension ConfigurationSchema {
    func policies(_ node: Node, _ path: String) -> [String: AuthPolicyConfiguration] {
        guard let fields = reader.mapping(node, path, allowed: nil) else { return [:] }
        var policies: [String: AuthPolicyConfiguration] = [:]
        var ticketPaths: [String: String] = [:]
        for entry in fields.entries {
            let policyPath = fields.path(entry.key)
            if entry.key == "none" {
                reader.fail(entry.keyNode, policyPath, "'none' is reserved: `auth: none` marks a public route")
                continue
            }
            guard reader.isIdentifier(entry.keyNode, policyPath, entry.key) else { continue }
            if let policy = policy(entry.value, policyPath, name: entry.key, ticketPaths: &ticketPaths) {
                policies[entry.key] = policy
            }
        }
        return policies
    }

    /// `ticketPaths`: the `tickets.path` of each policy read so far, to its name.
    private func policy(
        _ node: Node,
        _ path: String,
        name: String,
        ticketPaths: inout [String: String]
    ) -> AuthPolicyConfiguration? {
        let keys = [
            "token_sources", "jwt", "api_keys", "forward", "claims_to_headers", "on_expiry", "max_streams_per_subject",
            "tickets",
        ]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return nil }
        var policy = AuthPolicyConfiguration()
        if let node = fields["token_sources"], let sources = tokenSources(node, fields.path("token_sources")) {
            policy.tokenSources = sources
        }
        policy.jwt = fields["jwt"].flatMap { jwt($0, fields.path("jwt")) }
        if let node = fields["api_keys"] { policy.apiKeys = apiKeys(node, fields.path("api_keys")) }
        if let node = fields["forward"] { policy.forward = forward(node, fields.path("forward")) }
        if let node = fields["claims_to_headers"] {
            policy.claimsToHeaders = claimsToHeaders(node, fields.path("claims_to_headers"))
        }
        if let node = fields["on_expiry"],
            let text = reader.choice(node, fields.path("on_expiry"), ["close", "ignore"])
        {
            policy.onExpiry = .init(rawValue: text) ?? .close
        }
        policy.maxStreamsPerSubject = fields["max_streams_per_subject"].flatMap {
            reader.int($0, fields.path("max_streams_per_subject"), minimum: 1)
        }
        if let node = fields["tickets"] {
            if let (tickets, pathNode) = tickets(node, fields.path("tickets"), tokenSources: policy.tokenSources) {
                policy.tickets = tickets
                checkTicketPathUnique(
                    tickets.path, pathNode, fields.path("tickets.path"), policy: name, firstUse: &ticketPaths
                )
            }
        }
        checkPolicyVerifies(fields)
        return policy
    }

    /// The tickets, and the node their path is reported at (`path`, or `tickets` itself for the default).
    private func tickets(
        _ node: Node,
        _ path: String,
        tokenSources: [TokenSource]
    ) -> (TicketConfiguration, pathNode: Node)? {
        let keys = [
            "path", "ttl", "parameter", "reconnect_grace", "max_resumes", "max_outstanding_per_subject",
            "mints_per_minute_per_subject",
        ]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return nil }
        var tickets = TicketConfiguration()
        if let node = fields["path"], let value = plainPath(node, fields.path("path")) { tickets.path = value }
        if let node = fields["ttl"], let value = reader.duration(node, fields.path("ttl"), allowZero: false) {
            tickets.ttl = value
        }
        if let node = fields["parameter"], let name = reader.string(node, fields.path("parameter")) {
            if tokenSources.contains(.query(name)) {
                reader.fail(node, fields.path("parameter"), "'\(name)' is already a query token source of this policy")
            } else {
                tickets.parameter = name
            }
        }
        if let node = fields["reconnect_grace"],
            let value = reader.duration(node, fields.path("reconnect_grace"), allowZero: true)
        {
            tickets.reconnectGrace = value
        }
        if let node = fields["max_resumes"], let value = reader.int(node, fields.path("max_resumes"), minimum: 0) {
            tickets.maxResumes = value
        }
        if let node = fields["max_outstanding_per_subject"],
            let value = reader.int(node, fields.path("max_outstanding_per_subject"), minimum: 1)
        {
            tickets.maxOutstandingPerSubject = value
        }
        if let node = fields["mints_per_minute_per_subject"],
            let value = reader.int(node, fields.path("mints_per_minute_per_subject"), minimum: 1)
        {
            tickets.mintsPerMinutePerSubject = value
        }
        return (tickets, fields["path"] ?? node)
    }

    private func tokenSources(_ node: Node, _ path: String) -> [TokenSource]? {
        guard let items = reader.sequence(node, path, nonEmpty: true) else { return nil }
        var sources: [TokenSource] = []
        for item in items {
            guard let fields = reader.mapping(item.node, item.path, allowed: ["query", "cookie", "header"]) else {
                continue
            }
            guard fields.entries.count == 1, let entry = fields.entries.first else {
                reader.fail(item.node, item.path, "expected exactly one of query, cookie or header")
                continue
            }
            guard let name = reader.string(entry.value, fields.path(entry.key)) else { continue }
            switch entry.key {
            case "query": sources.append(.query(name))
            case "cookie": sources.append(.cookie(name))
            default:
                if reader.isHeaderName(entry.value, fields.path(entry.key), name) { sources.append(.header(name)) }
            }
        }
        return sources
    }

    private func jwt(_ node: Node, _ path: String) -> JWTConfiguration? {
        let keys = [
            "algorithms", "secret", "public_keys", "jwks_url", "jwks_refresh", "issuer", "audience", "clock_skew",
            "required_claims", "max_lifetime",
        ]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return nil }
        let algorithms = reader.required(fields, "algorithms").flatMap {
            self.algorithms($0, fields.path("algorithms"))
        }
        var jwt = JWTConfiguration(algorithms: algorithms ?? [])
        if let node = fields["secret"], let secret = reader.string(node, fields.path("secret")) {
            if secret.utf8.count < 32 {
                reader.fail(
                    node,
                    fields.path("secret"),
                    "an HMAC secret must be at least 32 bytes, got \(secret.utf8.count)"
                )
            } else {
                jwt.secret = secret
            }
        }
        if let node = fields["public_keys"], let items = reader.sequence(node, fields.path("public_keys")) {
            jwt.publicKeyPaths = items.compactMap { pemFile($0.node, $0.path) }
        }
        if let node = fields["jwks_url"], let url = reader.string(node, fields.path("jwks_url")) {
            if let problem = AddressSyntax.httpURL(url) {
                reader.fail(node, fields.path("jwks_url"), problem.message)
            } else {
                jwt.jwksURL = url
            }
        }
        if let node = fields["jwks_refresh"],
            let value = reader.duration(node, fields.path("jwks_refresh"), allowZero: false)
        {
            jwt.jwksRefreshInterval = value
        }
        jwt.issuer = fields["issuer"].flatMap { reader.string($0, fields.path("issuer")) }
        jwt.audience = fields["audience"].flatMap { reader.string($0, fields.path("audience")) }
        if let node = fields["clock_skew"],
            let value = reader.duration(node, fields.path("clock_skew"), allowZero: true)
        {
            jwt.clockSkew = value
        }
        if let node = fields["required_claims"],
            let claims = reader.stringList(node, fields.path("required_claims"), nonEmpty: false)
        {
            jwt.requiredClaims = claims
        }
        jwt.maxLifetime = fields["max_lifetime"].flatMap {
            reader.duration($0, fields.path("max_lifetime"), allowZero: false)
        }
        guard let algorithms else { return nil }
        checkJWTKeys(fields, algorithms: algorithms)
        return jwt
    }

    private func algorithms(_ node: Node, _ path: String) -> [JWTAlgorithm]? {
        guard let items = reader.sequence(node, path, nonEmpty: true) else { return nil }
        var algorithms: [JWTAlgorithm] = []
        var valid = true
        for item in items {
            guard let name = reader.string(item.node, item.path) else {
                valid = false
                continue
            }
            if name.lowercased() == "none" {
                reader.fail(item.node, item.path, "algorithm 'none' is never allowed (it accepts unsigned tokens)")
                valid = false
            } else if let algorithm = JWTAlgorithm(rawValue: name) {
                if !algorithms.contains(algorithm) { algorithms.append(algorithm) }
            } else {
                let known = JWTAlgorithm.allCases.map(\.rawValue)
                var message = "unknown algorithm '\(name)'"
                if let match = known.first(where: { $0.lowercased() == name.lowercased() }) {
                    message += " (did you mean '\(match)'?)"
                } else {
                    message += " (expected one of \(known.joined(separator: ", ")))"
                }
                reader.fail(item.node, item.path, message)
                valid = false
            }
        }
        return valid ? algorithms : nil
    }

    private func pemFile(_ node: Node, _ path: String) -> String? {
        guard let file = reader.filePath(node, path) else { return nil }
        guard let data = FileManager.default.contents(atPath: file) else {
            reader.fail(node, path, "file '\(file)' cannot be read")
            return nil
        }
        guard String(decoding: data, as: UTF8.self).contains("-----BEGIN") else {
            reader.fail(node, path, "file '\(file)' contains no PEM block ('-----BEGIN ...')")
            return nil
        }
        return file
    }

    private func apiKeys(_ node: Node, _ path: String) -> [APIKeyConfiguration] {
        guard let items = reader.sequence(node, path) else { return [] }
        var keys: [APIKeyConfiguration] = []
        for item in items {
            guard let fields = reader.mapping(item.node, item.path, allowed: ["sha256", "subject"]) else { continue }
            let digest = reader.required(fields, "sha256").flatMap { reader.sha256($0, fields.path("sha256")) }
            let subject = reader.required(fields, "subject").flatMap { reader.string($0, fields.path("subject")) }
            if let digest, let subject { keys.append(APIKeyConfiguration(sha256: digest, subject: subject)) }
        }
        return keys
    }

    private func forward(_ node: Node, _ path: String) -> ForwardConfiguration {
        var forward = ForwardConfiguration()
        guard let fields = reader.mapping(node, path, allowed: ["header", "scheme"]) else { return forward }
        if let node = fields["header"], let header = reader.string(node, fields.path("header")),
            reader.isHeaderName(node, fields.path("header"), header)
        {
            forward.header = header
        }
        if let node = fields["scheme"], let scheme = reader.string(node, fields.path("scheme"), nonEmpty: false) {
            forward.scheme = scheme
        }
        return forward
    }

    private func claimsToHeaders(_ node: Node, _ path: String) -> [ClaimHeaderMapping] {
        guard let fields = reader.mapping(node, path, allowed: nil) else { return [] }
        return fields.entries.compactMap { entry in
            let entryPath = fields.path(entry.key)
            guard let header = reader.string(entry.value, entryPath),
                reader.isHeaderName(entry.value, entryPath, header)
            else { return nil }
            if entry.key.isEmpty || entry.key.split(separator: ".", omittingEmptySubsequences: false).contains("") {
                reader.fail(entry.keyNode, entryPath, "'\(entry.key)' is not a claim path (e.g. sub or org.id)")
                return nil
            }
            return ClaimHeaderMapping(claim: entry.key, header: header)
        }
    }
}
