import Foundation
import GatewayCore
import JWTKit
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import GatewayServer

/// The client and upstream handlers glued together on one `EmbeddedEventLoop`: the whole relay, including both
/// directions of backpressure, with no sockets and no real time.
final class RelayGlueTests: XCTestCase {
    /// Dials `EmbeddedChannel`s on the test's loop; each carries the real `UpstreamChannelHandler`.
    final class EmbeddedDialer: UpstreamDialer {
        let loop: EmbeddedEventLoop
        var dialled: [(channel: EmbeddedChannel, reads: ReadCounter)] = []
        var released: [UpstreamConnection] = []
        var failNext: (any Error)?
        /// The next connection is handed out as if it came from the idle pool.
        var nextIsReused = false

        init(loop: EmbeddedEventLoop) { self.loop = loop }

        func acquire(_ endpoint: UpstreamEndpoint, connectTimeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
            if let error = failNext {
                failNext = nil
                return loop.makeFailedFuture(error)
            }
            let reads = ReadCounter()
            let handler = UpstreamChannelHandler()
            let channel = EmbeddedChannel(loop: loop)
            try! channel.pipeline.syncOperations.addHandlers([reads, handler])
            try! channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
            dialled.append((channel, reads))
            defer { nextIsReused = false }
            let key = UpstreamConnector.Key(scheme: .http, host: "127.0.0.1", port: 9, tlsIdentity: 0)
            return loop.makeSucceededFuture(
                UpstreamConnection(channel: channel, handler: handler, isReused: nextIsReused, key: key)
            )
        }

        func release(_ connection: UpstreamConnection) {
            connection.handler.delegate = nil
            released.append(connection)
        }
    }

    struct Glue {
        let loop: EmbeddedEventLoop
        let client: EmbeddedChannel
        let dialer: EmbeddedDialer
        var upstream: EmbeddedChannel { dialer.dialled.last!.channel }
        var upstreamReads: Int { dialer.dialled.last!.reads.reads }
    }

    private func makeGlue(_ configure: (inout GatewayConfiguration) -> Void = { _ in }) throws -> Glue {
        var configuration = GatewayConfiguration(
            routes: [
                RouteConfiguration(
                    name: "events",
                    pathPrefix: "/events/",
                    upstream: UpstreamURL(scheme: .http, host: "127.0.0.1", port: 9)
                )
            ]
        )
        configure(&configuration)
        let loop = EmbeddedEventLoop()
        let dialer = EmbeddedDialer(loop: loop)
        let handler = ClientConnectionHandler(
            runtimes: RuntimeHolder(try GatewayRuntime(configuration: configuration)),
            dialer: dialer,
            timerQueue: ConnectionTimerQueue(eventLoop: loop),
            environment: GatewayEnvironment(
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                metrics: GatewayMetrics(),
                admission: StreamAdmission()
            ),
            clientScheme: "http"
        )
        let client = EmbeddedChannel(handler: handler, loop: loop)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return Glue(loop: loop, client: client, dialer: dialer)
    }

    private func get(_ glue: Glue, _ uri: String, headers: [(String, String)] = []) throws {
        let head = HTTPRequestHead(
            version: .http1_1, method: .GET, uri: uri, headers: HTTPHeaders([("host", "gateway.test")] + headers)
        )
        try glue.client.writeInbound(HTTPServerRequestPart.head(head))
        try glue.client.writeInbound(HTTPServerRequestPart.end(nil))
        glue.loop.run()
    }

    private func upstreamSends(_ glue: Glue, _ text: String) throws {
        try glue.upstream.writeInbound(ByteBuffer(string: text))
    }

    /// Everything the client was sent so far: the head's status and the body's text, and whether the end came.
    private func clientReceived(_ glue: Glue) throws -> (status: HTTPResponseStatus?, body: String, ended: Bool) {
        var status: HTTPResponseStatus?
        var body = ""
        var ended = false
        while let part = try glue.client.readOutbound(as: HTTPServerResponsePart.self) {
            switch part {
            case .head(let head): status = head.status
            case .body(.byteBuffer(let buffer)): body += String(buffer: buffer)
            case .body: XCTFail("file region")
            case .end: ended = true
            }
        }
        return (status, body, ended)
    }

    private func upstreamRequest(_ glue: Glue) throws -> String {
        var text = ""
        while let buffer = try glue.upstream.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    func testEventsFlowFromUpstreamToClientInOrder() throws {
        let glue = try makeGlue()
        try get(glue, "/events/a?x=1")
        XCTAssertTrue(try upstreamRequest(glue).hasPrefix("GET /events/a?x=1 HTTP/1.1\r\n"))
        try upstreamSends(glue, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
        for n in 1...5 { try upstreamSends(glue, "id: \(n)\ndata: \(n)\n\n") }
        let received = try clientReceived(glue)
        XCTAssertEqual(received.status, .ok)
        XCTAssertEqual(received.body, (1...5).map { "id: \($0)\ndata: \($0)\n\n" }.joined())
        XCTAssertFalse(received.ended)
        try glue.upstream.close().wait()
        XCTAssertTrue(try clientReceived(glue).ended, "an upstream close ends an event stream cleanly")
    }

    /// Client unwritable -> the upstream's reads are held -> writable -> the held read goes out -> nothing lost.
    func testSlowClientHoldsUpstreamReadsAndResumesThemWhenWritable() throws {
        let glue = try makeGlue()
        try get(glue, "/events/a")
        try upstreamSends(glue, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nid: 1\ndata: 1\n\n")
        glue.upstream.read()
        XCTAssertEqual(glue.upstreamReads, 1, "a writable client lets the upstream be read")

        glue.client.isWritable = false
        glue.client.pipeline.fireChannelWritabilityChanged()
        glue.upstream.read()
        XCTAssertEqual(glue.upstreamReads, 1, "the read is held while the client cannot take more")
        // Bytes already in flight (NIO delivers a read's messages before it checks again) still go out, in order.
        try upstreamSends(glue, "id: 2\ndata: 2\n\n")

        glue.client.isWritable = true
        glue.client.pipeline.fireChannelWritabilityChanged()
        XCTAssertEqual(glue.upstreamReads, 2, "the held read is issued once the client drains")
        try upstreamSends(glue, "id: 3\ndata: 3\n\n")
        XCTAssertEqual(try clientReceived(glue).body, "id: 1\ndata: 1\n\nid: 2\ndata: 2\n\nid: 3\ndata: 3\n\n")
    }

    /// The idle timeout counts upstream silence only while the gateway asks for bytes.
    func testIdleTimeoutDoesNotCountTimeHeldForASlowClient() throws {
        let glue = try makeGlue { $0.routes[0].timeouts.idle = .seconds(5) }
        try get(glue, "/events/a")
        try upstreamSends(glue, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nid: 1\ndata: 1\n\n")
        glue.client.isWritable = false
        glue.client.pipeline.fireChannelWritabilityChanged()
        glue.upstream.read()
        glue.loop.advanceTime(by: .seconds(20))
        XCTAssertTrue(glue.client.isActive)
        XCTAssertFalse(try clientReceived(glue).ended, "a throttled stream is not idle")
        glue.client.isWritable = true
        glue.client.pipeline.fireChannelWritabilityChanged()
        glue.loop.advanceTime(by: .seconds(5))
        XCTAssertTrue(try clientReceived(glue).ended, "5 s of real silence after the reads resumed ends it")
    }

    /// Upstream unwritable -> the client's request body reads are held -> writable -> they resume.
    func testRequestBodyReadsFollowTheUpstreamsWritability() throws {
        let glue = try makeGlue()
        let reads = ReadCounter()
        try glue.client.pipeline.syncOperations.addHandler(reads, position: .first)
        let head = HTTPRequestHead(
            version: .http1_1, method: .POST, uri: "/events/chat",
            headers: ["host": "gateway.test", "transfer-encoding": "chunked"]
        )
        try glue.client.writeInbound(HTTPServerRequestPart.head(head))
        glue.loop.run()
        glue.client.read()
        XCTAssertEqual(reads.reads, 1, "the upstream is connected and writable")
        glue.upstream.isWritable = false
        glue.upstream.pipeline.fireChannelWritabilityChanged()
        glue.client.read()
        XCTAssertEqual(reads.reads, 1, "held while the upstream cannot take the body")
        glue.upstream.isWritable = true
        glue.upstream.pipeline.fireChannelWritabilityChanged()
        XCTAssertEqual(reads.reads, 2)
        try glue.client.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "hello")))
        try glue.client.writeInbound(HTTPServerRequestPart.end(nil))
        XCTAssertTrue(try upstreamRequest(glue).hasSuffix("5\r\nhello\r\n0\r\n\r\n"))
    }

    func testCompleteResponseReturnsTheUpstreamToThePoolAndServesTheNextRequest() throws {
        let glue = try makeGlue()
        try get(glue, "/events/a")
        try upstreamSends(glue, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        let first = try clientReceived(glue)
        XCTAssertEqual(first.body, "ok")
        XCTAssertTrue(first.ended)
        XCTAssertEqual(glue.dialer.released.count, 1)
        try get(glue, "/events/b")
        XCTAssertEqual(glue.dialer.dialled.count, 2)
        XCTAssertTrue(try upstreamRequest(glue).hasPrefix("GET /events/b HTTP/1.1\r\n"))
    }

    func testPipelinedRequestIsAnsweredAfterTheStreamBeforeIt() throws {
        let glue = try makeGlue()
        try get(glue, "/events/a")
        try get(glue, "/nowhere")
        XCTAssertNil(try glue.client.readOutbound(as: HTTPServerResponsePart.self), "the second request waits")
        try upstreamSends(glue, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n")
        try glue.upstream.close().wait()
        glue.loop.run()
        var statuses: [HTTPResponseStatus] = []
        while let part = try glue.client.readOutbound(as: HTTPServerResponsePart.self) {
            if case .head(let head) = part { statuses.append(head.status) }
        }
        XCTAssertEqual(statuses, [.ok, .notFound])
    }

    func testDrainEndsAStreamWithARetryHintAndClosesTheConnection() throws {
        let glue = try makeGlue()
        try get(glue, "/events/a")
        try upstreamSends(glue, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n")
        glue.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        XCTAssertFalse(try clientReceived(glue).ended, "mid-event: the stream ends at the next boundary")
        try upstreamSends(glue, "\nid: 2\ndata: 2\n\n")
        let received = try clientReceived(glue)
        XCTAssertTrue(received.ended)
        XCTAssertTrue(received.body.hasPrefix("\nretry: "), received.body)
        XCTAssertFalse(received.body.contains("id: 2"), "the next event waits for the reconnect")
        glue.loop.run()
        XCTAssertFalse(glue.client.isActive)
        XCTAssertFalse(glue.upstream.isActive)
    }

    func testRefusedUpstreamIs502AndKeepsTheConnection() throws {
        let glue = try makeGlue()
        glue.dialer.failNext = IOError(errnoCode: ECONNREFUSED, reason: "connect")
        try get(glue, "/events/a")
        let received = try clientReceived(glue)
        XCTAssertEqual(received.status, .badGateway)
        XCTAssertTrue(received.body.contains("unreachable"), received.body)
        XCTAssertTrue(glue.client.isActive)
    }

    func testStalePooledConnectionIsRetriedOnceOnAFreshOne() throws {
        let glue = try makeGlue()
        glue.dialer.nextIsReused = true
        try get(glue, "/events/a")
        let stale = glue.upstream
        try stale.close().wait()
        glue.loop.run()
        XCTAssertEqual(glue.dialer.dialled.count, 2, "one retry on a fresh connection")
        XCTAssertTrue(try upstreamRequest(glue).hasPrefix("GET /events/a HTTP/1.1\r\n"))
        try upstreamSends(glue, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        let received = try clientReceived(glue)
        XCTAssertEqual(received.status, .ok)
        XCTAssertEqual(received.body, "ok")
    }

    func testFreshConnectionClosedBeforeItsHeadIs502() throws {
        let glue = try makeGlue()
        try get(glue, "/events/a")
        try glue.upstream.close().wait()
        glue.loop.run()
        XCTAssertEqual(try clientReceived(glue).status, .badGateway)
        XCTAssertEqual(glue.dialer.dialled.count, 1, "a fresh connection is not retried")
    }

    func testClientDisconnectClosesTheUpstream() throws {
        let glue = try makeGlue()
        try get(glue, "/events/a")
        try upstreamSends(glue, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
        try glue.client.close().wait()
        glue.loop.run()
        XCTAssertFalse(glue.upstream.isActive)
    }

    // MARK: Every timer, on the virtual clock

    private func sseResponse(_ glue: Glue) throws {
        try upstreamSends(glue, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nid: 1\ndata: 1\n\n")
    }

    func testHeartbeatAfterAQuietInterval() throws {
        let glue = try makeGlue { $0.routes[0].heartbeat = .seconds(15) }
        try get(glue, "/events/a")
        try sseResponse(glue)
        glue.loop.advanceTime(by: .seconds(14))
        XCTAssertEqual(try clientReceived(glue).body, "id: 1\ndata: 1\n\n")
        glue.loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(try clientReceived(glue).body, ": keep-alive\n\n")
    }

    func testResponseHeaderTimeoutIs504AndClosesTheUpstream() throws {
        let glue = try makeGlue { $0.routes[0].timeouts.responseHeader = .seconds(2) }
        try get(glue, "/events/a")
        glue.loop.advanceTime(by: .seconds(2))
        let received = try clientReceived(glue)
        XCTAssertEqual(received.status, .gatewayTimeout)
        XCTAssertTrue(received.body.contains("no response head within 2s"), received.body)
        XCTAssertFalse(glue.upstream.isActive)
        XCTAssertTrue(glue.client.isActive, "the client's connection is kept")
    }

    /// The connection's one callback is scheduled for the request head's deadline (5 s); the head comes and the
    /// response head's deadline (30 s) is later: the timeout comes at 30 s, neither at 5 s nor never.
    func testADeadlineMovedLaterFiresAtItsNewTime() throws {
        let glue = try makeGlue {
            $0.limits.requestHeaderTimeout = .seconds(5)
            $0.routes[0].timeouts.responseHeader = .seconds(30)
        }
        glue.loop.advanceTime(by: .seconds(1))
        try get(glue, "/events/a")
        glue.loop.advanceTime(by: .seconds(29))
        XCTAssertNil(try clientReceived(glue).status, "nothing at the old deadline")
        XCTAssertTrue(glue.upstream.isActive)
        glue.loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(try clientReceived(glue).status, .gatewayTimeout)
        XCTAssertFalse(glue.upstream.isActive)
    }

    func testMaxStreamDurationEndsWithARetryHint() throws {
        let glue = try makeGlue { $0.routes[0].maxStreamDuration = .seconds(60) }
        try get(glue, "/events/a")
        try sseResponse(glue)
        glue.loop.advanceTime(by: .seconds(60))
        let received = try clientReceived(glue)
        XCTAssertTrue(received.ended)
        XCTAssertTrue(received.body.hasSuffix("\n\n") && received.body.contains("retry: "), received.body)
        XCTAssertFalse(glue.upstream.isActive)
    }

    func testSlowClientIsDroppedAfterItsTimeout() throws {
        let glue = try makeGlue { $0.limits.slowClientTimeout = .seconds(30) }
        try get(glue, "/events/a")
        try sseResponse(glue)
        glue.client.isWritable = false
        glue.client.pipeline.fireChannelWritabilityChanged()
        glue.loop.advanceTime(by: .seconds(29))
        XCTAssertTrue(glue.client.isActive)
        glue.loop.advanceTime(by: .seconds(1))
        XCTAssertFalse(glue.client.isActive, "dropped as a slow client")
        XCTAssertFalse(glue.upstream.isActive)
    }

    func testSlowClientThatRecoversIsKept() throws {
        let glue = try makeGlue { $0.limits.slowClientTimeout = .seconds(30) }
        try get(glue, "/events/a")
        try sseResponse(glue)
        glue.client.isWritable = false
        glue.client.pipeline.fireChannelWritabilityChanged()
        glue.loop.advanceTime(by: .seconds(20))
        glue.client.isWritable = true
        glue.client.pipeline.fireChannelWritabilityChanged()
        glue.loop.advanceTime(by: .seconds(60))
        XCTAssertTrue(glue.client.isActive)
    }

    func testDrainGraceClosesAPlainResponseThatOutlastsIt() throws {
        let glue = try makeGlue { $0.drain.grace = .seconds(10) }
        try get(glue, "/events/a")
        try upstreamSends(glue, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npartial")
        glue.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        glue.loop.advanceTime(by: .seconds(9))
        XCTAssertTrue(glue.client.isActive, "a plain body cannot be cut at an event: it gets the grace period")
        glue.loop.advanceTime(by: .seconds(1))
        XCTAssertFalse(glue.client.isActive)
        XCTAssertFalse(glue.upstream.isActive)
    }

    func testTokenExpiryEndsTheStreamWithTokenExpired() async throws {
        let secret = "glue-test-secret-0123456789abcdef0123456789"
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        let token = try await keys.sign(GlueClaims(sub: "u", exp: .init(value: Date().addingTimeInterval(30))))
        let glue = try makeGlue {
            $0.routes[0].auth = "users"
            $0.authPolicies["users"] = AuthPolicyConfiguration(
                tokenSources: [.query("access_token")],
                jwt: JWTConfiguration(algorithms: [.hs256], secret: secret)
            )
        }
        try get(glue, "/events/a?access_token=\(token)")
        let forwarded = try upstreamRequest(glue)
        XCTAssertTrue(forwarded.lowercased().contains("authorization: bearer \(token.lowercased())"), forwarded)
        XCTAssertFalse(forwarded.contains("access_token"), "the token left the URL")
        try sseResponse(glue)
        glue.loop.advanceTime(by: .seconds(25))
        XCTAssertFalse(try clientReceived(glue).ended)
        glue.loop.advanceTime(by: .seconds(6))
        let received = try clientReceived(glue)
        XCTAssertTrue(received.body.contains("event: token_expired\n"), received.body)
        XCTAssertTrue(received.ended)
    }
}

private struct GlueClaims: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim

    func verify(using algorithm: some JWTKit.JWTAlgorithm) async throws {}
}
