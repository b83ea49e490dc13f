import GatewayCore
import NIOCore
import NIOHTTP1
import XCTest

/// Every transition of `ClientConnectionStateMachine`, tested by the actions it returns, on a virtual clock (a
/// `NIODeadline` the test advances; nothing sleeps).
final class ClientConnectionStateMachineTests: XCTestCase {
    typealias Machine = ClientConnectionStateMachine
    typealias Action = Machine.Action

    private var clock = NIODeadline.uptimeNanoseconds(1_000_000_000)
    private let settings = Machine.Settings(
        requestHeaderTimeout: .seconds(10), slowClientTimeout: .seconds(30), drainGrace: .seconds(10),
        retryJitterMilliseconds: 100
    )

    private func advance(_ amount: TimeAmount) { clock = clock + amount }

    private func head(_ method: HTTPMethod = .GET, _ headers: [(String, String)] = []) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: "/events/x", headers: HTTPHeaders(headers))
    }

    private func sse(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    /// A machine whose GET went upstream and whose event-stream response head was written.
    private func relaying(
        _ plan: Machine.ExchangePlan = .init(),
        isEventStream: Bool = true,
        http2: Bool = false,
        reused: Bool = false
    ) -> Machine {
        var settings = settings
        settings.isHTTP2 = http2
        var machine = Machine(settings: settings)
        machine.connectionActive(now: clock)
        XCTAssertEqual(machine.requestPartReceived(.head(head()), now: clock), .admit(head()))
        XCTAssertEqual(machine.requestPartReceived(.end(nil), now: clock), .none)
        XCTAssertEqual(machine.admissionDecided(.forward(plan), now: clock), .dial)
        XCTAssertEqual(machine.upstreamConnected(isReused: reused, now: clock), .sendRequest([.end(nil)]))
        XCTAssertEqual(machine.upstreamResponseHead(isKeepAlive: true), .writeResponseHead(closeConnection: false))
        XCTAssertEqual(machine.responseHeadWritten(isEventStream: isEventStream, passesChunkedWire: false, now: clock), .none)
        XCTAssertEqual(machine.phase, .relaying)
        return machine
    }

    private func finish(_ action: Action, file: StaticString = #filePath, line: UInt = #line) -> Machine.ResponseFinish? {
        guard case .finishResponse(let finish) = action else {
            XCTFail("expected finishResponse, got \(action)", file: file, line: line)
            return nil
        }
        return finish
    }

    // MARK: Request head and admission

    func testRequestHeadTimerRunsUntilAHeadArrivesAndClosesAnIdleConnection() {
        var machine = Machine(settings: settings)
        machine.connectionActive(now: clock)
        XCTAssertEqual(machine.timers[.requestHead], clock + .seconds(10))
        advance(.seconds(9))
        XCTAssertEqual(machine.timerFired(.requestHead, now: clock), .none, "not yet due: a stale firing does nothing")
        advance(.seconds(1))
        XCTAssertEqual(machine.timerFired(.requestHead, now: clock), .close)
    }

    func testHeadStopsTheRequestHeadTimerAndAsksForAdmission() {
        var machine = Machine(settings: settings)
        machine.connectionActive(now: clock)
        _ = machine.timers.takeChanges()
        XCTAssertEqual(machine.requestPartReceived(.head(head()), now: clock), .admit(head()))
        XCTAssertNil(machine.timers[.requestHead])
        XCTAssertNotEqual(machine.timers.takeChanges() & ConnectionTimers.Kind.requestHead.bit, 0)
        XCTAssertEqual(machine.phase, .admitting)
    }

    func testLocalAnswerBeforeTheRequestEndWaitsForItThenKeepsTheConnection() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head()), now: clock)
        let answer = Machine.LocalAnswer(.error(.notFound()), log: .rejected(route: nil, reason: "not_found"))
        XCTAssertEqual(
            machine.admissionDecided(.answer(answer), now: clock),
            .answer(answer, closeConnection: false, then: .awaitRequestEnd)
        )
        XCTAssertEqual(machine.requestPartReceived(.end(nil), now: clock), .turnEnded(.keepAlive(replayPipelined: false)))
        XCTAssertEqual(machine.phase, .awaitingRequestHead)
        XCTAssertEqual(machine.timers[.requestHead], clock + .seconds(10))
    }

    func testLocalAnswerToARequestWithAnUnreadBodyClosesTheConnection() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head(.POST, [("content-length", "5")])), now: clock)
        let answer = Machine.LocalAnswer(.error(.notFound()), log: .none)
        XCTAssertEqual(
            machine.admissionDecided(.answer(answer), now: clock),
            .answer(answer, closeConnection: true, then: .closeAfterWrite)
        )
        XCTAssertEqual(machine.requestPartReceived(.body(sse("hello")), now: clock), .none, "discarded")
    }

    func testConnectionCloseRequestIsAnsweredWithConnectionClose() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head(.GET, [("connection", "close")])), now: clock)
        _ = machine.requestPartReceived(.end(nil), now: clock)
        let answer = Machine.LocalAnswer(.empty(.noContent), log: .none)
        XCTAssertEqual(
            machine.admissionDecided(.answer(answer), now: clock),
            .answer(answer, closeConnection: true, then: .closeAfterWrite)
        )
    }

    func testKeyRefreshHoldsTheRequestBodyAndClientReadsUntilTheDecision() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head(.POST, [("content-length", "2")])), now: clock)
        XCTAssertEqual(machine.admissionDecided(.refreshKeys, now: clock), .refreshKeys)
        XCTAssertFalse(machine.clientReadRequested(), "no body read while the request's fate is open")
        XCTAssertEqual(machine.requestPartReceived(.body(sse("hi")), now: clock), .none)
        XCTAssertEqual(machine.admissionDecided(.forward(.init()), now: clock), .dial)
        XCTAssertFalse(machine.takeClientRead(), "still no upstream to take the body")
        XCTAssertEqual(machine.upstreamConnected(isReused: false, now: clock), .sendRequest([.body(.byteBuffer(sse("hi")))]))
        XCTAssertTrue(machine.takeClientRead(), "the upstream can take the rest of the body")
        XCTAssertEqual(machine.clientReadComplete(), .flushUpstream, "body parts written upstream go out per read")
        XCTAssertEqual(machine.requestPartReceived(.end(nil), now: clock), .none, "the end waits for the read's end")
        XCTAssertEqual(machine.clientReadComplete(), .forwardEnd(.end(nil)))
    }

    func testClientLeavingDuringAKeyRefreshIgnoresTheLateDecision() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head()), now: clock)
        _ = machine.admissionDecided(.refreshKeys, now: clock)
        XCTAssertEqual(machine.clientInactive(), .none, "no exchange yet: nothing to abandon")
        XCTAssertEqual(machine.admissionDecided(.forward(.init()), now: clock), .none)
    }

    // MARK: Upstream request and response

    func testRequestBodyWaitsForTheUpstreamAndThenFlowsWithItsWritability() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head(.POST, [("transfer-encoding", "chunked")])), now: clock)
        XCTAssertEqual(machine.admissionDecided(.forward(.init()), now: clock), .dial)
        XCTAssertEqual(machine.requestPartReceived(.body(sse("a")), now: clock), .none)
        XCTAssertFalse(machine.clientReadRequested())
        XCTAssertEqual(machine.clientReadComplete(), .none)
        XCTAssertEqual(machine.upstreamConnected(isReused: false, now: clock), .sendRequest([.body(.byteBuffer(sse("a")))]))
        XCTAssertEqual(machine.timers[.responseHeader], clock + .seconds(30))
        XCTAssertTrue(machine.takeClientRead())
        machine.upstreamWritabilityChanged(isWritable: false)
        XCTAssertFalse(machine.clientReadRequested(), "upstream full: the client's body waits in its socket")
        machine.upstreamWritabilityChanged(isWritable: true)
        XCTAssertTrue(machine.takeClientRead())
        XCTAssertEqual(machine.requestPartReceived(.body(sse("b")), now: clock), .forwardRequestPart(.body(.byteBuffer(sse("b")))))
    }

    func testEventStreamHeadArmsItsTimersFromThePlan() {
        let expiry = clock + .seconds(100)
        let plan = Machine.ExchangePlan(
            idleTimeout: .seconds(5), heartbeat: .seconds(15), maxStreamDuration: .seconds(3600), tokenExpiry: expiry
        )
        let machine = relaying(plan)
        XCTAssertNil(machine.timers[.responseHeader])
        XCTAssertEqual(machine.timers[.heartbeat], clock + .seconds(15))
        XCTAssertEqual(machine.timers[.upstreamIdle], clock + .seconds(5))
        XCTAssertEqual(machine.timers[.tokenExpiry], expiry)
        XCTAssertEqual(machine.timers[.maxDuration], clock + .seconds(3600))
    }

    func testPlainResponseArmsOnlyTheIdleTimer() {
        let plan = Machine.ExchangePlan(
            idleTimeout: .seconds(5), heartbeat: .seconds(15), maxStreamDuration: .seconds(60), tokenExpiry: clock
        )
        let machine = relaying(plan, isEventStream: false)
        XCTAssertEqual(Set(machine.timers.armed.keys), [.upstreamIdle])
    }

    func testBodyIsWrittenAndFlushedOncePerRead() {
        var machine = relaying()
        XCTAssertEqual(machine.upstreamBodyReceived(sse("data: 1\n\n"), now: clock), .writeBody)
        XCTAssertEqual(machine.upstreamBodyReceived(sse("data: 2\n\n"), now: clock), .writeBody)
        XCTAssertTrue(machine.upstreamReadComplete(now: clock))
        XCTAssertFalse(machine.upstreamReadComplete(now: clock), "nothing new to flush")
        XCTAssertEqual(machine.relay?.relayedEvents, 2)
    }

    func testCompleteResponseReleasesTheUpstreamAndKeepsTheClient() {
        var machine = relaying()
        let end = finish(machine.upstreamEnded(now: clock))
        XCTAssertEqual(end?.releaseUpstream, true)
        XCTAssertEqual(end?.outcome, .upstreamClosed)
        XCTAssertEqual(end?.then, .keepAlive(replayPipelined: false))
        XCTAssertEqual(machine.phase, .awaitingRequestHead)
        XCTAssertEqual(Set(machine.timers.armed.keys), [.requestHead])
    }

    func testUpstreamCloseOfAnEventStreamEndsItCleanlyWithoutReuse() {
        var machine = relaying()
        let end = finish(machine.upstreamClosed(.closed, now: clock))
        XCTAssertEqual(end?.releaseUpstream, false)
        XCTAssertEqual(end?.outcome, .upstreamClosed)
    }

    func testUpstreamResetMidStreamAbortsTheClient() {
        var machine = relaying()
        XCTAssertEqual(
            machine.upstreamClosed(.failed(UpstreamFailure(.reset, message: "reset")), now: clock),
            .abort(.init(prefix: nil, outcome: .upstreamReset, upstreamError: .reset, afterWritten: false))
        )
        XCTAssertEqual(machine.phase, .closing)
    }

    func testTruncatedPlainBodyAbortsTheClient() {
        var machine = relaying(isEventStream: false)
        XCTAssertEqual(
            machine.upstreamClosed(.closed, now: clock),
            .abort(.init(prefix: nil, outcome: .upstreamTruncated, upstreamError: nil, afterWritten: false))
        )
    }

    func testHTTP2StreamEndsByItselfAfterItsResponse() {
        var machine = relaying(http2: true)
        XCTAssertEqual(finish(machine.upstreamEnded(now: clock))?.then, .streamDone)
    }

    // MARK: Upstream failures before the response head

    func testConnectFailureIsAnsweredAndTheConnectionKept() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head()), now: clock)
        _ = machine.requestPartReceived(.end(nil), now: clock)
        _ = machine.admissionDecided(.forward(.init()), now: clock)
        let failure = UpstreamFailure(.refused, message: "refused")
        XCTAssertEqual(
            machine.upstreamConnectFailed(failure, now: clock),
            .failExchange(failure, closeConnection: false, then: .keepAlive(replayPipelined: false))
        )
        XCTAssertEqual(failure.gatewayError.status, .badGateway)
    }

    func testResponseHeaderTimeoutIsA504() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head()), now: clock)
        _ = machine.requestPartReceived(.end(nil), now: clock)
        _ = machine.admissionDecided(.forward(.init(responseHeaderTimeout: .seconds(2))), now: clock)
        _ = machine.upstreamConnected(isReused: false, now: clock)
        advance(.seconds(2))
        guard case .failExchange(let failure, false, _) = machine.timerFired(.responseHeader, now: clock) else {
            return XCTFail("expected a failure")
        }
        XCTAssertEqual(failure.kind, .responseHeaderTimeout)
        XCTAssertEqual(failure.message, "upstream sent no response head within 2s")
        XCTAssertEqual(failure.gatewayError.status, .gatewayTimeout)
    }

    func testStalePooledConnectionIsRetriedOnceForAGet() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head()), now: clock)
        _ = machine.requestPartReceived(.end(nil), now: clock)
        _ = machine.admissionDecided(.forward(.init()), now: clock)
        _ = machine.upstreamConnected(isReused: true, now: clock)
        XCTAssertEqual(machine.upstreamClosed(.closed, now: clock), .dial)
        XCTAssertNil(machine.timers[.responseHeader])
        XCTAssertEqual(machine.upstreamConnected(isReused: true, now: clock), .sendRequest([.end(nil)]))
        guard case .failExchange(let failure, _, _) = machine.upstreamClosed(.closed, now: clock) else {
            return XCTFail("a second stale connection is not retried")
        }
        XCTAssertEqual(failure.kind, .closed)
        XCTAssertEqual(failure.message, "upstream closed before responding: connection closed")
    }

    func testFreshConnectionClosingBeforeItsHeadIsNotRetried() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head()), now: clock)
        _ = machine.requestPartReceived(.end(nil), now: clock)
        _ = machine.admissionDecided(.forward(.init()), now: clock)
        _ = machine.upstreamConnected(isReused: false, now: clock)
        guard case .failExchange(let failure, _, _) = machine.upstreamClosed(
            .failed(UpstreamFailure(.tls, message: "handshake failed")), now: clock
        ) else { return XCTFail("expected a failure") }
        XCTAssertEqual(failure.kind, .tls)
    }

    func testMalformedResponseIsNeverRetried() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head()), now: clock)
        _ = machine.requestPartReceived(.end(nil), now: clock)
        _ = machine.admissionDecided(.forward(.init()), now: clock)
        _ = machine.upstreamConnected(isReused: true, now: clock)
        guard case .failExchange(let failure, _, _) = machine.upstreamClosed(
            .failed(UpstreamFailure(.protocolError, message: "obs-fold")), now: clock
        ) else { return XCTFail("expected a failure") }
        XCTAssertEqual(failure.kind, .protocolError)
        XCTAssertEqual(failure.message, "upstream sent a malformed response: obs-fold")
    }

    // MARK: Backpressure and slow clients

    func testUnwritableClientHoldsUpstreamReadsUntilItDrains() {
        var machine = relaying()
        XCTAssertTrue(machine.upstreamReadRequested())
        machine.clientWritabilityChanged(isWritable: false, now: clock)
        XCTAssertEqual(machine.timers[.slowClient], clock + .seconds(30))
        XCTAssertFalse(machine.upstreamReadRequested(), "held while the client cannot take more")
        XCTAssertFalse(machine.takeUpstreamRead())
        machine.clientWritabilityChanged(isWritable: true, now: clock)
        XCTAssertNil(machine.timers[.slowClient])
        XCTAssertTrue(machine.takeUpstreamRead(), "the held read goes out")
        XCTAssertFalse(machine.takeUpstreamRead(), "once")
    }

    func testClientUnwritableForTheSlowClientTimeoutIsDropped() {
        var machine = relaying()
        machine.clientWritabilityChanged(isWritable: false, now: clock)
        advance(.seconds(30))
        XCTAssertEqual(
            machine.timerFired(.slowClient, now: clock),
            .abort(.init(prefix: nil, outcome: .slowClient, upstreamError: nil, afterWritten: false))
        )
    }

    func testIdleTimerIgnoresTimeWhileReadsAreHeldForASlowClient() {
        var machine = relaying(.init(idleTimeout: .seconds(5)))
        machine.clientWritabilityChanged(isWritable: false, now: clock)
        XCTAssertFalse(machine.upstreamReadRequested())
        advance(.seconds(5))
        XCTAssertEqual(machine.timerFired(.upstreamIdle, now: clock), .none, "backpressure is not upstream silence")
        XCTAssertEqual(machine.timers[.upstreamIdle], clock + .seconds(5))
        advance(.seconds(3))
        machine.clientWritabilityChanged(isWritable: true, now: clock)
        XCTAssertTrue(machine.takeUpstreamRead())
        advance(.seconds(2))
        XCTAssertEqual(machine.timerFired(.upstreamIdle, now: clock), .none, "silent for 2 s of reading only")
        XCTAssertEqual(machine.timers[.upstreamIdle], clock + .seconds(3))
        advance(.seconds(3))
        XCTAssertEqual(finish(machine.timerFired(.upstreamIdle, now: clock))?.outcome, .upstreamIdle)
    }

    func testIdleTimerCountsFromTheLastUpstreamRead() {
        var machine = relaying(.init(idleTimeout: .seconds(5)))
        advance(.seconds(4))
        _ = machine.upstreamBodyReceived(sse("data: x\n\n"), now: clock)
        _ = machine.upstreamReadComplete(now: clock)
        advance(.seconds(1))
        XCTAssertEqual(machine.timerFired(.upstreamIdle, now: clock), .none)
        XCTAssertEqual(machine.timers[.upstreamIdle], clock + .seconds(4))
    }

    func testIdleInTheMiddleOfAnEventAbortsTheClient() {
        var machine = relaying(.init(idleTimeout: .seconds(5)))
        _ = machine.upstreamBodyReceived(sse("data: half"), now: clock)
        _ = machine.upstreamReadComplete(now: clock)
        advance(.seconds(5))
        XCTAssertEqual(
            machine.timerFired(.upstreamIdle, now: clock),
            .abort(.init(prefix: nil, outcome: .upstreamIdle, upstreamError: nil, afterWritten: false))
        )
    }

    // MARK: Heartbeats, expiry, duration, drain

    func testHeartbeatIsWrittenOnlyAfterAQuietInterval() {
        var machine = relaying(.init(heartbeat: .seconds(15)))
        advance(.seconds(10))
        _ = machine.upstreamBodyReceived(sse("data: 1\n\n"), now: clock)
        XCTAssertTrue(machine.upstreamReadComplete(now: clock))
        advance(.seconds(5))
        XCTAssertEqual(machine.timerFired(.heartbeat, now: clock), .none, "an event went out 5 s ago")
        XCTAssertEqual(machine.timers[.heartbeat], clock + .seconds(10))
        advance(.seconds(10))
        XCTAssertEqual(machine.timerFired(.heartbeat, now: clock), .writeFrame(SSEFrame.heartbeat))
        XCTAssertEqual(machine.timers[.heartbeat], clock + .seconds(15))
    }

    func testNoHeartbeatInsideAnEvent() {
        var machine = relaying(.init(heartbeat: .seconds(15)))
        _ = machine.upstreamBodyReceived(sse("data: par"), now: clock)
        _ = machine.upstreamReadComplete(now: clock)
        advance(.seconds(15))
        XCTAssertEqual(machine.timerFired(.heartbeat, now: clock), .none)
        XCTAssertEqual(machine.timers[.heartbeat], clock + .seconds(15))
    }

    func testTokenExpiryAtABoundaryEndsTheStreamWithTokenExpired() {
        var machine = relaying(.init(tokenExpiry: clock + .seconds(60)))
        advance(.seconds(60))
        let end = finish(machine.timerFired(.tokenExpiry, now: clock))
        XCTAssertEqual(end?.outcome, .tokenExpired)
        XCTAssertEqual(end?.closingFrame, SSEFrame.tokenExpired(retryMilliseconds: 2000))
        XCTAssertEqual(end?.releaseUpstream, false)
    }

    func testTokenExpiryMidEventEndsAfterTheEventCompletes() {
        var machine = relaying(.init(tokenExpiry: clock + .seconds(60)))
        _ = machine.upstreamBodyReceived(sse("id: 1\ndata: a"), now: clock)
        advance(.seconds(60))
        XCTAssertEqual(machine.timerFired(.tokenExpiry, now: clock), .none)
        let end = finish(machine.upstreamBodyReceived(sse("b\n\nid: 2\n"), now: clock))
        XCTAssertEqual(end?.prefix, .decoded(length: 3), "the rest of event 1 goes out, event 2 does not")
        XCTAssertEqual(end?.outcome, .tokenExpired)
    }

    func testMaxDurationEndsWithAJitteredRetryHint() {
        var machine = relaying(.init(maxStreamDuration: .seconds(3600)))
        advance(.seconds(3600))
        let end = finish(machine.timerFired(.maxDuration, now: clock))
        XCTAssertEqual(end?.outcome, .maxDuration)
        let frame = end?.closingFrame.map { String(buffer: $0) } ?? ""
        XCTAssertTrue(frame.hasPrefix("retry: ") && frame.hasSuffix("\n\n"), frame)
        XCTAssertLessThanOrEqual(Int(frame.dropFirst(7).dropLast(2)) ?? -1, 100)
    }

    func testDrainClosesAnIdleConnectionAtOnce() {
        var machine = Machine(settings: settings)
        machine.connectionActive(now: clock)
        XCTAssertEqual(machine.quiesce(now: clock), .close)
    }

    func testDrainEndsAStreamAtItsBoundaryAndClosesTheConnection() {
        var machine = relaying()
        let end = finish(machine.quiesce(now: clock))
        XCTAssertEqual(end?.outcome, .drained)
        XCTAssertEqual(end?.then, .closeAfterWrite)
        XCTAssertNotNil(machine.timers[.drainGrace])
    }

    func testDrainGraceClosesWhatIsStillOpen() {
        var machine = relaying(isEventStream: false)
        XCTAssertEqual(machine.quiesce(now: clock), .none, "a plain body cannot be cut: it gets the grace period")
        advance(.seconds(10))
        XCTAssertEqual(machine.timerFired(.drainGrace, now: clock), .close)
    }

    func testDrainDuringDiallingEndsTheStreamRightAfterItsHead() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head()), now: clock)
        _ = machine.requestPartReceived(.end(nil), now: clock)
        _ = machine.admissionDecided(.forward(.init()), now: clock)
        XCTAssertEqual(machine.quiesce(now: clock), .none)
        _ = machine.upstreamConnected(isReused: false, now: clock)
        XCTAssertEqual(machine.upstreamResponseHead(isKeepAlive: true), .writeResponseHead(closeConnection: true))
        XCTAssertEqual(
            finish(machine.responseHeadWritten(isEventStream: true, passesChunkedWire: false, now: clock))?.outcome,
            .drained
        )
    }

    // MARK: Pipelining, errors, the end of the connection

    func testPipelinedRequestWaitsForTheResponseBeforeIt() {
        var machine = relaying()
        XCTAssertEqual(machine.requestPartReceived(.head(head()), now: clock), .none, "queued")
        XCTAssertEqual(machine.requestPartReceived(.end(nil), now: clock), .none)
        XCTAssertFalse(machine.clientReadRequested(), "no further reads while a request waits")
        XCTAssertEqual(finish(machine.upstreamEnded(now: clock))?.then, .keepAlive(replayPipelined: true))
        XCTAssertEqual(machine.nextPipelinedPart(), .head(head()))
        XCTAssertEqual(machine.pipelinedPartReplayed(.head(head()), now: clock), .admit(head()))
        XCTAssertEqual(machine.nextPipelinedPart(), .end(nil))
        XCTAssertEqual(machine.pipelinedPartReplayed(.end(nil), now: clock), .none)
        XCTAssertNil(machine.nextPipelinedPart())
        XCTAssertTrue(machine.takeClientRead(), "the held read goes out once the queue is empty")
    }

    func testNothingAfterAConnectionCloseRequestIsAnswered() {
        var machine = relaying()
        XCTAssertEqual(machine.requestPartReceived(.head(head()), now: clock), .none)
        XCTAssertEqual(machine.requestFailed(.bytesAfterClose, now: clock), .none)
        XCTAssertEqual(finish(machine.upstreamEnded(now: clock))?.then, .closeAfterWrite)
        XCTAssertNil(machine.nextPipelinedPart())
    }

    func testMalformedRequestIsAnsweredWhenNoResponseHasStarted() {
        var machine = Machine(settings: settings)
        let answer = Machine.LocalAnswer(.error(.headersTooLarge()), log: .malformedRequest)
        XCTAssertEqual(
            machine.requestFailed(.malformed(.headersTooLarge()), now: clock),
            .answer(answer, closeConnection: true, then: .closeAfterWrite)
        )
    }

    func testClientLeavingAbandonsTheExchangeAndClearsEveryTimer() {
        var machine = relaying(.init(idleTimeout: .seconds(5), heartbeat: .seconds(1)))
        XCTAssertEqual(machine.clientInactive(), .abandonExchange)
        XCTAssertTrue(machine.timers.armed.isEmpty)
        XCTAssertEqual(machine.phase, .closed)
        XCTAssertEqual(machine.requestPartReceived(.head(head()), now: clock), .none)
    }

    // MARK: Malformed request bodies

    /// A machine whose chunked POST went upstream without its end yet.
    private func uploading() -> Machine {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head(.POST, [("transfer-encoding", "chunked")])), now: clock)
        _ = machine.admissionDecided(.forward(.init()), now: clock)
        _ = machine.upstreamConnected(isReused: false, now: clock)
        XCTAssertEqual(machine.requestPartReceived(.body(sse("a")), now: clock), .forwardRequestPart(.body(.byteBuffer(sse("a")))))
        return machine
    }

    func testInvalidChunkBeforeAnyResponseIs400AndTheUpstreamNeverSeesAnEnd() {
        var machine = uploading()
        XCTAssertEqual(
            machine.requestFailed(.malformed(.badRequest("bad chunk")), now: clock),
            .rejectExchange(.badRequest("bad chunk"), closeConnection: true, then: .closeAfterWrite)
        )
        XCTAssertEqual(machine.clientReadComplete(), .none)
    }

    func testBodyLongerThanItsLengthIsRefusedBeforeItsEndGoesUpstream() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head(.POST, [("content-length", "1")])), now: clock)
        _ = machine.admissionDecided(.forward(.init()), now: clock)
        _ = machine.upstreamConnected(isReused: false, now: clock)
        _ = machine.requestPartReceived(.body(sse("a")), now: clock)
        XCTAssertEqual(machine.requestPartReceived(.end(nil), now: clock), .none)
        // The extra bytes, in the same read, are no request.
        guard case .rejectExchange(_, true, .closeAfterWrite) = machine.requestFailed(
            .malformed(.badRequest("x")), now: clock
        ) else { return XCTFail("expected the exchange to be refused") }
        XCTAssertEqual(machine.clientReadComplete(), .none, "the held end never goes upstream")
    }

    func testMalformedBytesAfterAForwardedRequestEndTheConnectionAfterItsResponse() {
        var machine = relaying()
        XCTAssertEqual(machine.requestFailed(.malformed(.badRequest("x")), now: clock), .none)
        XCTAssertEqual(finish(machine.upstreamEnded(now: clock))?.then, .closeAfterWrite)
    }

    func testInvalidChunkDuringAResponseAbortsTheExchange() {
        var machine = uploading()
        _ = machine.upstreamResponseHead(isKeepAlive: true)
        _ = machine.responseHeadWritten(isEventStream: true, passesChunkedWire: false, now: clock)
        XCTAssertEqual(
            machine.requestFailed(.malformed(.badRequest("x")), now: clock),
            .abort(.init(prefix: nil, outcome: .error, upstreamError: nil, afterWritten: false))
        )
    }

    func testInvalidChunkWhileDiallingIsAnswered() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head(.POST, [("transfer-encoding", "chunked")])), now: clock)
        _ = machine.admissionDecided(.forward(.init()), now: clock)
        guard case .rejectExchange = machine.requestFailed(.malformed(.badRequest("x")), now: clock) else {
            return XCTFail("expected the exchange to be refused")
        }
    }

    func testInvalidChunkDuringAKeyRefreshIsAnswered() {
        var machine = Machine(settings: settings)
        _ = machine.requestPartReceived(.head(head(.POST, [("transfer-encoding", "chunked")])), now: clock)
        _ = machine.admissionDecided(.refreshKeys, now: clock)
        guard case .answer(_, true, .closeAfterWrite) = machine.requestFailed(.malformed(.badRequest("x")), now: clock)
        else { return XCTFail("expected a 400") }
        XCTAssertEqual(machine.admissionDecided(.forward(.init()), now: clock), .none, "the late decision is ignored")
    }
}
