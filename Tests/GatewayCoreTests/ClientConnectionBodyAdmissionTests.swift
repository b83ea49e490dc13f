import GatewayCore
import NIOCore
import NIOHTTP1
import XCTest

/// `readingBody`: admission that needs the request's body (a ticket mint), on a virtual clock.
final class ClientConnectionBodyAdmissionTests: XCTestCase {
    typealias Machine = ClientConnectionStateMachine

    private var clock = NIODeadline.uptimeNanoseconds(1_000_000_000)
    private let settings = Machine.Settings(requestHeaderTimeout: .seconds(10))
    private let created = Machine.LocalAnswer(.json(.created, "{}"), log: .none)

    private func mintHead(length: Int) -> HTTPRequestHead {
        HTTPRequestHead(
            version: .http1_1,
            method: .POST,
            uri: "/_sse/ticket",
            headers: ["content-length": String(length)]
        )
    }

    /// A machine whose mint head was admitted with `.readBody(limit:)`.
    private func reading(limit: Int = 16, length: Int = 10) -> Machine {
        var machine = Machine(settings: settings)
        machine.connectionActive(now: clock)
        XCTAssertEqual(
            machine.requestPartReceived(.head(mintHead(length: length)), now: clock),
            .admit(mintHead(length: length))
        )
        XCTAssertEqual(machine.admissionDecided(.readBody(limit: limit), now: clock), .none)
        XCTAssertEqual(machine.phase, .readingBody)
        return machine
    }

    func testTheBodyIsCollectedThenAdmittedThenAnswered() {
        var machine = reading()
        XCTAssertTrue(machine.clientReadRequested(), "the body is read while admission waits for it")
        XCTAssertEqual(
            machine.requestPartReceived(.body(ByteBuffer(string: "{\"url\":")), now: clock),
            .none
        )
        XCTAssertEqual(machine.requestPartReceived(.body(ByteBuffer(string: "1}")), now: clock), .none)
        XCTAssertEqual(
            machine.requestPartReceived(.end(nil), now: clock),
            .admitBody(ByteBuffer(string: "{\"url\":1}"))
        )
        XCTAssertEqual(machine.phase, .admitting)
        XCTAssertNil(machine.timers[.requestHead])
        XCTAssertEqual(
            machine.admissionDecided(.answer(created), now: clock),
            .answer(created, closeConnection: false, then: .keepAlive(replayPipelined: false)),
            "the whole request was read: the connection is kept"
        )
    }

    func testPartsThatArrivedDuringAdmissionAreCollectedFirst() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(mintHead(length: 2)), now: clock)
        XCTAssertEqual(machine.requestPartReceived(.body(ByteBuffer(string: "{}")), now: clock), .none)
        XCTAssertEqual(machine.requestPartReceived(.end(nil), now: clock), .none)
        XCTAssertEqual(
            machine.admissionDecided(.readBody(limit: 16), now: clock),
            .admitBody(ByteBuffer(string: "{}"))
        )
        XCTAssertEqual(machine.phase, .admitting)
    }

    func testABodyOverTheLimitIsAnswered413AndTheConnectionCloses() {
        var machine = reading(limit: 4, length: 5)
        let action = machine.requestPartReceived(.body(ByteBuffer(string: "12345")), now: clock)
        guard case .answer(let answer, let closeConnection, let then) = action,
            case .error(let error) = answer.content
        else { return XCTFail("expected an answer, got \(action)") }
        XCTAssertEqual(error.status, .payloadTooLarge)
        XCTAssertTrue(closeConnection)
        XCTAssertEqual(then, .closeAfterWrite)
        XCTAssertEqual(
            machine.requestPartReceived(.end(nil), now: clock),
            .none,
            "the rest is never admitted"
        )
    }

    func testABodyThatTricklesIsAnswered408AtTheRequestHeadTimeout() {
        var machine = reading()
        XCTAssertEqual(machine.timers[.requestHead], clock + .seconds(10))
        _ = machine.requestPartReceived(.body(ByteBuffer(string: "{")), now: clock)
        clock = clock + .seconds(10)
        let action = machine.timerFired(.requestHead, now: clock)
        guard case .answer(let answer, true, .closeAfterWrite) = action,
            case .error(let error) = answer.content
        else {
            return XCTFail("expected a closing answer, got \(action)")
        }
        XCTAssertEqual(error.status, .requestTimeout)
    }

    func testAPipelinedRequestWaitsForTheMintAnswer() {
        var machine = reading(length: 2)
        _ = machine.requestPartReceived(.body(ByteBuffer(string: "{}")), now: clock)
        XCTAssertEqual(
            machine.requestPartReceived(.end(nil), now: clock),
            .admitBody(ByteBuffer(string: "{}"))
        )
        let next = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/events/x")
        XCTAssertEqual(machine.requestPartReceived(.head(next), now: clock), .none, "queued")
        XCTAssertEqual(
            machine.admissionDecided(.answer(created), now: clock),
            .answer(created, closeConnection: false, then: .keepAlive(replayPipelined: true))
        )
    }

    func testTheClientLeavingWhileTheBodyIsReadEndsQuietly() {
        var machine = reading()
        XCTAssertEqual(machine.clientInactive(), .none)
        XCTAssertEqual(machine.phase, .closed)
    }

    func testDrainingWhileTheBodyIsReadLetsTheMintFinish() {
        var machine = reading(length: 2)
        XCTAssertEqual(machine.quiesce(now: clock), .none)
        _ = machine.requestPartReceived(.body(ByteBuffer(string: "{}")), now: clock)
        XCTAssertEqual(
            machine.requestPartReceived(.end(nil), now: clock),
            .admitBody(ByteBuffer(string: "{}"))
        )
        XCTAssertEqual(
            machine.admissionDecided(.answer(created), now: clock),
            .answer(created, closeConnection: true, then: .closeAfterWrite)
        )
    }
}
