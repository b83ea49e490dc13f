import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import sse_load

/// The parser state a reconnect depends on: the last event id (committed only when its event is dispatched), the
/// `retry:` hint and the comment count, all kept across `startConnection()`.
final class SSEParserReconnectTests: XCTestCase {
    private func feed(_ parser: inout SSEParser, _ text: String) -> [String] {
        var seen: [String] = []
        parser.feed(Array(text.utf8)) { seen.append(String(decoding: $0, as: UTF8.self)) }
        return seen
    }

    private func lastID(_ parser: SSEParser) -> String { String(decoding: parser.lastEventID, as: UTF8.self) }

    func testIDCountsOnlyOnceItsEventIsDispatched() {
        var parser = SSEParser()
        XCTAssertEqual(feed(&parser, "id: 1\ndata: a\n\nid: 2\ndata: b\n"), ["a"])
        XCTAssertEqual(lastID(parser), "1", "event 2 was cut off: a reconnect must resume after 1, not 2")
        XCTAssertEqual(feed(&parser, "\n"), ["b"])
        XCTAssertEqual(lastID(parser), "2")
    }

    func testNewConnectionDropsThePartialEventAndKeepsTheLastID() {
        var parser = SSEParser()
        _ = feed(&parser, "id: 7\ndata: a\n\nid: 8\ndata: par")
        parser.startConnection()
        XCTAssertEqual(feed(&parser, "tial\n\n"), [], "the partial line is gone, so 'tial' alone is no field")
        XCTAssertEqual(lastID(parser), "7")
        XCTAssertEqual(feed(&parser, "data: c\n\n"), ["c"])
        XCTAssertEqual(lastID(parser), "7", "the id buffer starts the new connection at the last event id")
    }

    func testRetryCommentsAndIDsWithNUL() {
        var parser = SSEParser()
        XCTAssertNil(parser.retryMillis)
        _ = feed(&parser, "retry: 2500\n: keep-alive\n:\nretry: 12a\nretry:\n\n")
        XCTAssertEqual(parser.retryMillis, 2500, "a retry: with anything but digits is ignored")
        XCTAssertEqual(parser.comments, 2)
        _ = feed(&parser, "id: 3\n\nid: 4\u{0}\n\n")
        XCTAssertEqual(lastID(parser), "3")
        parser.startConnection()
        XCTAssertEqual(parser.retryMillis, 2500)
        XCTAssertEqual(parser.comments, 2)
    }
}

final class StreamLedgerTests: XCTestCase {
    func testInOrderGapDuplicateReorderOnOneConnection() {
        var ledger = StreamLedger()
        XCTAssertNil(ledger.lastEventID)
        XCTAssertEqual(ledger.record(sequence: 5), .first)
        XCTAssertEqual(ledger.record(sequence: 6), .inOrder)
        XCTAssertEqual(ledger.record(sequence: 9), .gap(missing: 2))
        XCTAssertEqual(ledger.record(sequence: 9), .duplicate)
        XCTAssertEqual(ledger.record(sequence: 8), .reorder)
        XCTAssertEqual(ledger.record(sequence: 10), .inOrder)
        XCTAssertEqual([ledger.events, ledger.gaps, ledger.duplicates, ledger.reorders], [6, 2, 1, 1])
        XCTAssertEqual(ledger.lastEventID, 10)
        XCTAssertEqual([ledger.disconnects, ledger.resumes, ledger.resumeGaps, ledger.rewinds], [0, 0, 0, 0])
    }

    func testExactResumeAcrossAReconnectIsNoGap() {
        var ledger = StreamLedger()
        for sequence in 1...4 as ClosedRange<UInt64> { ledger.record(sequence: sequence) }
        ledger.connectionEnded()
        XCTAssertEqual(ledger.record(sequence: 5), .inOrder)
        XCTAssertEqual(ledger.record(sequence: 6), .inOrder)
        XCTAssertEqual([ledger.disconnects, ledger.resumes, ledger.gaps, ledger.rewinds], [1, 1, 0, 0])
    }

    func testGapsAreJudgedAcrossReconnects() {
        var ledger = StreamLedger()
        ledger.record(sequence: 1)
        ledger.record(sequence: 2)
        ledger.connectionEnded()
        XCTAssertEqual(ledger.record(sequence: 5), .gap(missing: 2), "3 and 4 were lost between the connections")
        XCTAssertEqual(ledger.record(sequence: 7), .gap(missing: 1))
        XCTAssertEqual([ledger.gaps, ledger.resumeGaps, ledger.resumes], [3, 2, 1])
    }

    func testARewindMeansLastEventIDWasIgnoredAndLaterEventsAreJudgedAgainstTheNewRun() {
        var ledger = StreamLedger()
        for sequence in 1...10 as ClosedRange<UInt64> { ledger.record(sequence: sequence) }
        ledger.connectionEnded()
        XCTAssertEqual(ledger.record(sequence: 1), .rewind, "the upstream started the stream again")
        XCTAssertEqual(ledger.record(sequence: 2), .inOrder)
        ledger.connectionEnded()
        XCTAssertEqual(ledger.record(sequence: 2), .rewind, "a resume repeating the last event is a rewind too")
        XCTAssertEqual([ledger.rewinds, ledger.resumes, ledger.duplicates, ledger.reorders, ledger.gaps],
                       [2, 2, 0, 0, 0])
    }

    func testADisconnectBeforeAnyEventLeavesNothingToResume() {
        var ledger = StreamLedger()
        ledger.connectionEnded()
        XCTAssertEqual(ledger.record(sequence: 3), .first)
        XCTAssertEqual(ledger.record(sequence: 4), .inOrder)
        XCTAssertEqual([ledger.disconnects, ledger.resumes, ledger.gaps], [1, 0, 0])
    }
}

final class ReconnectPolicyTests: XCTestCase {
    func testServerRetryThenBaseThenDoublingUpToTheCap() {
        let policy = ReconnectPolicy(baseSeconds: 1, maxSeconds: 5)
        XCTAssertEqual(policy.delay(failures: 0, retryMillis: nil, jitter: 1), 1)
        XCTAssertEqual(policy.delay(failures: 0, retryMillis: 2500, jitter: 1), 2.5)
        XCTAssertEqual(policy.delay(failures: 0, retryMillis: 60_000, jitter: 1), 5, "retry: is capped too")
        XCTAssertEqual(policy.delay(failures: 1, retryMillis: 2500, jitter: 1), 2, "after a failure: backoff")
        XCTAssertEqual(policy.delay(failures: 2, retryMillis: nil, jitter: 1), 4)
        XCTAssertEqual(policy.delay(failures: 3, retryMillis: nil, jitter: 1), 5)
        XCTAssertEqual(policy.delay(failures: 500, retryMillis: nil, jitter: 1), 5)
        XCTAssertEqual(policy.delay(failures: 0, retryMillis: nil, jitter: 0.5), 0.5)
    }
}

final class StreamSummaryTests: XCTestCase {
    func testStreamsHitAndNotHitAreCountedApartAndMerge() {
        var quiet = StreamLedger()
        for sequence in 1...3 as ClosedRange<UInt64> { quiet.record(sequence: sequence) }
        var resumed = StreamLedger()
        resumed.record(sequence: 1)
        resumed.connectionEnded()
        resumed.record(sequence: 3)
        let second: UInt64 = 1_000_000_000
        var a = StreamSummary()
        a.add(quiet, everConnected: true, streaming: true, lastEventNanos: 100 * second, comments: 4,
              nowNanos: 101 * second, staleAfterNanos: 30 * second)
        a.add(resumed, everConnected: true, streaming: true, lastEventNanos: 50 * second, comments: 1,
              nowNanos: 101 * second, staleAfterNanos: 30 * second)
        var b = StreamSummary()
        b.add(StreamLedger(), everConnected: false, streaming: false, lastEventNanos: 0, comments: 0,
              nowNanos: 101 * second, staleAfterNanos: 30 * second)
        b.disconnectsBySecond = ["7": 2]
        a.disconnectsBySecond = ["7": 1]
        a.merge(b)
        XCTAssertEqual([a.streams, a.streamingNow, a.neverConnected, a.stale], [3, 2, 1, 1])
        XCTAssertEqual(a.notHit, .init(streams: 2, events: 3, gaps: 0, duplicates: 0, reorders: 0))
        XCTAssertEqual(a.hit, .init(streams: 1, events: 2, gaps: 1, duplicates: 0, reorders: 0))
        XCTAssertEqual([a.disconnects, a.resumes, a.resumeGaps, a.maxDisconnectsPerStream, a.comments], [1, 1, 1, 1, 5])
        XCTAssertEqual(a.disconnectsBySecond, ["7": 3])
    }
}

/// The upstream side of a resume: `Last-Event-ID: N` makes the first event N + 1.
final class UpstreamResumeTests: XCTestCase {
    func testResumeSequenceParsing() {
        XCTAssertEqual(resumeSequence(lastEventID: nil), 0)
        XCTAssertEqual(resumeSequence(lastEventID: "41"), 41)
        XCTAssertEqual(resumeSequence(lastEventID: " 7 "), 7)
        XCTAssertEqual(resumeSequence(lastEventID: "abc"), 0)
        XCTAssertEqual(resumeSequence(lastEventID: "-3"), 0)
    }

    private func firstEvent(lastEventID: String?) throws -> String {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        let broadcaster = Broadcaster(eventLoop: channel.embeddedEventLoop)
        try channel.pipeline.syncOperations.addHandler(
            UpstreamHandler(broadcaster: broadcaster, defaults: StreamSettings(intervalMs: 1000, size: 60, count: nil)))
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/held/s")
        if let lastEventID { head.headers.add(name: "Last-Event-ID", value: lastEventID) }
        try channel.writeInbound(HTTPServerRequestPart.head(head))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        guard case .head(let response) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            XCTFail("no response head")
            return ""
        }
        XCTAssertEqual(response.status, .ok)
        guard case .body(.byteBuffer(let body)) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            XCTFail("no first event")
            return ""
        }
        return String(buffer: body)
    }

    func testFirstEventResumesAfterLastEventID() throws {
        XCTAssertTrue(try firstEvent(lastEventID: nil).hasPrefix("id: 1\ndata: "))
        let resumed = try firstEvent(lastEventID: "41")
        XCTAssertTrue(resumed.hasPrefix("id: 42\ndata: "), resumed)
        XCTAssertEqual(BenchPayload(Array(resumed.split(separator: "\n")[1].dropFirst(6).utf8)[...])?.sequence, 42)
    }

    func testRequestHeadCarriesLastEventIDOnlyWhenGiven() throws {
        let plan = RequestPlan(target: try TargetURL("http://127.0.0.1:9/held/s"), headers: [])
        XCTAssertNil(plan.head().headers.first(name: "last-event-id"))
        XCTAssertEqual(plan.head(lastEventID: "17").headers.first(name: "last-event-id"), "17")
    }
}
