import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// The running gateway: the public listener, the admin listener and the per-loop upstream connectors and timers.
///
/// A `Service` for swift-service-lifecycle: `run()` binds, serves until graceful shutdown is requested (SIGTERM or
/// SIGINT through the `ServiceGroup`), then drains — listeners stop accepting, streams are told to reconnect at their
/// next event boundary, and whatever is left after `drain.grace` is closed.
public final class Gateway: Service, Sendable {
    /// Where the listeners ended up (useful with port 0).
    public struct BoundAddresses: Sendable {
        public var gateway: SocketAddress
        public var admin: SocketAddress?
    }

    private let group: any EventLoopGroup
    private let runtimes: RuntimeHolder
    private let loops: EventLoopLocals
    private let environment: GatewayEnvironment
    private let openConnections = OpenConnections()
    private let state = NIOLockedValueBox(ListenerState())
    private let reloadRequestHandler = NIOLockedValueBox<(@Sendable () async -> String?)?>(nil)

    /// The metrics this gateway records (exported on the admin listener's `/metrics`).
    public var metrics: GatewayMetrics { environment.metrics }

    /// What `POST /reload` on the admin listener runs; returns `nil` on success or the errors to answer with.
    public func onReloadRequest(_ handler: @escaping @Sendable () async -> String?) {
        reloadRequestHandler.withLockedValue { $0 = handler }
    }

    /// The Prometheus exposition, with JWKS fetch counts brought up to date first.
    public func metricsExposition() -> String {
        for (policy, fetcher) in runtimes.current.jwksFetchers {
            environment.metrics.observeJWKS(
                policy: policy,
                successes: fetcher.successCount,
                failures: fetcher.failureCount
            )
        }
        return environment.metrics.exposition()
    }

    private struct ListenerState {
        var gatewayListener: GatewayListener?
        var adminChannel: (any Channel)?
        var ready = false
        var draining = false
        /// Background JWKS refresh loops of the runtime in force.
        var jwksTasks: [Task<Void, Never>] = []
        var drained: EventLoopFuture<Void>?
    }

    public init(
        configuration: GatewayConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "sse-gateway")
    ) throws {
        self.group = group
        let tickets = StreamTickets()
        self.runtimes = RuntimeHolder(
            try GatewayRuntime(configuration: configuration, logger: logger, tickets: tickets)
        )
        self.loops = EventLoopLocals(group: group)
        self.environment = GatewayEnvironment(
            logger: logger, metrics: GatewayMetrics(), admission: StreamAdmission(), tickets: tickets
        )
        environment.metrics.prepare(for: runtimes.current)
    }

    /// The configuration currently used for new requests.
    public var configuration: GatewayConfiguration { runtimes.current.configuration }

    /// Binds both listeners. Idempotent callers should call it once; `run()` calls it if needed.
    @discardableResult
    public func start() async throws -> BoundAddresses {
        let configuration = runtimes.current.configuration
        // Keys first: a JWKS is fetched before the listener opens, so the first tokens verify without a refresh.
        await Self.fetchJWKS(runtimes.current)
        let gatewayListener = try await bindGateway(configuration)
        var adminChannel: (any Channel)?
        if let adminAddress = configuration.admin.listen {
            do {
                adminChannel = try await bindAdmin(adminAddress)
            } catch {
                await gatewayListener.close()
                throw error
            }
        }
        let jwksTasks = Self.startJWKSRefresh(runtimes.current)
        state.withLockedValue {
            $0.gatewayListener = gatewayListener
            $0.adminChannel = adminChannel
            $0.ready = true
            $0.jwksTasks = jwksTasks
        }
        let addresses = BoundAddresses(gateway: gatewayListener.localAddress!, admin: adminChannel?.localAddress)
        environment.logger.info(
            "sse-gateway listening",
            metadata: [
                "listen": "\(Self.display(addresses.gateway))",
                "admin": "\(addresses.admin.map(Self.display) ?? "off")",
                "routes": "\(configuration.routes.count)",
            ]
        )
        return addresses
    }

    public func run() async throws {
        if state.withLockedValue({ $0.gatewayListener == nil }) {
            try await start()
        }
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops accepting, drains open requests and streams, and closes the listeners. Safe to call more than once.
    public func shutdown() async {
        let (drained, adminChannel, listener, promise) = state.withLockedValue {
            state -> (EventLoopFuture<Void>, (any Channel)?, GatewayListener?, EventLoopPromise<Void>?) in
            if let drained = state.drained { return (drained, nil, nil, nil) }
            state.draining = true
            let promise = group.next().makePromise(of: Void.self)
            state.drained = promise.futureResult
            let admin = state.adminChannel
            state.adminChannel = nil
            for task in state.jwksTasks { task.cancel() }
            state.jwksTasks = []
            return (promise.futureResult, admin, state.gatewayListener, promise)
        }
        if let promise {
            // Stop accepting first, then every open connection (of this listener or of one a reload moved away
            // from) is told to finish.
            await listener?.close()
            openConnections.drain(on: promise.futureResult.eventLoop).cascade(to: promise)
        }
        environment.logger.info("draining: no new connections; open streams are told to reconnect")
        try? await drained.get()
        loops.closeAllIdle()
        environment.sharedStreams.closeAll()  // their subscribers are gone: no linger
        try? await adminChannel?.close()
        environment.logger.info("drained; stopped")
    }

    /// Checks what the YAML loader cannot: that TLS files and keys parse. Errors point at the key's line.
    public static func validate(_ loaded: LoadedConfiguration) throws(ConfigurationErrors) {
        var errors: [ConfigurationError] = []
        for (name, policy) in loaded.configuration.authPolicies.sorted(by: { $0.key < $1.key }) {
            let store = policy.jwt.flatMap { jwt in jwt.jwksURL.map { _ in JWKSKeyStore(configuration: jwt) } }
            do {
                _ = try RouteAuthenticator(name: name, policy: policy, jwks: store)
            } catch {
                errors.append(loaded.sourceMap.error(error.path, error.message))
            }
        }
        for (index, route) in loaded.configuration.routes.enumerated() {
            do {
                _ = try UpstreamEndpoint(route: route, tlsIdentity: index)
            } catch {
                errors.append(loaded.sourceMap.error("routes[\(index)].tls", "cannot use TLS settings: \(error)"))
            }
        }
        if !errors.isEmpty { throw ConfigurationErrors(errors) }
    }

    /// Replaces the configuration for new requests; open streams keep the one they started with.
    ///
    /// A new TLS certificate and key are read here and used by the next handshakes; turning TLS on or off needs a
    /// restart (the listener's protocol is fixed when it binds).
    public func reload(configuration: GatewayConfiguration) async throws {
        if (configuration.tls == nil) != (runtimes.current.configuration.tls == nil) {
            throw ConfigurationError(
                file: "reload",
                line: 0,
                column: 0,
                keyPath: "tls",
                message: "turning TLS on or off needs a restart"
            )
        }
        let runtime = try GatewayRuntime(
            configuration: configuration, logger: environment.logger, tickets: environment.tickets,
            previous: runtimes.current
        )
        await Self.fetchJWKS(runtime)
        // A changed address: the new listener is bound first (a failure leaves everything as it was), the old one
        // stops accepting after the swap; connections it accepted run on untouched.
        let current = runtimes.current.configuration
        let (isServing, isDraining, bound) = state.withLockedValue {
            ($0.gatewayListener != nil, $0.draining, (gateway: $0.gatewayListener?.localAddress?.port, admin: $0.adminChannel?.localAddress?.port))
        }
        /// Same host, and the same port or the port a `:0` listener was given.
        func moved(_ new: ListenAddress?, from old: ListenAddress?, boundPort: Int?) -> Bool {
            guard let new, let old else { return (new == nil) != (old == nil) }
            return new.host != old.host || (new.port != old.port && new.port != boundPort)
        }
        guard !isDraining else {
            throw ConfigurationError(file: "reload", line: 0, column: 0, keyPath: "", message: "the gateway is draining")
        }
        var newGateway: GatewayListener?
        var newAdmin: (any Channel)??
        if isServing, moved(configuration.listen, from: current.listen, boundPort: bound.gateway) {
            newGateway = try await bindGateway(configuration)
        }
        if isServing, moved(configuration.admin.listen, from: current.admin.listen, boundPort: bound.admin) {
            do {
                if let address = configuration.admin.listen {
                    newAdmin = .some(try await bindAdmin(address))
                } else {
                    newAdmin = .some(nil)
                }
            } catch {
                await newGateway?.close()
                throw error
            }
        }
        // The new routes' series exist before their first request can be counted.
        environment.metrics.prepare(for: runtime)
        runtimes.replace(with: runtime)
        let tasks = Self.startJWKSRefresh(runtime)
        let (oldTasks, oldChannels, oldListener) = state.withLockedValue {
            state -> ([Task<Void, Never>], [any Channel], GatewayListener?) in
            var retired: [any Channel] = []
            var retiredListener: GatewayListener?
            if let newGateway {
                retiredListener = state.gatewayListener
                state.gatewayListener = newGateway
            }
            if let newAdmin {
                if let old = state.adminChannel { retired.append(old) }
                state.adminChannel = newAdmin
            }
            let old = state.jwksTasks
            state.jwksTasks = tasks
            return (old, retired, retiredListener)
        }
        for task in oldTasks { task.cancel() }
        for channel in oldChannels { try? await channel.close() }
        // Its connections run on; `openConnections` still drains them at shutdown.
        await oldListener?.close()
        if let newGateway {
            environment.logger.notice("listener moved", metadata: ["listen": "\(Self.display(newGateway.localAddress!))"])
        }
    }

    /// The addresses the listeners are bound to now.
    public var boundAddresses: BoundAddresses? {
        state.withLockedValue { state in
            guard let gateway = state.gatewayListener?.localAddress else { return nil }
            return BoundAddresses(gateway: gateway, admin: state.adminChannel?.localAddress)
        }
    }

    private func bindAdmin(_ address: ListenAddress) async throws -> any Channel {
        try await AdminListener.bind(
            address: address,
            group: group,
            endpoints: AdminListener.Endpoints(
                status: { [weak self] in self?.readiness ?? .draining },
                metrics: { [weak self] in self?.metricsExposition() ?? "" },
                reload: { [weak self] in
                    guard let handler = self?.reloadRequestHandler.withLockedValue({ $0 }) else {
                        return "reload is not configured (no configuration file)"
                    }
                    return await handler()
                }
            )
        )
    }

    /// Fetches every JWKS of the runtime once, concurrently (each bounded by the fetcher's timeout).
    private static func fetchJWKS(_ runtime: GatewayRuntime) async {
        await withTaskGroup(of: Void.self) { group in
            for fetcher in runtime.jwksFetchers.values {
                group.addTask { _ = await fetcher.refresh() }
            }
        }
    }

    /// Starts each JWKS fetcher's loop: refreshes before the keys go stale (the first fetch was done already).
    private static func startJWKSRefresh(_ runtime: GatewayRuntime) -> [Task<Void, Never>] {
        runtime.jwksFetchers.values.map { fetcher in
            Task { try? await fetcher.run(fetchFirst: false) }
        }
    }

    /// `127.0.0.1:8080` or `[::1]:8080`, for log lines.
    static func display(_ address: SocketAddress) -> String {
        ListenAddress(host: address.ipAddress ?? "?", port: address.port ?? 0).description
    }

    private var readiness: AdminListener.Readiness {
        state.withLockedValue { $0.draining ? .draining : ($0.ready ? .ready : .starting) }
    }

    /// Receive buffers for client and upstream channels: NIO keeps each channel's last one between reads, so an idle
    /// stream holds it for hours. Starting at 512 B instead of 2 KiB saved ~3 KiB per held stream (two channels) in
    /// `Benchmarks/`; it still grows to 64 KiB under load. `CompactRecvAllocator` is NIO's adaptive allocator with
    /// these bounds, small enough not to be boxed per channel.
    static let recvAllocator = CompactRecvAllocator()

    private func bindGateway(_ configuration: GatewayConfiguration) async throws -> GatewayListener {
        let runtimes = self.runtimes
        let environment = self.environment
        let openConnections = self.openConnections
        let pipeline = GatewayPipeline(
            configuration: configuration,
            runtimes: runtimes,
            loops: loops,
            environment: environment
        )
        return try await GatewayListener.bind(
            host: configuration.listen.host,
            port: configuration.listen.port,
            group: group
        ) { bootstrap in
            // Child options are set synchronously in the initializer: `childChannelOption` applies each one
            // through its own future chain, several allocations per option on every accepted connection.
            Self.setInheritedTCPOptions(bootstrap, waterMark: pipeline.connectionWaterMark).childChannelInitializer { channel in
                let limit = runtimes.current.configuration.limits.maxConnections
                guard openConnections.admit(channel, limit: limit) else {
                    // Over limits.max_connections: refuse at once rather than queue.
                    environment.metrics.connectionRejected()
                    return channel.eventLoop.makeFailedFuture(ConnectionLimitReached())
                }
                do {
                    try Self.setConnectionOptions(channel, waterMark: pipeline.connectionWaterMark)
                } catch {
                    // NIO closes the channel, which untracks it.
                    return channel.eventLoop.makeFailedFuture(error)
                }
                return pipeline.configureConnection(channel)
            }
        }
    }
}

extension Gateway {
    /// TCP options for accepted connections, set once on the listening socket: Linux copies a listener's TCP options
    /// into every socket it accepts, so they cost no system call per connection. Elsewhere `setConnectionOptions`
    /// sets TCP_NODELAY on each connection.
    static func setInheritedTCPOptions(
        _ bootstrap: ServerBootstrap,
        waterMark: ChannelOptions.Types.WriteBufferWaterMark
    ) -> ServerBootstrap {
        #if os(Linux)
        // (`.socketOption(.tcp_nodelay)` would be SO_DEBUG: the level is what makes it TCP's option.)
        bootstrap
            .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // The kernel's share of a slow client's backlog: without this, a client that stops reading gets up to
            // `tcp_wmem`'s maximum (4 MiB here) queued in its socket before the channel turns unwritable, so
            // `stream_buffer_bytes` and a shared stream's `subscriber_buffer_bytes` would only start counting after
            // megabytes per client (and copying into that growing queue cost a shared stream 60% more CPU per
            // event with 10% of its subscribers stalled). TCP_NOTSENT_LOWAT bounds only bytes not yet sent:
            // in-flight data, and so throughput on long round trips, is not limited.
            .serverChannelOption(.tcpOption(.init(rawValue: CInt(TCP_NOTSENT_LOWAT))), value: waterMark.high)
        #else
        bootstrap
        #endif
    }

    /// The receive allocator and, for accepted connections, the write water mark (and TCP_NODELAY where the listener
    /// does not pass it on), set without futures. (ClientBootstrap sets TCP_NODELAY on upstream connections.)
    static func setConnectionOptions(
        _ channel: any Channel,
        waterMark: ChannelOptions.Types.WriteBufferWaterMark?
    ) throws {
        guard let options = channel.syncOptions else {
            preconditionFailure("socket channels always have synchronous options")
        }
        // A client sends one request head and then (for a stream) nothing for hours, but every channel keeps its
        // last receive buffer: start small (heads fit in a few reads) instead of NIO's 2 KiB; it still grows.
        try options.setOption(.recvAllocator, value: recvAllocator)
        if let waterMark {
            try options.setOption(.writeBufferWaterMark, value: waterMark)
            #if !os(Linux)
            try options.setOption(.tcpOption(.tcp_nodelay), value: 1)
            #endif
        }
    }
}

/// A connection refused because the gateway holds `limits.max_connections` already.
struct ConnectionLimitReached: Error {}
