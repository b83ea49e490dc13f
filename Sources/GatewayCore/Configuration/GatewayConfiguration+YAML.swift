import Foundation
import Yams

/// Loading `gateway.yml`: every key, its default, and the checks applied. Unknown keys are errors (a typo must
/// never silently disable auth) and every problem is reported with its position, all at once.
///
/// ```yaml
/// listen: "127.0.0.1:8080"          # host:port, "[::1]:8080"; default 127.0.0.1:8080
/// tls:                              # optional; certificate and private_key required within
///   certificate: certs/server.crt   # files: relative paths are resolved against this file's folder
///   private_key: certs/server.key
///   min_version: "1.2"              # "1.2" (default) | "1.3"
/// http2: {max_concurrent_streams: 256}
/// admin:
///   listen: "127.0.0.1:9901"        # default; the string "off" disables the admin listener
/// routes:                           # required, at least one
///   - name: events                  # required, unique, [A-Za-z0-9_.-]+
///     path_prefix: /events/         # required, starts with "/", unique
///     upstream: "http://127.0.0.1:9000/base"   # http(s); no query, fragment or userinfo; trailing "/" trimmed
///     strip_prefix: false
///     heartbeat: 15s                # optional, > 0
///     timeouts: {connect: 5s, response_header: 30s, idle: 0s}   # connect and response_header > 0
///     auth: users                   # a policy name; omitted or "none" = public
///     tls: {ca_file: ..., certificate: ..., private_key: ..., server_name: ...}   # https upstreams only
///     max_streams: 1000             # >= 1
///     max_stream_duration: 1h       # > 0
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
/// cors:
///   allowed_origins: ["https://app.example"]   # required, non-empty; "*" only without credentials
///   allow_credentials: false
///   max_age: 10m
/// limits: {max_connections: 10000, new_streams_per_second_per_ip: 20, request_header_timeout: 10s,
///          max_header_bytes: 16KiB, stream_buffer_bytes: 64KiB, slow_client_timeout: 30s}
/// drain: {grace: 10s, retry_jitter: 5s}
/// ```
///
/// Scalars: `${NAME}` and `${NAME:-default}` are replaced from the environment (`$${` is a literal `${`); an unset
/// variable without a default is an error. Booleans are `true`/`false` only. Integers and numbers may be quoted
/// (so that they can come from the environment). An empty value (`key:`) is an error, never "use the default".
extension GatewayConfiguration {
    /// Reads and validates the file at `path`; relative paths inside it are resolved against its folder.
    public static func load(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationErrors) -> LoadedConfiguration {
        let absolute =
            path.hasPrefix("/")
            ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        func fileError(_ message: String) -> ConfigurationErrors {
            ConfigurationErrors([ConfigurationError(file: path, line: 0, column: 0, keyPath: "", message: message)])
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory) else {
            throw fileError("configuration file does not exist")
        }
        guard !isDirectory.boolValue else { throw fileError("is a directory, not a configuration file") }
        guard let data = FileManager.default.contents(atPath: absolute) else {
            throw fileError("configuration file cannot be read")
        }
        guard let yaml = String(data: data, encoding: .utf8) else { throw fileError("is not UTF-8 text") }
        return try parse(
            yaml: yaml,
            file: path,
            baseDirectory: (absolute as NSString).deletingLastPathComponent,
            environment: environment
        )
    }

    /// Validates YAML text; `file` is only used in error messages, `baseDirectory` resolves relative file paths.
    public static func parse(
        yaml: String,
        file: String,
        baseDirectory: String,
        environment: [String: String]
    ) throws(ConfigurationErrors) -> LoadedConfiguration {
        let composed: ConfigurationDocument.Composed
        switch ConfigurationDocument.compose(yaml: yaml, file: file) {
        case .success(let value): composed = value
        case .failure(let errors): throw errors
        }
        let reader = ConfigurationReader(
            file: file,
            baseDirectory: baseDirectory,
            environment: environment,
            duplicateKeys: composed.duplicateKeys
        )
        var configuration = GatewayConfiguration()
        if let root = composed.root {
            ConfigurationSchema(reader: reader).read(root, into: &configuration)
        } else {
            reader.fail(at: nil, "routes", "required key is missing (the file is empty)")
        }
        guard reader.errors.isEmpty else {
            // Stable sort: problems found in the same place keep the order they were found in.
            let ordered = reader.errors.enumerated().sorted {
                ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset)
            }
            throw ConfigurationErrors(ordered.map(\.element))
        }
        return LoadedConfiguration(
            configuration: configuration,
            sourceMap: ConfigurationSourceMap(file: file, positions: reader.positions)
        )
    }
}

/// The schema of `gateway.yml`, section by section, on top of `ConfigurationReader`.
struct ConfigurationSchema {
    let reader: ConfigurationReader

    func read(_ root: Node, into configuration: inout GatewayConfiguration) {
        let keys = ["listen", "tls", "http2", "admin", "routes", "auth_policies", "cors", "limits", "drain"]
        guard let top = reader.mapping(root, "", allowed: keys) else { return }
        if let node = top["listen"], let address = listenAddress(node, "listen") { configuration.listen = address }
        if let node = top["tls"] { configuration.tls = listenerTLS(node, "tls") }
        if let node = top["http2"] { configuration.http2 = http2(node, "http2") }
        if let node = top["admin"] { configuration.admin = admin(node, "admin") }
        if let node = top["auth_policies"] { configuration.authPolicies = policies(node, "auth_policies") }
        if let node = reader.required(top, "routes") {
            configuration.routes = routes(node, "routes", policies: Set(configuration.authPolicies.keys))
        }
        if let node = top["cors"] { configuration.cors = cors(node, "cors") }
        if let node = top["limits"] { configuration.limits = limits(node, "limits") }
        if let node = top["drain"] { configuration.drain = drain(node, "drain") }
    }

    // MARK: Listeners

    private func listenAddress(_ node: Node, _ path: String) -> ListenAddress? {
        guard let text = reader.string(node, path) else { return nil }
        switch AddressSyntax.listenAddress(text) {
        case .success(let address): return address
        case .failure(let problem):
            reader.fail(node, path, problem.message)
            return nil
        }
    }

    private func listenerTLS(_ node: Node, _ path: String) -> ListenerTLSConfiguration? {
        let keys = ["certificate", "private_key", "min_version"]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return nil }
        let certificate = reader.required(fields, "certificate").flatMap {
            reader.filePath($0, fields.path("certificate"))
        }
        let key = reader.required(fields, "private_key").flatMap { reader.filePath($0, fields.path("private_key")) }
        var version = ListenerTLSConfiguration.TLSVersion.tls12
        if let node = fields["min_version"],
            let text = reader.choice(node, fields.path("min_version"), ["1.2", "1.3"])
        {
            version = .init(rawValue: text) ?? .tls12
        }
        guard let certificate, let key else { return nil }
        return ListenerTLSConfiguration(certificatePath: certificate, privateKeyPath: key, minimumVersion: version)
    }

    private func http2(_ node: Node, _ path: String) -> HTTP2Configuration {
        var http2 = HTTP2Configuration()
        guard let fields = reader.mapping(node, path, allowed: ["max_concurrent_streams"]) else { return http2 }
        if let node = fields["max_concurrent_streams"],
            let streams = reader.int(node, fields.path("max_concurrent_streams"), minimum: 1)
        {
            http2.maxConcurrentStreams = streams
        }
        return http2
    }

    private func admin(_ node: Node, _ path: String) -> AdminConfiguration {
        var admin = AdminConfiguration()
        guard let fields = reader.mapping(node, path, allowed: ["listen"]), let listen = fields["listen"] else {
            return admin
        }
        if case .scalar(let scalar) = listen, scalar.string == "off" {
            admin.listen = nil
        } else if let address = listenAddress(listen, fields.path("listen")) {
            admin.listen = address
        }
        return admin
    }

    // MARK: Routes

    private func routes(_ node: Node, _ path: String, policies: Set<String>) -> [RouteConfiguration] {
        guard let items = reader.sequence(node, path) else { return [] }
        if items.isEmpty { reader.fail(node, path, "at least one route is required") }
        var names: [String: Int] = [:]
        var prefixes: [String: Int] = [:]
        var routes: [RouteConfiguration] = []
        for item in items {
            guard let route = route(item.node, item.path, policies: policies) else { continue }
            let (name, prefix) = (route.name, route.prefix)
            checkUnique(name.name, name.node, "\(item.path).name", "route name", firstUse: &names, route: routes.count)
            checkUnique(
                prefix.prefix,
                prefix.node,
                "\(item.path).path_prefix",
                "path_prefix",
                firstUse: &prefixes,
                route: routes.count
            )
            routes.append(route.configuration)
        }
        return routes
    }

    private struct ReadRoute {
        var configuration: RouteConfiguration
        var name: (name: String, node: Node)
        var prefix: (prefix: String, node: Node)
    }

    private func route(_ node: Node, _ path: String, policies: Set<String>) -> ReadRoute? {
        let keys = [
            "name", "path_prefix", "upstream", "strip_prefix", "heartbeat", "timeouts", "auth", "tls", "max_streams",
            "max_stream_duration",
        ]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return nil }
        let nameNode = reader.required(fields, "name")
        let name = nameNode.flatMap { reader.identifier($0, fields.path("name")) }
        let prefixNode = reader.required(fields, "path_prefix")
        let prefix = prefixNode.flatMap { pathPrefix($0, fields.path("path_prefix")) }
        let upstream = reader.required(fields, "upstream").flatMap { upstreamURL($0, fields.path("upstream")) }
        var stripPrefix = false
        if let node = fields["strip_prefix"], let value = reader.bool(node, fields.path("strip_prefix")) {
            stripPrefix = value
        }
        let heartbeat = fields["heartbeat"].flatMap { reader.duration($0, fields.path("heartbeat"), allowZero: false) }
        let timeouts = fields["timeouts"].map { self.timeouts($0, fields.path("timeouts")) } ?? RouteTimeouts()
        var auth: String?
        if let node = fields["auth"], let policy = reader.string(node, fields.path("auth")), policy != "none" {
            auth = definedPolicy(policy, node, fields.path("auth"), among: policies)
        }
        var tls = UpstreamTLSConfiguration()
        if let node = fields["tls"] {
            tls = upstreamTLS(node, fields.path("tls"))
            checkUpstreamTLS(node, fields.path("tls"), upstream: upstream)
        }
        let maxStreams = fields["max_streams"].flatMap { reader.int($0, fields.path("max_streams"), minimum: 1) }
        let maxDuration = fields["max_stream_duration"].flatMap {
            reader.duration($0, fields.path("max_stream_duration"), allowZero: false)
        }
        guard let name, let nameNode, let prefix, let prefixNode, let upstream else { return nil }
        let configuration = RouteConfiguration(
            name: name,
            pathPrefix: prefix,
            upstream: upstream,
            stripPrefix: stripPrefix,
            heartbeat: heartbeat,
            timeouts: timeouts,
            auth: auth,
            upstreamTLS: tls,
            maxStreams: maxStreams,
            maxStreamDuration: maxDuration
        )
        return ReadRoute(configuration: configuration, name: (name, nameNode), prefix: (prefix, prefixNode))
    }

    private func pathPrefix(_ node: Node, _ path: String) -> String? {
        guard let text = reader.string(node, path) else { return nil }
        guard text.hasPrefix("/") else {
            reader.fail(node, path, "must start with '/', got '\(text)'")
            return nil
        }
        guard !text.contains(where: { $0 == "?" || $0 == "#" || $0.isWhitespace }) else {
            reader.fail(node, path, "must be a plain path without query, fragment or spaces")
            return nil
        }
        return text
    }

    private func upstreamURL(_ node: Node, _ path: String) -> UpstreamURL? {
        guard let text = reader.string(node, path) else { return nil }
        switch AddressSyntax.upstreamURL(text) {
        case .success(let url): return url
        case .failure(let problem):
            reader.fail(node, path, problem.message)
            return nil
        }
    }

    private func timeouts(_ node: Node, _ path: String) -> RouteTimeouts {
        var timeouts = RouteTimeouts()
        guard let fields = reader.mapping(node, path, allowed: ["connect", "response_header", "idle"]) else {
            return timeouts
        }
        if let node = fields["connect"], let value = reader.duration(node, fields.path("connect"), allowZero: false) {
            timeouts.connect = value
        }
        if let node = fields["response_header"],
            let value = reader.duration(node, fields.path("response_header"), allowZero: false)
        {
            timeouts.responseHeader = value
        }
        if let node = fields["idle"], let value = reader.duration(node, fields.path("idle"), allowZero: true) {
            timeouts.idle = value
        }
        return timeouts
    }

    private func upstreamTLS(_ node: Node, _ path: String) -> UpstreamTLSConfiguration {
        var tls = UpstreamTLSConfiguration()
        let keys = ["ca_file", "certificate", "private_key", "server_name"]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return tls }
        tls.caFilePath = fields["ca_file"].flatMap { reader.filePath($0, fields.path("ca_file")) }
        tls.certificatePath = fields["certificate"].flatMap { reader.filePath($0, fields.path("certificate")) }
        tls.privateKeyPath = fields["private_key"].flatMap { reader.filePath($0, fields.path("private_key")) }
        tls.serverName = fields["server_name"].flatMap { reader.string($0, fields.path("server_name")) }
        checkClientCertificatePair(fields)
        return tls
    }

    // MARK: Auth policies

    private func policies(_ node: Node, _ path: String) -> [String: AuthPolicyConfiguration] {
        guard let fields = reader.mapping(node, path, allowed: nil) else { return [:] }
        var policies: [String: AuthPolicyConfiguration] = [:]
        for entry in fields.entries {
            let policyPath = fields.path(entry.key)
            if entry.key == "none" {
                reader.fail(entry.keyNode, policyPath, "'none' is reserved: `auth: none` marks a public route")
                continue
            }
            guard reader.isIdentifier(entry.keyNode, policyPath, entry.key) else { continue }
            if let policy = policy(entry.value, policyPath) { policies[entry.key] = policy }
        }
        return policies
    }

    private func policy(_ node: Node, _ path: String) -> AuthPolicyConfiguration? {
        let keys = [
            "token_sources", "jwt", "api_keys", "forward", "claims_to_headers", "on_expiry", "max_streams_per_subject",
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
        checkPolicyVerifies(fields)
        return policy
    }

    private func tokenSources(_ node: Node, _ path: String) -> [TokenSource]? {
        guard let items = reader.sequence(node, path) else { return nil }
        if items.isEmpty {
            reader.fail(node, path, "must not be empty")
            return nil
        }
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
        guard let items = reader.sequence(node, path) else { return nil }
        if items.isEmpty {
            reader.fail(node, path, "must not be empty")
            return nil
        }
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

    // MARK: CORS, limits, drain

    private func cors(_ node: Node, _ path: String) -> CORSConfiguration? {
        let keys = ["allowed_origins", "allow_credentials", "max_age"]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return nil }
        var cors = CORSConfiguration(allowedOrigins: [])
        if let node = fields["allow_credentials"], let value = reader.bool(node, fields.path("allow_credentials")) {
            cors.allowCredentials = value
        }
        if let node = fields["max_age"], let value = reader.duration(node, fields.path("max_age"), allowZero: true) {
            cors.maxAge = value
        }
        guard let node = reader.required(fields, "allowed_origins"),
            let items = reader.sequence(node, fields.path("allowed_origins"))
        else { return nil }
        if items.isEmpty {
            reader.fail(node, fields.path("allowed_origins"), "must not be empty")
            return nil
        }
        var origins: [String] = []
        for item in items {
            guard let origin = reader.string(item.node, item.path) else { continue }
            origins.append(origin)
            if let problem = AddressSyntax.origin(origin) {
                reader.fail(item.node, item.path, problem.message)
            } else {
                checkOrigin(origin, item.node, item.path, allowCredentials: cors.allowCredentials)
            }
        }
        cors.allowedOrigins = origins
        return cors
    }

    private func limits(_ node: Node, _ path: String) -> LimitsConfiguration {
        var limits = LimitsConfiguration()
        let keys = [
            "max_connections", "new_streams_per_second_per_ip", "request_header_timeout", "max_header_bytes",
            "stream_buffer_bytes", "slow_client_timeout",
        ]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return limits }
        if let node = fields["max_connections"],
            let value = reader.int(node, fields.path("max_connections"), minimum: 1)
        {
            limits.maxConnections = value
        }
        if let node = fields["new_streams_per_second_per_ip"] {
            limits.newStreamsPerSecondPerIP = reader.positiveNumber(node, fields.path("new_streams_per_second_per_ip"))
        }
        if let node = fields["request_header_timeout"],
            let value = reader.duration(node, fields.path("request_header_timeout"), allowZero: false)
        {
            limits.requestHeaderTimeout = value
        }
        if let node = fields["max_header_bytes"], let value = reader.byteSize(node, fields.path("max_header_bytes")) {
            limits.maxHeaderBytes = value
        }
        if let node = fields["stream_buffer_bytes"],
            let value = reader.byteSize(node, fields.path("stream_buffer_bytes"))
        {
            limits.streamBufferBytes = value
        }
        if let node = fields["slow_client_timeout"],
            let value = reader.duration(node, fields.path("slow_client_timeout"), allowZero: false)
        {
            limits.slowClientTimeout = value
        }
        return limits
    }

    private func drain(_ node: Node, _ path: String) -> DrainConfiguration {
        var drain = DrainConfiguration()
        guard let fields = reader.mapping(node, path, allowed: ["grace", "retry_jitter"]) else { return drain }
        if let node = fields["grace"], let value = reader.duration(node, fields.path("grace"), allowZero: true) {
            drain.grace = value
        }
        if let node = fields["retry_jitter"],
            let value = reader.duration(node, fields.path("retry_jitter"), allowZero: true)
        {
            drain.retryJitter = value
        }
        return drain
    }
}
