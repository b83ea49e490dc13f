import GatewayCore
import NIOCore
import NIOHTTP1
import XCTest

/// A client connection subscribed to a shared stream: its own head, heartbeats, expiry, drain and slow-client bound.
final class ClientConnectionSubscriberTests: XCTestCase {
    typealias Machine = ClientConnectionStateMachine

    private var clock = NIODeadline.uptimeNanoseconds(1_000_000_000)
    private let settings = Machine.Settings(
        requestHeaderTimeout: .seconds(10), slowClientTimeout: .seconds(30), drainGrace: .seconds(10),
        retryJitterMilliseconds: 100
    )
    private let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/prices", headers: [:])

    private func joining(_ plan: Machine.ExchangePlan = .init(responseHeaderTimeout: .seconds(5)), limit: Int = 1000) -> Machine {
        var machine = Machine(settings: settings)
        machine.connectionActive(now: clock)
        XCTAssertEqual(machine.requestPartReceived(.head(head), now: clock), .admit(head))
        XCTAssertEqual(machine.requestPartReceived(.end(nil), now: clock), .none)
        XCTAssertEqual(machine.admissionDecided(.join(plan, bufferLimit: limit), now: clock), .join)
        XCTAssertEqual(machine.phase, .joining)
        return machine
    }

    private func subscribed(_ plan: Machine.ExchangePlan = .init(heartbeat: .seconds(15)), limit: Int = 1000) -> Machine {
        var machine = joining(plan, limit: limit)
        XCTAssertEqual(machine.sharedHeadArrived(), .writeSharedHead(closeConnection: false))
        XCTAssertEqual(machine.sharedHeadWritten(now: clock), .none)
        XCTAssertEqual(machine.phase, .subscribed)
        return machine
    }

    private func finish(_ action: Machine.Action, file: StaticString = #filePath, line: UInt = #line) -> Machine.ResponseFinish? {
        guard case .finishResponse(let finish) = action else {
            XCTFail("expected finishResponse, got \(action)", file: file, line: line)
            return nil
        }
        return finish
    }

    func testEventsAreWrittenAndCountedAndTheTurnEndsLikeAnyStream() {
        var machine = subscribed()
        XCTAssertEqual(machine.sharedEventsArrived(bytes: 30, events: 2, now: clock), .writeShared)
        XCTAssertEqual(machine.sharedEventsArrived(bytes: 10, events: 1, now: clock), .writeShared)
        XCTAssertEqual(machine.relayedEvents, 3)
        XCTAssertEqual(machine.relayedBodyBytes, 40)
        let ended = finish(machine.sharedStreamEnded(failure: nil, now: clock))
        XCTAssertEqual(ended?.outcome, .sharedStreamEnded)
        XCTAssertTrue(String(buffer: ended?.closingFrame ?? ByteBuffer()).hasPrefix("retry: "))
        XCTAssertEqual(ended?.then, .keepAlive(replayPipelined: false))
        XCTAssertEqual(ended?.releaseUpstream, false)
        XCTAssertEqual(machine.phase, .awaitingRequestHead)
    }

    func testHeartbeatsGoOutWhenNothingWasWritten() {
        var machine = subscribed()
        XCTAssertEqual(machine.timers[.heartbeat], clock + .seconds(15))
        clock = clock + .seconds(10)
        _ = machine.sharedEventsArrived(bytes: 10, events: 1, now: clock)
        XCTAssertEqual(machine.timerFired(.heartbeat, now: clock + .seconds(5)), .none, "an event was written 5 s ago")
        XCTAssertEqual(machine.timerFired(.heartbeat, now: clock + .seconds(15)), .writeFrame(SSEFrame.heartbeat))
    }

    func testEachSubscriberHasItsOwnTokenExpiry() {
        var machine = subscribed(.init(tokenExpiry: clock + .seconds(60)))
        XCTAssertEqual(machine.timers[.tokenExpiry], clock + .seconds(60))
        let ended = finish(machine.timerFired(.tokenExpiry, now: clock + .seconds(60)))
        XCTAssertEqual(ended?.outcome, .tokenExpired)
        XCTAssertTrue(String(buffer: ended?.closingFrame ?? ByteBuffer()).contains("event: token_expired"),
            "at once: a subscriber only ever has whole events")
    }

    func testASlowSubscriberIsClosedPastItsBufferAndRecoversBeforeIt() {
        var machine = subscribed(limit: 100)
        machine.clientWritabilityChanged(isWritable: false, now: clock)
        XCTAssertEqual(machine.sharedEventsArrived(bytes: 60, events: 1, now: clock), .writeShared)
        machine.clientWritabilityChanged(isWritable: true, now: clock)
        machine.clientWritabilityChanged(isWritable: false, now: clock)
        XCTAssertEqual(machine.sharedEventsArrived(bytes: 60, events: 1, now: clock), .writeShared, "the count restarts")
        guard case .abort(let abort) = machine.sharedEventsArrived(bytes: 60, events: 1, now: clock) else {
            return XCTFail("past its buffer a slow subscriber is closed")
        }
        XCTAssertEqual(abort.outcome, .slowClient)
        XCTAssertEqual(machine.phase, .closing)
        XCTAssertEqual(machine.sharedEventsArrived(bytes: 60, events: 1, now: clock), .none)
    }

    func testAMissDialsAPrivateUpstreamWithTheWholeRequest() {
        var machine = joining()
        XCTAssertEqual(machine.joinMissed(now: clock), .dial)
        XCTAssertEqual(machine.phase, .dialling)
        XCTAssertNil(machine.timers[.responseHeader])
        XCTAssertEqual(machine.upstreamConnected(isReused: false, now: clock), .sendRequest([.end(nil)]))
    }

    func testWaitingForTheHeadFailsOnTimeoutOrWhenTheStreamFails() {
        var timedOut = joining()
        XCTAssertEqual(timedOut.timers[.responseHeader], clock + .seconds(5))
        guard case .failExchange(let failure, _, _) = timedOut.timerFired(.responseHeader, now: clock + .seconds(5)) else {
            return XCTFail("no head in time: 504")
        }
        XCTAssertEqual(failure.kind, .responseHeaderTimeout)
        var failed = joining()
        let refused = UpstreamFailure(.refused, message: "refused")
        guard case .failExchange(let answered, _, _) = failed.sharedStreamEnded(failure: refused, now: clock) else {
            return XCTFail("the stream's failure is this request's answer")
        }
        XCTAssertEqual(answered, refused)
    }

    func testDrainEndsASubscriberAtOnceAndOneJoiningWhenItsHeadComes() {
        var machine = subscribed()
        XCTAssertEqual(finish(machine.quiesce(now: clock))?.outcome, .drained)
        var waiting = joining()
        XCTAssertEqual(waiting.quiesce(now: clock), .none)
        XCTAssertEqual(waiting.timers[.drainGrace], clock + .seconds(10))
        XCTAssertEqual(waiting.sharedHeadArrived(), .writeSharedHead(closeConnection: true))
        XCTAssertEqual(finish(waiting.sharedHeadWritten(now: clock))?.then, .closeAfterWrite)
    }

    func testTheClientLeavingAbandonsTheSubscription() {
        var machine = subscribed()
        XCTAssertEqual(machine.clientInactive(), .abandonExchange)
        XCTAssertEqual(machine.sharedEventsArrived(bytes: 1, events: 1, now: clock), .none)
    }
}
