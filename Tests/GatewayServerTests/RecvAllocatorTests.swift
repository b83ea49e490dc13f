import NIOCore
import XCTest

@testable import GatewayServer

final class RecvAllocatorTests: XCTestCase {
    /// The reason it exists: it must fit an existential's inline buffer (three words), or it is boxed per channel.
    func testItFitsAnExistentialsInlineBuffer() {
        XCTAssertLessThanOrEqual(MemoryLayout<CompactRecvAllocator>.size, 3 * MemoryLayout<Int>.size)
        XCTAssertGreaterThan(MemoryLayout<AdaptiveRecvByteBufferAllocator>.size, 3 * MemoryLayout<Int>.size)
    }

    /// Every decision equals NIO's adaptive allocator's with the same bounds, over runs of read sizes that make it
    /// grow to the maximum, shrink to the minimum and hover around each step: each run walks the kinds of read below
    /// with its own stride, so runs differ in which kinds follow which.
    func testItDecidesAsNIOsAdaptiveAllocator() {
        let kinds: [(Int) -> Int] = [
            { _ in 0 }, { $0 / 4 }, { $0 / 2 }, { $0 / 2 + 1 }, { $0 * 3 / 4 }, { $0 - 1 }, { $0 }, { $0 * 2 },
            { _ in 70_000 },
        ]
        let allocator = ByteBufferAllocator()
        for run in 0..<(kinds.count * 8) {
            var compact = CompactRecvAllocator()
            var nio = AdaptiveRecvByteBufferAllocator(
                minimum: CompactRecvAllocator.minimum,
                initial: CompactRecvAllocator.initial,
                maximum: CompactRecvAllocator.maximum
            )
            let stride = run % 8 + 1
            var sizesSeen = Set<Int>()
            for step in 0..<400 {
                XCTAssertEqual(compact.nextBufferSize(), nio.nextBufferSize(), "run \(run) step \(step)")
                XCTAssertEqual(
                    compact.buffer(allocator: allocator).capacity,
                    nio.buffer(allocator: allocator).capacity,
                    "run \(run) step \(step)"
                )
                let size = nio.nextBufferSize()!
                sizesSeen.insert(size)
                let read = kinds[(step * stride + run / 8) % kinds.count](size)
                XCTAssertEqual(compact.record(actualReadBytes: read), nio.record(actualReadBytes: read))
            }
            XCTAssertGreaterThan(sizesSeen.count, 1, "run \(run) never changed size")
        }
    }

    func testItGrowsToTheMaximumAndShrinksToTheMinimum() {
        var compact = CompactRecvAllocator()
        XCTAssertEqual(compact.nextBufferSize(), 512)
        while compact.record(actualReadBytes: compact.nextBufferSize()!) {}
        XCTAssertEqual(compact.nextBufferSize(), 65536)
        for _ in 0..<40 { _ = compact.record(actualReadBytes: 1) }
        XCTAssertEqual(compact.nextBufferSize(), 64)
    }
}
