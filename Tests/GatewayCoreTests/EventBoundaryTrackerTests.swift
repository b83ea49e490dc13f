import NIOCore
import XCTest

@testable import GatewayCore

final class EventBoundaryTrackerTests: XCTestCase {
    private struct Observation: Equatable, CustomStringConvertible {
        var events: Int
        var boundary: Bool
        var description: String { "(events: \(events), boundary: \(boundary))" }
    }

    /// A deliberately different parser: rewrite CRLF and CR to LF over the whole prefix, then split into lines.
    private static func reference(_ bytes: ArraySlice<UInt8>) -> Observation {
        var normalized: [UInt8] = []
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == UInt8(ascii: "\r") {
                normalized.append(UInt8(ascii: "\n"))
                if i + 1 < bytes.endIndex, bytes[i + 1] == UInt8(ascii: "\n") { i += 1 }
            } else {
                normalized.append(bytes[i])
            }
            i += 1
        }
        let lines = normalized.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var events = 0
        var blockHasContent = false
        for line in lines.dropLast() {
            if !line.isEmpty {
                blockHasContent = true
            } else if blockHasContent {
                events += 1
                blockHasContent = false
            }
        }
        return Observation(events: events, boundary: lines.last!.isEmpty && !blockHasContent)
    }

    private static func observe(_ tracker: EventBoundaryTracker) -> Observation {
        Observation(events: tracker.completedEvents, boundary: tracker.isAtEventBoundary)
    }

    /// Feeds `bytes` cut at `cuts` and checks the tracker against the reference after every chunk.
    private func check(_ bytes: [UInt8], cuts: [Int], file: StaticString = #filePath, line: UInt = #line) {
        var tracker = EventBoundaryTracker()
        var start = 0
        for end in cuts + [bytes.count] where end > start {
            tracker.consume(ByteBuffer(bytes: bytes[start..<end]))
            let expected = Self.reference(bytes[..<end])
            guard Self.observe(tracker) == expected else {
                XCTFail(
                    "\(String(decoding: bytes, as: UTF8.self).debugDescription) cut at \(cuts): after \(end) bytes "
                        + "got \(Self.observe(tracker)), expected \(expected)",
                    file: file,
                    line: line
                )
                return
            }
            start = end
        }
    }

    private static let streams: [String] = [
        "",
        "data: a\n\n",
        "data: a\r\n\r\n",
        "data: a\r\r",
        "data: a\ndata: b\n\nid: 2\ndata: c\n\n",
        "data: a\r\ndata: b\r\n\r\nid: 2\r\ndata: c\r\n\r\n",
        "data: a\rdata: b\r\rid: 2\rdata: c\r\r",
        "data: a\r\ndata: b\n\r\n\rid: 2\r\r\n\n\ndata: c\n\r",
        "\n\n\r\n\r\r\ndata: x\n\n\n\n\r\n",
        ": keep-alive\n\n: keep-alive\r\n\r\n",
        "event: ping\ndata:\n\ndata\n\n:\n\n",
        "data: unterminated",
        "data: a\n\ndata: half",
        "data: a\r\n\r",
        "\r\n\r\n\r\n",
        "\r\r\r\n\n",
        "x\r\n\n",
        "x\n\r\r\n",
    ]

    func testExpectedCountsAndBoundaries() {
        let cases: [(stream: String, events: Int, boundary: Bool)] = [
            ("", 0, true),
            ("data: a", 0, false),
            ("data: a\n", 0, false),
            ("data: a\r", 0, false),
            ("data: a\r\n", 0, false),
            ("data: a\n\n", 1, true),
            ("data: a\r\n\r\n", 1, true),
            ("data: a\r\r", 1, true),
            ("data: a\r\n\r", 1, true),
            ("data: a\n\n\n\n", 1, true),
            ("data: a\ndata: b\n\n", 1, true),
            ("data: a\n\ndata: b\n\n", 2, true),
            ("data: a\n\ndata: b", 1, false),
            ("\n\n\n", 0, true),
            ("\r\n\r\n", 0, true),
            (": keep-alive\n\n", 1, true),
            ("data: a\r\n\r\n\n", 1, true),
        ]
        for (stream, events, boundary) in cases {
            var tracker = EventBoundaryTracker()
            tracker.consume(ByteBuffer(string: stream))
            XCTAssertEqual(tracker.completedEvents, events, stream.debugDescription)
            XCTAssertEqual(tracker.isAtEventBoundary, boundary, stream.debugDescription)
        }
    }

    func testCRLFSplitAfterBlankLineIsOneLineEnding() {
        var tracker = EventBoundaryTracker()
        tracker.consume(ByteBuffer(string: "data: a\r\n\r"))
        XCTAssertEqual(Self.observe(tracker), Observation(events: 1, boundary: true))
        tracker.consume(ByteBuffer(string: "\n"))  // completes the CRLF: not another blank line
        XCTAssertEqual(Self.observe(tracker), Observation(events: 1, boundary: true))
        tracker.consume(ByteBuffer(string: "\n"))  // a real blank line, but the block is empty
        XCTAssertEqual(Self.observe(tracker), Observation(events: 1, boundary: true))
        tracker.consume(ByteBuffer(string: "data: b\r"))
        XCTAssertEqual(Self.observe(tracker), Observation(events: 1, boundary: false))
        tracker.consume(ByteBuffer(string: "\n"))
        XCTAssertEqual(Self.observe(tracker), Observation(events: 1, boundary: false))
        tracker.consume(ByteBuffer(string: "\r"))
        XCTAssertEqual(Self.observe(tracker), Observation(events: 2, boundary: true))
    }

    func testEveryChunkSizeMatchesReference() {
        for stream in Self.streams {
            let bytes = Array(stream.utf8)
            for size in 1...max(1, bytes.count) {
                check(bytes, cuts: Array(stride(from: size, to: bytes.count, by: size)))
            }
        }
    }

    func testEverySplitIntoTwoAndThreeChunksMatchesReference() {
        for stream in Self.streams {
            let bytes = Array(stream.utf8)
            guard !bytes.isEmpty else { continue }
            for first in 0...bytes.count {
                check(bytes, cuts: [first])
                for second in first...bytes.count {
                    check(bytes, cuts: [first, second])
                }
            }
        }
    }

    func testSplittingNeverChangesTheFinalResult() {
        for stream in Self.streams {
            let bytes = Array(stream.utf8)
            var whole = EventBoundaryTracker()
            whole.consume(ByteBuffer(bytes: bytes))
            for size in 1...max(1, bytes.count) {
                var chunked = EventBoundaryTracker()
                for start in stride(from: 0, to: bytes.count, by: size) {
                    chunked.consume(ByteBuffer(bytes: bytes[start..<min(start + size, bytes.count)]))
                }
                XCTAssertEqual(Self.observe(chunked), Self.observe(whole), "\(stream.debugDescription) size \(size)")
            }
        }
    }

    func testRandomStreamsMatchReference() {
        var random = SeededGenerator(seed: 0x5EED_CAFE)
        let pieces = ["a", "d", ":", " ", "\r", "\n", "\r\n", "\n\n", "\r\r", "data: x", ": c"]
        for _ in 0..<2_000 {
            let length = Int.random(in: 0...40, using: &random)
            let bytes = Array((0..<length).map { _ in pieces.randomElement(using: &random)! }.joined().utf8)
            var cuts: [Int] = []
            var position = 0
            while position < bytes.count {
                position += Int.random(in: 1...8, using: &random)
                if position < bytes.count { cuts.append(position) }
            }
            check(bytes, cuts: cuts)
        }
    }

    func testOnlyReadableBytesAreScannedAndReaderIndexIsKept() {
        var buffer = ByteBuffer(string: "data: a\n\n")
        buffer.moveReaderIndex(forwardBy: 7)  // readable: "\n\n"
        var tracker = EventBoundaryTracker()
        tracker.consume(buffer)
        XCTAssertEqual(Self.observe(tracker), Observation(events: 0, boundary: true))
        XCTAssertEqual(buffer.readerIndex, 7)
        XCTAssertEqual(buffer.readableBytes, 2)
    }

    func testEmptyBufferChangesNothing() {
        var tracker = EventBoundaryTracker()
        tracker.consume(ByteBuffer(string: "data: a\r"))
        tracker.consume(ByteBuffer())
        XCTAssertEqual(Self.observe(tracker), Observation(events: 0, boundary: false))
        tracker.consume(ByteBuffer(string: "\r"))
        XCTAssertEqual(Self.observe(tracker), Observation(events: 1, boundary: true))
    }
}

/// SplitMix64: deterministic, so a failing random case reproduces.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class EventBoundaryTrackerCutTests: XCTestCase {
    private func cut(_ chunks: [String]) -> (lengths: [Int?], events: Int) {
        var tracker = EventBoundaryTracker()
        var lengths: [Int?] = []
        for chunk in chunks {
            lengths.append(tracker.consume(ByteBuffer(string: chunk), stoppingAtFirstBoundary: true))
        }
        return (lengths, tracker.completedEvents)
    }

    func testStopsRightAfterTheFirstCompletedEvent() {
        XCTAssertEqual(cut(["data: a\n\ndata: b\n\n"]).lengths, [9])
        XCTAssertEqual(cut(["data: a\r\n\r\ndata: b"]).lengths, [11], "the LF of a CRLF blank line is included")
        XCTAssertEqual(cut(["data: a\r\rdata: b"]).lengths, [9])
        XCTAssertEqual(cut(["data: a\n", "\ndata: next"]).lengths, [nil, 1])
        XCTAssertEqual(cut(["data: a\r\n\r", "\ndata: b\n\n"]).lengths, [10, 10], "the CR completes the event; its LF is skipped in the next chunk")
        XCTAssertEqual(cut(["data: a\r", "\n\r\ndata: b"]).lengths, [nil, 3], "a split CRLF is one line ending")
        XCTAssertEqual(cut(["data: partial"]).lengths, [nil])
    }

    func testWithoutStoppingItMatchesPlainConsume() {
        let stream = "data: a\r\n\r\n: c\n\nid: 2\rdata: b\r\r"
        var plain = EventBoundaryTracker()
        plain.consume(ByteBuffer(string: stream))
        var flagged = EventBoundaryTracker()
        XCTAssertNil(flagged.consume(ByteBuffer(string: stream), stoppingAtFirstBoundary: false))
        XCTAssertEqual(plain.completedEvents, 3)
        XCTAssertEqual(flagged.completedEvents, plain.completedEvents)
        XCTAssertEqual(flagged.isAtEventBoundary, plain.isAtEventBoundary)
    }
}
