import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import XCTest

/// One TLS connection speaking HTTP/2 (ALPN `h2`) to the gateway; each `get` opens a new stream on it.
final class HTTP2TestClient: Sendable {
    let channel: any Channel
    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    private let goAways: NIOLockedValueBox<Int>

    /// GOAWAY frames received from the server (a draining gateway sends them).
    var goAwaysReceived: Int { goAways.withLockedValue { $0 } }

    /// What one stream received, readable from any thread.
    final class Stream: Sendable {
        let channel: any Channel
        private let state: NIOLockedValueBox<State>

        struct State {
            var head: HTTPResponseHead?
            var body = ""
            var ended = false
            var closed = false
        }

        fileprivate init(channel: any Channel, state: NIOLockedValueBox<State>) {
            self.channel = channel
            self.state = state
        }

        var head: HTTPResponseHead? { state.withLockedValue { $0.head } }
        var body: String { state.withLockedValue { $0.body } }
        var ended: Bool { state.withLockedValue { $0.ended } }
        var closed: Bool { state.withLockedValue { $0.closed } }

        /// Waits until `condition` holds for the received body, failing the test after `timeout`.
        @discardableResult
        func wait(
            for description: String,
            timeout: Duration = .seconds(10),
            file: StaticString = #filePath,
            line: UInt = #line,
            _ condition: (String) -> Bool
        ) async throws -> String {
            try await eventually(description, timeout: timeout, file: file, line: line, read: { body }, until: condition)
        }

        func waitForEnd(timeout: Duration = .seconds(10), file: StaticString = #filePath, line: UInt = #line)
            async throws
        {
            try await eventually("the stream to end", timeout: timeout, file: file, line: line, read: { ended || closed }) {
                $0
            }
        }
    }

    static func connect(port: Int, group: any EventLoopGroup, tls: NIOSSLContext) async throws -> HTTP2TestClient {
        let goAways = NIOLockedValueBox(0)
        let multiplexer = NIOLockedValueBox<NIOHTTP2Handler.StreamMultiplexer?>(nil)
        // The whole pipeline is built before the connection exists: installed after `connect` returns, the HTTP/2
        // handler can miss the gateway's SETTINGS (decrypted as soon as the handshake ends, then dropped at the
        // pipeline's tail), and then no stream on the connection receives a byte.
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: nil))
                    let streams = try sync.configureHTTP2Pipeline(
                        mode: .client,
                        connectionConfiguration: .init(),
                        streamConfiguration: .init()
                    ) { channel in
                        channel.eventLoop.makeSucceededVoidFuture()
                    }
                    try sync.addHandler(GoAwayCounter(count: goAways))
                    multiplexer.withLockedValue { $0 = streams }
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        guard let streams = multiplexer.withLockedValue({ $0 }) else {
            preconditionFailure("connect succeeded without running the channel initializer")
        }
        return HTTP2TestClient(channel: channel, multiplexer: streams, goAways: goAways)
    }

    private init(channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer, goAways: NIOLockedValueBox<Int>) {
        self.channel = channel
        self.multiplexer = multiplexer
        self.goAways = goAways
    }

    /// Opens a stream and sends `GET path` on it; `autoRead: false` makes a client that does not consume the stream
    /// (no flow-control window updates: the gateway must hold back only this stream).
    func get(_ path: String, headers: [(String, String)] = [], autoRead: Bool = true) async throws -> Stream {
        let state = NIOLockedValueBox(Stream.State())
        let streamChannel: any Channel = try await multiplexer.createStreamChannel { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .https))
                try channel.pipeline.syncOperations.addHandler(StreamCollector(state: state))
                channel.closeFuture.whenComplete { _ in state.withLockedValue { $0.closed = true } }
            }
        }.get()
        if !autoRead {
            try await streamChannel.setOption(.autoRead, value: false).get()
        }
        var head = HTTPRequestHead(version: .http2, method: .GET, uri: path)
        head.headers.add(name: "host", value: "gateway.test")
        head.headers.add(name: "accept", value: "text/event-stream")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        streamChannel.write(HTTPClientRequestPart.head(head), promise: nil)
        try await streamChannel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        return Stream(channel: streamChannel, state: state)
    }

    func close() async {
        try? await channel.close()
    }
}

private final class StreamCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    let state: NIOLockedValueBox<HTTP2TestClient.Stream.State>

    init(state: NIOLockedValueBox<HTTP2TestClient.Stream.State>) {
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            state.withLockedValue { $0.head = head }
        case .body(let buffer):
            state.withLockedValue { $0.body += String(buffer: buffer) }
        case .end:
            state.withLockedValue { $0.ended = true }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Counts GOAWAY frames on the connection (the inline multiplexer passes connection-level frames on).
private final class GoAwayCounter: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    let count: NIOLockedValueBox<Int>

    init(count: NIOLockedValueBox<Int>) {
        self.count = count
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = unwrapInboundIn(data).payload {
            count.withLockedValue { $0 += 1 }
        }
        context.fireChannelRead(data)
    }
}
