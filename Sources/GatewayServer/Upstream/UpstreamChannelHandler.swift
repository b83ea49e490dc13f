import NIOCore
import NIOHTTP1

/// What an upstream connection reports to the client-side exchange it is serving.
///
/// Both channels live on the same event loop, so these calls are plain synchronous method calls.
protocol UpstreamConnectionDelegate: AnyObject {
    func upstreamReceived(_ part: HTTPClientResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(isWritable: Bool)
    func upstreamClosed(error: (any Error)?)
    /// Whether the upstream may be read now (the client can take more bytes).
    var mayReadUpstream: Bool { get }
}

/// The tail handler of an upstream channel: hands response parts to the exchange using the connection, and holds
/// back reads while the client is not writable (backpressure from a slow client reaches the upstream's TCP window).
final class UpstreamChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// The exchange currently using this connection; `nil` while idle in the pool.
    weak var delegate: (any UpstreamConnectionDelegate)?
    private var pendingRead = false
    private var firstError: (any Error)?
    private(set) var context: ChannelHandlerContext?
    /// Called when an idle pooled connection closes or misbehaves, so the pool forgets it.
    var onIdleClose: (() -> Void)?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let delegate else {
            // Bytes on an idle connection: the upstream is confused; never reuse it.
            context.close(promise: nil)
            return
        }
        delegate.upstreamReceived(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if firstError == nil { firstError = error }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let delegate {
            self.delegate = nil
            delegate.upstreamClosed(error: firstError)
        } else {
            onIdleClose?()
        }
        onIdleClose = nil
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if let delegate, !delegate.mayReadUpstream {
            pendingRead = true
            return
        }
        pendingRead = false
        context.read()
    }

    /// The client drained its buffer: issue the read we held back, if any.
    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}
