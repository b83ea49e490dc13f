import GatewayCore
import GatewayServer
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import XCTest

/// Starts a real gateway on 127.0.0.1:0 for a test and stops it afterwards (prefer `withGateway`, which always does).
struct GatewayHarness {
    let gateway: Gateway
    let addresses: Gateway.BoundAddresses
    /// How to close each client opened with `connect` or `connectHTTP2`, for `withGateway` to run.
    private let clientClosers = NIOLockedValueBox<[@Sendable () async -> Void]>([])

    /// The logger of a gateway whose log the test does not read.
    static let silent = Logger(label: "test-gateway", factory: { _ in SwiftLogNoOpLogHandler() })

    var port: Int { addresses.gateway.port! }
    var adminPort: Int? { addresses.admin?.port }

    static func start(
        routes: [RouteConfiguration],
        configure: (inout GatewayConfiguration) -> Void = { _ in },
        group: any EventLoopGroup,
        logger: Logger = GatewayHarness.silent
    ) async throws -> GatewayHarness {
        var configuration = GatewayConfiguration(
            listen: ListenAddress(host: "127.0.0.1", port: 0),
            admin: AdminConfiguration(listen: ListenAddress(host: "127.0.0.1", port: 0)),
            routes: routes
        )
        configure(&configuration)
        let gateway = try Gateway(configuration: configuration, group: group, logger: logger)
        let addresses = try await gateway.start()
        return GatewayHarness(gateway: gateway, addresses: addresses)
    }

    /// Drains and stops the gateway (safe to call more than once).
    func stop() async {
        await gateway.shutdown()
    }

    /// A byte-level client of the gateway, closed by `withGateway`: on its listener unless `port` says otherwise
    /// (the admin port, or the port a reload moved the listener to), over TLS with `tls`.
    func connect(
        group: any EventLoopGroup,
        port: Int? = nil,
        autoRead: Bool = true,
        receiveBuffer: Int? = nil,
        tls: NIOSSLContext? = nil
    ) async throws -> RawClient {
        let client = try await RawClient.connect(
            port: port ?? self.port, group: group, autoRead: autoRead, receiveBuffer: receiveBuffer, tls: tls
        )
        clientClosers.withLockedValue { $0.append({ await client.close() }) }
        return client
    }

    /// An HTTP/2 client of the gateway's TLS listener, closed by `withGateway`.
    func connectHTTP2(group: any EventLoopGroup, tls: NIOSSLContext) async throws -> HTTP2TestClient {
        let client = try await HTTP2TestClient.connect(port: port, group: group, tls: tls)
        clientClosers.withLockedValue { $0.append({ await client.close() }) }
        return client
    }

    /// Closes every client `connect` and `connectHTTP2` opened, so a stalled stream does not hold up the drain, then
    /// stops the gateway.
    fileprivate func stopWithClients() async {
        for close in clientClosers.withLockedValue({ $0 }) { await close() }
        await stop()
    }
}

/// Starts a gateway, runs `body` with it, and stops it (and the clients it connected) however `body` ends.
func withGateway<Value>(
    routes: [RouteConfiguration],
    configure: (inout GatewayConfiguration) -> Void = { _ in },
    group: any EventLoopGroup,
    logger: Logger = GatewayHarness.silent,
    _ body: (GatewayHarness) async throws -> Value
) async throws -> Value {
    let gateway = try await GatewayHarness.start(routes: routes, configure: configure, group: group, logger: logger)
    return try await withCleanup(gateway.stopWithClients) { try await body(gateway) }
}

func route(
    _ name: String = "events",
    prefix: String = "/events/",
    upstream: TestUpstream,
    configure: (inout RouteConfiguration) -> Void = { _ in }
) -> RouteConfiguration {
    var route = RouteConfiguration(
        name: name,
        pathPrefix: prefix,
        upstream: UpstreamURL(scheme: .http, host: "127.0.0.1", port: upstream.port)
    )
    configure(&route)
    return route
}

/// A `Logger` whose lines a test can read back (for "no token in any log line" checks).
final class CapturedLog: Sendable {
    private let lines = NIOLockedValueBoxStrings()

    var logger: Logger {
        let lines = self.lines
        return Logger(label: "captured") { label in
            GatewayLogHandler(label: label, format: .text, level: .trace, sink: { lines.append($0) })
        }
    }

    var text: String { lines.joined() }
}

final class NIOLockedValueBoxStrings: Sendable {
    private let box = NIOLockedValueBox<[String]>([])
    func append(_ s: String) { box.withLockedValue { $0.append(s) } }
    func joined() -> String { box.withLockedValue { $0.joined() } }
}

import NIOConcurrencyHelpers

/// `withGateway` whose listener serves TLS (HTTP/1.1 and HTTP/2 by ALPN) with `certificates`' server identity.
func withTLSGateway<Value>(
    routes: [RouteConfiguration],
    certificates: TestCertificates,
    configure: (inout GatewayConfiguration) -> Void = { _ in },
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    _ body: (GatewayHarness) async throws -> Value
) async throws -> Value {
    try await withGateway(
        routes: routes,
        configure: { configuration in
            configuration.tls = ListenerTLSConfiguration(
                certificatePath: certificates.server.certificatePath,
                privateKeyPath: certificates.server.privateKeyPath
            )
            configure(&configuration)
        },
        group: group,
        body
    )
}
