import GatewayCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// The body half of an HTTP/1 encoder, shared by the response encoder (`HTTP1ResponseEncoder`) and the upstream
/// handler's request writing (`UpstreamChannelHandler`): chunk framing from the event loop's `ChunkFrames` table when
/// the message is chunked (a size line is a slice, not an allocation), the bytes as they are otherwise.
struct HTTP1BodyWriter {
    /// Whether the message in progress has a chunked body (its head was written, its end not yet).
    var isChunked = false
    private let frames: ChunkFrames

    /// On the event loop that will write (the table is per thread).
    init() {
        frames = ChunkFrames.forCurrentThread()
    }

    /// A body part: framed as a chunk when chunked (an empty part is not framed: it would end the body).
    func write(_ body: IOData, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if isChunked, body.readableBytes > 0 {
            context.write(NIOAny(IOData.byteBuffer(sizeLine(body.readableBytes, context: context))), promise: nil)
            context.write(NIOAny(body), promise: nil)
            context.write(NIOAny(IOData.byteBuffer(frames.crlf)), promise: promise)
        } else {
            context.write(NIOAny(body), promise: promise)
        }
    }

    /// The end of the body: the last chunk and trailers when chunked. `false` (nothing written, the promise left to
    /// the caller) when a trailer cannot be sent (`HTTP1Fields.serialize`).
    mutating func writeEnd(_ trailers: HTTPHeaders?, context: ChannelHandlerContext,
                           promise: EventLoopPromise<Void>?) -> Bool {
        if isChunked {
            isChunked = false
            if let trailers, !trailers.isEmpty {
                var buffer = context.channel.allocator.buffer(capacity: 256)
                buffer.writeStaticString("0\r\n")
                guard HTTP1Fields.serialize(trailers, into: &buffer) else { return false }
                context.write(NIOAny(IOData.byteBuffer(buffer)), promise: promise)
            } else {
                context.write(NIOAny(IOData.byteBuffer(frames.lastChunk)), promise: promise)
            }
        } else if let promise {
            // Nothing to write, but the promise must complete after the writes before it.
            context.write(NIOAny(IOData.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
        }
        return true
    }

    private func sizeLine(_ size: Int, context: ChannelHandlerContext) -> ByteBuffer {
        if let line = frames.sizeLine(size) { return line }
        var buffer = context.channel.allocator.buffer(capacity: 18)
        buffer.writeString(String(size, radix: 16))
        buffer.writeStaticString("\r\n")
        return buffer
    }
}

/// Header fields on the wire, checked as they are written (as NIO's header validators check them).
enum HTTP1Fields {
    /// Whether a message may carry a body, as NIO's encoders ask it.
    enum Body {
        /// It has none: framing headers go.
        case none
        /// It has one (a response that may have a body; POST, PUT, PATCH): chunked on HTTP/1.1 unless it has a length.
        case expected
        /// Other requests: chunked only when they say so.
        case unlikely
    }

    /// NIO's framing (`automaticallySetFramingHeaders`): `Content-Length` wins over `Transfer-Encoding`, a message
    /// with a body and no length is chunked on HTTP/1.1 (close-delimited or length-less before). Returns whether the
    /// body is chunked.
    static func frame(_ headers: inout HTTPHeaders, version: HTTPVersion, body: Body) -> Bool {
        if body == .none {
            headers.remove(name: "content-length")
            headers.remove(name: "transfer-encoding")
            return false
        }
        if headers.contains(name: "content-length") {
            headers.remove(name: "transfer-encoding")
            return false
        }
        guard version.major == 1, version.minor >= 1 else { return false }
        if body == .unlikely { return headers.first(name: "transfer-encoding") == "chunked" }
        headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        return true
    }

    /// Header lines and the blank line that ends them; `false` at the first field that cannot be sent.
    static func serialize(_ headers: HTTPHeaders, into buffer: inout ByteBuffer) -> Bool {
        for (name, value) in headers {
            guard isValidFieldName(name), isValidFieldValue(value) else { return false }
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
        return true
    }

    /// RFC 9110 `token`: one or more `tchar`.
    static func isValidFieldName(_ name: String) -> Bool {
        !name.isEmpty && !HTTPFieldSyntax.containsByte(in: name) { !HTTPFieldSyntax.isTokenCharacter($0) }
    }

    /// RFC 9110 `field-value` as NIO's validator reads it: no control character but horizontal tab (so no CR, LF
    /// or NUL).
    static func isValidFieldValue(_ value: String) -> Bool {
        !HTTPFieldSyntax.containsByte(in: value, where: HTTPFieldSyntax.isControl)
    }
}

/// Chunk framing bytes, made once per thread: `1\r\n` ... `fff\r\n`, `\r\n` and `0\r\n\r\n` in one buffer.
///
/// Each event loop has its own, so the slices' reference counting never bounces a cache line between threads.
final class ChunkFrames: Sendable {
    /// Chunks up to this size get a size line from the table (larger ones are rare and allocate one).
    static let largestTabled = 0xFFF
    private static let perThread = ThreadSpecificVariable<ChunkFrames>()

    private let table: ByteBuffer
    /// Where the size line for `n` starts (index `n`), and where it ends (index `n + 1`).
    private let offsets: [Int]
    let crlf: ByteBuffer
    let lastChunk: ByteBuffer

    static func forCurrentThread() -> ChunkFrames {
        if let frames = perThread.currentValue { return frames }
        let frames = ChunkFrames()
        perThread.currentValue = frames
        return frames
    }

    private init() {
        var table = ByteBufferAllocator().buffer(capacity: 20_000)
        var offsets = [0, 0]
        for size in 1...Self.largestTabled {
            table.writeString(String(size, radix: 16))
            table.writeStaticString("\r\n")
            offsets.append(table.writerIndex)
        }
        let crlfStart = table.writerIndex
        table.writeStaticString("\r\n0\r\n\r\n")
        self.crlf = table.getSlice(at: crlfStart, length: 2)!
        self.lastChunk = table.getSlice(at: crlfStart + 2, length: 5)!
        self.offsets = offsets
        self.table = table
    }

    func sizeLine(_ size: Int) -> ByteBuffer? {
        guard size >= 1, size <= Self.largestTabled else { return nil }
        return table.getSlice(at: offsets[size], length: offsets[size + 1] - offsets[size])
    }
}
