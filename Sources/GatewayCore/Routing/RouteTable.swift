/// The outcome of routing one request: which route, and the exact path and query to send upstream.
public struct RoutedRequest: Sendable, Equatable {
    /// Index into the routes array the table was built from.
    public var routeIndex: Int
    public var route: RouteConfiguration
    /// `upstream.basePath` + the normalised raw path (prefix stripped if the route says so); always starts with "/".
    public var upstreamPath: String
    /// The client's raw query, unchanged (auth strips token parameters later).
    public var query: String?

    public init(routeIndex: Int, route: RouteConfiguration, upstreamPath: String, query: String?) {
        self.routeIndex = routeIndex
        self.route = route
        self.upstreamPath = upstreamPath
        self.query = query
    }

    /// The request target for the upstream request line.
    public var upstreamURI: String {
        guard let query else { return upstreamPath }
        return upstreamPath + "?" + query
    }
}

/// Longest-prefix routing over the configured routes.
///
/// Prefixes are plain byte prefixes of the decoded, normalised path, like nginx `location /prefix`: `/events`
/// matches `/events`, `/events/a` and also `/eventsfoo`; `/events/` matches neither `/events` nor `/eventsfoo`.
/// Equal prefixes (which config validation should reject) resolve to the earliest route.
public struct RouteTable: Sendable {
    private struct Entry: Sendable {
        var index: Int
        var prefix: [UInt8]
    }

    private let routes: [RouteConfiguration]
    /// Longest prefix first, so the first hit is the answer.
    private let entries: [Entry]

    public init(routes: [RouteConfiguration]) {
        self.routes = routes
        self.entries = routes.enumerated()
            .map { Entry(index: $0.offset, prefix: Array($0.element.pathPrefix.utf8)) }
            .sorted { $0.prefix.count != $1.prefix.count ? $0.prefix.count > $1.prefix.count : $0.index < $1.index }
    }

    /// Longest `pathPrefix` that the decoded path starts with (pure string prefix, like nginx `location /prefix`).
    public func match(decodedPath: String) -> Int? {
        match(decodedBytes: decodedPath.utf8)
    }

    private func match<Bytes: Collection<UInt8>>(decodedBytes: Bytes) -> Int? {
        for entry in entries where decodedBytes.starts(with: entry.prefix) {
            return entry.index
        }
        return nil
    }

    /// parse -> normalise -> match -> build upstream path.
    ///
    /// * No route matches the normalised path: `notFound`.
    /// * Dot-segments moved the request to another route (or to none): the raw path, decoded, matches route A but
    ///   the normalised path matches B != A, e.g. `/events/../admin` or `/events/%2e%2e/admin`: `badRequest`.
    ///   Traversal that stays inside one route (`/events/a/../b`) is allowed and forwarded normalised.
    /// * `stripPrefix`: the bytes of the raw path that decode to the prefix (less its trailing "/") are removed and
    ///   the rest keeps the client's encoding (so `%2F` in the rest stays `%2F`); a rest not starting with "/" gets
    ///   one. So with prefix `/events/`: `/events/a` -> `/a`, `/events/` -> `/`, `/events//a` -> `//a`; with prefix
    ///   `/events`: `/events` -> `/`, `/events/a` -> `/a`, `/eventsfoo` -> `/foo`. A rest that would be a dot-segment
    ///   once the prefix is gone (`/events%2E%2E/x` -> `/%2E%2E/x`): `badRequest`.
    /// * `upstream.basePath` is prepended: `/api` + `/a` -> `/api/a`, `/api` + `/` -> `/api/`.
    public func route(uri: String) throws(GatewayError) -> RoutedRequest {
        let target = try RequestTarget.parse(uri)
        let normalized = try PathNormalizer.normalize(target.rawPath)
        let index = match(decodedPath: normalized.decoded)
        if normalized.raw != target.rawPath {
            // The parse above guarantees valid escapes, so decoding cannot fail.
            let rawDecoded = PercentDecoding.decode(target.rawPath.utf8) ?? []
            if let rawIndex = match(decodedBytes: rawDecoded), rawIndex != index {
                throw .badRequest("path escapes its route")
            }
        }
        guard let index else { throw .notFound() }
        let route = routes[index]

        var path = Substring(normalized.raw)
        if route.stripPrefix {
            // A prefix's trailing "/" stays with the rest, so "/events//a" keeps its "//" under prefix "/events/".
            let prefix = route.pathPrefix.utf8
            let count = prefix.last == UInt8(ascii: "/") ? prefix.count - 1 : prefix.count
            path = Self.dropDecodedPrefix(count: count, from: path)
        }
        var rest = String(path)
        if !rest.hasPrefix("/") { rest = "/" + rest }
        // A prefix without a trailing "/" can end inside a segment: `/feed` strips `/feed%2E%2E/x` to the new segment
        // `%2E%2E`, which the upstream would resolve above the base path. The rest must be normalised already.
        if route.stripPrefix, (try? PathNormalizer.normalize(rest))?.raw != rest {
            throw .badRequest("path escapes its route")
        }
        let upstreamPath = route.upstream.basePath + rest
        return RoutedRequest(routeIndex: index, route: route, upstreamPath: upstreamPath, query: target.rawQuery)
    }

    /// Drops the raw bytes that decode to the first `count` decoded bytes (a `%XX` is one decoded byte).
    private static func dropDecodedPrefix(count: Int, from raw: Substring) -> Substring {
        let bytes = raw.utf8
        var i = bytes.startIndex
        var consumed = 0
        while consumed < count, i != bytes.endIndex {
            let step = bytes[i] == UInt8(ascii: "%") ? 3 : 1
            i = bytes.index(i, offsetBy: step, limitedBy: bytes.endIndex) ?? bytes.endIndex
            consumed += 1
        }
        return raw[i...]
    }
}
