import GatewayCore
import NIOCore

@testable import FuzzSupport

/// The event-boundary tracker, fed the bytes split at fuzzer-chosen points, counts what the unit tests' reference
/// counts and agrees on whether the bytes end at an event boundary; cutting at the first boundary again and again
/// cuts exactly at the reference's boundaries.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let choices = [input.uint16(), input.uint16(), input.uint16()]
    let bytes = input.rest
    let reads = splitReads(bytes, at: splitPoints(choices, count: bytes.count))

    var tracker = EventBoundaryTracker()
    var raw = EventBoundaryTracker()
    for read in reads {
        tracker.consume(ByteBuffer(bytes: read))
        read.withUnsafeBytes { raw.consume($0) }
    }
    let expected = referenceCompletedBlocks(bytes[...])
    invariant(tracker.completedEvents == expected, "counted \(tracker.completedEvents), reference \(expected)")
    invariant(raw.completedEvents == expected, "raw bytes counted \(raw.completedEvents), reference \(expected)")
    let boundary = referenceIsAtEventBoundary(bytes[...])
    invariant(tracker.isAtEventBoundary == boundary, "boundary \(tracker.isAtEventBoundary), reference \(boundary)")

    // Cut after every event: each cut ends a block, and the cuts together are the whole stream.
    var cutter = EventBoundaryTracker()
    var consumed = 0
    var cuts = 0
    for read in reads {
        var offset = 0
        while offset < read.count {
            let rest = ByteBuffer(bytes: read[offset...])
            guard let length = cutter.consume(rest, stoppingAtFirstBoundary: true) else { break }
            invariant(length > 0 && length <= read.count - offset, "cut of \(length) bytes in \(read.count - offset)")
            offset += length
            cuts += 1
            let prefix = bytes[..<(consumed + offset)]
            invariant(referenceCompletedBlocks(prefix) == cuts, "cut \(cuts) at \(consumed + offset) is not a block end")
            invariant(cutter.isAtEventBoundary, "not at a boundary right after a cut")
        }
        consumed += read.count
    }
    invariant(cuts == expected, "cut \(cuts) times, reference \(expected)")
    invariant(cutter.completedEvents == expected, "cutter counted \(cutter.completedEvents)")
    return 0
}
