import GatewayCore
import NIOCore
import XCTest

/// The relay's decisions, tested through the actions it returns.
final class StreamRelayStateMachineTests: XCTestCase {
    private func buffer(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    func testHeartbeatOnlyAtEventBoundary() {
        var relay = StreamRelayStateMachine(isEventStream: true)
        XCTAssertEqual(relay.heartbeatDue(), .write(SSEFrame.heartbeat), "nothing relayed yet is a boundary")
        XCTAssertEqual(relay.upstreamBodyReceived(buffer("data: a")), .relay)
        XCTAssertEqual(relay.heartbeatDue(), .none, "never inside an event")
        XCTAssertEqual(relay.upstreamBodyReceived(buffer("\n\n")), .relay)
        XCTAssertEqual(relay.heartbeatDue(), .write(SSEFrame.heartbeat))
        XCTAssertEqual(relay.relayedEvents, 1)
    }

    func testNoHeartbeatsForPlainBodies() {
        var relay = StreamRelayStateMachine(isEventStream: false)
        XCTAssertEqual(relay.upstreamBodyReceived(buffer("{\"a\":1}\n\n")), .relay)
        XCTAssertEqual(relay.heartbeatDue(), .none)
        XCTAssertEqual(relay.closeRequested(.draining, closingFrame: nil), .none, "plain bodies finish on their own")
    }

    func testCloseAtBoundaryIsImmediate() {
        var relay = StreamRelayStateMachine(isEventStream: true)
        _ = relay.upstreamBodyReceived(buffer("data: a\n\n"))
        let frame = SSEFrame.retryHint(milliseconds: 1234)
        XCTAssertEqual(
            relay.closeRequested(.draining, closingFrame: frame),
            .finish(closingFrame: frame, reason: .draining)
        )
        XCTAssertEqual(relay.heartbeatDue(), .none, "finished relays write nothing more")
        XCTAssertEqual(relay.closeRequested(.tokenExpired, closingFrame: nil), .none)
    }

    func testCloseMidEventWaitsForTheBoundary() {
        var relay = StreamRelayStateMachine(isEventStream: true)
        _ = relay.upstreamBodyReceived(buffer("data: a\ndata: b"))
        let frame = SSEFrame.tokenExpired(retryMilliseconds: 500)
        XCTAssertEqual(relay.closeRequested(.tokenExpired, closingFrame: frame), .none)
        XCTAssertEqual(relay.heartbeatDue(), .none)
        XCTAssertEqual(relay.upstreamBodyReceived(buffer("\n")), .relay, "one newline ends a line, not the event")
        XCTAssertEqual(
            relay.upstreamBodyReceived(buffer("\ndata: next")),
            .relayPrefixAndFinish(length: 1, closingFrame: frame, reason: .tokenExpired),
            "only the bytes that complete the event are relayed before the closing frame"
        )
    }

    func testUpstreamEndStopsInjection() {
        var relay = StreamRelayStateMachine(isEventStream: true)
        relay.upstreamEnded()
        XCTAssertEqual(relay.heartbeatDue(), .none)
        XCTAssertEqual(relay.closeRequested(.maxDuration, closingFrame: nil), .none)
    }
}
