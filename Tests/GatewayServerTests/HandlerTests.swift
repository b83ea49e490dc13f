import GatewayCore
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import GatewayServer

/// The channel handlers in `EmbeddedChannel`: no sockets, and time moves only when the test says so.
final class HandlerTests: XCTestCase {
    /// A client connection on `timers`'s loop (a new loop by default), with its timers in that queue.
    private func makeClientChannel(
        timers: ConnectionTimerQueue = ConnectionTimerQueue(eventLoop: EmbeddedEventLoop()),
        _ configure: (inout GatewayConfiguration) -> Void = { _ in }
    ) throws -> EmbeddedChannel {
        var configuration = GatewayConfiguration(
            routes: [
                RouteConfiguration(
                    name: "events",
                    pathPrefix: "/events/",
                    upstream: UpstreamURL(scheme: .http, host: "127.0.0.1", port: 9),
                    auth: "users"
                )
            ],
            authPolicies: ["users": AuthPolicyConfiguration(apiKeys: [APIKeyConfiguration(sha256: Array(repeating: 0, count: 32), subject: "x")])],
            cors: CORSConfiguration(allowedOrigins: ["https://app.example"], allowCredentials: true)
        )
        configure(&configuration)
        let loop = timers.eventLoop as! EmbeddedEventLoop
        let handler = ClientConnectionHandler(
            runtimes: RuntimeHolder(try GatewayRuntime(configuration: configuration)),
            dialer: UpstreamConnector(eventLoop: loop),
            timerQueue: timers,
            environment: GatewayEnvironment(
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                metrics: GatewayMetrics(),
                admission: StreamAdmission()
            ),
            clientScheme: "http"
        )
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    private func request(_ channel: EmbeddedChannel, _ uri: String, _ headers: [(String, String)] = []) throws {
        try request(channel, .GET, uri, headers)
    }

    private func request(_ channel: EmbeddedChannel, _ method: HTTPMethod, _ uri: String, _ headers: [(String, String)]) throws {
        try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders([("host", "gateway.test")] + headers))))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
    }

    private func response(_ channel: EmbeddedChannel) throws -> (HTTPResponseHead, String) {
        guard case .head(let head) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            XCTFail("no response head")
            throw CancellationError()
        }
        var body = ""
        while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
            if case .body(.byteBuffer(let buffer)) = part { body += String(buffer: buffer) }
            if case .end = part { break }
        }
        return (head, body)
    }

    func testUnknownPathIs404WithJSONBody() throws {
        let channel = try makeClientChannel()
        try request(channel, "/nowhere")
        let (head, body) = try response(channel)
        XCTAssertEqual(head.status, .notFound)
        XCTAssertEqual(head.headers["content-type"], ["application/json"])
        XCTAssertEqual(body, #"{"error":"not_found","message":"no route matches this path"}"#)
        XCTAssertTrue(channel.isActive, "a 404 keeps the keep-alive connection")
    }

    func testMissingTokenIs401BeforeAnyUpstreamDial() throws {
        let channel = try makeClientChannel()
        try request(channel, "/events/x", [("origin", "https://app.example")])
        let (head, body) = try response(channel)
        XCTAssertEqual(head.status, .unauthorized)
        XCTAssertEqual(head.headers["www-authenticate"], [#"Bearer realm="sse-gateway""#])
        XCTAssertEqual(head.headers["access-control-allow-origin"], ["https://app.example"])
        XCTAssertTrue(body.contains("missing_token"))
    }

    func testPreflightIsAnsweredByTheGateway() throws {
        let channel = try makeClientChannel()
        try request(
            channel, .OPTIONS, "/events/x",
            [("origin", "https://app.example"), ("access-control-request-method", "GET")]
        )
        let (head, body) = try response(channel)
        XCTAssertEqual(head.status, .noContent)
        XCTAssertEqual(head.headers["access-control-allow-credentials"], ["true"])
        XCTAssertTrue(head.headers["access-control-allow-headers"].first?.contains("Last-Event-ID") ?? false)
        XCTAssertEqual(body, "")
    }

    func testIdleConnectionClosedAfterRequestHeaderTimeout() throws {
        let channel = try makeClientChannel { $0.limits.requestHeaderTimeout = .seconds(10) }
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive, "no request head within request_header_timeout: closed")
    }

    /// The handler keeps its `ChannelHandlerContext`, which keeps the handler: unless the handler lets go of it when it
    /// is removed, every connection leaks its handler, context and pipeline (found by LeakSanitizer, README
    /// "Sanitizers").
    func testClosedConnectionReleasesItsHandler() throws {
        weak var released: ClientConnectionHandler?
        weak var releasedChannel: EmbeddedChannel?
        try {
            let channel = try makeClientChannel()
            releasedChannel = channel
            released = try channel.pipeline.syncOperations.handler(type: ClientConnectionHandler.self)
            try request(channel, "/nowhere")
            _ = try response(channel)
            try channel.close().wait()
            channel.embeddedEventLoop.run()  // EmbeddedChannel removes the handlers in a task after closing
        }()
        XCTAssertNil(releasedChannel, "the closed channel is still alive: a handler's context keeps its pipeline")
        XCTAssertNil(released, "a closed connection's handler is still alive: it and its context keep each other")
    }

    /// Connections of one loop keep their deadlines in the loop's one queue: each still times out at its own
    /// deadline, one moved later or taken out fires nothing early, and a closed connection leaves the queue.
    func testConnectionsOfOneLoopShareOneTimerQueue() throws {
        let loop = EmbeddedEventLoop()
        let timers = ConnectionTimerQueue(eventLoop: loop)
        let limits: (inout GatewayConfiguration) -> Void = { $0.limits.requestHeaderTimeout = .seconds(10) }
        let first = try makeClientChannel(timers: timers, limits)
        loop.advanceTime(by: .seconds(3))
        let second = try makeClientChannel(timers: timers, limits)  // deadline 13 s
        loop.advanceTime(by: .seconds(3))
        let third = try makeClientChannel(timers: timers, limits)  // deadline 16 s
        XCTAssertEqual(timers.count, 3)
        loop.advanceTime(by: .seconds(2))
        try request(first, "/nowhere")  // answered at 8 s: its keep-alive deadline moves from 10 s to 18 s
        _ = try response(first)
        try third.close().wait()  // out of the queue at once
        loop.run()
        XCTAssertEqual(timers.count, 2)
        loop.advanceTime(by: .seconds(2))  // 10 s: the first connection's old deadline
        XCTAssertTrue(first.isActive, "a deadline moved later does not fire at its old time")
        XCTAssertTrue(second.isActive)
        loop.advanceTime(by: .seconds(3))  // 13 s
        XCTAssertFalse(second.isActive, "the second connection's own deadline")
        XCTAssertTrue(first.isActive)
        loop.advanceTime(by: .seconds(4))  // 17 s
        XCTAssertTrue(first.isActive)
        loop.advanceTime(by: .seconds(1))  // 18 s
        XCTAssertFalse(first.isActive, "the first connection's moved deadline")
        loop.run()
        XCTAssertEqual(timers.count, 0, "no connection is left in the queue")
    }

    func testKeepAliveTimerRestartsAfterEachResponse() throws {
        let channel = try makeClientChannel { $0.limits.requestHeaderTimeout = .seconds(10) }
        channel.embeddedEventLoop.advanceTime(by: .seconds(8))
        try request(channel, "/nowhere")
        _ = try response(channel)
        channel.embeddedEventLoop.advanceTime(by: .seconds(8))
        XCTAssertTrue(channel.isActive, "the timer restarted when the response ended")
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        XCTAssertFalse(channel.isActive)
    }

    func testUpstreamReadsAreHeldWhileTheClientIsUnwritable() throws {
        final class Client: UpstreamConnectionDelegate {
            var writable = false
            func upstreamReadRequested() -> Bool { writable }
            func upstreamHead(_ head: HTTPResponseHead, framing: UpstreamResponseDecoder.BodyFraming) -> Bool { false }
            func upstreamBody(_ data: ByteBuffer) {}
            func upstreamWire(_ bytes: ByteBuffer) throws {}
            func upstreamEnd() {}
            func upstreamReadComplete() {}
            func upstreamWritabilityChanged(isWritable: Bool) {}
            func upstreamClosed(error: (any Error)?) {}
        }
        let counter = ReadCounter()
        let handler = UpstreamChannelHandler()
        let client = Client()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([counter, handler])
        handler.delegate = client
        channel.read()
        XCTAssertEqual(counter.reads, 0, "held: the client cannot take more")
        client.writable = true
        handler.resumeReading()
        XCTAssertEqual(counter.reads, 1, "the held read is issued once the client drains")
        handler.resumeReading()
        XCTAssertEqual(counter.reads, 1, "and only once")
        channel.read()
        XCTAssertEqual(counter.reads, 2)

        // A read held when the connection goes back to the idle pool is issued: an idle connection must notice a close.
        client.writable = false
        channel.read()
        XCTAssertEqual(counter.reads, 2)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        let connector = UpstreamConnector(eventLoop: channel.embeddedEventLoop)
        let key = UpstreamConnector.Key(scheme: .http, host: "127.0.0.1", port: 9, tlsIdentity: 0)
        connector.release(UpstreamConnection(channel: channel, handler: handler, isReused: false, key: key))
        XCTAssertEqual(counter.reads, 3)
    }

    func testAdminEndpoints() throws {
        let channel = EmbeddedChannel(
            handler: AdminHandler(
                endpoints: AdminListener.Endpoints(status: { .draining }, metrics: { "m 1\n" }, reload: nil)
            )
        )
        func get(_ uri: String) throws -> (HTTPResponseStatus, String) {
            try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)))
            try channel.writeInbound(HTTPServerRequestPart.end(nil))
            let (head, body) = try response(channel)
            return (head.status, body)
        }
        XCTAssertEqual(try get("/healthz").0, .ok)
        XCTAssertEqual(try get("/readyz").0, .serviceUnavailable)
        XCTAssertEqual(try get("/metrics").1, "m 1\n")
        XCTAssertEqual(try get("/other").0, .notFound)
    }
}
