/// The whole gateway configuration, as loaded from `gateway.yml`.
///
/// Plain `Sendable` values with defaults. Loading and validation live in
/// `GatewayConfiguration+YAML.swift`; nothing here touches the file system.
public struct GatewayConfiguration: Sendable, Equatable {
    /// Address of the public (client-facing) listener.
    public var listen: ListenAddress
    /// TLS on the public listener; `nil` serves plain HTTP/1.1.
    public var tls: ListenerTLSConfiguration?
    /// HTTP/2 settings, used when `tls` is set and the client negotiates `h2`.
    public var http2: HTTP2Configuration
    /// The admin listener (health, readiness, metrics, reload).
    public var admin: AdminConfiguration
    /// Routes in file order. Matching picks the longest prefix, not the first.
    public var routes: [RouteConfiguration]
    /// Named auth policies that routes refer to with `auth:`.
    public var authPolicies: [String: AuthPolicyConfiguration]
    /// CORS for credentialed `EventSource`; `nil` sends no CORS headers.
    public var cors: CORSConfiguration?
    /// Gateway-wide limits.
    public var limits: LimitsConfiguration
    /// What SIGTERM does to open streams.
    public var drain: DrainConfiguration

    public init(
        listen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 8080),
        tls: ListenerTLSConfiguration? = nil,
        http2: HTTP2Configuration = .init(),
        admin: AdminConfiguration = .init(),
        routes: [RouteConfiguration] = [],
        authPolicies: [String: AuthPolicyConfiguration] = [:],
        cors: CORSConfiguration? = nil,
        limits: LimitsConfiguration = .init(),
        drain: DrainConfiguration = .init()
    ) {
        self.listen = listen
        self.tls = tls
        self.http2 = http2
        self.admin = admin
        self.routes = routes
        self.authPolicies = authPolicies
        self.cors = cors
        self.limits = limits
        self.drain = drain
    }
}

/// A `host:port` pair; IPv6 hosts are written `[::1]:8080` in YAML and stored without brackets.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// `tls:` at the top level: the public listener's certificate chain and key (PEM files).
public struct ListenerTLSConfiguration: Sendable, Equatable {
    /// Absolute path of the PEM certificate chain (relative paths are resolved against the config file's folder).
    public var certificatePath: String
    /// Absolute path of the PEM private key.
    public var privateKeyPath: String
    /// Lowest TLS version accepted: "1.2" (default) or "1.3".
    public var minimumVersion: TLSVersion

    public enum TLSVersion: String, Sendable, Equatable {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    public init(certificatePath: String, privateKeyPath: String, minimumVersion: TLSVersion = .tls12) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.minimumVersion = minimumVersion
    }
}

/// `http2:` settings for the public listener.
public struct HTTP2Configuration: Sendable, Equatable {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` advertised to clients.
    public var maxConcurrentStreams: Int

    public init(maxConcurrentStreams: Int = 256) {
        self.maxConcurrentStreams = maxConcurrentStreams
    }
}

/// `admin:` — health, readiness and metrics endpoints, on their own listener.
public struct AdminConfiguration: Sendable, Equatable {
    /// `nil` disables the admin listener.
    public var listen: ListenAddress?

    public init(listen: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 9901)) {
        self.listen = listen
    }
}

/// One entry of `routes:`.
///
/// Its values live in one shared, copy-on-write box: a route is copied into every routed request, exchange and
/// admission of every connection, and a copy is one reference (8 bytes, one retain), not its ~370 bytes of fields.
public struct RouteConfiguration: Sendable, Equatable {
    private struct Fields: Sendable, Equatable {
        var name: String
        var pathPrefix: String
        var upstream: UpstreamURL
        var stripPrefix: Bool
        var heartbeat: Duration?
        var timeouts: RouteTimeouts
        var auth: String?
        var upstreamTLS: UpstreamTLSConfiguration
        var maxStreams: Int?
        var maxStreamDuration: Duration?
        var share: ShareConfiguration?
    }

    private final class Box: @unchecked Sendable {
        // @unchecked: `fields` is only mutated through `mutate`, on a box no other value shares.
        var fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var box: Box

    private mutating func mutate(_ change: (inout Fields) -> Void) {
        if !isKnownUniquelyReferenced(&box) { box = Box(box.fields) }
        change(&box.fields)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.box === rhs.box || lhs.box.fields == rhs.box.fields }

    /// Unique name; used in metrics labels and logs (never the raw URL).
    public var name: String {
        get { box.fields.name }
        set { mutate { $0.name = newValue } }
    }

    /// Matched against the decoded, normalised request path; the longest matching prefix wins.
    public var pathPrefix: String {
        get { box.fields.pathPrefix }
        set { mutate { $0.pathPrefix = newValue } }
    }

    /// Where matching requests go.
    public var upstream: UpstreamURL {
        get { box.fields.upstream }
        set { mutate { $0.upstream = newValue } }
    }

    /// `true`: the prefix is removed before forwarding (`/events/a` becomes `/a`).
    public var stripPrefix: Bool {
        get { box.fields.stripPrefix }
        set { mutate { $0.stripPrefix = newValue } }
    }

    /// Write `: keep-alive` on an idle event stream after this long; `nil` disables heartbeats.
    public var heartbeat: Duration? {
        get { box.fields.heartbeat }
        set { mutate { $0.heartbeat = newValue } }
    }
    public var timeouts: RouteTimeouts {
        get { box.fields.timeouts }
        set { mutate { $0.timeouts = newValue } }
    }

    /// Name of an `auth_policies` entry; `nil` means the route is public.
    public var auth: String? {
        get { box.fields.auth }
        set { mutate { $0.auth = newValue } }
    }

    /// TLS settings for an `https` upstream (private CA, client certificate).
    public var upstreamTLS: UpstreamTLSConfiguration {
        get { box.fields.upstreamTLS }
        set { mutate { $0.upstreamTLS = newValue } }
    }

    /// Most concurrent streams on this route; `nil` is unlimited (within `limits.max_connections`).
    public var maxStreams: Int? {
        get { box.fields.maxStreams }
        set { mutate { $0.maxStreams = newValue } }
    }

    /// End a stream at an event boundary after this long, with a jittered `retry:` hint.
    public var maxStreamDuration: Duration? {
        get { box.fields.maxStreamDuration }
        set { mutate { $0.maxStreamDuration = newValue } }
    }

    /// Identical streams share one upstream connection (`share:`); `nil`: every client gets its own.
    public var share: ShareConfiguration? {
        get { box.fields.share }
        set { mutate { $0.share = newValue } }
    }

    public init(
        name: String,
        pathPrefix: String,
        upstream: UpstreamURL,
        stripPrefix: Bool = false,
        heartbeat: Duration? = nil,
        timeouts: RouteTimeouts = .init(),
        auth: String? = nil,
        upstreamTLS: UpstreamTLSConfiguration = .init(),
        maxStreams: Int? = nil,
        maxStreamDuration: Duration? = nil,
        share: ShareConfiguration? = nil
    ) {
        self.box = Box(
            Fields(
                name: name, pathPrefix: pathPrefix, upstream: upstream, stripPrefix: stripPrefix, heartbeat: heartbeat,
                timeouts: timeouts, auth: auth, upstreamTLS: upstreamTLS, maxStreams: maxStreams,
                maxStreamDuration: maxStreamDuration, share: share
            )
        )
    }
}

public struct UpstreamURL: Sendable, Hashable, CustomStringConvertible {
    public enum Scheme: String, Sendable, Hashable {
        case http
        case https

        public var defaultPort: Int { self == .http ? 80 : 443 }
    }

    public var scheme: Scheme
    /// Host name or IP literal, without brackets.
    public var host: String
    public var port: Int
    /// Path prepended to every forwarded path; empty or starting with "/", never ending with "/".
    public var basePath: String

    public init(scheme: Scheme, host: String, port: Int? = nil, basePath: String = "") {
        self.scheme = scheme
        self.host = host
        self.port = port ?? scheme.defaultPort
        self.basePath = basePath
    }

    /// The value of the `Host` header sent upstream (port omitted when it is the scheme's default).
    public var hostHeader: String {
        // A byte test, not `contains(":")`: with Foundation imported that is a Unicode string search, and this runs
        // for every forwarded request.
        let h = host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]" : host
        return port == scheme.defaultPort ? h : "\(h):\(port)"
    }

    public var description: String { "\(scheme.rawValue)://\(hostHeader)\(basePath)" }
}

/// `routes[].timeouts`.
public struct RouteTimeouts: Sendable, Equatable {
    /// Dialling the upstream (TCP and TLS handshake).
    public var connect: Duration
    /// From request sent to the upstream's status line; past it the client gets 504.
    public var responseHeader: Duration
    /// Longest silence from the upstream once the response started; `.zero` disables it.
    public var idle: Duration

    public init(connect: Duration = .seconds(5), responseHeader: Duration = .seconds(30), idle: Duration = .zero) {
        self.connect = connect
        self.responseHeader = responseHeader
        self.idle = idle
    }
}

/// `routes[].tls`: how the gateway talks TLS to an `https` upstream.
public struct UpstreamTLSConfiguration: Sendable, Equatable {
    /// PEM bundle of CAs to trust instead of the system store.
    public var caFilePath: String?
    /// Client certificate chain (PEM) for mutual TLS.
    public var certificatePath: String?
    /// Client private key (PEM) for mutual TLS.
    public var privateKeyPath: String?
    /// SNI and verification name; defaults to the upstream host.
    public var serverName: String?

    public init(
        caFilePath: String? = nil,
        certificatePath: String? = nil,
        privateKeyPath: String? = nil,
        serverName: String? = nil
    ) {
        self.caFilePath = caFilePath
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.serverName = serverName
    }
}

/// `cors:` — which page origins may read responses, with credentials.
public struct CORSConfiguration: Sendable, Equatable {
    /// Exact origins (`https://app.example`); `"*"` allows any origin but never with credentials.
    public var allowedOrigins: [String]
    public var allowCredentials: Bool
    /// `Access-Control-Max-Age` for preflight answers.
    public var maxAge: Duration

    public init(allowedOrigins: [String], allowCredentials: Bool = false, maxAge: Duration = .seconds(600)) {
        self.allowedOrigins = allowedOrigins
        self.allowCredentials = allowCredentials
        self.maxAge = maxAge
    }
}

/// `limits:` — gateway-wide protection against overload and abuse.
public struct LimitsConfiguration: Sendable, Equatable {
    public var maxConnections: Int
    /// Token bucket per client IP for new streams; `nil` disables it.
    public var newStreamsPerSecondPerIP: Double?
    /// A client must send its whole request head within this long (slowloris protection).
    public var requestHeaderTimeout: Duration
    /// Request heads larger than this are answered 431.
    public var maxHeaderBytes: Int
    /// Unsent bytes a stream may hold for a slow client before the gateway stops reading the upstream (and the
    /// most the client's socket may hold not yet sent: TCP_NOTSENT_LOWAT on Linux).
    public var streamBufferBytes: Int
    /// A client that stays unwritable this long is dropped.
    public var slowClientTimeout: Duration

    public init(
        maxConnections: Int = 10_000,
        newStreamsPerSecondPerIP: Double? = nil,
        requestHeaderTimeout: Duration = .seconds(10),
        maxHeaderBytes: Int = 16 * 1024,
        streamBufferBytes: Int = 64 * 1024,
        slowClientTimeout: Duration = .seconds(30)
    ) {
        self.maxConnections = maxConnections
        self.newStreamsPerSecondPerIP = newStreamsPerSecondPerIP
        self.requestHeaderTimeout = requestHeaderTimeout
        self.maxHeaderBytes = maxHeaderBytes
        self.streamBufferBytes = streamBufferBytes
        self.slowClientTimeout = slowClientTimeout
    }
}

/// `drain:` — graceful shutdown.
public struct DrainConfiguration: Sendable, Equatable {
    /// How long non-streaming requests (and streams, before they are cut at a boundary) get to finish.
    public var grace: Duration
    /// Streams are told to reconnect after a random delay in `0...retryJitter`.
    public var retryJitter: Duration

    public init(grace: Duration = .seconds(10), retryJitter: Duration = .seconds(5)) {
        self.grace = grace
        self.retryJitter = retryJitter
    }
}
