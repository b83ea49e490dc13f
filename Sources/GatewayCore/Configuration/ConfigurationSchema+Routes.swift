import Yams

/// `routes:`, where requests go:
///
/// ```yaml
/// routes:                           # required, at least one
///   - name: events                  # required, unique, [A-Za-z0-9_.-]+
///     path_prefix: /events/         # required, starts with "/", unique
///     upstream: "http://127.0.0.1:9000/base"   # http(s); no query, fragment or userinfo; trailing "/" trimmed
///     strip_prefix: false           # default
///     heartbeat: 15s                # optional, > 0; default: no heartbeats
///     timeouts: {connect: 5s, response_header: 30s, idle: 0s}   # defaults; connect and response_header > 0
///     auth: users                   # a policy name; omitted or "none" = public
///     tls: {ca_file: ..., certificate: ..., private_key: ..., server_name: ...}   # https upstreams only
///     max_streams: 1000             # >= 1; default: unlimited
///     max_stream_duration: 1h       # > 0; default: unlimited
///     share: {key: route}           # one upstream stream for many clients (ConfigurationSchema+Share)
/// ```
///
/// In `tls`, every key is optional: `ca_file` replaces the system's trusted CAs, `certificate` and `private_key`
/// (together) are the client identity for mutual TLS, `server_name` defaults to the upstream host.
extension ConfigurationSchema {
    /// `ticketPaths`: each policy's `tickets.path`, to the policy's name.
    func routes(
        _ node: Node,
        _ path: String,
        policies: [String: AuthPolicyConfiguration],
        ticketPaths: [String: String] = [:]
    ) -> [RouteConfiguration] {
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
            checkNotTicketPath(prefix.prefix, prefix.node, "\(item.path).path_prefix", ticketPaths: ticketPaths)
            routes.append(route.configuration)
        }
        return routes
    }

    /// A route with the nodes of its name and prefix, where a duplicate is reported.
    private struct ReadRoute {
        var configuration: RouteConfiguration
        var name: (name: String, node: Node)
        var prefix: (prefix: String, node: Node)
    }

    private func route(_ node: Node, _ path: String, policies: [String: AuthPolicyConfiguration]) -> ReadRoute? {
        let keys = [
            "name", "path_prefix", "upstream", "strip_prefix", "heartbeat", "timeouts", "auth", "tls", "max_streams",
            "max_stream_duration", "share",
        ]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return nil }
        let nameNode = reader.required(fields, "name")
        let name = nameNode.flatMap { reader.identifier($0, fields.path("name")) }
        let prefixNode = reader.required(fields, "path_prefix")
        let prefix = prefixNode.flatMap { plainPath($0, fields.path("path_prefix")) }
        let upstream = reader.required(fields, "upstream").flatMap {
            reader.parsed($0, fields.path("upstream"), AddressSyntax.upstreamURL)
        }
        var stripPrefix = false
        if let node = fields["strip_prefix"], let value = reader.bool(node, fields.path("strip_prefix")) {
            stripPrefix = value
        }
        let heartbeat = fields["heartbeat"].flatMap { reader.duration($0, fields.path("heartbeat"), allowZero: false) }
        let timeouts = fields["timeouts"].map { self.timeouts($0, fields.path("timeouts")) } ?? RouteTimeouts()
        var auth: String?
        if let node = fields["auth"], let policy = reader.string(node, fields.path("auth")), policy != "none" {
            auth = definedPolicy(policy, node, fields.path("auth"), among: Set(policies.keys))
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
        let share = fields["share"].flatMap { self.share($0, fields.path("share"), auth: auth, policies: policies) }
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
            maxStreamDuration: maxDuration,
            share: share
        )
        return ReadRoute(configuration: configuration, name: (name, nameNode), prefix: (prefix, prefixNode))
    }

    /// A path that starts with `/` and has no query, fragment or spaces (`path_prefix`, `tickets.path`).
    func plainPath(_ node: Node, _ path: String) -> String? {
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
}
