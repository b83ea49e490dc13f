import GatewayCore
import NIOCore
import XCTest

/// `SharedStreamStateMachine`: one upstream for many subscribers, its reconnects, ring, linger and grace, on a
/// virtual clock.
final class SharedStreamStateMachineTests: XCTestCase {
    typealias Machine = SharedStreamStateMachine

    private var clock = NIODeadline.uptimeNanoseconds(1_000_000_000)
    private let settings = Machine.Settings(
        linger: .seconds(2), upstreamGrace: .seconds(10), responseHeaderTimeout: .seconds(5),
        initialBackoff: .milliseconds(500), maxBackoff: .seconds(4)
    )

    private func machine(startingAfter id: String? = nil, ring: Int = 16) -> Machine {
        Machine(settings: settings, ring: ReplayRing(maxEvents: ring, maxBytes: 1 << 16, startingAfter: id))
    }

    /// A stream whose first subscriber joined and whose upstream answered 200.
    private func streaming() -> Machine {
        var machine = machine()
        let (join, action) = machine.subscriberJoined(lastEventID: nil)
        XCTAssertEqual(join, .awaitHead)
        XCTAssertEqual(action, .dial)
        XCTAssertEqual(machine.upstreamConnected(now: clock), .sendRequest(lastEventID: nil))
        XCTAssertEqual(machine[.responseHeader], clock + .seconds(5))
        XCTAssertEqual(machine.upstreamResponseHead(status: 200, isEventStream: true, now: clock), .deliverHead)
        XCTAssertNil(machine[.responseHeader])
        return machine
    }

    private func deliver(_ text: String, to machine: inout Machine) throws -> String? {
        try machine.upstreamBodyReceived(ByteBuffer(string: text)).map { String(buffer: $0.bytes) }
    }

    func testOneUpstreamForEveryoneAndLaterJoinsGoLive() throws {
        var machine = streaming()
        XCTAssertEqual(try deliver("id: 1\ndata: a\n\nid: 2\nda", to: &machine), "id: 1\ndata: a\n\n")
        let (join, action) = machine.subscriberJoined(lastEventID: nil)
        XCTAssertEqual(join, .live(replay: []))
        XCTAssertEqual(action, .none, "the second subscriber dials nothing")
        XCTAssertEqual(machine.subscribers, 2)
        let delivery = try machine.upstreamBodyReceived(ByteBuffer(string: "ta: b\n\n"))
        XCTAssertEqual(delivery.map { String(buffer: $0.bytes) }, "id: 2\ndata: b\n\n")
        XCTAssertEqual(delivery?.events, 1)
    }

    func testAJoinWithAnIDInTheRingReplaysAndAnUnknownOneMisses() throws {
        var machine = streaming()
        _ = try deliver("id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\n", to: &machine)
        let (join, _) = machine.subscriberJoined(lastEventID: "1")
        XCTAssertEqual(join, .live(replay: [ByteBuffer(string: "id: 2\ndata: b\n\n"), ByteBuffer(string: "id: 3\ndata: c\n\n")]))
        XCTAssertEqual(machine.subscriberJoined(lastEventID: "3").0, .live(replay: []))
        XCTAssertEqual(machine.subscriberJoined(lastEventID: "zz").0, .miss)
        XCTAssertEqual(machine.subscribers, 3, "a miss is not a subscriber")
    }

    func testBeforeTheHeadOnlyTheStartingIDCanJoin() {
        var machine = machine(startingAfter: "10")
        XCTAssertEqual(machine.subscriberJoined(lastEventID: "10").0, .awaitHead)
        XCTAssertEqual(machine.subscriberJoined(lastEventID: "9").0, .miss)
        XCTAssertEqual(machine.subscriberJoined(lastEventID: nil).0, .awaitHead)
        XCTAssertEqual(machine.upstreamConnected(now: clock), .sendRequest(lastEventID: "10"))
    }

    func testTheLastSubscriberLeavingEndsTheUpstreamAfterTheLingerAndAJoinCancelsIt() {
        var machine = streaming()
        XCTAssertEqual(machine.subscriberLeft(now: clock), .none)
        XCTAssertEqual(machine[.linger], clock + .seconds(2))
        clock = clock + .seconds(1)
        XCTAssertEqual(machine.subscriberJoined(lastEventID: nil).0, .live(replay: []))
        XCTAssertNil(machine[.linger])
        XCTAssertEqual(machine.timerFired(.linger, now: clock + .seconds(5)), .none, "a cancelled linger does nothing")
        XCTAssertEqual(machine.subscriberLeft(now: clock), .none)
        XCTAssertEqual(machine.timerFired(.linger, now: clock + .seconds(2)), .end(.idle))
        XCTAssertEqual(machine.upstream, .ended)
        XCTAssertEqual(machine.subscriberJoined(lastEventID: nil).0, .ended)
    }

    func testALostUpstreamIsRedialledBehindSubscribersWithLastEventIDAndRepeatsDropped() throws {
        var machine = streaming()
        _ = try deliver("id: 1\ndata: a\n\nid: 2\ndata: b\n\n", to: &machine)
        XCTAssertEqual(machine.upstreamClosed(UpstreamFailure(.reset, message: "reset"), now: clock), .none)
        XCTAssertEqual(machine.upstream, .waitingToReconnect)
        XCTAssertEqual(machine[.grace], clock + .seconds(10))
        let backoff = try XCTUnwrap(machine[.backoff])
        XCTAssertGreaterThanOrEqual(backoff, clock + .milliseconds(500))
        XCTAssertLessThanOrEqual(backoff, clock + .milliseconds(750), "jitter is at most half the delay")
        XCTAssertEqual(machine.subscriberJoined(lastEventID: nil).0, .live(replay: []), "joins go on during a reconnect")
        XCTAssertEqual(machine.timerFired(.backoff, now: backoff), .dial)
        XCTAssertEqual(machine.upstreamConnected(now: backoff), .sendRequest(lastEventID: "2"))
        XCTAssertEqual(machine.upstreamResponseHead(status: 200, isEventStream: true, now: backoff), .none, "no second head")
        XCTAssertNil(machine[.grace])
        // An upstream that replays from further back: what the ring holds is not sent twice.
        XCTAssertEqual(
            try deliver("id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\n", to: &machine), "id: 3\ndata: c\n\n"
        )
        XCTAssertEqual(try deliver("id: 2\ndata: later repeat\n\n", to: &machine), "id: 2\ndata: later repeat\n\n",
            "deduplication ends at the first new id")
        XCTAssertEqual(machine.reconnects, 1)
    }

    func testBackoffHonoursRetryAndDoublesUntilTheGraceEndsEveryone() throws {
        var machine = streaming()
        _ = try deliver("retry: 1000\nid: 1\ndata: a\n\n", to: &machine)
        XCTAssertEqual(machine.upstreamClosed(nil, now: clock), .none)
        var deadline = try XCTUnwrap(machine[.backoff])
        XCTAssertGreaterThanOrEqual(deadline, clock + .seconds(1), "the upstream's retry: is the first delay")
        XCTAssertEqual(machine.timerFired(.backoff, now: deadline), .dial)
        XCTAssertEqual(
            machine.upstreamConnectFailed(UpstreamFailure(.refused, message: "refused"), now: deadline), .none
        )
        let second = try XCTUnwrap(machine[.backoff])
        XCTAssertGreaterThanOrEqual(second, deadline + .seconds(2), "doubled")
        deadline = clock + .seconds(10)
        XCTAssertEqual(machine.timerFired(.grace, now: deadline), .end(.closed))
        XCTAssertNil(machine[.backoff])
    }

    func testAFirstFailureFailsTheWaitingSubscribersAndARefusalAfterTheHeadClosesThem() {
        var first = machine()
        _ = first.subscriberJoined(lastEventID: nil)
        XCTAssertEqual(
            first.upstreamConnectFailed(UpstreamFailure(.refused, message: "refused"), now: clock),
            .end(.failed(UpstreamFailure(.refused, message: "refused")))
        )
        var second = machine()
        _ = second.subscriberJoined(lastEventID: nil)
        _ = second.upstreamConnected(now: clock)
        guard case .end(.failed(let failure)) = second.upstreamResponseHead(status: 403, isEventStream: false, now: clock)
        else { return XCTFail("a 403 before any head fails the subscribers") }
        XCTAssertTrue(failure.message.contains("403"), failure.message)
        var third = streaming()
        _ = third.upstreamClosed(nil, now: clock)
        XCTAssertEqual(third.timerFired(.backoff, now: clock + .seconds(1)), .dial)
        _ = third.upstreamConnected(now: clock + .seconds(1))
        XCTAssertEqual(third.upstreamResponseHead(status: 401, isEventStream: false, now: clock), .end(.closed))
    }

    func testAResponseHeadTimeoutClosesTheUpstreamAndRedials() {
        var machine = streaming()
        _ = machine.upstreamClosed(nil, now: clock)
        XCTAssertEqual(machine.timerFired(.backoff, now: clock + .seconds(1)), .dial)
        _ = machine.upstreamConnected(now: clock + .seconds(1))
        XCTAssertEqual(machine.timerFired(.responseHeader, now: clock + .seconds(6)), .closeUpstream)
        XCTAssertEqual(machine.upstream, .waitingToReconnect)
        XCTAssertEqual(machine.upstreamClosed(nil, now: clock + .seconds(6)), .none, "the close it asked for is not a second loss")
        XCTAssertEqual(machine.reconnects, 2)
    }

    func testAnUpstreamLostWhileLingeringIsNotRedialled() {
        var machine = streaming()
        _ = machine.subscriberLeft(now: clock)
        XCTAssertEqual(machine.upstreamClosed(nil, now: clock), .end(.idle))
        XCTAssertNil(machine[.backoff])
    }

    func testAnEndlessEventThrows() {
        var machine = Machine(settings: settings, ring: ReplayRing(maxEvents: 4, maxBytes: 100), maxEventBytes: 16)
        _ = machine.subscriberJoined(lastEventID: nil)
        _ = machine.upstreamConnected(now: clock)
        _ = machine.upstreamResponseHead(status: 200, isEventStream: true, now: clock)
        XCTAssertThrowsError(try machine.upstreamBodyReceived(ByteBuffer(string: "data: " + String(repeating: "x", count: 40))))
    }

    func testTimerChangesAreReported() {
        var machine = streaming()
        _ = machine.takeTimerChanges()
        _ = machine.subscriberLeft(now: clock)
        XCTAssertEqual(machine.takeTimerChanges(), Machine.Timer.linger.bit)
        XCTAssertEqual(machine.takeTimerChanges(), 0)
    }
}
