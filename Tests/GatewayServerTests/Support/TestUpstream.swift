import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A request as the test upstream saw it.
struct RecordedRequest: Sendable {
    var head: HTTPRequestHead
    var body: String
}

/// Lets a test script an upstream response part by part, from any thread.
struct UpstreamResponder: Sendable {
    let channel: any Channel

    func head(_ status: HTTPResponseStatus = .ok, _ headers: [(String, String)] = []) {
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders(headers))
        channel.writeAndFlush(HTTPServerResponsePart.head(head), promise: nil)
    }

    func sseHead(_ extra: [(String, String)] = []) {
        head(.ok, [("content-type", "text/event-stream")] + extra)
    }

    func body(_ text: String) {
        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: text))), promise: nil)
    }

    func end(trailers: HTTPHeaders? = nil) {
        channel.writeAndFlush(HTTPServerResponsePart.end(trailers), promise: nil)
    }

    /// Writes bytes exactly as given, below NIO's HTTP encoder: for heads and chunk framing the test controls
    /// (use it for the whole response, not mixed with `head`/`body`).
    func raw(_ text: String) {
        let channel = self.channel
        channel.eventLoop.execute {
            guard let encoder = try? channel.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
            else { return }
            encoder.writeAndFlush(NIOAny(ByteBuffer(string: text)), promise: nil)
        }
    }

    /// `raw`, one part after another with a pause between, so each part is its own read at the gateway.
    func rawParts(_ parts: [String], every interval: TimeAmount = .milliseconds(40)) {
        for (index, part) in parts.enumerated() {
            channel.eventLoop.scheduleTask(in: interval * Int64(index)) { self.raw(part) }
        }
    }

    /// Closes with FIN (an orderly close mid-response).
    func close() {
        channel.close(promise: nil)
    }

    /// Closes with RST (SO_LINGER 0).
    func reset() {
        let channel = self.channel
        channel.eventLoop.execute {
            guard let provider = channel as? any SocketOptionProvider else {
                channel.close(promise: nil)
                return
            }
            provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    var isWritable: Bool { channel.isWritable }
}

/// A real HTTP/1.1 server on 127.0.0.1:0 whose answers the test scripts.
final class TestUpstream: Sendable {
    typealias Handler = @Sendable (RecordedRequest, UpstreamResponder) -> Void

    let channel: any Channel
    private let state: NIOLockedValueBox<State>

    struct State {
        var requests: [RecordedRequest] = []
        var connectionsAccepted = 0
        var connectionsClosed = 0
        /// TLS handshakes that failed (e.g. no client certificate when one is required).
        var handshakeFailures = 0
        /// Accepted connections not closed yet, for `stop()` to close.
        var open: [ObjectIdentifier: any Channel] = [:]
    }

    var port: Int { channel.localAddress!.port! }
    let isTLS: Bool
    var url: String { "\(isTLS ? "https" : "http")://127.0.0.1:\(port)" }
    var requests: [RecordedRequest] { state.withLockedValue { $0.requests } }
    var connectionsAccepted: Int { state.withLockedValue { $0.connectionsAccepted } }
    var connectionsClosed: Int { state.withLockedValue { $0.connectionsClosed } }
    var handshakeFailures: Int { state.withLockedValue { $0.handshakeFailures } }

    /// With `tls`, an https upstream (build the context from `TestCertificates`).
    init(group: any EventLoopGroup, tls: NIOSSLContext? = nil, handler: @escaping Handler) async throws {
        let state = NIOLockedValueBox(State())
        self.state = state
        self.isTLS = tls != nil
        self.channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 4096)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let id = ObjectIdentifier(channel)
                    state.withLockedValue {
                        $0.connectionsAccepted += 1
                        $0.open[id] = channel
                    }
                    channel.closeFuture.whenComplete { _ in
                        state.withLockedValue {
                            $0.connectionsClosed += 1
                            $0.open[id] = nil
                        }
                    }
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                        try channel.pipeline.syncOperations.addHandler(HandshakeFailureCounter(state: state))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                    try channel.pipeline.syncOperations.addHandler(
                        TestUpstreamHandler(handler: handler, record: { request in
                            state.withLockedValue { $0.requests.append(request) }
                        })
                    )
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    /// Closes the listener, then every connection it accepted that is still open.
    func stop() async {
        try? await channel.close()
        for connection in state.withLockedValue({ Array($0.open.values) }) {
            try? await connection.close()
        }
    }
}

/// Starts a `TestUpstream`, runs `body` with it, and stops it (listener and connections) however `body` ends.
func withUpstream<Value>(
    group: any EventLoopGroup,
    tls: NIOSSLContext? = nil,
    handler: @escaping TestUpstream.Handler,
    _ body: (TestUpstream) async throws -> Value
) async throws -> Value {
    let upstream = try await TestUpstream(group: group, tls: tls, handler: handler)
    return try await withCleanup(upstream.stop) { try await body(upstream) }
}

private final class TestUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart

    let handler: TestUpstream.Handler
    let record: @Sendable (RecordedRequest) -> Void
    var head: HTTPRequestHead?
    var body = ""

    init(handler: @escaping TestUpstream.Handler, record: @escaping @Sendable (RecordedRequest) -> Void) {
        self.handler = handler
        self.record = record
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = ""
        case .body(let buffer):
            body += String(buffer: buffer)
        case .end:
            let request = RecordedRequest(head: head!, body: body)
            record(request)
            handler(request, UpstreamResponder(channel: context.channel))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Counts TLS handshake failures seen by an https test upstream.
private final class HandshakeFailureCounter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let state: NIOLockedValueBox<TestUpstream.State>

    init(state: NIOLockedValueBox<TestUpstream.State>) {
        self.state = state
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOSSLError || error is BoringSSLError {
            state.withLockedValue { $0.handshakeFailures += 1 }
        }
        context.fireErrorCaught(error)
    }
}
