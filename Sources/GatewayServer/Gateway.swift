import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The running gateway: the public listener, the admin listener and the upstream connectors.
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
    private let connectors: UpstreamConnectors
    private let environment: GatewayEnvironment
    private let quiescing: ServerQuiescingHelper
    private let state = NIOLockedValueBox(ListenerState())

    private struct ListenerState {
        var gatewayChannel: (any Channel)?
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
        self.runtimes = RuntimeHolder(try GatewayRuntime(configuration: configuration, logger: logger))
        self.connectors = UpstreamConnectors(group: group)
        self.environment = GatewayEnvironment(logger: logger, metrics: GatewayMetrics())
        self.quiescing = ServerQuiescingHelper(group: group)
    }

    /// The configuration currently used for new requests.
    public var configuration: GatewayConfiguration { runtimes.current.configuration }

    /// Binds both listeners. Idempotent callers should call it once; `run()` calls it if needed.
    @discardableResult
    public func start() async throws -> BoundAddresses {
        let configuration = runtimes.current.configuration
        // Keys first: a JWKS is fetched before the listener opens, so the first tokens verify without a refresh.
        await Self.fetchJWKS(runtimes.current)
        let gatewayChannel = try await bindGateway(configuration)
        var adminChannel: (any Channel)?
        if let adminAddress = configuration.admin.listen {
            do {
                adminChannel = try await AdminListener.bind(
                    address: adminAddress,
                    group: group,
                    status: { [weak self] in self?.readiness ?? .draining }
                )
            } catch {
                try? await gatewayChannel.close()
                throw error
            }
        }
        let jwksTasks = Self.startJWKSRefresh(runtimes.current)
        state.withLockedValue {
            $0.gatewayChannel = gatewayChannel
            $0.adminChannel = adminChannel
            $0.ready = true
            $0.jwksTasks = jwksTasks
        }
        let addresses = BoundAddresses(gateway: gatewayChannel.localAddress!, admin: adminChannel?.localAddress)
        environment.logger.info(
            "sse-gateway listening",
            metadata: [
                "listen": "\(addresses.gateway)",
                "admin": "\(addresses.admin.map { "\($0)" } ?? "off")",
                "routes": "\(configuration.routes.count)",
            ]
        )
        return addresses
    }

    public func run() async throws {
        if state.withLockedValue({ $0.gatewayChannel == nil }) {
            try await start()
        }
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops accepting, drains open requests and streams, and closes the listeners. Safe to call more than once.
    public func shutdown() async {
        let (drained, adminChannel): (EventLoopFuture<Void>, (any Channel)?) = state.withLockedValue { state in
            if let drained = state.drained { return (drained, nil) }
            state.draining = true
            let promise = group.next().makePromise(of: Void.self)
            if state.gatewayChannel != nil {
                quiescing.initiateShutdown(promise: promise)
            } else {
                promise.succeed()
            }
            state.drained = promise.futureResult
            let admin = state.adminChannel
            state.adminChannel = nil
            for task in state.jwksTasks { task.cancel() }
            state.jwksTasks = []
            return (promise.futureResult, admin)
        }
        environment.logger.info("draining: no new connections; open streams are told to reconnect")
        try? await drained.get()
        connectors.closeAllIdle()
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
    public func reload(configuration: GatewayConfiguration) async throws {
        let runtime = try GatewayRuntime(configuration: configuration, logger: environment.logger)
        await Self.fetchJWKS(runtime)
        runtimes.replace(with: runtime)
        let tasks = Self.startJWKSRefresh(runtime)
        let old = state.withLockedValue { state in
            let old = state.jwksTasks
            state.jwksTasks = tasks
            return old
        }
        for task in old { task.cancel() }
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

    private var readiness: AdminListener.Readiness {
        state.withLockedValue { $0.draining ? .draining : ($0.ready ? .ready : .starting) }
    }

    /// Receive buffers for client and upstream channels: NIO keeps each channel's last one between reads, so an idle
    /// stream holds it for hours. Starting at 512 B instead of 2 KiB saved ~3 KiB per held stream (two channels) in
    /// `Benchmarks/`; it still grows to 64 KiB under load.
    static let recvAllocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)

    private func bindGateway(_ configuration: GatewayConfiguration) async throws -> any Channel {
        let runtimes = self.runtimes
        let connectors = self.connectors
        let environment = self.environment
        let quiescing = self.quiescing
        let limits = configuration.limits
        let decoderLimits = {
            var decoderLimits = NIOHTTPDecoderLimitConfiguration()
            decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
            decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
            return decoderLimits
        }()
        let waterMark = ChannelOptions.Types.WriteBufferWaterMark(
            low: max(1, limits.streamBufferBytes / 2),
            high: max(2, limits.streamBufferBytes)
        )
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: waterMark)
            // A client sends one request head and then (for a stream) nothing for hours, but every channel keeps its
            // last receive buffer: start small (heads fit in a few reads) instead of NIO's 2 KiB; it still grows.
            .childChannelOption(.recvAllocator, value: Self.recvAllocator)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.configureHTTPServerPipeline(
                        withPipeliningAssistance: true,
                        withErrorHandling: false,
                        withEncoderConfiguration: .init(),
                        withDecoderLimitConfiguration: decoderLimits
                    )
                    try sync.addHandler(DrainSignalHandler(), position: .first)
                    try sync.addHandler(
                        ClientConnectionHandler(
                            runtimes: runtimes,
                            connectors: connectors,
                            environment: environment,
                            clientScheme: "http"
                        )
                    )
                }
            }
        return try await bootstrap.bind(host: configuration.listen.host, port: configuration.listen.port).get()
    }
}
