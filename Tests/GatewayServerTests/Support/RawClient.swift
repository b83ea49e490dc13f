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
        var progress = ReceiveProgress()
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

    /// Everything received, decoded outside the lock (the collector appends under it while this runs).
    var text: String {
        let received = state.withLockedValue { $0.received }
        return String(decoding: received, as: UTF8.self)
    }
    var progress: ReceiveProgress { state.withLockedValue { $0.progress } }
    var byteCount: Int { progress.bytes }
    var isClosed: Bool { progress.closed }

    /// The progress and the last 300 bytes received: what a failed wait says was seen.
    var report: String {
        let (progress, tail) = state.withLockedValue { ($0.progress, Array($0.received.suffix(300))) }
        return "\(progress); last \(tail.count) bytes: \(String(reflecting: String(decoding: tail, as: UTF8.self)))"
    }

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
    ///
    /// Decodes everything received on every poll: for large bodies, wait on `progress` instead.
    @discardableResult
    func wait(
        for description: String,
        timeout: Duration = .seconds(10),
        file: StaticString = #filePath,
        line: UInt = #line,
        _ condition: (String) -> Bool
    ) async throws -> String {
        try await eventually(
            description, timeout: timeout, file: file, line: line, report: { self.report }, read: { text },
            until: condition
        )
    }

    /// Waits until `condition` holds for the progress, which the collector keeps as bytes arrive (no decoding).
    @discardableResult
    func waitForProgress(
        _ description: String,
        timeout: Duration = .seconds(10),
        file: StaticString = #filePath,
        line: UInt = #line,
        until condition: (ReceiveProgress) -> Bool
    ) async throws -> ReceiveProgress {
        try await eventually(
            description, timeout: timeout, file: file, line: line, report: { self.report }, read: { progress },
            until: condition
        )
    }

    /// Waits until `bodies` response bodies have ended (a chunked one with its `0\r\n\r\n`).
    @discardableResult
    func waitForEnd(
        bodies: Int = 1,
        timeout: Duration = .seconds(10),
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> ReceiveProgress {
        let description = bodies == 1 ? "the response body to end" : "\(bodies) response bodies to end"
        return try await waitForProgress(description, timeout: timeout, file: file, line: line) {
            $0.bodiesEnded >= bodies
        }
    }

    /// Waits until `count` SSE events have arrived.
    @discardableResult
    func waitForEvents(
        _ count: Int,
        timeout: Duration = .seconds(10),
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> ReceiveProgress {
        try await waitForProgress("\(count) events", timeout: timeout, file: file, line: line) { $0.events >= count }
    }

    func waitForClose(timeout: Duration = .seconds(10), file: StaticString = #filePath, line: UInt = #line) async throws {
        try await waitForProgress("the connection to close", timeout: timeout, file: file, line: line) { $0.closed }
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

/// Records what arrives and scans it as it arrives, on the event loop; the lock is held only to publish.
private final class Collector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let state: NIOLockedValueBox<RawClient.State>
    private var scanner = ResponseScanner()

    init(state: NIOLockedValueBox<RawClient.State>) {
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        buffer.withUnsafeReadableBytes { scanner.scan($0) }
        let progress = scanner.progress
        state.withLockedValue {
            $0.received.append(contentsOf: buffer.readableBytesView)
            $0.progress = progress
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        scanner.close()
        let progress = scanner.progress
        state.withLockedValue { $0.progress = progress }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
