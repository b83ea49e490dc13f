@testable import FuzzSupport
import GatewayCore

/// The chunked framing scanner, fed the same bytes in one range, split at two fuzzer-chosen points, and byte by byte,
/// must end in the same state with the same data, the same end and the same error; and whatever it accepts, the strict
/// reference decoder of the unit tests accepts with the same data (the scanner may refuse more: control characters,
/// over-long lines).
struct Scan: Equatable {
    var data: [UInt8] = []
    var end: Int?
    var error: ChunkedFramingError?
    var errorOffset: Int?
    var scanner = ChunkedFramingScanner()
}

func scan(_ bytes: [UInt8], reads: [[UInt8]]) -> Scan {
    var result = Scan()
    var offset = 0
    for read in reads {
        var index = 0
        do {
            reading: while true {
                let step = try read.withUnsafeBytes { try result.scanner.step($0, index: &index) }
                switch step {
                case .data(let range): result.data += read[range]
                case .lastChunk(let lineLength): invariant(lineLength >= 3, "last chunk line of \(lineLength) bytes")
                case .end:
                    result.end = offset + index
                    return result
                case .needMore:
                    invariant(index == read.count, "needMore before the end of the read")
                    break reading
                }
            }
        } catch {
            guard let error = error as? ChunkedFramingError else { fatalError("invariant failed: threw \(error)") }
            result.error = error
            result.errorOffset = offset + index
            return result
        }
        offset += read.count
    }
    return result
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let choices = [input.uint16(), input.uint16()]
    let bytes = input.rest
    let whole = scan(bytes, reads: [bytes])
    let split = scan(bytes, reads: splitReads(bytes, at: splitPoints(choices, count: bytes.count)))
    invariant(whole == split, "split at \(choices) differs: \(whole) vs \(split)")
    if bytes.count <= 512 {
        let single = scan(bytes, reads: bytes.map { [$0] })
        invariant(whole == single, "byte by byte differs: \(whole) vs \(single)")
    }
    if let end = whole.end {
        let reference = referenceDechunk(Array(bytes[..<end]))
        invariant(reference?.data == whole.data, "reference disagrees on an accepted body: \(String(describing: reference))")
        invariant(whole.scanner.isComplete, "ended but not complete")
    } else if whole.error == nil {
        // A prefix of a body: completing the open chunk and adding the last chunk ends it.
        invariant(!whole.scanner.isComplete, "complete without an end")
        if case .data(let remaining) = whole.scanner.openChunk, remaining <= 65536 {
            let completion = Array(repeating: UInt8(ascii: "x"), count: remaining) + Array("\r\n0\r\n\r\n".utf8)
            let completed = scan(bytes + completion, reads: [bytes, completion])
            invariant(completed.end == bytes.count + completion.count, "completing the open chunk did not end the body")
        }
    }
    if whole.error == nil, let reference = referenceDechunk(bytes) {
        invariant(whole.end == bytes.count && whole.data == reference.data, "accepted by the reference only")
    }
    return 0
}
