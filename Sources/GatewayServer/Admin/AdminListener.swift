import NIOCore
import NIOHTTP1
import NIOPosix
import GatewayCore

/// The admin listener: `GET /healthz` (process up), `GET /readyz` (200 once listening, 503 while draining),
/// `GET /metrics` (Prometheus text) and `POST /reload` (re-read the configuration file).
enum AdminListener {
    enum Readiness: Sendable {
        case starting, ready, draining
    }

    /// What the admin endpoints read from the gateway.
    struct Endpoints: Sendable {
        var status: @Sendable () -> Readiness
        var metrics: @Sendable () -> String
        /// Re-reads the configuration; `nil` on success, else the errors. `nil` closure: reload is not available.
        var reload: (@Sendable () async -> String?)?
    }

    static func bind(
        address: ListenAddress,
        group: any EventLoopGroup,
        endpoints: Endpoints
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(endpoints: endpoints))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
    }
}

/// Answers the admin endpoints. Small and synchronous: nothing here touches the data plane.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let endpoints: AdminListener.Endpoints
    private var head: HTTPRequestHead?

    init(endpoints: AdminListener.Endpoints) {
        self.endpoints = endpoints
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            if head.method == .POST, head.uri == "/reload", let reload = endpoints.reload {
                context.eventLoop.makeFutureWithTask { await reload() }.assumeIsolated().whenSuccess { errors in
                    self.write(head, errors.map { (.badRequest, $0 + "\n") } ?? (.ok, "reloaded\n"), context: context)
                }
                return
            }
            write(head, answer(head), context: context)
        }
    }

    private func write(_ head: HTTPRequestHead, _ answer: (HTTPResponseStatus, String), context: ChannelHandlerContext) {
            let (code, body) = answer
            var headers = HTTPHeaders()
            let isMetrics = head.uri.hasPrefix("/metrics")
            headers.add(name: "content-type", value: isMetrics ? "text/plain; version=0.0.4" : "text/plain; charset=utf-8")
            headers.add(name: "content-length", value: String(body.utf8.count))
            if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: code, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
    }

    private func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch (head.method, path) {
        case (.GET, "/healthz"), (.HEAD, "/healthz"):
            return (.ok, "ok\n")
        case (.GET, "/readyz"), (.HEAD, "/readyz"):
            switch endpoints.status() {
            case .ready: return (.ok, "ready\n")
            case .starting: return (.serviceUnavailable, "starting\n")
            case .draining: return (.serviceUnavailable, "draining\n")
            }
        case (.GET, "/metrics"):
            return (.ok, endpoints.metrics())
        default:
            return (.notFound, "not found\n")
        }
    }
}
