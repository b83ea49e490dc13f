import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import sse_load

/// `client --stalled-fraction`: which streams stall, and what a stalled stream does (no reads after its head, no
/// events counted, a close by the server counted apart).
final class StalledStreamTests: XCTestCase {
    func testStalledStreamsAreTheFractionSpreadEvenly() {
        func stalled(_ count: Int, _ fraction: Double) -> [Int] {
            (0..<count).filter { streamStalls(index: $0, fraction: fraction) }
        }
        XCTAssertEqual(stalled(20, 0.1), [9, 19])
        XCTAssertEqual(stalled(1000, 0.1).count, 100)
        XCTAssertEqual(stalled(999, 0.1).count, 99)
        XCTAssertEqual(stalled(5000, 0.25).count, 1250)
        XCTAssertEqual(stalled(1000, 0), [])
        // Spread: never two stalled streams in a row at 10%, so both event loops (round robin) get some.
        let indices = stalled(1000, 0.1)
        XCTAssertEqual(Set(zip(indices, indices.dropFirst()).map { $1 - $0 }), [10])
        XCTAssertEqual(Set(indices.map { $0 % 2 }), [1], "odd indices only at 10%: loop 1 of 2 gets them all")
    }

    /// Counts the reads that reach the socket end of the pipeline.
    private final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    private func makeChannel(
        mode: StreamClientHandler.Mode
    ) throws -> (EmbeddedChannel, LoopTally, ReadCounter, HeldStream) {
        let channel = EmbeddedChannel()
        let tally = LoopTally(eventLoop: channel.eventLoop)
        let counter = ReadCounter()
        let plan = RequestPlan(target: try TargetURL("http://127.0.0.1:9/s"), headers: [])
        let stream = HeldStream(credential: nil)
        stream.attempts = 1
        let connector = StreamConnector(plan: plan, progress: Progress(), reconnect: nil)
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(
            StreamClientHandler(loop: tally, connector: connector, stream: stream, mode: mode, startNanos: wallNanos()))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return (channel, tally, counter, stream)
    }

    private func event(_ sequence: UInt64) -> HTTPClientResponsePart {
        .body(ByteBuffer(string: "id: \(sequence)\ndata: \(wallNanos()) \(sequence) x\n\n"))
    }

    func testStalledStreamStopsReadingAfterItsHeadAndCountsNoEvents() throws {
        let (channel, tally, counter, stream) = try makeChannel(mode: .stall)
        channel.read()
        XCTAssertEqual(counter.reads, 1, "before the head, reads go through")
        try channel.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeInbound(event(1))
        channel.read()
        channel.read()
        XCTAssertEqual(counter.reads, 1, "after the head, no read reaches the socket")
        XCTAssertEqual(tally.tally.stalled, 1)
        XCTAssertEqual(tally.tally.connected, 0, "a stalled stream is not a held one")
        XCTAssertEqual(tally.tally.events, 0, "bytes the last read decoded are not looked at")
        XCTAssertEqual(stream.ledger.events + stream.ledger.gaps + stream.ledger.reorders + stream.ledger.duplicates, 0)
        _ = try channel.close().wait()
        XCTAssertEqual(tally.tally.stalledClosed, 1, "closed while the run went on: the server dropped it")
        XCTAssertEqual(tally.tally.closedEarly, 0)
    }

    func testStalledStreamClosedAtTheEndOfTheRunIsNotCountedAsDropped() throws {
        let (channel, tally, _, _) = try makeChannel(mode: .stall)
        try channel.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        tally.stopping = true
        _ = try channel.close().wait()
        XCTAssertEqual(tally.tally.stalledClosed, 0)
    }

    func testHeldStreamKeepsReadingAndCountsEvents() throws {
        let (channel, tally, counter, stream) = try makeChannel(mode: .hold)
        try channel.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeInbound(event(1))
        try channel.writeInbound(event(2))
        channel.read()
        XCTAssertEqual(counter.reads, 1)
        XCTAssertEqual(tally.tally.connected, 1)
        XCTAssertEqual(tally.tally.stalled, 0)
        XCTAssertEqual(tally.tally.events, 2)
        XCTAssertEqual([stream.ledger.events, stream.ledger.gaps], [2, 0])
    }
}
