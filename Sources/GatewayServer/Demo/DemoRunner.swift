import GatewayCore
import Logging
import NIOCore
import NIOPosix

/// `sse-gateway demo`: the sample upstream(s) on the loopback addresses the configuration's routes point at, then
/// the gateway, and the commands a newcomer can paste.
public struct DemoRunner: Sendable {
    public let gateway: Gateway
    public let instructions: String
    private let upstreams: [any Channel]

    public static func start(configuration: GatewayConfiguration, logger: Logger) async throws -> DemoRunner {
        var addresses: [ListenAddress] = []
        for route in configuration.routes where route.upstream.scheme == .http {
            let address = ListenAddress(host: route.upstream.host, port: route.upstream.port)
            if !addresses.contains(address) { addresses.append(address) }
        }
        var upstreams: [any Channel] = []
        for address in addresses {
            upstreams.append(
                try await DemoUpstream.start(
                    host: address.host,
                    port: address.port,
                    group: MultiThreadedEventLoopGroup.singleton
                )
            )
        }
        let gateway = try Gateway(configuration: configuration, logger: logger)
        let bound = try await gateway.start()
        let base = "http://\(ListenAddress(host: configuration.listen.host, port: bound.gateway.port ?? 0))"
        let instructions = """

            sse-gateway demo is running. Sample upstream on \(addresses.map(\.description).joined(separator: ", ")).

              Clock stream (one event a second):
                curl -N '\(base)/events/clock'

              A chat answer streamed token by token (POST answered with SSE):
                curl -N -X POST -H 'content-type: application/json' -d '{"prompt":"What is SSE?"}' \\
                  '\(base)/v1/chat/completions'

              In a browser (EventSource):
                \(base)/

            Health: http://\(configuration.admin.listen?.description ?? "(admin off)")/healthz   Stop: Ctrl-C

            """
        return DemoRunner(gateway: gateway, instructions: instructions, upstreams: upstreams)
    }

    public func stopUpstreams() async {
        for channel in upstreams { try? await channel.close() }
    }
}
