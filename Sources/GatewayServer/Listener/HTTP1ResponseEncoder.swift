import GatewayCore
import NIOCore
import NIOHTTP1

/// Serialises HTTP/1 responses, in place of NIO's `HTTPResponseEncoder`, so that relaying an event allocates nothing.
///
/// NIO's encoder allocates a buffer for every chunk's size line; with SSE that is an allocation per event, and the
/// only one (`perf probe` on `malloc` in `Benchmarks/` scenario c: 2 mallocs per event, all from it). Here size lines,
/// the chunk CRLF and the last chunk are slices of one immutable table per event-loop thread: a slice is a retain.
/// Framing follows NIO's encoder with `automaticallySetFramingHeaders`: no body for 1xx/204/304 and CONNECT, headers
/// but no body for HEAD, `Content-Length` kept, otherwise chunked on HTTP/1.1 and close-delimited on HTTP/1.0.
///
/// It also does `NIOHTTPResponseHeadersValidator`'s job, while it writes the head (one handler fewer per connection):
/// a field name that is not a token, a value or reason phrase with a control character (CR and LF would split the
/// response) fails the write with `HTTP1ResponseEncoderError.invalidHead`, fires it down the pipeline (the connection
/// handler closes the connection on it), and every later part of that response is dropped.
final class HTTP1ResponseEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = IOData

    /// The methods of requests whose final responses are still to come, oldest first: the first one inline, the
    /// pipelined rest in an array (a queue's storage would be allocated for every connection, for one method).
    private var nextRequestMethod: HTTPMethod?
    private var laterRequestMethods: [HTTPMethod] = []
    private var body: HTTP1BodyWriter?
    private var suppressBody = false
    /// A head was refused: nothing more of this connection's responses is written.
    private var dropping = false
    private var context: ChannelHandlerContext?

    /// The method of the request the next final response answers (the connection handler calls it per request head).
    func recordRequestMethod(_ method: HTTPMethod) {
        if nextRequestMethod == nil {
            nextRequestMethod = method
        } else {
            laterRequestMethods.append(method)
        }
    }

    private func popRequestMethod() -> HTTPMethod? {
        guard let method = nextRequestMethod else { return nil }
        nextRequestMethod = laterRequestMethods.isEmpty ? nil : laterRequestMethods.removeFirst()
        return method
    }

    /// Whether the response in progress has a chunked body (its head was written, its end not yet).
    var isWritingChunkedBody: Bool { body?.isChunked == true }

    /// Writes bytes that are already chunk framing and data (an upstream's chunked body passed through) straight
    /// below this handler: the handlers above see nothing of them, and nothing is framed twice. Only while
    /// `isWritingChunkedBody`, and only whole chunks, or parts of one that later writes complete.
    func writeChunkedWire(_ bytes: ByteBuffer) {
        if dropping { return }
        precondition(isWritingChunkedBody, "chunked wire bytes for a response that is not chunked")
        context!.write(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
    }

    /// Flushes from here (what was written above has reached the channel already: no handler above holds writes).
    func flush() {
        context?.flush()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        body = HTTP1BodyWriter()
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if dropping {
            promise?.fail(HTTP1ResponseEncoderError.invalidHead)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(var head):
            let code = head.status.code
            var respondingToConnect = false
            if !((100..<200).contains(code) && code != 101), let method = popRequestMethod() {
                suppressBody = method == .HEAD || method == .CONNECT
                respondingToConnect = method == .CONNECT
            }
            let chunked = Self.frame(&head, hasBody: !respondingToConnect && head.status.mayHaveResponseBody)
            var buffer = context.channel.allocator.buffer(capacity: 256)
            guard Self.serialize(head, into: &buffer) else {
                refuse(context: context, promise: promise)
                return
            }
            body!.isChunked = chunked && !suppressBody
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        case .body(let part):
            if suppressBody {
                promise?.fail(HTTP1ResponseEncoderError.bodyNotAllowed)
            } else {
                body!.write(part, context: context, promise: promise)
            }
        case .end(let trailers):
            suppressBody = false
            if !body!.writeEnd(trailers, context: context, promise: promise) {
                refuse(context: context, promise: promise)
            }
        }
    }

    private func refuse(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        dropping = true
        body?.isChunked = false
        promise?.fail(HTTP1ResponseEncoderError.invalidHead)
        context.fireErrorCaught(HTTP1ResponseEncoderError.invalidHead)
    }

    /// Fixes the framing headers; returns whether the body is chunked.
    static func frame(_ head: inout HTTPResponseHead, hasBody: Bool) -> Bool {
        HTTP1Fields.frame(&head.headers, version: head.version, body: hasBody ? .expected : .none)
    }

    /// Writes the status line and header lines; `false` (the buffer then holds part of them) when a name, a value or
    /// the reason phrase cannot be sent.
    static func serialize(_ head: HTTPResponseHead, into buffer: inout ByteBuffer) -> Bool {
        let reason = head.status.reasonPhrase
        guard HTTP1Fields.isValidFieldValue(reason) else { return false }
        buffer.writeString("HTTP/\(head.version.major).\(head.version.minor) \(head.status.code) ")
        buffer.writeString(reason)
        buffer.writeStaticString("\r\n")
        return HTTP1Fields.serialize(head.headers, into: &buffer)
    }
}

/// A body part written for a response that must not have one (HEAD, CONNECT).
struct HTTP1ResponseEncoderError: Error, Equatable {
    private let reason: String
    static let bodyNotAllowed = HTTP1ResponseEncoderError(reason: "a body part for a response that has none")
    /// A field name, field value or reason phrase that cannot be sent (see `HTTP1ResponseEncoder`).
    static let invalidHead = HTTP1ResponseEncoderError(reason: "a response head that cannot be sent")
}
