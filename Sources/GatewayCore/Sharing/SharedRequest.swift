import NIOHTTP1

/// What makes two requests the same shared stream: the route (and its upstream), the forwarded path and query without
/// token or ticket parameters, the values of the route's `vary_headers`, and with `key: subject` the verified subject.
/// The method is always `GET`.
public struct ShareKey: Hashable, Sendable, CustomStringConvertible {
    public var route: String
    public var upstream: String
    public var uri: String
    public var vary: [String?]
    public var subject: String?

    public var description: String { "\(route) \(uri)" }
}

/// A subscriber's request for a shared stream, as admission built it (a class: exchanges hold it by reference).
public final class SharedRequest: Sendable {
    public let key: ShareKey
    public let configuration: ShareConfiguration
    /// The request the shared upstream gets (no `Last-Event-ID`: the stream adds its own). With `key: route` it
    /// carries `upstream_headers` and no subscriber's credential; with `key: subject`, this subscriber's.
    public let upstreamHead: HTTPRequestHead
    /// The client's `Last-Event-ID`.
    public let lastEventID: String?
    /// When this subscriber's credential expires (unix seconds; `nil`: never), so a `key: subject` stream reconnects
    /// with the freshest.
    public let credentialExpiresAt: Double?

    init(
        key: ShareKey,
        configuration: ShareConfiguration,
        upstreamHead: HTTPRequestHead,
        lastEventID: String?,
        credentialExpiresAt: Double?
    ) {
        self.key = key
        self.configuration = configuration
        self.upstreamHead = upstreamHead
        self.lastEventID = lastEventID
        self.credentialExpiresAt = credentialExpiresAt
    }
}

extension RequestAdmission {
    /// The shared-stream request of an admitted request, or `nil` when it cannot be shared: only a `GET` without a
    /// body on a route with `share`.
    static func sharedRequest(
        route: RouteConfiguration,
        clientHead: HTTPRequestHead,
        upstreamHead: HTTPRequestHead,
        identity: VerifiedIdentity?,
        policy: AuthPolicyConfiguration?
    ) -> SharedRequest? {
        guard let share = route.share, clientHead.method == .GET,
            !clientHead.headers.contains(name: "transfer-encoding"),
            clientHead.headers.first(name: "content-length").map({ $0 == "0" }) ?? true
        else { return nil }
        var kept: Set<String> = ["host"]
        kept.formUnion(share.varyHeaders)
        var subject: String?
        if share.key == .subject {
            guard let policy, let verified = identity?.subject else { return nil }
            subject = verified
            kept.insert(policy.forward.header.lowercased())
            for mapping in policy.claimsToHeaders { kept.insert(mapping.header.lowercased()) }
        }
        var headers = HTTPHeaders()
        for (name, value) in upstreamHead.headers where kept.contains(name.lowercased()) {
            headers.add(name: name, value: value)
        }
        headers.add(name: "accept", value: "text/event-stream")
        for (name, value) in share.upstreamHeaders { headers.replaceOrAdd(name: name, value: value) }
        let vary = share.varyHeaders.map { name -> String? in
            let values = clientHead.headers[name]
            return values.isEmpty ? nil : values.joined(separator: ", ")
        }
        let key = ShareKey(
            route: route.name, upstream: route.upstream.description, uri: upstreamHead.uri, vary: vary,
            subject: subject
        )
        return SharedRequest(
            key: key,
            configuration: share,
            upstreamHead: HTTPRequestHead(version: .http1_1, method: .GET, uri: upstreamHead.uri, headers: headers),
            lastEventID: clientHead.headers.first(name: "last-event-id"),
            credentialExpiresAt: identity?.expiresAt
        )
    }
}
