import GatewayCore
import GatewayServer
import Logging
import NIOCore
import NIOPosix
import XCTest

/// Starts a real gateway on 127.0.0.1:0 for a test and stops it afterwards.
struct GatewayHarness {
    let gateway: Gateway
    let addresses: Gateway.BoundAddresses

    var port: Int { addresses.gateway.port! }
    var adminPort: Int? { addresses.admin?.port }

    static func start(
        routes: [RouteConfiguration],
        configure: (inout GatewayConfiguration) -> Void = { _ in },
        group: any EventLoopGroup,
        logger: Logger = Logger(label: "test-gateway", factory: { _ in SwiftLogNoOpLogHandler() })
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

    func stop() async {
        await gateway.shutdown()
    }

    func connect(group: any EventLoopGroup, autoRead: Bool = true, receiveBuffer: Int? = nil) async throws -> RawClient {
        try await RawClient.connect(port: port, group: group, autoRead: autoRead, receiveBuffer: receiveBuffer)
    }
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
