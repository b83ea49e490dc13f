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
        var eventsWritten: Int { written.withLockedValue { $0 } }

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

    func testSlowClientThrottlesUpstreamAndLosesNothing() async throws {
        let source = FloodingSource(total: 25_000)  // ~25 MB if nothing pushed back
        let upstream = try await TestUpstream(group: group) { _, responder in source.start(responder) }
        // This client is slow on purpose and must not be dropped as one: the wait for the upstream to pause below
        // may take up to 30 s on a loaded machine, as long as the default slow-client timeout.
        let gateway = try await GatewayHarness.start(
            routes: [route(upstream: upstream)],
            configure: { $0.limits.slowClientTimeout = .seconds(600) },
            group: group
        )
        let client = try await gateway.connect(group: group, autoRead: false, receiveBuffer: 16 * 1024)
        try await client.get("/events/flood")
        client.read()  // take the response head and the first bytes, then stop reading

        // Wait until the upstream stops making progress (it is paused by backpressure), however busy the machine is.
        var writtenWhileStalled = source.eventsWritten
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(750))
            let now = source.eventsWritten
            if now == writtenWhileStalled { break }
            writtenWhileStalled = now
        }
        XCTAssertLessThan(writtenWhileStalled, source.total, "upstream must be paused while the client reads nothing")
        print("slow client: upstream paused after \(writtenWhileStalled) events of 1 KB")
        XCTAssertLessThan(
            writtenWhileStalled, 15_000,
            "only kernel socket buffers (autotuned, several MB on loopback) and the gateway's bounded stream buffer "
                + "may hold events (~\(writtenWhileStalled) KB)"
        )

        try await client.setAutoRead(true)
        let text = try await client.wait(for: "all events", timeout: .seconds(60)) { $0.hasSuffix("0\r\n\r\n") }
        let ids = RawClient.dechunk(text).split(separator: "\n").compactMap { line -> Int? in
            line.hasPrefix("id: ") ? Int(line.dropFirst(4)) : nil
        }
        XCTAssertEqual(ids.count, 25_000)
        XCTAssertEqual(ids, Array(1...25_000), "every event, in order")
        await client.close()
        await gateway.stop()
        await upstream.stop()
    }

    func testThousandConcurrentStreamsReceiveEveryEventInOrder() async throws {
        let streams = 1_000
        let events = 5
        let responders = NIOLockedValueBox<[UpstreamResponder]>([])
        let upstream = try await TestUpstream(group: group) { _, responder in
            responder.sseHead()
            responders.withLockedValue { $0.append(responder) }
        }
        let gateway = try await GatewayHarness.start(routes: [route(upstream: upstream)], group: group)
        var clients: [RawClient] = []
        for i in 0..<streams {
            let client = try await gateway.connect(group: group)
            try await client.get("/events/s\(i)")
            clients.append(client)
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while responders.withLockedValue({ $0.count }) < streams, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertEqual(responders.withLockedValue { $0.count }, streams, "every stream reached the upstream")
        for n in 1...events {
            for responder in responders.withLockedValue({ $0 }) {
                responder.body("id: \(n)\ndata: event \(n)\n\n")
            }
        }
        for responder in responders.withLockedValue({ $0 }) { responder.end() }

        let expected = (1...events).map { "id: \($0)\ndata: event \($0)\n\n" }.joined()
        for client in clients {
            let text = try await client.wait(for: "all events", timeout: .seconds(30)) { $0.hasSuffix("0\r\n\r\n") }
            XCTAssertEqual(RawClient.dechunk(text), expected)
        }
        for client in clients { await client.close() }
        await gateway.stop()
        await upstream.stop()
    }
}
