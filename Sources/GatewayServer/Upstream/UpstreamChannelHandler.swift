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
/// client reaches the upstream's TCP window). It also writes the requests, in place of NIO's `HTTPRequestEncoder`
/// (with its framing rules, `frame`): one handler and one pipeline context fewer per upstream connection, the body's
/// chunk framing shared with the response encoder (`HTTP1BodyWriter`), and every header field checked as it is
/// written (a request that cannot be sent fails its write and closes the connection, never reaches the upstream).
final class UpstreamChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = IOData

    /// The exchange currently using this connection; `nil` while idle in the pool.
    ///
    /// Strong, not weak: it is read two or three times per upstream read, and a weak load is a side-table look-up
    /// (1.2% of the gateway's CPU in a burst of 5,000 streams). Whoever sets it lets go of it when done with the
    /// connection (`closeUpstream`, the pool's `release`), and the channel's end clears it: no cycle outlives the
    /// exchange.
    var delegate: (any UpstreamConnectionDelegate)?
    private var decoder = UpstreamResponseDecoder()
    private var body: HTTP1BodyWriter?
    private var pendingRead = false
    private var firstError: (any Error)?
    private(set) var context: ChannelHandlerContext?
    /// Called when an idle pooled connection closes or misbehaves, so the pool forgets it.
    var onIdleClose: (() -> Void)?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        body = HTTP1BodyWriter()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            decoder.requestSent(method: head.method)
            body!.isChunked = Self.frame(&head)
            var buffer = context.channel.allocator.buffer(capacity: 256)
            guard Self.serialize(head, into: &buffer) else {
                refuse(context: context, promise: promise)
                return
            }
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        case .body(let part):
            body!.write(part, context: context, promise: promise)
        case .end(let trailers):
            if !body!.writeEnd(trailers, context: context, promise: promise) {
                refuse(context: context, promise: promise)
            }
        }
    }

    /// A request head or trailer that cannot be sent: the write fails and the connection closes with that error
    /// (the exchange answers 502), before a byte of the request is written.
    private func refuse(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        body!.isChunked = false
        promise?.fail(UpstreamRequestError.invalidRequest)
        errorCaught(context: context, error: UpstreamRequestError.invalidRequest)
    }

    /// NIO's `HTTPRequestEncoder` framing: no body for TRACE, POST, PUT and PATCH expect one, other methods are
    /// chunked only when they say so. Returns whether the body is chunked.
    static func frame(_ head: inout HTTPRequestHead) -> Bool {
        let body: HTTP1Fields.Body
        switch head.method {
        case .TRACE: body = .none
        case .POST, .PUT, .PATCH: body = .expected
        default: body = .unlikely
        }
        return HTTP1Fields.frame(&head.headers, version: head.version, body: body)
    }

    /// The request line and header lines; `false` when a field cannot be sent or the target has a byte a request
    /// line cannot carry (a control character or a space).
    static func serialize(_ head: HTTPRequestHead, into buffer: inout ByteBuffer) -> Bool {
        guard !head.uri.isEmpty, !HTTPFieldSyntax.containsByte(in: head.uri, where: { $0 <= 0x20 || $0 == 0x7F }) else {
            return false
        }
        buffer.writeString(head.method.rawValue)
        buffer.writeStaticString(" ")
        buffer.writeString(head.uri)
        if head.version == .http1_1 {
            buffer.writeStaticString(" HTTP/1.1\r\n")
        } else {
            buffer.writeString(" HTTP/\(head.version.major).\(head.version.minor)\r\n")
        }
        return HTTP1Fields.serialize(head.headers, into: &buffer)
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

/// A request the gateway would have written upstream with a field or target that cannot be sent.
struct UpstreamRequestError: Error, Equatable {
    private let reason: String
    static let invalidRequest = UpstreamRequestError(reason: "an upstream request that cannot be sent")
}
