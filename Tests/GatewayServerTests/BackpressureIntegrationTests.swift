import GatewayCore
import GatewayServer
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

/// Slow clients and many clients: the relay must throttle the upstream, keep memory bounded, and lose nothing.
final class BackpressureIntegrationTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    /// An upstream that writes numbered events as fast as its socket accepts them, up to `total`.
    final class FloodingSource: Sendable {
        let total: Int
        private let written = NIOLockedValueBox(0)
        private let listeningPort = NIOLockedValueBox(0)
        var eventsWritten: Int { written.withLockedValue { $0 } }
        /// The upstream's port (set once it listens).
        var port: Int {
            get { listeningPort.withLockedValue { $0 } }
            set { listeningPort.withLockedValue { $0 = newValue } }
        }
        /// An event's bytes at most (ids up to 5 digits): `id: N\ndata: N <1000 x>\n\n`.
        static let eventBytes = 1024

        init(total: Int) { self.total = total }

        func start(_ responder: UpstreamResponder) {
            responder.sseHead()
            pump(responder)
        }

        private func pump(_ responder: UpstreamResponder) {
            let channel = responder.channel
            channel.eventLoop.execute {
                // Write while the socket takes it; resume on the next tick (a real server would use writability).
                while channel.isActive && channel.isWritable {
                    let n = self.written.withLockedValue { value -> Int in
                        value += 1
                        return value
                    }
                    if n > self.total {
                        responder.end()
                        return
                    }
                    let padding = String(repeating: "x", count: 1000)
                    responder.body("id: \(n)\ndata: \(n) \(padding)\n\n")
                }
                guard channel.isActive else { return }
                channel.eventLoop.scheduleTask(in: .milliseconds(2)) { self.pump(responder) }
            }
        }
    }

    /// Runs `body` with a flooding upstream (`total` events), a gateway in front of it, and a client that asked for the
    /// flood, took the response head and the first bytes, and then stopped reading.
    ///
    /// The client's receive buffer is 256 KB: small, so that kernel buffers hold little of the flood, but well above
    /// loopback's 64 KB MSS. With 16 KB (as these tests once had) TCP's silly-window avoidance can slow the transfer to
    /// a crawl: the client has read everything (`ss`: Recv-Q 0), yet the window it advertises stays below one MSS,
    /// so the gateway's socket (3 MB not sent, `snd_wnd` 12 KB < `mss` 14 KB, 99.8% of its life `rwnd_limited`) only
    /// sends a window's worth per zero-window probe — which is why the flood test timed out about once in ten full
    /// runs, and why a dropped slow client sometimes never saw its connection close behind megabytes of unsent data.
    static func withSlowClient(
        total: Int,
        slowClientTimeout: Duration,
        group: any EventLoopGroup,
        _ body: (FloodingSource, GatewayHarness, RawClient) async throws -> Void
    ) async throws {
        let source = FloodingSource(total: total)
        try await withUpstream(group: group, handler: { _, responder in source.start(responder) }) { upstream in
            source.port = upstream.port
            try await withGateway(
                routes: [route(upstream: upstream)],
                configure: { $0.limits.slowClientTimeout = slowClientTimeout },
                group: group
            ) { gateway in
                let client = try await gateway.connect(group: group, autoRead: false, receiveBuffer: 256 * 1024)
                try await client.get("/events/flood")
                client.read()
                try await body(source, gateway, client)
            }
        }
    }

    func testSlowClientThrottlesUpstreamAndLosesNothing() async throws {
        // ~25 MB if nothing pushed back. This client is slow on purpose and must not be dropped as one: the wait for
        // the upstream to pause below may take up to 30 s on a loaded machine, as long as the default slow-client
        // timeout.
        try await Self.withSlowClient(total: 25_000, slowClientTimeout: .seconds(600), group: group) {
            source, gateway, client in
            // Wait until the upstream stops making progress (it is paused by backpressure), however busy the machine
            // is.
            var writtenWhileStalled = source.eventsWritten
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(750))
                let now = source.eventsWritten
                if now == writtenWhileStalled { break }
                writtenWhileStalled = now
            }
            XCTAssertLessThan(writtenWhileStalled, source.total, "upstream must pause while the client reads nothing")
            print("slow client: upstream paused after \(writtenWhileStalled) events of 1 KB")
            // Where the events written so far are: the client has some, the kernel's socket buffers on the path
            // (autotuned: up to 32 MB each way here) hold most; what is left is in user space, the gateway's bounded
            // stream buffer and a read, plus the upstream's own write buffer and chunk framing (~7 bytes per event
            // per hop). A gateway that buffered without bound would leave megabytes unaccounted for.
            let kernel = try XCTUnwrap(kernelQueuedBytes(ports: [gateway.port, source.port]))
            let unaccounted = writtenWhileStalled * FloodingSource.eventBytes - client.byteCount - kernel
            print("slow client: \(kernel) bytes in kernel buffers, \(client.byteCount) received, \(unaccounted) elsewhere")
            // The client's socket in the gateway holds few bytes the client has not taken (TCP_NOTSENT_LOWAT at
            // `stream_buffer_bytes`, 64 KiB by default, plus one write): without it the kernel takes megabytes
            // before the gateway sees the client as slow.
            let clientSendQueue = try XCTUnwrap(largestSendQueue(localPort: gateway.port))
            print("slow client: the gateway's socket to it holds \(clientSendQueue) bytes")
            XCTAssertLessThan(clientSendQueue, 256 * 1024, socketReport(ports: [gateway.port]))
            XCTAssertLessThan(
                unaccounted, 1 << 20,
                "only kernel socket buffers and the gateway's bounded stream buffer may hold events: "
                    + socketReport(ports: [gateway.port, source.port])
            )

            try await client.setAutoRead(true)
            // The client checks each id as it arrives: the wait never decodes the 25 MB it holds.
            let progress: ReceiveProgress
            do {
                progress = try await client.waitForEnd(timeout: .seconds(60))
            } catch {
                // Which side stopped: the kernel's queues for every socket of this transfer.
                print("stalled flood: upstream wrote \(source.eventsWritten) events\n" + socketReport(ports: [gateway.port]))
                throw error
            }
            XCTAssertEqual(progress.events, 25_000, "\(progress)")
            XCTAssertEqual(progress.firstEventID, "1", "\(progress)")
            XCTAssertEqual(progress.lastEventID, "25000", "\(progress)")
            XCTAssertNil(progress.firstIDGap, "every event, in order: \(progress)")
        }
    }

    func testThousandConcurrentStreamsReceiveEveryEventInOrder() async throws {
        let streams = 1_000
        let events = 5
        let responders = NIOLockedValueBox<[UpstreamResponder]>([])
        let handler: TestUpstream.Handler = { _, responder in
            responder.sseHead()
            responders.withLockedValue { $0.append(responder) }
        }
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                var clients: [RawClient] = []
                for i in 0..<streams {
                    let client = try await gateway.connect(group: group)
                    try await client.get("/events/s\(i)")
                    clients.append(client)
                }
                try await eventually("every stream to reach the upstream", timeout: .seconds(30),
                                     read: { responders.withLockedValue { $0.count } }) { $0 >= streams }
                for n in 1...events {
                    for responder in responders.withLockedValue({ $0 }) {
                        responder.body("id: \(n)\ndata: event \(n)\n\n")
                    }
                }
                for responder in responders.withLockedValue({ $0 }) { responder.end() }

                let expected = (1...events).map { "id: \($0)\ndata: event \($0)\n\n" }.joined()
                for client in clients {
                    try await client.waitForEnd(timeout: .seconds(30))
                    XCTAssertEqual(client.dechunkedBody, expected)
                }
            }
        }
    }
}
