import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The cheapest proxy SwiftNIO channels can be: accept, dial the upstream on the same event loop, glue the two
/// channels' bytes together with write-side backpressure. No HTTP, no routing, no auth, no logging, no metrics.
///
/// It is the floor under any proxy whose data plane is NIO channels (as sse-gateway's is): what NIO's accept,
/// connect, read, write and close cost by themselves. Benchmarked beside the gateway and nginx it splits a CPU gap
/// into the part the gateway's own code can still win back (gateway minus floor) and the part it cannot without
/// leaving NIO's channel model (floor minus nginx).
func runFloorProxy(listen: ListenAddress, upstream: ListenAddress, loops: Int, duration: Double) throws {
    let limit = raiseOpenFileLimit()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
    defer { try? group.syncShutdownGracefully() }
    let upstreamAddress = try SocketAddress(ipAddress: upstream.host, port: upstream.port)
    let server = try ServerBootstrap(group: group)
        .serverChannelOption(.backlog, value: 4096)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        .childChannelOption(.autoRead, value: false)
        .childChannelInitializer { client in
            client.eventLoop.makeCompletedFuture {
                try client.pipeline.syncOperations.addHandler(FloorDialHandler(upstream: upstreamAddress))
            }
        }
        .bind(host: listen.host, port: listen.port)
        .wait()
    print("sse-load floor-proxy listening on \(listen.host):\(listen.port), upstream \(upstream.host):\(upstream.port) "
          + "(threads \(loops), nofile \(limit), stops after \(duration) s)")
    fflush(nil)
    let stop = group.next().scheduleTask(in: .nanoseconds(Int64(duration * 1e9))) { server.close(promise: nil) }
    try server.closeFuture.wait()
    stop.cancel()
}

/// On a new client connection: connect to the upstream on the client's loop, then glue the two and start reading.
private final class FloorDialHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let upstream: SocketAddress

    init(upstream: SocketAddress) { self.upstream = upstream }

    func channelActive(context: ChannelHandlerContext) {
        let client = context.channel
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(to: upstream)
            .assumeIsolated()
            .whenComplete { result in
                let context = loopBoundContext.value
                switch result {
                case .success(let server):
                    let (clientGlue, serverGlue) = GlueHandler.matchedPair()
                    do {
                        try client.pipeline.syncOperations.addHandler(clientGlue)
                        try server.pipeline.syncOperations.addHandler(serverGlue)
                        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                        client.setOption(.autoRead, value: true).whenComplete { _ in }
                        client.read()
                    } catch {
                        server.close(promise: nil)
                        client.close(promise: nil)
                    }
                case .failure:
                    client.close(promise: nil)
                }
            }
    }
}

/// One half of a glued pair: what one channel reads, the partner writes; a partner that cannot take more stops
/// this side's reads until it drains (the same backpressure a proxy needs). swift-nio-examples' connect-proxy
/// GlueHandler, trimmed to what a byte relay uses.
private final class GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func matchedPair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler()
        let second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.partnerWrite(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerClose()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }

    private var partnerWritable: Bool { context?.channel.isWritable ?? false }

    private func partnerWrite(_ data: NIOAny) { context?.write(data, promise: nil) }

    private func partnerFlush() { context?.flush() }

    private func partnerClose() { context?.close(promise: nil) }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }
}
