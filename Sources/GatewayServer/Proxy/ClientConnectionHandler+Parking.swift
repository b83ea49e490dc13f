import NIOCore
import NIOHTTP1

/// Parking the HTTP/1 request decoder while an event stream is held (`ParkedRequestDecoder`), and bringing a fresh one
/// back when the connection's turn ends with keep-alive.
extension ClientConnectionHandler {
    typealias RequestDecoder = ByteToMessageHandler<HTTPRequestDecoder>

    /// A parked decoder: its stand-in, and the decoder's removal while it is in progress (NIO completes it on a later
    /// tick, after decoding what it had buffered: those parts still reach this handler, as pipelined requests). The
    /// future is let go once complete, not kept for the stream's hours (72 B per held stream).
    struct ParkedDecoder {
        let standIn: ParkedRequestDecoder
        var removalInProgress: EventLoopFuture<Void>?
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
        parkedDecoder = ParkedDecoder(standIn: standIn, removalInProgress: removed.futureResult)
        sync.removeHandler(decoder, promise: removed)
        removed.futureResult.assumeIsolated().whenComplete { [self] _ in
            if parkedDecoder?.standIn === standIn { parkedDecoder?.removalInProgress = nil }
        }
    }

    /// The turn ended and the connection stays: once the old decoder is gone, a fresh one goes in behind the stand-in,
    /// which hands it what it held (on the next tick: the turn may end inside another channel's read) and leaves.
    func unparkRequestDecoder(context: ChannelHandlerContext) {
        guard let parked = parkedDecoder, let makeRequestDecoder else { return }
        parkedDecoder = nil
        let bringBack = {
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
        if let removal = parked.removalInProgress {
            removal.assumeIsolated().whenComplete { _ in bringBack() }
        } else {
            bringBack()
        }
    }
}
