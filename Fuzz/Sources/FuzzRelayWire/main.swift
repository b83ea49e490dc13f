import GatewayCore
import NIOCore

@testable import FuzzSupport

/// The stream relay in wire mode (the upstream's chunked framing passed through). The input is the upstream's body,
/// split into reads at fuzzer-chosen points, with a close (token expiry) requested after a chosen read, or never.
/// Whatever the client is sent, the relayed bytes and then whatever ends the response, must be one valid chunked body
/// (by the unit tests' reference decoder), and the events an `EventSource` reads from it must be the upstream's own,
/// from the start, plus the closing frame's when the relay closed.
let frame = SSEFrame.tokenExpired(retryMilliseconds: 1500)
let lastChunk = Array("0\r\n\r\n".utf8)

/// Chunk data up to the end of the body or the first framing error (the relay may cut before an error it never read).
func dataBeforeAnyError(_ bytes: [UInt8]) -> [UInt8] {
    var scanner = ChunkedFramingScanner()
    var data: [UInt8] = []
    var index = 0
    while let step = try? bytes.withUnsafeBytes({ try scanner.step($0, index: &index) }) {
        switch step {
        case .data(let range): data += bytes[range]
        case .lastChunk: continue
        case .end, .needMore: return data
        }
    }
    return data
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let closeAfter = Int(input.byte())
    let choices = [input.uint16(), input.uint16(), input.uint16()]
    let wire = input.rest
    let reads = splitReads(wire, at: splitPoints(choices, count: wire.count))

    var relay = StreamRelayStateMachine(isEventStream: true, passesChunkedWire: true)
    var written: [UInt8] = []
    var closed = false
    func finish(_ ending: StreamRelayStateMachine.ChunkEnding, frame: ByteBuffer?) -> Bool {
        guard case .complete(let bytes) = ending else { return false }
        written += bytes?.bytes ?? []
        if let frame { written += chunkFramed(frame.bytes) }
        written += lastChunk
        return true
    }
    var seen = 0
    reading: for (number, read) in reads.enumerated() {
        let action: StreamRelayStateMachine.WireAction
        do {
            action = try relay.upstreamWireReceived(ByteBuffer(bytes: read))
        } catch {
            invariant(relay.wireEnding() == .impossible, "a broken framing can still be ended")
            return 0
        }
        seen += read.count
        switch action {
        case .relay(let held, let length):
            invariant(length >= 0 && length <= read.count, "relay \(length) of \(read.count) bytes")
            written += (held?.bytes ?? []) + read[..<length]
        case .relayPrefixAndFinish(let held, let length, let ending, let closingFrame, _):
            invariant(length >= 0 && length <= read.count, "relay \(length) of \(read.count) bytes")
            written += (held?.bytes ?? []) + read[..<length]
            guard finish(ending, frame: closingFrame) else { return 0 }
            closed = true
            break reading
        }
        if number == closeAfter {
            switch relay.closeRequested(.tokenExpired, closingFrame: frame) {
            case .finish(let closingFrame, _):
                guard finish(relay.wireEnding(), frame: closingFrame) else { return 0 }
                closed = true
                break reading
            case .none, .write:
                break
            }
        }
    }
    if !closed {
        // The upstream closed (or sent its last chunk): end what the client has.
        guard finish(relay.wireEnding(), frame: nil) else { return 0 }
    }

    guard let output = referenceDechunk(written) else {
        fatalError("invariant failed: the client got no valid chunked body: \(show(written)) for upstream \(show(wire))")
    }
    // The upstream's data the relay saw, as far as its framing was valid.
    let upstream = dataBeforeAnyError(Array(wire[..<seen]))
    let upstreamEvents = parseEventStream(upstream)
    var events = parseEventStream(output.data)
    if closed {
        // Compared without `lastEventID`, which an `EventSource` carries over from the upstream's events.
        let frameEvents = parseEventStream(frame.bytes).map { [$0.type, $0.data] }
        invariant(events.suffix(frameEvents.count).map { [$0.type, $0.data] } == frameEvents, "the closing frame's event is not last: \(events)")
        events.removeLast(frameEvents.count)
        invariant(upstreamEvents.starts(with: events), "events \(events) are not a prefix of the upstream's \(upstreamEvents)")
    } else {
        invariant(events == upstreamEvents, "events \(events), upstream sent \(upstreamEvents)")
    }
    return 0
}
