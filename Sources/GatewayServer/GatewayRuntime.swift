import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Foundation

/// Everything a request needs from one configuration generation, built once when the config is loaded.
///
/// Immutable and shared across event loops. A reload builds a new runtime; requests already in flight keep the
/// one they started with, so open streams are never disturbed by a reload.
final class GatewayRuntime: Sendable {
    let configuration: GatewayConfiguration
    let routeTable: RouteTable
    /// Indexed like `configuration.routes`.
    let endpoints: [UpstreamEndpoint]
    /// Indexed like `configuration.routes`; `nil` for public routes.
    let routeAuthenticators: [RouteAuthenticator?]
    /// By policy name: what the next reload's authenticators take their verified-token caches from.
    let authenticators: [String: RouteAuthenticator]
    /// The JWKS fetcher of each policy that has a `jwks_url`, by policy name.
    let jwksFetchers: [String: JWKSFetcher]
    let cors: CORSPolicy?
    /// Preflight, rate limit, routing, token and stream limits, in that order.
    let admission: RequestAdmission
    /// Every token source and ticket parameter of every policy: what access logs redact, whatever the route.
    let redactedSources: [TokenSource]
    /// The query parameter names among `redactedSources`.
    let redactedQueryNames: [String]
    /// Each new client connection's state-machine settings (HTTP/1, HTTP/2), made once per configuration.
    let http1Settings: ClientConnectionStateMachine.Settings
    let http2Settings: ClientConnectionStateMachine.Settings

    func settings(isHTTP2: Bool) -> ClientConnectionStateMachine.Settings {
        isHTTP2 ? http2Settings : http1Settings
    }
    /// The public listener's TLS context, read from `tls` files; each new handshake takes the current runtime's.
    let listenerTLS: NIOSSLContext?

    /// `tickets`: the stream tickets every generation shares (a reload must not forget minted tickets).
    /// `previous`: the runtime a reload replaces; an unchanged policy keeps its verified tokens (nothing else of it is
    /// kept, so the old runtime goes once its last request ends).
    init(
        configuration: GatewayConfiguration,
        logger: Logger = Logger(label: "sse-gateway"),
        tickets: StreamTickets = StreamTickets(),
        previous: GatewayRuntime? = nil
    ) throws {
        self.configuration = configuration
        self.routeTable = RouteTable(routes: configuration.routes)
        self.listenerTLS = try configuration.tls.map { try NIOSSLContext.listener($0) }
        var endpoints: [UpstreamEndpoint] = []
        for (index, route) in configuration.routes.enumerated() {
            endpoints.append(try UpstreamEndpoint(route: route, tlsIdentity: index))
        }
        self.endpoints = endpoints
        var authenticators: [String: RouteAuthenticator] = [:]
        var fetchers: [String: JWKSFetcher] = [:]
        for (name, policy) in configuration.authPolicies.sorted(by: { $0.key < $1.key }) {
            var store: JWKSKeyStore?
            if let jwt = policy.jwt, let url = jwt.jwksURL {
                let keyStore = JWKSKeyStore(configuration: jwt)
                fetchers[name] = JWKSFetcher(url: url, store: keyStore, logger: logger, timeout: .seconds(5))
                store = keyStore
            }
            authenticators[name] = try RouteAuthenticator(
                name: name, policy: policy, jwks: store, previous: previous?.authenticators[name]
            )
        }
        self.authenticators = authenticators
        self.routeAuthenticators = configuration.routes.map { route in route.auth.flatMap { authenticators[$0] } }
        self.jwksFetchers = fetchers
        self.cors = configuration.cors.map(CORSPolicy.init(configuration:))
        var sources: [TokenSource] = [.query("access_token")]
        for (_, policy) in configuration.authPolicies.sorted(by: { $0.key < $1.key }) {
            for source in policy.tokenSources where !sources.contains(source) { sources.append(source) }
            if let parameter = policy.tickets?.parameter, !sources.contains(.query(parameter)) {
                sources.append(.query(parameter))
            }
        }
        self.redactedSources = sources
        self.redactedQueryNames = TokenRedaction.queryNames(of: sources)
        self.http1Settings = ClientConnectionHandler.settings(configuration, isHTTP2: false)
        self.http2Settings = ClientConnectionHandler.settings(configuration, isHTTP2: true)
        self.admission = RequestAdmission(
            configuration: configuration, routeTable: routeTable, authenticators: routeAuthenticators, cors: cors,
            tickets: tickets
        )
    }
}

extension UpstreamEndpoint {
    /// Builds the TLS context for an https upstream (system trust store unless `tls.ca_file` is set).
    init(route: RouteConfiguration, tlsIdentity: Int) throws {
        var context: NIOSSLContext?
        var serverName: String?
        if route.upstream.scheme == .https {
            var tls = TLSConfiguration.makeClientConfiguration()
            let settings = route.upstreamTLS
            if let caFile = settings.caFilePath {
                tls.trustRoots = .file(caFile)
            }
            if let certificate = settings.certificatePath, let key = settings.privateKeyPath {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
            context = try NIOSSLContext(configuration: tls)
            let name = settings.serverName ?? route.upstream.host
            serverName = Self.isIPLiteral(name) ? nil : name
        }
        self.init(url: route.upstream, tlsContext: context, serverName: serverName, tlsIdentity: tlsIdentity)
    }

    static func isIPLiteral(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

/// The runtime currently in force; swapped atomically by a reload.
final class RuntimeHolder: Sendable {
    private let box: NIOLockedValueBox<GatewayRuntime>

    init(_ runtime: GatewayRuntime) {
        self.box = NIOLockedValueBox(runtime)
    }

    var current: GatewayRuntime { box.withLockedValue { $0 } }

    func replace(with runtime: GatewayRuntime) {
        box.withLockedValue { $0 = runtime }
    }
}

/// What each event loop of the group owns, looked up without locks: its upstream connector (dialling and the pool)
/// and its client connections' timers.
final class EventLoopLocals: @unchecked Sendable {
    // @unchecked: the dictionary is immutable after init, and each loop's values are only used on that loop.
    struct Locals {
        let connector: UpstreamConnector
        let timers: ConnectionTimerQueue
    }

    private let byLoop: [ObjectIdentifier: Locals]

    init(group: any EventLoopGroup) {
        var map: [ObjectIdentifier: Locals] = [:]
        for loop in group.makeIterator() {
            map[ObjectIdentifier(loop)] = Locals(
                connector: UpstreamConnector(eventLoop: loop), timers: ConnectionTimerQueue(eventLoop: loop)
            )
        }
        self.byLoop = map
    }

    subscript(loop: any EventLoop) -> Locals {
        guard let locals = byLoop[ObjectIdentifier(loop)] else {
            preconditionFailure("event loop \(loop) is not of the gateway's group")
        }
        return locals
    }

    func closeAllIdle() {
        for (_, locals) in byLoop {
            let connector = locals.connector
            connector.eventLoop.execute { connector.closeIdle() }
        }
    }
}
