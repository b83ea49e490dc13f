import NIOCore
import NIOHTTP1
import XCTest

@testable import GatewayCore

/// Wire mode of the relay: the upstream's chunked framing goes to the client as it came. Whatever the client is sent
/// — the relayed bytes, then whatever ends the response — must be a valid chunked body whose event stream holds exactly
/// the upstream's complete events (plus the gateway's own frames, only between events).
final class StreamRelayWireTests: XCTestCase {
    private typealias Relay = StreamRelayStateMachine

    private static let frame = SSEFrame.tokenExpired(retryMilliseconds: 1500)
    private static let lastChunk = Array("0\r\n\r\n".utf8)

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    private func wireRelay(isEventStream: Bool = true) -> Relay {
        Relay(isEventStream: isEventStream, passesChunkedWire: true)
    }

    /// What an open chunk is completed with at an event boundary: a comment line, or one LF for a single byte.
    private func boundaryFiller(_ count: Int) -> [UInt8] {
        switch count {
        case 0: return []
        case 1: return bytes("\n")
        default: return bytes(":") + Array(repeating: UInt8(ascii: " "), count: count - 2) + bytes("\n")
        }
    }

    /// The chunk ending the relay must produce for `open`, from the model.
    private func expectedEnding(_ open: ChunkedFramingScanner.OpenChunk, atEventBoundary: Bool) -> Relay.ChunkEnding {
        switch open {
        case .none: return .complete(nil)
        case .lineFeed: return .complete(ByteBuffer(string: "\n"))
        case .carriageReturnLineFeed: return .complete(ByteBuffer(string: "\r\n"))
        case .data(let remaining):
            let filler = atEventBoundary ? boundaryFiller(remaining) : Array(repeating: UInt8(ascii: " "), count: remaining)
            return .complete(ByteBuffer(bytes: filler + bytes("\r\n")))
        }
    }

    private func endingBytes(_ ending: Relay.ChunkEnding) -> [UInt8]? {
        switch ending {
        case .complete(let buffer): return buffer?.bytes ?? []
        case .impossible: return nil
        }
    }

    /// Checks that `output` is one valid chunked body carrying `expectedData`, whose event stream is `expectedEvents`.
    private func assertValidStream(
        _ output: [UInt8],
        data expectedData: [UInt8],
        events expectedEvents: [DispatchedEvent],
        _ label: @autoclosure () -> String,
        file: StaticString = #filePath,
        line: UInt = #line
    ) -> Bool {
        let decoded: (data: [UInt8], end: Int?)
        do {
            decoded = try scannerDechunk(output)
        } catch {
            XCTFail("\(label()): invalid chunked body (\(error)): \(show(output))", file: file, line: line)
            return false
        }
        guard decoded.end == output.count else {
            XCTFail("\(label()): chunked body ends at \(String(describing: decoded.end)) of \(output.count): \(show(output))", file: file, line: line)
            return false
        }
        guard let reference = referenceDechunk(output), reference.data == decoded.data else {
            XCTFail("\(label()): the reference decoder disagrees: \(show(output))", file: file, line: line)
            return false
        }
        guard decoded.data == expectedData else {
            XCTFail("\(label()): data \(show(decoded.data)), expected \(show(expectedData))", file: file, line: line)
            return false
        }
        let events = parseEventStream(decoded.data)
        guard events == expectedEvents else {
            XCTFail("\(label()): events \(events), expected \(expectedEvents)", file: file, line: line)
            return false
        }
        return true
    }

    // MARK: Pass-through

    /// Feeds `body` split at `positions`; after every read checks what was written, the counters, the boundary and
    /// the heartbeat decision against the model.
    private func checkPassThrough(
        _ body: ChunkedBody,
        isEventStream: Bool,
        splitAt positions: [Int],
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        var relay = wireRelay(isEventStream: isEventStream)
        var written: [UInt8] = []
        var consumed = 0
        let label = "\(body) (event stream: \(isEventStream)) split at \(positions)"
        func checkState() -> Bool {
            let dataCount = body.dataCount(inFirst: consumed)
            let prefix = body.data[..<dataCount]
            let boundary = referenceIsAtEventBoundary(prefix)
            let heartbeat = isEventStream && boundary && body.state(after: consumed).isBetweenChunks
            let problems = [
                written == body.forwardedWire(after: consumed) ? nil : "written \(show(written)), expected \(show(body.forwardedWire(after: consumed)))",
                relay.relayedBodyBytes == dataCount ? nil : "relayedBodyBytes \(relay.relayedBodyBytes), expected \(dataCount)",
                relay.relayedEvents == (isEventStream ? referenceCompletedBlocks(prefix) : 0) ? nil : "relayedEvents \(relay.relayedEvents)",
                !isEventStream || relay.isAtEventBoundary == boundary ? nil : "isAtEventBoundary \(relay.isAtEventBoundary)",
                relay.heartbeatDue() == (heartbeat ? .write(SSEFrame.heartbeat) : .none) ? nil : "heartbeat \(relay.heartbeatDue()), expected \(heartbeat)",
            ].compactMap { $0 }
            guard problems.isEmpty else {
                XCTFail("\(label): after \(consumed) bytes: \(problems.joined(separator: "; "))", file: file, line: line)
                return false
            }
            return true
        }
        guard checkState() else { return }
        for read in splitReads(body.wire, at: positions) {
            let action: Relay.WireAction
            do {
                action = try relay.upstreamWireReceived(ByteBuffer(bytes: read))
            } catch {
                return XCTFail("\(label): threw \(error)", file: file, line: line)
            }
            guard case .relay(let held, let length) = action, length >= 0, length <= read.count else {
                return XCTFail("\(label): unexpected action \(action)", file: file, line: line)
            }
            written += (held?.bytes ?? []) + read[..<length]
            consumed += read.count
            guard checkState() else { return }
        }
        XCTAssertEqual(written, Array(body.wire[..<body.lastChunkLineStart]), label, file: file, line: line)
        XCTAssertEqual(relay.relayedBodyBytes, body.data.count, label, file: file, line: line)
        XCTAssertEqual(relay.wireEnding(), .complete(nil), "\(label): the upstream's own chunks all ended", file: file, line: line)
        // Relayed bytes + the last chunk are the upstream's body without its trailers.
        XCTAssertEqual(referenceDechunk(written + Self.lastChunk)?.data, body.data, label, file: file, line: line)
    }

    func testExpectedEventCountsOfTheFixtures() {
        // Hand-counted: blocks ended by a blank line (comment blocks included) and events an EventSource dispatches.
        let streams = ChunkedBody.eventStreams
        XCTAssertEqual(referenceCompletedBlocks(streams[0].data[...]), 5)
        XCTAssertEqual(parseEventStream(streams[0].data).map(\.data), ["first", "second", "third", "four"])
        XCTAssertEqual(parseEventStream(streams[0].data).map(\.type), ["message", "message", "message", "e"])
        XCTAssertEqual(parseEventStream(streams[0].data).map(\.lastEventID), ["", "", "3", "3"])
        XCTAssertEqual(referenceCompletedBlocks(streams[1].data[...]), 4)
        XCTAssertEqual(parseEventStream(streams[1].data).map(\.data), ["a", "b", "c\nd", "e"])
    }

    func testPassThroughCountsEventsAndBytes() throws {
        for body in ChunkedBody.eventStreams {
            var relay = wireRelay()
            let action = try relay.upstreamWireReceived(ByteBuffer(bytes: body.wire))
            XCTAssertEqual(action, .relay(held: nil, length: body.lastChunkLineStart), "\(body)")
            XCTAssertEqual(relay.relayedBodyBytes, body.data.count)
            XCTAssertTrue(relay.isAtEventBoundary)
        }
        var relay = wireRelay()
        _ = try relay.upstreamWireReceived(ByteBuffer(bytes: ChunkedBody.eventStreams[0].wire))
        XCTAssertEqual(relay.relayedEvents, 5)
        XCTAssertEqual(relay.relayedBodyBytes, 14 + 12 + 21 + 2 + 29)
    }

    func testPassThroughAtEverySplitPoint() {
        for body in ChunkedBody.eventStreams + ChunkedBody.representative + [ChunkedBody.short] {
            for isEventStream in [true, false] {
                checkPassThrough(body, isEventStream: isEventStream, splitAt: [])
                for split in 0...body.wire.count {
                    checkPassThrough(body, isEventStream: isEventStream, splitAt: [split])
                }
            }
        }
    }

    func testPassThroughByteByByte() {
        for body in ChunkedBody.eventStreams + ChunkedBody.representative + [ChunkedBody.short] {
            for isEventStream in [true, false] {
                checkPassThrough(body, isEventStream: isEventStream, splitAt: Array(0...body.wire.count))
            }
        }
    }

    func testPassThroughAtEveryPairOfSplitPoints() {
        let body = ChunkedBody.short
        for first in 0...body.wire.count {
            for second in first...body.wire.count {
                checkPassThrough(body, isEventStream: true, splitAt: [first, second])
            }
        }
    }

    func testPassThroughOfRandomReads() {
        var random = SeededGenerator(seed: 0x3E1A_7B0D)
        for body in ChunkedBody.eventStreams {
            for _ in 0..<300 {
                var positions: [Int] = []
                var position = 0
                while position < body.wire.count {
                    position += Int.random(in: 1...6, using: &random)
                    positions.append(position)
                }
                checkPassThrough(body, isEventStream: true, splitAt: positions)
            }
        }
    }

    func testPendingSizeLineIsHeldBackAndReleased() throws {
        var relay = wireRelay()
        XCTAssertEqual(
            try relay.upstreamWireReceived(ByteBuffer(string: "9\r\ndata: a\n\n\r\n9;ext")),
            .relay(held: nil, length: 14)
        )
        XCTAssertEqual(relay.heartbeatDue(), .write(SSEFrame.heartbeat), "the held line was not sent: between chunks")
        XCTAssertEqual(relay.relayedEvents, 1)
        XCTAssertEqual(
            try relay.upstreamWireReceived(ByteBuffer(string: "=1\r\ndata: b\n\n\r\n")),
            .relay(held: ByteBuffer(string: "9;ext"), length: 15)
        )
        XCTAssertEqual(relay.relayedEvents, 2)
        XCTAssertEqual(relay.relayedBodyBytes, 18)
        XCTAssertEqual(try relay.upstreamWireReceived(ByteBuffer(string: "0\r\n\r\n")), .relay(held: nil, length: 0))
    }

    func testSizeLineSpanningSeveralReadsIsGathered() throws {
        var relay = wireRelay()
        XCTAssertEqual(try relay.upstreamWireReceived(ByteBuffer(string: "1")), .relay(held: nil, length: 0))
        XCTAssertEqual(try relay.upstreamWireReceived(ByteBuffer(string: "0")), .relay(held: nil, length: 0))
        XCTAssertEqual(try relay.upstreamWireReceived(ByteBuffer(string: "\r")), .relay(held: nil, length: 0))
        XCTAssertEqual(
            try relay.upstreamWireReceived(ByteBuffer(string: "\ndata: 01234567\n\n\r\n")),
            .relay(held: ByteBuffer(string: "10\r"), length: 19)
        )
        XCTAssertEqual(relay.relayedBodyBytes, 16)
        XCTAssertEqual(relay.relayedEvents, 1)
    }

    func testLastChunkIsNeverPassedOn() throws {
        var whole = wireRelay(isEventStream: false)
        XCTAssertEqual(
            try whole.upstreamWireReceived(ByteBuffer(string: "3\r\nabc\r\n0\r\nT: v\r\n\r\n")),
            .relay(held: nil, length: 8)
        )
        XCTAssertEqual(try whole.upstreamWireReceived(ByteBuffer(string: "more")), .relay(held: nil, length: 0))
        XCTAssertEqual(whole.wireEnding(), .complete(nil))

        var split = wireRelay(isEventStream: false)
        XCTAssertEqual(try split.upstreamWireReceived(ByteBuffer(string: "3\r\nabc\r\n0")), .relay(held: nil, length: 8))
        XCTAssertEqual(try split.upstreamWireReceived(ByteBuffer(string: ";x\r")), .relay(held: nil, length: 0))
        XCTAssertEqual(try split.upstreamWireReceived(ByteBuffer(string: "\n\r\n")), .relay(held: nil, length: 0))
        XCTAssertEqual(split.wireEnding(), .complete(nil))

        var afterData = wireRelay()
        XCTAssertEqual(try afterData.upstreamWireReceived(ByteBuffer(string: "3\r\nabc\r\n4")), .relay(held: nil, length: 8))
        XCTAssertEqual(
            try afterData.upstreamWireReceived(ByteBuffer(string: "\r\nWiki\r\n0\r\n\r\n")),
            .relay(held: ByteBuffer(string: "4"), length: 8),
            "the held line is released with its chunk; the last chunk stays behind"
        )
    }

    func testMalformedFramingThrows() {
        var relay = wireRelay()
        XCTAssertThrowsError(try relay.upstreamWireReceived(ByteBuffer(string: "zz\r\n"))) {
            XCTAssertEqual($0 as? ChunkedFramingError, .invalidSizeLine)
        }
        var late = wireRelay()
        XCTAssertNoThrow(try late.upstreamWireReceived(ByteBuffer(string: "2\r\nab")))
        XCTAssertThrowsError(try late.upstreamWireReceived(ByteBuffer(string: "X"))) {
            XCTAssertEqual($0 as? ChunkedFramingError, .invalidLineEnding)
        }
    }

    // MARK: Heartbeats

    func testHeartbeatOnlyAtAnEventBoundaryAndBetweenChunks() throws {
        var relay = wireRelay()
        let heartbeat = Relay.Action.write(SSEFrame.heartbeat)
        XCTAssertEqual(relay.heartbeatDue(), heartbeat, "nothing relayed yet")
        let steps: [(read: String, heartbeat: Bool, why: String)] = [
            ("9\r\ndata: a\n\n", false, "event complete but the chunk's CRLF is owed"),
            ("\r", false, "the chunk's LF is owed"),
            ("\n", true, "between chunks at a boundary"),
            ("4\r\nda", false, "mid-event, mid-chunk"),
            ("ta\r\n", false, "between chunks but mid-event"),
            ("3", false, "size line pending, mid-event"),
            ("\r\n\n\n\n", false, "event complete, chunk CRLF owed"),
            ("\r\n", true, "between chunks at a boundary"),
            ("2\r\n", false, "chunk open, nothing of it sent yet"),
            (":x", false, "mid-comment"),
            ("\r\n2", false, "between chunks, mid-comment line"),
            ("\r\n\n", false, "comment line ended, block not yet ended"),
            ("\n\r\n", true, "comment block ended, between chunks"),
            ("5;e", true, "a pending size line is not sent: still between chunks"),
            ("=1\r\ndata:", false, "mid-event"),
        ]
        for step in steps {
            _ = try relay.upstreamWireReceived(ByteBuffer(string: step.read))
            XCTAssertEqual(relay.heartbeatDue(), step.heartbeat ? heartbeat : .none, "\(step.read.debugDescription): \(step.why)")
        }
    }

    func testNoHeartbeatsForPlainWireBodies() throws {
        var relay = wireRelay(isEventStream: false)
        XCTAssertEqual(relay.heartbeatDue(), .none)
        _ = try relay.upstreamWireReceived(ByteBuffer(string: "3\r\nabc\r\n"))
        XCTAssertEqual(relay.heartbeatDue(), .none)
        XCTAssertEqual(relay.closeRequested(.draining, closingFrame: nil), .none)
        XCTAssertEqual(relay.relayedEvents, 0)
        XCTAssertEqual(relay.relayedBodyBytes, 3)
    }

    // MARK: Cutting at the next boundary

    func testCloseMidEventCutsAfterTheEventAndCompletesTheChunk() throws {
        var relay = wireRelay()
        let frame = Self.frame
        XCTAssertEqual(try relay.upstreamWireReceived(ByteBuffer(string: "1d\r\ndata: a\ndata: b")), .relay(held: nil, length: 19))
        XCTAssertEqual(relay.closeRequested(.tokenExpired, closingFrame: frame), .none)
        XCTAssertEqual(relay.heartbeatDue(), .none)
        let action = try relay.upstreamWireReceived(ByteBuffer(string: "\n\ndata: next\n\n\r\n0\r\n\r\n"))
        XCTAssertEqual(
            action,
            .relayPrefixAndFinish(
                held: nil,
                length: 2,
                ending: .complete(ByteBuffer(string: ":" + String(repeating: " ", count: 10) + "\n\r\n")),
                closingFrame: frame,
                reason: .tokenExpired
            )
        )
        XCTAssertEqual(relay.relayedEvents, 1)
        XCTAssertEqual(relay.relayedBodyBytes, 17)
        XCTAssertEqual(relay.heartbeatDue(), .none)
        XCTAssertEqual(relay.wireEnding(), .complete(nil), "the cut already ended the chunk")
        XCTAssertEqual(try relay.upstreamWireReceived(ByteBuffer(string: "more")), .relay(held: nil, length: 0))
    }

    func testCutInsideAHugeChunkIsImpossible() throws {
        var relay = wireRelay()
        _ = try relay.upstreamWireReceived(ByteBuffer(string: "20000\r\ndata: a"))
        XCTAssertEqual(relay.closeRequested(.draining, closingFrame: nil), .none)
        let action = try relay.upstreamWireReceived(ByteBuffer(string: "\n\ndata: b"))
        XCTAssertEqual(action, .relayPrefixAndFinish(held: nil, length: 2, ending: .impossible, closingFrame: nil, reason: .draining))
    }

    func testWireEndingInsideAHugeChunk() throws {
        let limit = Relay.maxChunkCompletionBytes
        // Mid-event and at a boundary: more than the limit owed is impossible.
        for (wire, owed) in [("10010\r\ndata: x", 0x10010 - 7), ("1000A\r\ndata: x\n\n", 0x1000A - 9)] {
            XCTAssertGreaterThan(owed, limit)
            var relay = wireRelay()
            _ = try relay.upstreamWireReceived(ByteBuffer(string: wire))
            XCTAssertEqual(relay.wireEnding(), .impossible, wire.debugDescription)
        }
        // Exactly the limit owed: completed (at a boundary, with a comment line), and the result is valid.
        let wire = bytes("10009\r\ndata: x\n\n")
        var relay = wireRelay()
        _ = try relay.upstreamWireReceived(ByteBuffer(bytes: wire))
        XCTAssertEqual(0x10009 - 9, limit)
        let ending = relay.wireEnding()
        XCTAssertEqual(ending, expectedEnding(.data(remaining: limit), atEventBoundary: true))
        guard let endingBytes = endingBytes(ending) else { return XCTFail("impossible at the limit") }
        let expectedData = bytes("data: x\n\n") + boundaryFiller(limit)
        _ = assertValidStream(
            wire + endingBytes + Self.lastChunk,
            data: expectedData,
            events: [DispatchedEvent(type: "message", data: "x", lastEventID: "")],
            "limit"
        )
    }

    /// Feeds `body` split at `splits` and at `closeAt`, asks for a close once `closeAt` wire bytes were fed, and checks
    /// that what the client gets is a valid chunked body with exactly the right events.
    private func checkClose(
        _ body: ChunkedBody,
        closeAt close: Int,
        splitAt splits: [Int],
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let label = "\(body): close after \(close) bytes, split at \(splits)"
        let frame = Self.frame
        let frameBytes = frame.bytes
        var relay = wireRelay()
        var written: [UInt8] = []
        var consumed = 0
        var ending: Relay.ChunkEnding?
        var cut = false
        let boundaries = Set((splits + [close]).filter { $0 > 0 && $0 < body.wire.count })
        var closeRequested = false
        func requestClose() -> Bool {
            closeRequested = true
            switch relay.closeRequested(.tokenExpired, closingFrame: frame) {
            case .none:
                return false
            case .finish(let closingFrame, let reason):
                XCTAssertEqual(closingFrame, frame, label, file: file, line: line)
                XCTAssertEqual(reason, .tokenExpired, label, file: file, line: line)
                ending = relay.wireEnding()
                return true
            case .write(let buffer):
                XCTFail("\(label): unexpected write \(show(buffer.bytes))", file: file, line: line)
                return true
            }
        }
        reading: for read in splitReads(body.wire, at: splits + [close]) {
            if consumed == close, !closeRequested, requestClose() { break reading }
            let action: Relay.WireAction
            do {
                action = try relay.upstreamWireReceived(ByteBuffer(bytes: read))
            } catch {
                return XCTFail("\(label): threw \(error)", file: file, line: line)
            }
            switch action {
            case .relay(let held, let length):
                written += (held?.bytes ?? []) + read[..<length]
            case .relayPrefixAndFinish(let held, let length, let cutEnding, let closingFrame, let reason):
                XCTAssertTrue(closeRequested, "\(label): a cut nobody asked for", file: file, line: line)
                XCTAssertEqual(closingFrame, frame, label, file: file, line: line)
                XCTAssertEqual(reason, .tokenExpired, label, file: file, line: line)
                written += (held?.bytes ?? []) + read[..<length]
                ending = cutEnding
                cut = true
                break reading
            }
            consumed += read.count
        }
        if !closeRequested, consumed == close { _ = requestClose() }
        guard let ending else { return XCTFail("\(label): the stream never finished", file: file, line: line) }

        // What the model says must have happened.
        let closeData = body.dataCount(inFirst: close)
        let atBoundaryWhenAsked = referenceIsAtEventBoundary(body.data[..<closeData])
        let relayed: Int
        let expectedEnding: Relay.ChunkEnding
        let expectedWritten: [UInt8]
        if atBoundaryWhenAsked {
            XCTAssertFalse(cut, "\(label): at a boundary the close is immediate", file: file, line: line)
            relayed = closeData
            expectedEnding = self.expectedEnding(body.state(after: close).openChunk, atEventBoundary: true)
            expectedWritten = body.forwardedWire(after: close)
        } else {
            XCTAssertTrue(cut, "\(label): mid-event the close waits for the boundary", file: file, line: line)
            var boundary = closeData + 1
            while !referenceIsAtEventBoundary(body.data[..<boundary]) { boundary += 1 }
            // A CRLF's LF right after the blank line's CR goes with it when it is in the same chunk and read.
            var end = boundary
            if body.data[boundary - 1] == UInt8(ascii: "\r"), boundary < body.data.count,
                body.data[boundary] == UInt8(ascii: "\n"),
                body.wireOffset(ofDataByte: boundary) == body.wireOffset(ofDataByte: boundary - 1) + 1,
                !boundaries.contains(body.wireOffset(ofDataByte: boundary))
            {
                end += 1
            }
            relayed = end
            let owed = body.chunkDataEnd(containingDataOffset: end - 1) - end
            expectedEnding = .complete(ByteBuffer(bytes: boundaryFiller(owed) + bytes("\r\n")))
            expectedWritten = Array(body.wire[..<(body.wireOffset(ofDataByte: end - 1) + 1)])
        }
        XCTAssertEqual(ending, expectedEnding, label, file: file, line: line)
        XCTAssertEqual(written, expectedWritten, label, file: file, line: line)
        XCTAssertEqual(relay.relayedBodyBytes, relayed, label, file: file, line: line)
        XCTAssertEqual(relay.relayedEvents, referenceCompletedBlocks(body.data[..<relayed]), label, file: file, line: line)
        XCTAssertEqual(relay.heartbeatDue(), .none, "\(label): finished", file: file, line: line)
        XCTAssertEqual(relay.wireEnding(), .complete(nil), "\(label): ended once", file: file, line: line)

        guard let endingBytes = endingBytes(ending) else { return XCTFail("\(label): impossible", file: file, line: line) }
        let output = written + endingBytes + chunkFramed(frameBytes) + Self.lastChunk
        let upstreamPart = Array(body.data[..<relayed])
        // The ending's data bytes: all but the CRLF that ends the chunk (an ending of just "\r\n" or "\n" is framing).
        var filler: [UInt8] = []
        if case .complete(let buffer) = expectedEnding, let buffer, buffer.readableBytes > 2 {
            filler = Array(buffer.bytes.dropLast(2))
        }
        let expectedEvents = parseEventStream(upstreamPart + frameBytes)
        XCTAssertEqual(expectedEvents.count, parseEventStream(upstreamPart).count + 1, label, file: file, line: line)
        XCTAssertEqual(expectedEvents.last?.type, "token_expired", label, file: file, line: line)
        _ = assertValidStream(
            output,
            data: upstreamPart + filler + frameBytes,
            events: expectedEvents,
            label,
            file: file,
            line: line
        )
    }

    func testCloseAtEveryPositionAndEverySplitPoint() {
        for body in ChunkedBody.eventStreams {
            for close in 0...body.wire.count {
                checkClose(body, closeAt: close, splitAt: [])
                for split in 0...body.wire.count {
                    checkClose(body, closeAt: close, splitAt: [split])
                }
            }
        }
    }

    func testCloseByteByByte() {
        for body in ChunkedBody.eventStreams {
            for close in 0...body.wire.count {
                checkClose(body, closeAt: close, splitAt: Array(0...body.wire.count))
            }
        }
    }

    func testCloseCutsRightAfterTheFirstCompleteEvent() throws {
        // Spot checks with hand-computed positions, on top of the model-based sweep.
        let body = ChunkedBody.eventStreams[1]
        // Data: "data: a\n\ndata: b\n\ndata: c\ndata: d\r" | "\n\r\n" | "data: e\r\r\n"
        // Close mid "data: a": the cut follows "data: a\n\n" (9 data bytes); 25 bytes of the first chunk are owed.
        var relay = wireRelay()
        _ = try relay.upstreamWireReceived(ByteBuffer(bytes: body.wire[..<(4 + 3)]))
        XCTAssertEqual(relay.closeRequested(.draining, closingFrame: nil), .none)
        let action = try relay.upstreamWireReceived(ByteBuffer(bytes: body.wire[(4 + 3)...]))
        XCTAssertEqual(
            action,
            .relayPrefixAndFinish(
                held: nil,
                length: 6,
                ending: .complete(ByteBuffer(bytes: boundaryFiller(25) + bytes("\r\n"))),
                closingFrame: nil,
                reason: .draining
            )
        )
        XCTAssertEqual(relay.relayedBodyBytes, 9)
        // Close mid "data: d": the event ends in the second chunk with "\n\r" (CRLF split across chunks, then CR).
        var second = wireRelay()
        _ = try second.upstreamWireReceived(ByteBuffer(bytes: body.wire[..<(4 + 30)]))
        XCTAssertEqual(second.closeRequested(.maxDuration, closingFrame: nil), .none)
        let secondAction = try second.upstreamWireReceived(ByteBuffer(bytes: body.wire[(4 + 30)...]))
        XCTAssertEqual(
            secondAction,
            .relayPrefixAndFinish(
                held: nil,
                length: 4 + 2 + 3 + 3,
                ending: .complete(ByteBuffer(string: "\r\n")),
                closingFrame: nil,
                reason: .maxDuration
            ),
            "the blank line's LF comes with it: nothing of the chunk is owed"
        )
        XCTAssertEqual(second.relayedEvents, 3)
    }

    // MARK: Ending anywhere

    /// Feeds the first `prefix` bytes of `body` (split at `splits`), ends the response with `wireEnding()`, adds the
    /// closing frame if the relay is at an event boundary, then the last chunk; checks the client's view.
    private func checkWireEnding(
        _ body: ChunkedBody,
        prefix: Int,
        splitAt splits: [Int],
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let label = "\(body): end after \(prefix) bytes, split at \(splits)"
        var relay = wireRelay()
        var written: [UInt8] = []
        for read in splitReads(Array(body.wire[..<prefix]), at: splits) {
            do {
                guard case .relay(let held, let length) = try relay.upstreamWireReceived(ByteBuffer(bytes: read)) else {
                    return XCTFail("\(label): unexpected action", file: file, line: line)
                }
                written += (held?.bytes ?? []) + read[..<length]
            } catch {
                return XCTFail("\(label): threw \(error)", file: file, line: line)
            }
        }
        let dataCount = body.dataCount(inFirst: prefix)
        let upstreamPart = Array(body.data[..<dataCount])
        let atBoundary = referenceIsAtEventBoundary(upstreamPart[...])
        XCTAssertEqual(relay.isAtEventBoundary, atBoundary, label, file: file, line: line)
        let ending = relay.wireEnding()
        let expected = expectedEnding(body.state(after: prefix).openChunk, atEventBoundary: atBoundary)
        XCTAssertEqual(ending, expected, label, file: file, line: line)
        XCTAssertEqual(relay.wireEnding(), .complete(nil), "\(label): a second ending adds nothing", file: file, line: line)
        XCTAssertEqual(
            try? relay.upstreamWireReceived(ByteBuffer(bytes: body.wire[prefix...])),
            .relay(held: nil, length: 0),
            "\(label): nothing more is passed on",
            file: file,
            line: line
        )
        guard let endingBytes = endingBytes(ending) else { return XCTFail("\(label): impossible", file: file, line: line) }
        let frameBytes = atBoundary ? Self.frame.bytes : []
        let output = written + endingBytes + (atBoundary ? chunkFramed(frameBytes) : []) + Self.lastChunk
        let filler: [UInt8]
        if case .data(let remaining) = body.state(after: prefix).openChunk {
            filler = atBoundary ? boundaryFiller(remaining) : Array(repeating: UInt8(ascii: " "), count: remaining)
        } else {
            filler = []
        }
        // The client's events: exactly the complete upstream events (the cut one dropped), then the frame if any.
        let expectedEvents = parseEventStream(upstreamPart + frameBytes)
        XCTAssertEqual(
            expectedEvents.count,
            parseEventStream(upstreamPart).count + (atBoundary ? 1 : 0),
            label,
            file: file,
            line: line
        )
        _ = assertValidStream(output, data: upstreamPart + filler + frameBytes, events: expectedEvents, label, file: file, line: line)
    }

    func testWireEndingAtEveryPositionAndSplit() {
        for body in ChunkedBody.eventStreams {
            for prefix in 0...body.wire.count {
                checkWireEnding(body, prefix: prefix, splitAt: [])
                for split in 0...prefix {
                    checkWireEnding(body, prefix: prefix, splitAt: [split])
                }
                checkWireEnding(body, prefix: prefix, splitAt: Array(0...prefix))
            }
        }
    }

    func testWireEndingAtNamedPoints() throws {
        // "d\r\ndata: hello\n\n\r\n" then "7\r\ndata: x\r\n" (mid-event after its chunk).
        let cases: [(wire: String, ending: Relay.ChunkEnding, events: [String])] = [
            ("", .complete(nil), []),
            ("d\r\ndata: hello\n\n\r\n", .complete(nil), ["hello"]),  // between chunks
            ("d\r\ndata: hello\n\n", .complete(ByteBuffer(string: "\r\n")), ["hello"]),  // data done, CRLF owed
            ("d\r\ndata: hello\n\n\r", .complete(ByteBuffer(string: "\n")), ["hello"]),  // after the CR of the CRLF
            ("12\r\ndata: hello\n\n", .complete(ByteBuffer(string: ":   \n\r\n")), ["hello"]),  // mid-data at a boundary
            ("12\r\ndata: hello\n\nd", .complete(ByteBuffer(string: "    \r\n")), ["hello"]),  // mid-data mid-event
            ("e\r\ndata: hello\n\n", .complete(ByteBuffer(string: "\n\r\n")), ["hello"]),  // one byte owed at a boundary
            ("f\r\ndata: hello\n\n", .complete(ByteBuffer(string: ":\n\r\n")), ["hello"]),  // two bytes owed
            ("f\r\ndata: hello\n", .complete(ByteBuffer(string: "   \r\n")), []),  // event not finished
            ("d\r\ndata: hello\n\n\r\n4", .complete(nil), ["hello"]),  // pending size line dropped
            ("d\r\ndata: hello\n\n\r\n4\r\nda", .complete(ByteBuffer(string: "  \r\n")), ["hello"]),
        ]
        for (wire, ending, events) in cases {
            var relay = wireRelay()
            guard case .relay(let held, let length) = try relay.upstreamWireReceived(ByteBuffer(string: wire)) else {
                XCTFail(wire.debugDescription)
                continue
            }
            let written = (held?.bytes ?? []) + bytes(wire).prefix(length)
            let actual = relay.wireEnding()
            XCTAssertEqual(actual, ending, wire.debugDescription)
            guard let endingBytes = endingBytes(actual) else { continue }
            let output = written + endingBytes + Self.lastChunk
            let decoded = referenceDechunk(output)
            XCTAssertNotNil(decoded, "\(wire.debugDescription): \(show(output)) is not a valid chunked body")
            XCTAssertEqual(parseEventStream(decoded?.data ?? []).map(\.data), events, wire.debugDescription)
        }
    }

    // MARK: With the decoder

    func testDecoderWireSlicesThroughTheRelayAtEverySplit() throws {
        for body in ChunkedBody.eventStreams {
            let response = bytes("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                + body.wire
            for split in 0...response.count {
                var decoder = UpstreamResponseDecoder()
                decoder.requestSent(method: .GET)
                var relay = wireRelay()
                var written: [UInt8] = []
                var ended = false
                for read in splitReads(response, at: [split]) {
                    var buffer = ByteBuffer(bytes: read)
                    reading: while true {
                        switch try decoder.next(&buffer) {
                        case .head(_, let framing):
                            XCTAssertEqual(framing, .chunked)
                            decoder.passChunkedWire()
                        case .wire(let slice):
                            guard case .relay(let held, let length) = try relay.upstreamWireReceived(slice) else {
                                return XCTFail("unexpected action")
                            }
                            written += (held?.bytes ?? []) + slice.bytes.prefix(length)
                        case .body:
                            XCTFail("decoded body in wire mode")
                        case .end:
                            ended = true
                            relay.upstreamEnded()
                        case .needMore:
                            break reading
                        }
                    }
                }
                XCTAssertTrue(ended, "\(body) split at \(split)")
                XCTAssertEqual(written, Array(body.wire[..<body.lastChunkLineStart]), "\(body) split at \(split)")
                XCTAssertEqual(relay.relayedBodyBytes, body.data.count)
                XCTAssertEqual(relay.heartbeatDue(), .none, "no heartbeat after the upstream ended")
                XCTAssertEqual(referenceDechunk(written + Self.lastChunk)?.data, body.data)
            }
        }
    }
}
