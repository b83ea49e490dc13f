import NIOCore
import NIOHTTP1

/// Stands in for a connection's HTTP request decoder while the connection holds a long-lived event stream: the decoder
/// (llhttp's state, its header arrays and buffers, ~1.4 KB) is out of the pipeline for the hours a stream may last,
/// and comes back, fresh, when the stream ends (`ClientConnectionHandler+Parking`).
///
/// It sits where bytes enter the decoder. A client sends nothing during a stream, as a rule; bytes that do come (a
/// pipelined request) are held, and reading stops until the stream ends, as with a decoded request that waits. Then
/// they go on to the new decoder, behind it, and the stand-in leaves.
final class ParkedRequestDecoder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    /// Bytes that arrived while parked (at most one read: no read goes out once any are held).
    private(set) var held: ByteBuffer?
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if held == nil {
            held = bytes
        } else {
            held!.writeBuffer(&bytes)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Nothing went on: nothing to complete.
    }

    func read(context: ChannelHandlerContext) {
        if held == nil { context.read() }
    }

    /// Hands the held bytes to the handler after it (the new decoder), leaves the pipeline, and lets reading resume.
    func release() {
        guard let context else { return }
        if let held {
            self.held = nil
            context.fireChannelRead(wrapInboundOut(held))
            context.fireChannelReadComplete()
        }
        let channel = context.channel
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        channel.read()
    }
}
