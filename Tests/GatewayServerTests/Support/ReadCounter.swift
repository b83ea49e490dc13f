import NIOCore

/// Counts the reads that reach it on their way to the head of a pipeline (what NIO would turn into socket reads), so
/// a test can see a read held back or issued.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    var reads = 0

    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}
