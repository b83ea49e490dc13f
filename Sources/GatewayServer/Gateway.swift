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
        var drained: EventLoopFuture<Void>?
    }

    public init(
        configuration: GatewayConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "sse-gateway")
    ) throws {
        self.group = group
        self.runtimes = RuntimeHolder(try GatewayRuntime(configuration: configuration))
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
        state.withLockedValue {
            $0.gatewayChannel = gatewayChannel
            $0.adminChannel = adminChannel
            $0.ready = true
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
            return (promise.futureResult, admin)
        }
        environment.logger.info("draining: no new connections; open streams are told to reconnect")
        try? await drained.get()
        connectors.closeAllIdle()
        try? await adminChannel?.close()
        environment.logger.info("drained; stopped")
    }

    /// Replaces the configuration for new requests; open streams keep the one they started with.
    ///
    /// A new TLS certificate and key are read here and used by the next handshakes; turning TLS on or off needs a
    /// restart (the listener's protocol is fixed when it binds).
    public func reload(configuration: GatewayConfiguration) throws {
        if (configuration.tls == nil) != (runtimes.current.configuration.tls == nil) {
            throw ConfigurationError(
                file: "reload",
                line: 0,
                column: 0,
                keyPath: "tls",
                message: "turning TLS on or off needs a restart"
            )
        }
        runtimes.replace(with: try GatewayRuntime(configuration: configuration))
    }

    private var readiness: AdminListener.Readiness {
        state.withLockedValue { $0.draining ? .draining : ($0.ready ? .ready : .starting) }
    }

    private func bindGateway(_ configuration: GatewayConfiguration) async throws -> any Channel {
        let quiescing = self.quiescing
        let pipeline = GatewayPipeline(
            configuration: configuration,
            runtimes: runtimes,
            connectors: connectors,
            environment: environment
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
            .childChannelOption(.writeBufferWaterMark, value: pipeline.connectionWaterMark)
            .childChannelInitializer { channel in
                pipeline.configureConnection(channel)
            }
        return try await bootstrap.bind(host: configuration.listen.host, port: configuration.listen.port).get()
    }
}
