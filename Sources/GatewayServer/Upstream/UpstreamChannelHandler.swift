import GatewayCore
import NIOCore
import NIOHTTP1

/// What an upstream connection reports to the client-side exchange it is serving.
///
/// Both channels live on the same event loop, so these calls are plain synchronous method calls.
protocol UpstreamConnectionDelegate: AnyObject {
    /// The final response head. Returns `true` to receive a chunked body as wire bytes (`upstreamWire`), framing and
    /// all, instead of decoded data.
    func upstreamHead(_ head: HTTPResponseHead, framing: UpstreamResponseDecoder.BodyFraming) -> Bool
    /// Body data, framing removed.
    func upstreamBody(_ data: ByteBuffer)
    /// A chunked body's bytes exactly as received. Throwing (malformed framing) closes the upstream with that error.
    func upstreamWire(_ bytes: ByteBuffer) throws
    /// The response is complete.
    func upstreamEnd()
    func upstreamReadComplete()
    func upstreamWritabilityChanged(isWritable: Bool)
    func upstreamClosed(error: (any Error)?)
    /// NIO asks to read from the upstream: `true` to read now; `false` holds the read until `resumeReading`.
    func upstreamReadRequested() -> Bool
}

/// The tail handler of an upstream channel: decodes responses (`UpstreamResponseDecoder`) and hands them to the
/// exchange using the connection, and holds back reads while the client is not writable (backpressure from a slow
/// client reaches the upstream's TCP window). Requests go out through NIO's `HTTPRequestEncoder` below it.
final class UpstreamChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// The exchange currently using this connection; `nil` while idle in the pool.
    ///
    /// Strong, not weak: it is read two or three times per upstream read, and a weak load is a side-table look-up
    /// (1.2% of the gateway's CPU in a burst of 5,000 streams). Whoever sets it lets go of it when done with the
    /// connection (`closeUpstream`, the pool's `release`), and the channel's end clears it: no cycle outlives the
    /// exchange.
    var delegate: (any UpstreamConnectionDelegate)?
    private var decoder = UpstreamResponseDecoder()
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

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head(let head) = unwrapOutboundIn(data) {
            decoder.requestSent(method: head.method)
        }
        context.write(data, promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        do {
            while true {
                let event = try decoder.next(&buffer)
                if case .needMore = event { return }
                guard let delegate else {
                    // A response nobody waits for any more (the exchange gave the connection up): never reuse it.
                    context.close(promise: nil)
                    return
                }
                switch event {
                case .head(let head, let framing):
                    if delegate.upstreamHead(head, framing: framing) { decoder.passChunkedWire() }
                case .body(let data):
                    delegate.upstreamBody(data)
                case .wire(let bytes):
                    try delegate.upstreamWire(bytes)
                case .end:
                    delegate.upstreamEnd()
                case .needMore:
                    return
                }
            }
        } catch {
            // Malformed response, or bytes with no request outstanding (then on an idle pooled connection).
            errorCaught(context: context, error: error)
        }
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
        let ending = decoder.endOfInput()
        if delegate != nil, ending == .ended, firstError == nil {
            // A body delimited by the close: it is complete.
            delegate?.upstreamEnd()
        }
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
        if let delegate, !delegate.upstreamReadRequested() {
            pendingRead = true
            return
        }
        pendingRead = false
        context.read()
    }

    /// The client drained its buffer (or the connection went back to the pool): issue the read held back, if any.
    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}
