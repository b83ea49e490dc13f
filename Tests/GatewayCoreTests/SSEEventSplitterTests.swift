import GatewayCore
import NIOCore
import XCTest

/// `SSEEventSplitter` cuts a stream into the same whole events however its bytes are split into reads, reads `id`
/// and `retry` as `EventSource` does, and never gathers an unbounded event.
final class SSEEventSplitterTests: XCTestCase {
    typealias Event = SSEEventSplitter.Event

    private func split(_ reads: [String], splitter: inout SSEEventSplitter) throws -> (events: [Event], batches: [String]) {
        var events: [Event] = []
        var batches: [String] = []
        for read in reads {
            var batchEvents: [Event] = []
            if let batch = try splitter.split(ByteBuffer(string: read), into: &batchEvents) {
                batches.append(String(buffer: batch))
                XCTAssertEqual(
                    String(buffer: batch), batchEvents.map { String(buffer: $0.bytes) }.joined(),
                    "a batch is its events' bytes, in order"
                )
            } else {
                XCTAssertTrue(batchEvents.isEmpty)
            }
            events += batchEvents
        }
        return (events, batches)
    }

    private func split(_ reads: [String]) throws -> [Event] {
        var splitter = SSEEventSplitter()
        return try split(reads, splitter: &splitter).events
    }

    func testWholeEventsWithTheirIDs() throws {
        let events = try split(["id: 1\ndata: a\n\ndata: b\n\n: keep-alive\n\nid: 3\nid: 4\ndata: c\n\n"])
        XCTAssertEqual(events.map { String(buffer: $0.bytes) }, [
            "id: 1\ndata: a\n\n", "data: b\n\n", ": keep-alive\n\n", "id: 3\nid: 4\ndata: c\n\n",
        ])
        XCTAssertEqual(events.map(\.id), ["1", nil, nil, "4"], "the last id field of a block counts")
        XCTAssertEqual(events.map(\.hasFields), [true, true, false, true])
    }

    func testAnEventSplitAcrossReadsComesOutWholeOnce() throws {
        let events = try split(["id: 7\nda", "ta: hel", "lo\n", "\nid: 8\n", "data: x\n\n"])
        XCTAssertEqual(events.map { String(buffer: $0.bytes) }, ["id: 7\ndata: hello\n\n", "id: 8\ndata: x\n\n"])
        XCTAssertEqual(events.map(\.id), ["7", "8"])
    }

    /// The reference: every way of cutting the stream into two or three reads gives the same events.
    func testEverySplitGivesTheSameEvents() throws {
        let stream = "retry: 250\r\nid: a\r\ndata: 1\r\n\r\n:c\r\r\ndata: 2\rid: b\r\r\n\ndata: 3\n\nid\ndata: 4\n\n"
        let whole = try split([stream])
        let bytes = Array(stream.utf8)
        XCTAssertEqual(whole.count, 5)
        for first in 0...bytes.count {
            for second in first...bytes.count where (second - first) % 3 == 0 || second == bytes.count {
                let reads = [bytes[..<first], bytes[first..<second], bytes[second...]].map {
                    String(decoding: $0, as: UTF8.self)
                }
                let events = try split(reads)
                XCTAssertEqual(events.map(\.id), whole.map(\.id), "split at \(first), \(second)")
                XCTAssertEqual(
                    events.map { String(buffer: $0.bytes) }.joined(), whole.map { String(buffer: $0.bytes) }.joined(),
                    "split at \(first), \(second)"
                )
            }
        }
    }

    func testRetryAndIDFieldsFollowTheSpec() throws {
        var splitter = SSEEventSplitter()
        let events = try split(
            ["retry: 3000\n\nretry: x\n\nretry:250\ndata: a\n\nid\ndata: b\n\nid: with\0nul\ndata: c\n\nid:  two\n\n"],
            splitter: &splitter
        ).events
        XCTAssertEqual(splitter.retryMilliseconds, 250, "a retry that is not all digits is ignored")
        XCTAssertEqual(events.map(\.id), [nil, nil, nil, "", nil, " two"], "`id` alone resets; one with NUL is ignored")
    }

    func testAnEndlessEventIsRefused() {
        var splitter = SSEEventSplitter(maxEventBytes: 64)
        var events: [Event] = []
        XCTAssertNoThrow(try splitter.split(ByteBuffer(string: "data: " + String(repeating: "x", count: 50)), into: &events))
        XCTAssertThrowsError(try splitter.split(ByteBuffer(string: String(repeating: "y", count: 20)), into: &events))
    }

    func testResetForgetsAPartialEvent() throws {
        var splitter = SSEEventSplitter()
        var events: [Event] = []
        XCTAssertNil(try splitter.split(ByteBuffer(string: "id: 1\ndata: cut off"), into: &events))
        splitter.reset()
        let batch = try splitter.split(ByteBuffer(string: "id: 1\ndata: again\n\n"), into: &events)
        XCTAssertEqual(batch.map { String(buffer: $0) }, "id: 1\ndata: again\n\n")
    }

    func testEventsAreSlicesOfTheReadNotCopies() throws {
        var splitter = SSEEventSplitter()
        var events: [Event] = []
        let read = ByteBuffer(string: "data: a\n\ndata: b\n\n")
        let batch = try XCTUnwrap(try splitter.split(read, into: &events))
        read.withUnsafeReadableBytes { readBytes in
            batch.withUnsafeReadableBytes { batchBytes in
                XCTAssertEqual(readBytes.baseAddress, batchBytes.baseAddress, "the batch shares the read's storage")
            }
        }
    }
}
