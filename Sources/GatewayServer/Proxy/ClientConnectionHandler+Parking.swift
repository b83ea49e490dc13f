import NIOCore
import NIOHTTP1

/// Parking the HTTP/1 request decoder while an event stream is held (`ParkedRequestDecoder`), and bringing a fresh one
/// back when the connection's turn ends with keep-alive.
extension ClientConnectionHandler {
    typealias RequestDecoder = ByteToMessageHandler<HTTPRequestDecoder>

    /// A parked decoder: its stand-in, and the decoder's removal (NIO completes it on a later tick, after decoding
    /// what it had buffered: those parts still reach this handler, as pipelined requests).
    struct ParkedDecoder {
        let standIn: ParkedRequestDecoder
        let decoderRemoved: EventLoopFuture<Void>
    }

    /// After a stream's head went out: the stand-in goes in front of the decoder, and the decoder leaves.
    func parkRequestDecoderIfStreaming(context: ChannelHandlerContext) {
        guard makeRequestDecoder != nil, parkedDecoder == nil, state.isStreamingWithoutRequest else { return }
        let sync = context.pipeline.syncOperations
        guard let decoder = try? sync.handler(type: RequestDecoder.self) else { return }
        let standIn = ParkedRequestDecoder()
        do {
            try sync.addHandler(standIn, position: .before(decoder))
        } catch {
            return  // the pipeline is being torn down: nothing to park for
        }
        let removed = context.eventLoop.makePromise(of: Void.self)
        sync.removeHandler(decoder, promise: removed)
        parkedDecoder = ParkedDecoder(standIn: standIn, decoderRemoved: removed.futureResult)
    }

    /// The turn ended and the connection stays: once the old decoder is gone, a fresh one goes in behind the stand-in,
    /// which hands it what it held (on the next tick: the turn may end inside another channel's read) and leaves.
    func unparkRequestDecoder(context: ChannelHandlerContext) {
        guard let parked = parkedDecoder, let makeRequestDecoder else { return }
        parkedDecoder = nil
        parked.decoderRemoved.assumeIsolated().whenComplete { _ in
            let sync = context.pipeline.syncOperations
            do {
                try sync.addHandler(makeRequestDecoder(), position: .after(parked.standIn))
            } catch {
                return  // the connection is closing
            }
            if parked.standIn.held == nil {
                sync.removeHandler(parked.standIn, promise: nil)
            } else {
                context.eventLoop.assumeIsolated().execute { parked.standIn.release() }
            }
        }
    }
}
