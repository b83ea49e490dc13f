import NIOHTTP1
import Yams

/// `routes[].share`, one shared upstream stream for many clients:
///
/// ```yaml
///     share:
///       key: route                  # route (default) | subject (needs auth)
///       upstream_headers:           # key: route only; e.g. a service credential
///         Authorization: "Bearer ${PRICES_SERVICE_TOKEN}"
///       vary_headers: [Accept-Language]   # never Cookie, Authorization or a token header
///       replay_events: 256          # default 256, >= 0 (0: no replay)
///       replay_bytes: 1MiB          # default 1MiB
///       subscriber_buffer_bytes: 256KiB   # default 256KiB
///       linger: 2s                  # default 2s
///       upstream_grace: 10s         # default 10s
/// ```
extension ConfigurationSchema {
    /// Headers a shared stream can never vary on: credentials would put one user's content in another's stream.
    static let unshareableHeaders: Set<String> = ["cookie", "authorization", "proxy-authorization"]

    func share(_ node: Node, _ path: String, auth: String?, policies: [String: AuthPolicyConfiguration]) -> ShareConfiguration? {
        let keys = [
            "key", "upstream_headers", "vary_headers", "replay_events", "replay_bytes", "subscriber_buffer_bytes",
            "linger", "upstream_grace",
        ]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return nil }
        var share = ShareConfiguration()
        if let node = fields["key"], let key = reader.choice(node, fields.path("key"), ["route", "subject"]) {
            share.key = ShareConfiguration.Key(rawValue: key)!
            if share.key == .subject, auth == nil {
                reader.fail(node, fields.path("key"), "'subject' needs the route to have `auth` (a verified subject)")
            }
        }
        if let node = fields["upstream_headers"] {
            let headersPath = fields.path("upstream_headers")
            if share.key == .subject {
                reader.fail(node, headersPath, "only with key: route (key: subject sends the subscriber's own token)")
            }
            if let entries = reader.mapping(node, headersPath, allowed: nil) {
                for entry in entries.entries where reader.isHeaderName(entry.keyNode, entries.path(entry.key), entry.key) {
                    if let value = reader.string(entry.value, entries.path(entry.key)) {
                        share.upstreamHeaders.add(name: entry.key, value: value)
                    }
                }
            }
        }
        if let node = fields["vary_headers"], let names = reader.stringList(node, fields.path("vary_headers"), nonEmpty: false) {
            let tokenHeaders = auth.flatMap { policies[$0] }.map(Self.tokenHeaders(of:)) ?? []
            for name in names where reader.isHeaderName(node, fields.path("vary_headers"), name) {
                let lowered = name.lowercased()
                if Self.unshareableHeaders.contains(lowered) || tokenHeaders.contains(lowered) {
                    reader.fail(
                        node, fields.path("vary_headers"),
                        "'\(name)' carries credentials: a route that forwards them cannot be shared (use key: subject)"
                    )
                } else if !share.varyHeaders.contains(lowered) {
                    share.varyHeaders.append(lowered)
                }
            }
        }
        if let node = fields["replay_events"], let value = reader.int(node, fields.path("replay_events"), minimum: 0) {
            share.replayEvents = value
        }
        if let node = fields["replay_bytes"], let value = reader.byteSize(node, fields.path("replay_bytes")) {
            share.replayBytes = value
        }
        if let node = fields["subscriber_buffer_bytes"],
            let value = reader.byteSize(node, fields.path("subscriber_buffer_bytes"))
        {
            share.subscriberBufferBytes = value
        }
        if let node = fields["linger"], let value = reader.duration(node, fields.path("linger"), allowZero: true) {
            share.linger = value
        }
        if let node = fields["upstream_grace"],
            let value = reader.duration(node, fields.path("upstream_grace"), allowZero: true)
        {
            share.upstreamGrace = value
        }
        return share
    }

    /// The headers a policy reads tokens from (lower-cased).
    static func tokenHeaders(of policy: AuthPolicyConfiguration) -> Set<String> {
        var names: Set<String> = [policy.forward.header.lowercased()]
        for case .header(let name) in policy.tokenSources { names.insert(name.lowercased()) }
        return names
    }
}
