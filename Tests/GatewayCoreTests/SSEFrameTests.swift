import NIOCore
import XCTest

@testable import GatewayCore

final class SSEFrameTests: XCTestCase {
    func testHeartbeatBytes() {
        XCTAssertEqual(String(buffer: SSEFrame.heartbeat), ": keep-alive\n\n")
        XCTAssertEqual(SSEFrame.heartbeat.readerIndex, 0)
    }

    func testRetryHintBytes() {
        XCTAssertEqual(String(buffer: SSEFrame.retryHint(milliseconds: 0)), "retry: 0\n\n")
        XCTAssertEqual(String(buffer: SSEFrame.retryHint(milliseconds: 2_500)), "retry: 2500\n\n")
    }

    func testTokenExpiredBytes() {
        XCTAssertEqual(
            String(buffer: SSEFrame.tokenExpired(retryMilliseconds: 1000)),
            "event: token_expired\n"
                + "data: {\"error\":\"token_expired\",\"message\":\"the token expired; reconnect with a fresh token\"}\n"
                + "retry: 1000\n\n"
        )
    }

    func testEveryFrameIsOneCompleteEvent() {
        for frame in [
            SSEFrame.heartbeat, SSEFrame.retryHint(milliseconds: 3), SSEFrame.tokenExpired(retryMilliseconds: 5),
        ] {
            var tracker = EventBoundaryTracker()
            tracker.consume(frame)
            XCTAssertEqual(tracker.completedEvents, 1, String(buffer: frame))
            XCTAssertTrue(tracker.isAtEventBoundary, String(buffer: frame))
        }
    }

    func testFramesAfterABoundaryKeepTheBoundary() {
        // The gateway injects a frame where an upstream stream sits at a boundary; the combined stream must too.
        var tracker = EventBoundaryTracker()
        tracker.consume(ByteBuffer(string: "data: a\r\n\r\n"))
        tracker.consume(SSEFrame.heartbeat)
        XCTAssertEqual(tracker.completedEvents, 2)
        XCTAssertTrue(tracker.isAtEventBoundary)
    }
}
