import NIOCore
import NIOHTTP1
import NIOPosix
import GatewayCore

/// The admin listener: `GET /healthz` (process up) and `GET /readyz` (200 once listening, 503 while draining).
enum AdminListener {
    enum Readiness: Sendable {
        case starting, ready, draining
    }

    static func bind(
        address: ListenAddress,
        group: any EventLoopGroup,
        status: @escaping @Sendable () -> Readiness
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(status: status))
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

    private let status: @Sendable () -> AdminListener.Readiness
    private var head: HTTPRequestHead?

    init(status: @escaping @Sendable () -> AdminListener.Readiness) {
        self.status = status
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
            let (code, body) = answer(head)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/plain; charset=utf-8")
            headers.add(name: "content-length", value: String(body.utf8.count))
            if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: code, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }

    private func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch (head.method, path) {
        case (.GET, "/healthz"), (.HEAD, "/healthz"):
            return (.ok, "ok\n")
        case (.GET, "/readyz"), (.HEAD, "/readyz"):
            switch status() {
            case .ready: return (.ok, "ready\n")
            case .starting: return (.serviceUnavailable, "starting\n")
            case .draining: return (.serviceUnavailable, "draining\n")
            }
        default:
            return (.notFound, "not found\n")
        }
    }
}
