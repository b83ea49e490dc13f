import NIOCore
import XCTest

@testable import GatewayCore

/// The chunked framing scanner, fed every fixture split at every position; expectations come from how each fixture
/// was built (`ChunkedBody`), not from the scanner.
final class ChunkedFramingScannerTests: XCTestCase {
    /// Everything a feed observed, in absolute wire offsets.
    private struct ScanResult: Equatable, CustomStringConvertible {
        var data: [UInt8] = []
        /// (offset just after the last chunk's line, reported line length)
        var lastChunks: [LastChunk] = []
        var end: Int?
        /// Bytes the scanner consumed in total.
        var consumed = 0

        struct LastChunk: Equatable { var offset: Int; var lineLength: Int }

        var description: String {
            "(data: \(show(data)), lastChunks: \(lastChunks), end: \(end.map(String.init) ?? "nil"), consumed: \(consumed))"
        }
    }

    /// Feeds `reads` in order, calling `step` until each read is exhausted (or the body ends), checking the invariants
    /// of every step, and `afterRead` after each read.
    private func feed(
        _ scanner: inout ChunkedFramingScanner,
        _ reads: [[UInt8]],
        afterRead: (_ consumedSoFar: Int, _ scanner: ChunkedFramingScanner) -> Void = { _, _ in },
        file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> ScanResult {
        var result = ScanResult()
        var base = 0
        reading: for read in reads {
            var index = 0
            while true {
                let before = index
                let step = try read.withUnsafeBytes { raw in try scanner.step(raw, index: &index) }
                XCTAssertGreaterThanOrEqual(index, before, "index never moves back", file: file, line: line)
                XCTAssertLessThanOrEqual(index, read.count, file: file, line: line)
                switch step {
                case .data(let range):
                    XCTAssertFalse(range.isEmpty, "data ranges are never empty", file: file, line: line)
                    XCTAssertGreaterThanOrEqual(range.lowerBound, before, file: file, line: line)
                    XCTAssertEqual(range.upperBound, index, "index stops right after the data", file: file, line: line)
                    result.data += read[range]
                case .lastChunk(let lineLength):
                    result.lastChunks.append(.init(offset: base + index, lineLength: lineLength))
                case .end:
                    result.end = base + index
                    result.consumed = base + index
                    XCTAssertTrue(scanner.isComplete, file: file, line: line)
                    // Once ended, nothing more is consumed.
                    var again = index
                    let repeated = try read.withUnsafeBytes { raw in try scanner.step(raw, index: &again) }
                    XCTAssertEqual(repeated, .end, file: file, line: line)
                    XCTAssertEqual(again, index, "bytes after the end are not consumed", file: file, line: line)
                    afterRead(base + index, scanner)
                    break reading
                case .needMore:
                    XCTAssertEqual(index, read.count, ".needMore only once every byte was consumed", file: file, line: line)
                }
                if case .needMore = step { break }
            }
            base += read.count
            result.consumed = base
            afterRead(base, scanner)
        }
        return result
    }

    private func state(of scanner: ChunkedFramingScanner) -> ChunkedBody.PrefixState {
        ChunkedBody.PrefixState(
            pendingSizeLineLength: scanner.pendingSizeLineLength,
            isBetweenChunks: scanner.isBetweenChunks,
            openChunk: scanner.openChunk,
            isComplete: scanner.isComplete
        )
    }

    /// What feeding `body` (followed by unrelated bytes) must produce, however it is split.
    private func expected(_ body: ChunkedBody) -> ScanResult {
        ScanResult(
            data: body.data,
            lastChunks: [.init(offset: body.lastChunkLineEnd, lineLength: body.lastChunkLineEnd - body.lastChunkLineStart)],
            end: body.end,
            consumed: body.end
        )
    }

    /// Feeds `body.wire + garbage` split at `positions`, checks the result and the scanner's state after every read.
    @discardableResult
    private func check(
        _ body: ChunkedBody,
        splitAt positions: [Int],
        file: StaticString = #filePath,
        line: UInt = #line
    ) -> ScanResult? {
        let garbage = Array("HTTP/1.1 200 OK\r\n\r\n".utf8)
        let wire = body.wire + garbage
        var scanner = ChunkedFramingScanner()
        var stateFailure: String?
        do {
            let result = try feed(
                &scanner,
                splitReads(wire, at: positions),
                afterRead: { consumed, scanner in
                    let expected = body.state(after: min(consumed, body.end))
                    let actual = state(of: scanner)
                    if stateFailure == nil, actual != expected {
                        stateFailure = "after \(consumed) bytes: state \(actual), expected \(expected)"
                    }
                },
                file: file,
                line: line
            )
            XCTAssertEqual(result, expected(body), "\(body) split at \(positions)", file: file, line: line)
            if let stateFailure { XCTFail("\(body) split at \(positions): \(stateFailure)", file: file, line: line) }
            return result
        } catch {
            XCTFail("\(body) split at \(positions): threw \(error)", file: file, line: line)
            return nil
        }
    }

    // MARK: Every split point

    func testFixturesAreWellFormedByTheReferenceDecoder() {
        for body in ChunkedBody.representative + ChunkedBody.eventStreams + [ChunkedBody.short] {
            let decoded = referenceDechunk(body.wire)
            XCTAssertEqual(decoded?.data, body.data, "\(body)")
            XCTAssertEqual(decoded?.trailers, body.trailerLines, "\(body)")
        }
    }

    func testUnsplitFeed() {
        for body in ChunkedBody.representative + ChunkedBody.eventStreams + [ChunkedBody.short] {
            check(body, splitAt: [])
        }
    }

    func testEverySplitPointGivesTheSameResultAsTheUnsplitFeed() {
        for body in ChunkedBody.representative + ChunkedBody.eventStreams {
            let whole = check(body, splitAt: [])
            for split in 0...(body.wire.count + 5) {
                let result = check(body, splitAt: [split])
                XCTAssertEqual(result, whole, "\(body) split at \(split)")
            }
        }
    }

    func testEveryPairOfSplitPointsOfAShortBody() {
        let body = ChunkedBody.short
        let whole = check(body, splitAt: [])
        for first in 0...body.wire.count {
            for second in first...body.wire.count {
                let result = check(body, splitAt: [first, second])
                XCTAssertEqual(result, whole, "\(body) split at \(first), \(second)")
            }
        }
    }

    func testByteByByteMatchesTheModelAfterEveryByte() {
        for body in ChunkedBody.representative + ChunkedBody.eventStreams + [ChunkedBody.short] {
            check(body, splitAt: Array(0...(body.wire.count + 19)))
        }
    }

    func testEveryFixedReadSize() {
        for body in ChunkedBody.representative + ChunkedBody.eventStreams {
            for size in 1...body.wire.count {
                check(body, splitAt: Array(stride(from: size, to: body.wire.count + 19, by: size)))
            }
        }
    }

    func testRandomBodiesAndSplitsAgainstTheReference() {
        var random = SeededGenerator(seed: 0xC4A2_7E11)
        let dataAlphabet: [UInt8] = Array("ab:\r\n \t0".utf8) + [0, 0xFF]
        let extensions = ["", ";a", ";a=b", " ;q=\"x;y\"", "\t;n", ";"]
        for round in 0..<400 {
            let chunkCount = Int.random(in: 0...5, using: &random)
            let chunks = (0..<chunkCount).map { _ -> ChunkedBody.Chunk in
                let size = Int.random(in: 1...40, using: &random)
                let data = (0..<size).map { _ in dataAlphabet.randomElement(using: &random)! }
                var hex = String(size, radix: 16)
                if Bool.random(using: &random) { hex = hex.uppercased() }
                hex = String(repeating: "0", count: Int.random(in: 0...3, using: &random)) + hex
                return ChunkedBody.Chunk(hex: hex, extensions: extensions.randomElement(using: &random)!, data: data)
            }
            let trailers = (0..<Int.random(in: 0...2, using: &random)).map { "T\($0): v\t\(round)" }
            let body = ChunkedBody(
                "random \(round)",
                chunks: chunks,
                lastChunkLine: ["0", "00", "0;end"].randomElement(using: &random)!,
                trailerLines: trailers
            )
            XCTAssertEqual(referenceDechunk(body.wire)?.data, body.data)
            var positions: [Int] = []
            var position = 0
            while position < body.wire.count {
                position += Int.random(in: 1...9, using: &random)
                positions.append(position)
            }
            check(body, splitAt: positions)
        }
    }

    // MARK: Step by step

    private func step(_ scanner: inout ChunkedFramingScanner, _ bytes: [UInt8], _ index: inout Int) throws -> ChunkedFramingScanner.Step {
        try bytes.withUnsafeBytes { raw in try scanner.step(raw, index: &index) }
    }

    func testStepsAreReportedOneAtATime() throws {
        let wire = Array("4\r\nWiki\r\n0\r\nA: b\r\n\r\nrest".utf8)
        var scanner = ChunkedFramingScanner()
        var index = 0
        XCTAssertEqual(try step(&scanner, wire, &index), .data(3..<7))
        XCTAssertEqual(index, 7)
        XCTAssertEqual(scanner.openChunk, .carriageReturnLineFeed)
        XCTAssertEqual(try step(&scanner, wire, &index), .lastChunk(lineLength: 3))
        XCTAssertEqual(index, 12)
        XCTAssertTrue(scanner.isBetweenChunks)
        XCTAssertFalse(scanner.isComplete)
        XCTAssertEqual(try step(&scanner, wire, &index), .end)
        XCTAssertEqual(index, 20)
        XCTAssertTrue(scanner.isComplete)
        XCTAssertEqual(try step(&scanner, wire, &index), .end)
        XCTAssertEqual(index, 20)
    }

    func testEmptyRangeNeedsMore() throws {
        var scanner = ChunkedFramingScanner()
        var index = 0
        let step = try [UInt8]().withUnsafeBytes { raw in try scanner.step(raw, index: &index) }
        XCTAssertEqual(step, .needMore)
        XCTAssertEqual(index, 0)
        XCTAssertEqual(scanner.openChunk, .none)
        XCTAssertTrue(scanner.isBetweenChunks)
        XCTAssertEqual(scanner.pendingSizeLineLength, 0)
    }

    func testDataIsReportedPerRangeAcrossReads() throws {
        var scanner = ChunkedFramingScanner()
        let reads = [Array("a\r\n01234".utf8), Array("56789\r\n".utf8)]
        var steps: [ChunkedFramingScanner.Step] = []
        for read in reads {
            var index = 0
            while true {
                let step = try read.withUnsafeBytes { raw in try scanner.step(raw, index: &index) }
                steps.append(step)
                if step == .needMore { break }
            }
        }
        XCTAssertEqual(steps, [.data(3..<8), .needMore, .data(0..<5), .needMore])
        XCTAssertEqual(scanner.openChunk, .none)
        XCTAssertTrue(scanner.isBetweenChunks)
    }

    func testLastChunkLineLengthCountsEarlierRanges() throws {
        var scanner = ChunkedFramingScanner()
        let reads = [Array("0;a".utf8), Array("bc\r".utf8), Array("\nX: y\r\n\r\n".utf8)]
        var index = 0
        var steps: [ChunkedFramingScanner.Step] = []
        for (number, read) in reads.enumerated() {
            index = 0
            steps.append(try read.withUnsafeBytes { raw in try scanner.step(raw, index: &index) })
            if number == 0 { XCTAssertEqual(scanner.pendingSizeLineLength, 3) }
            if number == 1 { XCTAssertEqual(scanner.pendingSizeLineLength, 6) }
        }
        XCTAssertEqual(steps, [.needMore, .needMore, .lastChunk(lineLength: 7)])
        XCTAssertEqual(index, 1)
        XCTAssertEqual(scanner.pendingSizeLineLength, 0)
        var rest = index
        let end = try reads[2].withUnsafeBytes { raw in try scanner.step(raw, index: &rest) }
        XCTAssertEqual(end, .end)
        XCTAssertEqual(rest, reads[2].count)
    }

    func testFifteenHexDigitsAreAccepted() throws {
        var scanner = ChunkedFramingScanner()
        var index = 0
        let wire = Array("FFFFFFFFFFFFFFF\r\nab".utf8)
        XCTAssertEqual(try step(&scanner, wire, &index), .data(17..<19))
        XCTAssertEqual(try step(&scanner, wire, &index), .needMore)
        XCTAssertEqual(scanner.openChunk, .data(remaining: 0xFFF_FFFF_FFFF_FFFF - 2))
        XCTAssertFalse(scanner.isBetweenChunks)
    }

    func testLeadingZerosDoNotCountAsSize() throws {
        // "00000000000001" is 14 digits with the value 1.
        var scanner = ChunkedFramingScanner()
        let result = try feed(&scanner, [Array("00000000000001\r\nz\r\n0\r\n\r\n".utf8)])
        XCTAssertEqual(result.data, Array("z".utf8))
        XCTAssertEqual(result.end, 24)
    }

    // MARK: Errors

    /// The error feeding `wire` in one read throws, and the offset of the byte that makes it throw when fed one byte at
    /// a time (the same error must come from both).
    private func failure(_ wire: [UInt8]) -> (error: ChunkedFramingError?, offset: Int?) {
        var whole = ChunkedFramingScanner()
        var wholeError: ChunkedFramingError?
        do { _ = try feed(&whole, [wire]) } catch { wholeError = error as? ChunkedFramingError }
        var single = ChunkedFramingScanner()
        for offset in wire.indices {
            do {
                _ = try feed(&single, [[wire[offset]]])
            } catch {
                XCTAssertEqual(error as? ChunkedFramingError, wholeError, "\(show(wire)): same error byte by byte")
                return (wholeError, offset)
            }
            if single.isComplete { break }
        }
        return (wholeError, nil)
    }

    private func assertRefused(
        _ text: String,
        _ error: ChunkedFramingError,
        atOffset offset: Int,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        assertRefused(Array(text.utf8), error, atOffset: offset, file: file, line: line)
    }

    private func assertRefused(
        _ wire: [UInt8],
        _ error: ChunkedFramingError,
        atOffset offset: Int,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let result = failure(wire)
        XCTAssertEqual(result.error, error, "\(show(wire))", file: file, line: line)
        XCTAssertEqual(result.offset, offset, "\(show(wire)): refused at the offending byte", file: file, line: line)
    }

    private func assertAccepted(_ text: String, data: String, file: StaticString = #filePath, line: UInt = #line) {
        var scanner = ChunkedFramingScanner()
        do {
            let result = try feed(&scanner, [Array(text.utf8)])
            XCTAssertEqual(result.data, Array(data.utf8), brief(text), file: file, line: line)
            XCTAssertEqual(result.end, text.utf8.count, brief(text), file: file, line: line)
        } catch {
            XCTFail("\(brief(text)) threw \(error)", file: file, line: line)
        }
    }

    func testNonHexSize() {
        assertRefused("g\r\n", .invalidSizeLine, atOffset: 0)
        assertRefused("4x\r\nWiki\r\n", .invalidSizeLine, atOffset: 1)
        assertRefused("0x4\r\nWiki\r\n", .invalidSizeLine, atOffset: 1)
        assertRefused("-1\r\n", .invalidSizeLine, atOffset: 0)
        assertRefused("+1\r\n", .invalidSizeLine, atOffset: 0)
        assertRefused("4\r\nWiki\r\nZ\r\n", .invalidSizeLine, atOffset: 9)
    }

    func testEmptySize() {
        assertRefused("\r\n", .invalidSizeLine, atOffset: 0)
        assertRefused(";a=b\r\n", .invalidSizeLine, atOffset: 0)
        assertRefused(" 4\r\n", .invalidSizeLine, atOffset: 0)
        assertRefused("\n", .invalidSizeLine, atOffset: 0)
        assertRefused("4\r\nWiki\r\n\r\n", .invalidSizeLine, atOffset: 9)
    }

    func testMoreThanFifteenHexDigits() {
        assertRefused("1000000000000000\r\n", .sizeTooLarge, atOffset: 15)
        assertRefused("0000000000000001\r\nx\r\n0\r\n\r\n", .sizeTooLarge, atOffset: 15)
        assertRefused("1\r\nx\r\nFFFFFFFFFFFFFFFFF\r\n", .sizeTooLarge, atOffset: 21)
    }

    func testSizeLineOverTheLimit() {
        let limit = ChunkedFramingScanner.maxSizeLineBytes
        // Far over: refused, whether fed at once or byte by byte.
        let long = "1;" + String(repeating: "e", count: 2 * limit) + "\r\nx\r\n0\r\n\r\n"
        let result = failure(Array(long.utf8))
        XCTAssertEqual(result.error, .sizeLineTooLong)
        XCTAssertNotNil(result.offset)
        XCTAssertLessThanOrEqual(result.offset ?? .max, limit + 2, "refused as soon as the limit is passed")
        // Comfortably under: accepted.
        assertAccepted("1;" + String(repeating: "e", count: limit - 10) + "\r\nx\r\n0\r\n\r\n", data: "x")
    }

    /// The documented contract: "A size line (digits and extensions) longer than this is refused." A line whose
    /// digits and extensions are exactly `maxSizeLineBytes` long is therefore accepted; one byte more is refused.
    func testSizeLineLimitBoundaryAsDocumented() {
        let limit = ChunkedFramingScanner.maxSizeLineBytes
        assertAccepted("1;" + String(repeating: "e", count: limit - 2) + "\r\nx\r\n0\r\n\r\n", data: "x")
        let over = failure(Array(("1;" + String(repeating: "e", count: limit - 1) + "\r\nx\r\n0\r\n\r\n").utf8))
        XCTAssertEqual(over.error, .sizeLineTooLong)
    }

    func testMissingLineEndingAfterSize() {
        assertRefused("4\nWiki\r\n", .invalidSizeLine, atOffset: 1)
        assertRefused("4\rWiki\r\n", .invalidLineEnding, atOffset: 2)
        assertRefused("4;a=b\nWiki\r\n", .invalidSizeLine, atOffset: 5)
        assertRefused("4;a=b\rWiki\r\n", .invalidLineEnding, atOffset: 6)
        assertRefused("4\r\r\nWiki\r\n", .invalidLineEnding, atOffset: 2)
        assertRefused("0\rX", .invalidLineEnding, atOffset: 2)
    }

    func testMissingLineEndingAfterData() {
        assertRefused("4\r\nWikiX", .invalidLineEnding, atOffset: 7)
        assertRefused("4\r\nWiki\rX", .invalidLineEnding, atOffset: 8)
        assertRefused("4\r\nWiki\n", .invalidLineEnding, atOffset: 7)
        assertRefused("4\r\nWiki\r\r\n", .invalidLineEnding, atOffset: 8)
        assertRefused("3\r\nWiki\r\n", .invalidLineEnding, atOffset: 6)
    }

    func testControlCharactersInExtensions() {
        assertRefused("4;a=\u{01}\r\nWiki\r\n", .invalidSizeLine, atOffset: 4)
        assertRefused("4;\u{7F}\r\nWiki\r\n", .invalidSizeLine, atOffset: 2)
        assertRefused([UInt8(ascii: "4"), UInt8(ascii: ";"), 0, 13, 10], .invalidSizeLine, atOffset: 2)
        assertRefused("0;a\u{1B}\r\n\r\n", .invalidSizeLine, atOffset: 3)
        assertAccepted("4;\ta=b\t\r\nWiki\r\n0\r\n\r\n", data: "Wiki")
        assertAccepted("4 \t ;x\r\nWiki\r\n0;y=\"z\"\r\n\r\n", data: "Wiki")
    }

    func testControlCharactersInTrailers() {
        assertRefused("0\r\nX: \u{01}\r\n\r\n", .invalidTrailer, atOffset: 6)
        assertRefused("0\r\nX: y\u{7F}\r\n\r\n", .invalidTrailer, atOffset: 7)
        assertRefused([48, 13, 10, 88, 58, 0, 13, 10, 13, 10], .invalidTrailer, atOffset: 5)
        assertRefused("0\r\nX: y\n\r\n", .invalidTrailer, atOffset: 7)
        assertRefused("0\r\n\n", .invalidTrailer, atOffset: 3)
        assertRefused("0\r\nX: y\rZ", .invalidLineEnding, atOffset: 8)
        assertRefused("0\r\n\rZ", .invalidLineEnding, atOffset: 4)
        assertAccepted("0\r\nX:\ty\t\r\nY: z\r\n\r\n", data: "")
    }

    func testTrailersOverTheLimit() {
        let limit = ChunkedFramingScanner.maxTrailerBytes
        // One long line: refused at the first byte past the limit.
        assertRefused("0\r\nX: " + String(repeating: "a", count: limit) + "\r\n\r\n", .trailersTooLong, atOffset: 3 + limit)
        // Many short lines add up.
        let line = "X-Field: 0123456789\r\n"
        let many = "0\r\n" + String(repeating: line, count: limit / line.utf8.count + 2) + "\r\n"
        XCTAssertEqual(failure(Array(many.utf8)).error, .trailersTooLong)
        // A trailer section of exactly the limit (with its final CRLF) is accepted.
        let exact = "0\r\nX: " + String(repeating: "a", count: limit - 5 - 2) + "\r\n" + "\r\n"
        assertAccepted(exact, data: "")
    }

    /// The documented contract: "A trailer section longer than this is refused." A section one byte longer than
    /// `maxTrailerBytes` (counting every byte through the final CRLF) must be refused.
    func testTrailerLimitBoundaryAsDocumented() {
        let limit = ChunkedFramingScanner.maxTrailerBytes
        let oneOver = "0\r\nX: " + String(repeating: "a", count: limit - 5 - 2 + 1) + "\r\n" + "\r\n"
        XCTAssertEqual(oneOver.utf8.count - 3, limit + 1)
        XCTAssertEqual(failure(Array(oneOver.utf8)).error, .trailersTooLong)
    }

    func testErrorsDescribeThemselves() {
        XCTAssertEqual(ChunkedFramingError.invalidSizeLine.description, "invalid chunk size line")
        XCTAssertNotEqual(ChunkedFramingError.invalidSizeLine, .invalidLineEnding)
    }
}
