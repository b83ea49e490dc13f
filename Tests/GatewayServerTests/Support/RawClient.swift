import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import XCTest

/// A byte-level HTTP client: sends exactly what the test writes and records exactly what arrives.
///
/// Deliberately not an HTTP library, so tests can send malformed requests, stop reading (a slow client), or
/// inspect the raw chunked framing the gateway produced.
final class RawClient: Sendable {
    let channel: any Channel
    private let state: NIOLockedValueBox<State>

    struct State {
        var received: [UInt8] = []
        var closed = false
    }

    /// With `tls`, the bytes are sent and recorded inside a TLS session (`serverName` for SNI, `nil` for IPs).
    static func connect(
        port: Int,
        group: any EventLoopGroup,
        autoRead: Bool = true,
        receiveBuffer: Int? = nil,
        tls: NIOSSLContext? = nil,
        serverName: String? = nil
    ) async throws -> RawClient {
        let state = NIOLockedValueBox(State())
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(.autoRead, value: autoRead)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    channel.closeFuture.whenComplete { _ in state.withLockedValue { $0.closed = true } }
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: serverName)
                        )
                    }
                    try channel.pipeline.syncOperations.addHandler(Collector(state: state))
                }
            }
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        let channel = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
        return RawClient(channel: channel, state: state)
    }

    private init(channel: any Channel, state: NIOLockedValueBox<State>) {
        self.channel = channel
        self.state = state
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Sends `GET path` with the given extra header lines.
    func get(_ path: String, headers: [String] = [], accept: String = "text/event-stream") async throws {
        var request = "GET \(path) HTTP/1.1\r\nHost: gateway.test\r\nAccept: \(accept)\r\n"
        for header in headers { request += header + "\r\n" }
        try await send(request + "\r\n")
    }

    var text: String { state.withLockedValue { String(decoding: $0.received, as: UTF8.self) } }
    var byteCount: Int { state.withLockedValue { $0.received.count } }
    var isClosed: Bool { state.withLockedValue { $0.closed } }

    /// The response body with chunked framing removed (assumes one chunked response).
    var dechunkedBody: String { Self.dechunk(text) }

    func read() { channel.read() }

    func setAutoRead(_ on: Bool) async throws {
        try await channel.setOption(.autoRead, value: on).get()
    }

    func close() async {
        try? await channel.close()
    }

    /// Waits until `condition` holds for the received text, failing the test after `timeout`.
    @discardableResult
    func wait(
        for description: String,
        timeout: Duration = .seconds(10),
        file: StaticString = #filePath,
        line: UInt = #line,
        _ condition: (String) -> Bool
    ) async throws -> String {
        try await eventually(description, timeout: timeout, file: file, line: line, read: { text }, until: condition)
    }

    func waitForClose(timeout: Duration = .seconds(10), file: StaticString = #filePath, line: UInt = #line) async throws {
        try await eventually("the connection to close", timeout: timeout, file: file, line: line, read: { isClosed }) { $0 }
    }

    static func dechunk(_ raw: String) -> String {
        let bytes = Array(raw.utf8)
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let headerEnd = (0...max(0, bytes.count - 4)).first(where: { Array(bytes[$0..<min($0 + 4, bytes.count)]) == separator })
        else { return "" }
        var index = headerEnd + 4
        var body: [UInt8] = []
        while index < bytes.count {
            guard let lineEnd = (index..<bytes.count - 1).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }) else { break }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText, radix: 16) else { break }
            if size == 0 { break }
            let dataStart = lineEnd + 2
            let dataEnd = min(dataStart + size, bytes.count)
            body += bytes[dataStart..<dataEnd]
            index = dataEnd + 2
        }
        return String(decoding: body, as: UTF8.self)
    }
}

private final class Collector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let state: NIOLockedValueBox<RawClient.State>

    init(state: NIOLockedValueBox<RawClient.State>) {
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        state.withLockedValue { $0.received.append(contentsOf: buffer.readableBytesView) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
