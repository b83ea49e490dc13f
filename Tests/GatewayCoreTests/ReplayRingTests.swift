import GatewayCore
import NIOCore
import XCTest

/// `ReplayRing`: bounded by events and bytes, found by the id a client last saw, never guessing.
final class ReplayRingTests: XCTestCase {
    private func event(_ text: String, id: String? = nil, fields: Bool = true) -> SSEEventSplitter.Event {
        .init(bytes: ByteBuffer(string: text), id: id, hasFields: fields)
    }

    private func replayed(_ lookup: ReplayRing.Lookup) -> [String]? {
        guard case .replay(let buffers) = lookup else { return nil }
        return buffers.map { String(buffer: $0) }
    }

    func testReplaysWhatFollowedAnIDIncludingEventsWithoutOne() {
        var ring = ReplayRing(maxEvents: 10, maxBytes: 1000)
        ring.append(event("id: 1\n\n", id: "1"))
        ring.append(event("data: a\n\n"))
        ring.append(event("id: 2\n\n", id: "2"))
        ring.append(event(": ping\n\n", fields: false))
        ring.append(event("data: b\n\n"))
        XCTAssertEqual(replayed(ring.events(after: "1")), ["data: a\n\n", "id: 2\n\n", "data: b\n\n"])
        XCTAssertEqual(replayed(ring.events(after: "2")), ["data: b\n\n"], "id-less events after the id are missed too")
        XCTAssertEqual(ring.events(after: "0"), .miss)
        XCTAssertEqual(ring.lastEventID, "2")
        XCTAssertEqual(ring.entries.count, 4, "comment-only blocks are not kept")
    }

    func testUpToDateClientReplaysNothingEvenWithoutARing() {
        var ring = ReplayRing(maxEvents: 0, maxBytes: 1000)
        ring.append(event("id: 5\n\n", id: "5"))
        XCTAssertEqual(ring.events(after: "5"), .replay([]))
        ring.append(event("data: no id\n\n"))
        XCTAssertEqual(ring.events(after: "5"), .miss, "an id-less event since: the ring would have to hold it")
    }

    func testBoundedByCountAndBytesOldestFirst() {
        var ring = ReplayRing(maxEvents: 3, maxBytes: 40)
        for i in 1...5 { ring.append(event("id: \(i)\n\n", id: "\(i)")) }
        XCTAssertEqual(ring.entries.map(\.id), ["3", "4", "5"])
        XCTAssertEqual(ring.events(after: "2"), .miss, "evicted")
        XCTAssertEqual(replayed(ring.events(after: "3")), ["id: 4\n\n", "id: 5\n\n"])
        ring.append(event("id: 6\ndata: " + String(repeating: "x", count: 18) + "\n\n", id: "6"))
        XCTAssertEqual(ring.bytes, 39)
        XCTAssertEqual(ring.entries.map(\.id), ["5", "6"])
        ring.append(event("data: " + String(repeating: "y", count: 40) + "\n\n"))
        XCTAssertEqual(ring.entries.count, 0, "an event larger than the ring empties it: nothing after it could replay")
        XCTAssertEqual(ring.bytes, 0)
    }

    func testTheIDTheStreamStartedFromReplaysEverythingUntilSomethingIsEvicted() {
        var ring = ReplayRing(maxEvents: 2, maxBytes: 1000, startingAfter: "41")
        XCTAssertEqual(ring.events(after: "41"), .replay([]))
        ring.append(event("id: 42\n\n", id: "42"))
        ring.append(event("data: x\n\n"))
        XCTAssertEqual(replayed(ring.events(after: "41")), ["id: 42\n\n", "data: x\n\n"])
        ring.append(event("id: 43\n\n", id: "43"))
        XCTAssertEqual(ring.events(after: "41"), .miss)
    }

    func testTheLatestOccurrenceOfARepeatedIDWins() {
        var ring = ReplayRing(maxEvents: 10, maxBytes: 1000)
        ring.append(event("id: x\ndata: 1\n\n", id: "x"))
        ring.append(event("data: 2\n\n"))
        ring.append(event("id: x\ndata: 3\n\n", id: "x"))
        ring.append(event("data: 4\n\n"))
        XCTAssertEqual(replayed(ring.events(after: "x")), ["data: 4\n\n"])
        XCTAssertTrue(ring.contains(id: "x"))
        XCTAssertFalse(ring.contains(id: "y"))
    }
}
