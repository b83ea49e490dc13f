import GatewayCore
import NIOCore
import NIOHTTP1

/// A client connection as a subscriber of a shared stream (`routes[].share`): joining, the shared head and events,
/// the stream's end, and the fall back to a private upstream request when the stream cannot replay what the client
/// missed.
extension ClientConnectionHandler: SharedStreamSubscriber {
    func joinShared(context: ChannelHandlerContext) {
        guard let exchange, let request = exchange.shared else { preconditionFailure("join without a shared request") }
        let loop = context.eventLoop
        let streams = environment.sharedStreams
        let (dialer, environment) = (self.dialer, self.environment)
        exchange.subscription = streams.join(request, subscriber: self, on: loop) {
            SharedStream(
                request: request, registry: streams, eventLoop: loop, dialer: dialer, endpoint: exchange.endpoint,
                route: exchange.route, metrics: environment.metrics.shared(exchange.route.name),
                logger: environment.logger
            )
        }
    }

    func sharedHead(_ head: HTTPResponseHead, prelude: [ByteBuffer]) {
        guard let exchange, let context else { return }
        guard case .writeSharedHead(let closeConnection) = state.sharedHeadArrived() else { return }
        // Joined for good: neither the shared request nor a private one is sent from here on.
        exchange.shared = nil
        exchange.upstreamHead = nil
        _ = writeResponseHead(head, closeConnection: closeConnection, exchange: exchange, context: context)
        run(state.sharedHeadWritten(now: now))
        parkRequestDecoderIfStreaming(context: context)
        // The upstream's last `retry:` and the replayed events, counted as events, flushed once with the head.
        let now = self.now
        for bytes in prelude {
            let action = state.sharedEventsArrived(bytes: bytes.readableBytes, events: 1, now: now)
            guard case .writeShared = action else {
                run(action)
                break
            }
            context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
        }
        flushClient(context: context)
    }

    func sharedEvents(_ bytes: ByteBuffer, events: Int, now: NIODeadline) {
        let action = state.sharedEventsArrived(bytes: bytes.readableBytes, events: events, now: now)
        if case .writeShared = action, let context {
            writeShared(bytes, context: context)
        } else {
            run(action)
        }
    }

    func writeShared(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
        flushClient(context: context)
    }

    private func flushClient(context: ChannelHandlerContext) {
        if let responseEncoder {
            responseEncoder.flush()
        } else {
            context.flush()
        }
    }

    func sharedEnded(failure: UpstreamFailure?) {
        run(state.sharedStreamEnded(failure: failure, now: now))
    }

    func joinRefused(streamEnded: Bool) {
        guard let exchange, exchange.subscription != nil, let context else { return }
        exchange.subscription = nil
        if streamEnded, !exchange.joinRetried {
            exchange.joinRetried = true
            joinShared(context: context)
        } else {
            run(state.joinMissed(now: now))
        }
    }
}
