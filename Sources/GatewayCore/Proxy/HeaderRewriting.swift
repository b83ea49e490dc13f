import NIOHTTP1

/// Headers that describe one connection and must not be forwarded across a proxy (RFC 9110 section 7.6.1).
public enum HopByHopHeaders {
    /// The fixed set, lowercase. `Connection` may name more.
    static let names: [String] = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]

    /// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate,
    /// Proxy-Authorization, plus every token listed in Connection headers (RFC 9110 7.6.1). Case-insensitive.
    ///
    /// A `Connection` token naming `Content-Length` is ignored: dropping it would change the message framing
    /// (request smuggling), and the length is end-to-end anyway.
    public static func remove(from headers: inout HTTPHeaders) {
        let dropped = droppedNames(in: headers)
        guard headers.contains(where: { name, _ in dropped.contains { equalsIgnoringCase(name, $0) } }) else { return }
        var kept = HTTPHeaders()
        kept.reserveCapacity(headers.count)
        for (name, value) in headers where !dropped.contains(where: { equalsIgnoringCase(name, $0) }) {
            kept.add(name: name, value: value)
        }
        headers = kept
    }

    /// `base` (the fixed names, or a list that starts with them) plus the `Connection` tokens of `headers`. Without
    /// such tokens (the rule) this is `base` itself: nothing is allocated.
    static func droppedNames(in headers: HTTPHeaders, base: [String] = names) -> [String] {
        var dropped = base
        guard headers.contains(name: "connection") else { return dropped }
        for token in headers[canonicalForm: "connection"] where !token.isEmpty {
            if !equalsIgnoringCase(token, "content-length") { dropped.append(String(token)) }
        }
        return dropped
    }

    /// ASCII case-insensitive comparison; header names are ASCII tokens, so this needs no allocation.
    @inline(__always)
    static func equalsIgnoringCase(_ lhs: some StringProtocol, _ rhs: some StringProtocol) -> Bool {
        lhs.utf8.count == rhs.utf8.count && lhs.utf8.elementsEqual(rhs.utf8) { a, b in
            if a == b { return true }
            let lowerA = a | 0x20
            return lowerA == (b | 0x20) && lowerA >= UInt8(ascii: "a") && lowerA <= UInt8(ascii: "z")
        }
    }
}

/// How the client reached the gateway, for the `X-Forwarded-*` headers.
public struct ForwardingContext: Sendable {
    /// IP literal of the client, e.g. "127.0.0.1" or "::1" (no brackets, no port).
    public var clientAddress: String?
    /// "http" or "https": the scheme the client used to reach the gateway.
    public var clientScheme: String

    public init(clientAddress: String?, clientScheme: String) {
        self.clientAddress = clientAddress
        self.clientScheme = clientScheme
    }
}

/// Builds the headers of the upstream request from the client's.
public enum RequestHeaderRewriter {
    /// Hop-by-hop names and the ones the gateway sets itself, made once.
    static let droppedFromClients =
        HopByHopHeaders.names + ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]

    /// Client headers -> upstream headers: hop-by-hop removed; Host set to upstream.hostHeader; X-Forwarded-For
    /// appended (existing value + ", " + client IP); X-Forwarded-Proto set (clientScheme); X-Forwarded-Host set to the
    /// client's Host header (if any); Last-Event-ID and everything else kept in order; every header named in
    /// `removing` dropped (case-insensitive; used by auth for spoofed claim headers).
    ///
    /// Layout: `Host` first, then the client's remaining headers in their order, then `X-Forwarded-For`,
    /// `X-Forwarded-Proto`, `X-Forwarded-Host`. A client's own `X-Forwarded-Proto`/`-Host` are dropped, never trusted.
    /// `removing` applies to the client's headers only, not to the ones set here.
    /// A streamed body (`Transfer-Encoding` with `chunked`) stays validly framed: `transfer-encoding: chunked` is
    /// re-added last and any `Content-Length` is dropped (both together would be ambiguous framing).
    public static func upstreamHeaders(
        from client: HTTPHeaders,
        upstream: UpstreamURL,
        context: ForwardingContext,
        removing: [String] = []
    ) -> HTTPHeaders {
        var dropped = HopByHopHeaders.droppedNames(in: client, base: droppedFromClients)
        if !removing.isEmpty { dropped.append(contentsOf: removing) }
        let isChunked = client[canonicalForm: "transfer-encoding"].contains {
            HopByHopHeaders.equalsIgnoringCase($0, "chunked")
        }
        if isChunked { dropped.append("content-length") }

        var headers = HTTPHeaders()
        headers.reserveCapacity(client.count + 4)
        headers.add(name: "host", value: upstream.hostHeader)
        var forwardedFor: String? = nil
        for (name, value) in client {
            if HopByHopHeaders.equalsIgnoringCase(name, "x-forwarded-for") {
                forwardedFor = forwardedFor.map { $0 + ", " + value } ?? value
            }
            if dropped.contains(where: { HopByHopHeaders.equalsIgnoringCase(name, $0) }) { continue }
            headers.add(name: name, value: value)
        }
        if let address = context.clientAddress {
            forwardedFor = forwardedFor.map { $0 + ", " + address } ?? address
        }
        if let forwardedFor { headers.add(name: "x-forwarded-for", value: forwardedFor) }
        headers.add(name: "x-forwarded-proto", value: context.clientScheme)
        if let host = client.first(name: "host") { headers.add(name: "x-forwarded-host", value: host) }
        if isChunked { headers.add(name: "transfer-encoding", value: "chunked") }
        return headers
    }
}

/// Builds the headers of the client response from the upstream's.
public enum ResponseHeaderRewriter {
    /// Hop-by-hop names and the ones an event stream's response gets from the gateway, made once.
    static let droppedFromEventStreams =
        HopByHopHeaders.names + ["cache-control", "content-length", "x-accel-buffering"]

    /// true iff Content-Type's media type is text/event-stream (case-insensitive, parameters allowed).
    public static func isEventStream(_ headers: HTTPHeaders) -> Bool {
        guard let contentType = headers.first(name: "content-type") else { return false }
        let mediaType = HTTPFieldSyntax.trimmingWhitespace(contentType.utf8.prefix { $0 != UInt8(ascii: ";") })
        return HopByHopHeaders.equalsIgnoringCase(Substring(mediaType), "text/event-stream")
    }

    /// Upstream headers -> client headers: hop-by-hop removed (incl. Transfer-Encoding: the client side sets its own framing);
    /// for event streams: Cache-Control set to "no-cache" (replacing any), "X-Accel-Buffering: no" added,
    /// Content-Length removed, Content-Encoding left as the upstream sent it.
    ///
    /// `X-Accel-Buffering: no` tells an nginx in front of the gateway not to buffer the stream either.
    public static func clientHeaders(from upstream: HTTPHeaders, isEventStream: Bool) -> HTTPHeaders {
        let dropped = HopByHopHeaders.droppedNames(
            in: upstream, base: isEventStream ? droppedFromEventStreams : HopByHopHeaders.names
        )
        var headers = HTTPHeaders()
        headers.reserveCapacity(upstream.count + 2)
        for (name, value) in upstream where !dropped.contains(where: { HopByHopHeaders.equalsIgnoringCase(name, $0) }) {
            headers.add(name: name, value: value)
        }
        if isEventStream {
            headers.add(name: "cache-control", value: "no-cache")
            headers.add(name: "x-accel-buffering", value: "no")
        }
        return headers
    }
}
