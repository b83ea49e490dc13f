import GatewayCore
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import GatewayServer

/// The HTTP/1 request decoder is out of the pipeline while an event stream is held, and a fresh one is back when the
/// stream ends: bytes the client sent meanwhile are held (and reading stops), then decoded as the next request.
final class DecoderParkingTests: XCTestCase {
    typealias Decoder = ByteToMessageHandler<HTTPRequestDecoder>

    private struct Connection {
        let loop: EmbeddedEventLoop
        let client: EmbeddedChannel
        let dialer: RelayGlueTests.EmbeddedDialer
        let reads: ReadCounter
    }

    private func connect() throws -> Connection {
        let configuration = GatewayConfiguration(
            routes: [
                RouteConfiguration(
                    name: "events", pathPrefix: "/", upstream: UpstreamURL(scheme: .http, host: "127.0.0.1", port: 9)
                )
            ]
        )
        let loop = EmbeddedEventLoop()
        let dialer = RelayGlueTests.EmbeddedDialer(loop: loop)
        let encoder = HTTP1ResponseEncoder()
        let handler = ClientConnectionHandler(
            runtimes: RuntimeHolder(try GatewayRuntime(configuration: configuration)),
            dialer: dialer,
            timerQueue: ConnectionTimerQueue(eventLoop: loop),
            environment: GatewayEnvironment(
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                metrics: GatewayMetrics(),
                admission: StreamAdmission()
            ),
            clientScheme: "http",
            responseEncoder: encoder
        )
        handler.makeRequestDecoder = { Decoder(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)) }
        let reads = ReadCounter()
        let client = EmbeddedChannel(loop: loop)
        try client.pipeline.syncOperations.addHandlers([reads, encoder, handler.makeRequestDecoder!(), handler])
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return Connection(loop: loop, client: client, dialer: dialer, reads: reads)
    }

    private func sent(_ connection: Connection) throws -> String {
        try connection.client.outboundText()
    }

    private func has<Handler: ChannelHandler>(_ connection: Connection, _ type: Handler.Type) -> Bool {
        (try? connection.client.pipeline.syncOperations.handler(type: type)) != nil
    }

    func testTheDecoderIsParkedDuringAStreamAndAPipelinedRequestIsAnsweredAfterIt() throws {
        let connection = try connect()
        try connection.client.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: gateway.test\r\n\r\n"))
        connection.loop.run()
        XCTAssertTrue(has(connection, Decoder.self))
        let upstream = try XCTUnwrap(connection.dialer.dialled.first).channel
        try upstream.writeInbound(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        )
        connection.loop.run()  // NIO lets the decoder go on the next tick
        XCTAssertFalse(has(connection, Decoder.self), "no decoder while the stream is held")
        XCTAssertTrue(has(connection, ParkedRequestDecoder.self))
        try upstream.writeInbound(ByteBuffer(string: "9\r\ndata: 1\n\n\r\n"))
        XCTAssertTrue(try sent(connection).contains("data: 1"))

        // A pipelined request during the stream: held, and the client is read no further.
        let readsBefore = connection.reads.reads
        try connection.client.writeInbound(ByteBuffer(string: "GET /b HTTP/1.1\r\nHost: gateway.test\r\n\r\n"))
        connection.client.pipeline.read()
        XCTAssertEqual(connection.reads.reads, readsBefore, "no read goes out while bytes are held")
        XCTAssertEqual(connection.dialer.dialled.count, 1, "the second request waits for the stream")

        // The stream ends: a fresh decoder takes the held request, which goes upstream on the same connection.
        try upstream.writeInbound(ByteBuffer(string: "0\r\n\r\n"))
        connection.loop.run()
        XCTAssertTrue(has(connection, Decoder.self))
        XCTAssertFalse(has(connection, ParkedRequestDecoder.self))
        XCTAssertEqual(connection.dialer.dialled.count, 2, "the second request went upstream")
        let second = try XCTUnwrap(connection.dialer.dialled.last).channel
        let request = try XCTUnwrap(try second.readOutbound(as: ByteBuffer.self))
        XCTAssertTrue(String(buffer: request).hasPrefix("GET /b HTTP/1.1"), String(buffer: request))
        XCTAssertGreaterThan(connection.reads.reads, readsBefore, "reading resumed")
        XCTAssertTrue(connection.client.isActive)
    }

    func testAPlainResponseKeepsTheDecoder() throws {
        let connection = try connect()
        try connection.client.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: gateway.test\r\n\r\n"))
        connection.loop.run()
        let upstream = try XCTUnwrap(connection.dialer.dialled.first).channel
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"))
        XCTAssertTrue(has(connection, Decoder.self), "only event streams are held long enough to park for")
        try upstream.writeInbound(ByteBuffer(string: "ok"))
        XCTAssertTrue(try sent(connection).hasSuffix("ok"))
    }
}
