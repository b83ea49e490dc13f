import NIOCore

/// Why the gateway ends a response stream on its own initiative.
public enum StreamCloseReason: String, Sendable, Hashable {
    /// The process is draining (SIGTERM): tell the client to reconnect elsewhere after a jittered delay.
    case draining = "drained"
    /// The verified token expired and the policy says `on_expiry: close`.
    case tokenExpired = "token_expired"
    /// `routes[].max_stream_duration` elapsed: rebalance long-lived connections.
    case maxDuration = "max_duration"
}

/// Decides what the relay writes to the client while one upstream response body streams through the gateway.
///
/// The body bytes themselves are never touched here: the state machine only looks at them through
/// `EventBoundaryTracker` so that anything the gateway adds (heartbeats, `retry:` hints, `token_expired`) is written
/// between two events, never inside one. The channel handler feeds it inputs and applies the returned actions.
public struct StreamRelayStateMachine: Sendable {
    /// What the handler does with an upstream body chunk.
    public enum BodyAction: Sendable, Equatable {
        /// Write the whole chunk to the client.
        case relay
        /// Write only the first `length` bytes (up to and including the end of an event), then the closing frame,
        /// then end the response. The rest of the chunk belongs to an event the client will get after it
        /// reconnects with `Last-Event-ID`.
        case relayPrefixAndFinish(length: Int, closingFrame: ByteBuffer?, reason: StreamCloseReason)
    }

    /// What the handler must do after a timer or a close request.
    public enum Action: Sendable, Equatable {
        /// Nothing beyond relaying the upstream bytes that caused the input (if any).
        case none
        /// Write this frame to the client (a heartbeat).
        case write(ByteBuffer)
        /// Write the frame (if any), end the client's response cleanly and close the upstream.
        case finish(closingFrame: ByteBuffer?, reason: StreamCloseReason)
    }

    private enum State: Sendable {
        /// Bytes flow unchanged; heartbeats may be injected at boundaries.
        case relaying
        /// A close was requested mid-event: finish as soon as the tracker reports a boundary.
        case closingAtNextBoundary(StreamCloseReason, closingFrame: ByteBuffer?)
        /// The relay has decided to finish (or the upstream ended); no further frames.
        case finished
    }

    private var state: State = .relaying
    private var tracker = EventBoundaryTracker()
    /// `true` for `text/event-stream` responses; other bodies are relayed without framing decisions.
    public let isEventStream: Bool
    /// `true` when the upstream's chunked framing goes to the client as it came (`upstreamWireReceived`).
    public let passesChunkedWire: Bool
    /// The upstream's chunk framing as relayed so far (wire mode only).
    private var chunks = ChunkedFramingScanner()
    /// A chunk size line begun at the end of the last read: held back until complete, so that what the client has
    /// been sent always ends where a chunk can be completed (and the last chunk is never passed on).
    private var heldSizeLine: ByteBuffer?
    /// The upstream's last chunk was seen (wire mode): nothing more of its bytes goes to the client.
    private var wireEnded = false
    /// The upstream's framing was malformed (wire mode): what the client was sent cannot be ended cleanly.
    private var wireBroken = false

    /// Body bytes (chunk data, not framing) relayed so far.
    public private(set) var relayedBodyBytes = 0

    /// A completion of the open chunk longer than this ends the client connection instead (a hostile chunk size
    /// must not make the gateway allocate what it promises).
    public static let maxChunkCompletionBytes = 65536

    public init(isEventStream: Bool, passesChunkedWire: Bool = false) {
        self.isEventStream = isEventStream
        self.passesChunkedWire = passesChunkedWire
    }

    /// Events fully relayed so far (SSE only).
    public var relayedEvents: Int { tracker.completedEvents }

    /// Whether the bytes relayed so far end exactly between two events.
    public var isAtEventBoundary: Bool { tracker.isAtEventBoundary }

    /// A body chunk from the upstream, before it is written to the client.
    public mutating func upstreamBodyReceived(_ buffer: ByteBuffer) -> BodyAction {
        precondition(!passesChunkedWire, "decoded body data for a relay that passes chunked wire bytes")
        guard isEventStream else {
            relayedBodyBytes += buffer.readableBytes
            return .relay
        }
        switch state {
        case .relaying, .finished:
            tracker.consume(buffer)
            relayedBodyBytes += buffer.readableBytes
            return .relay
        case .closingAtNextBoundary(let reason, let frame):
            guard let length = tracker.consume(buffer, stoppingAtFirstBoundary: true) else {
                relayedBodyBytes += buffer.readableBytes
                return .relay
            }
            state = .finished
            relayedBodyBytes += length
            return .relayPrefixAndFinish(length: length, closingFrame: frame, reason: reason)
        }
    }

    /// How a chunked response passed through as wire bytes can end now.
    public enum ChunkEnding: Sendable, Equatable {
        /// Write these bytes (if any) to complete the chunk in progress; then the last chunk may follow.
        case complete(ByteBuffer?)
        /// The chunk in progress promised more than `maxChunkCompletionBytes`, or the upstream's framing broke:
        /// close the connection instead.
        case impossible
    }

    /// What the handler does with an upstream read in wire mode.
    public enum WireAction: Sendable, Equatable {
        /// Write `held` (a size line held back from an earlier read), if any, then the read's first `length` bytes.
        case relay(held: ByteBuffer?, length: Int)
        /// Write `held` and the first `length` bytes (they end right after an event), then the chunk ending, then the
        /// closing frame, then end the response.
        case relayPrefixAndFinish(
            held: ByteBuffer?,
            length: Int,
            ending: ChunkEnding,
            closingFrame: ByteBuffer?,
            reason: StreamCloseReason
        )
    }

    /// Bytes of a chunked upstream body exactly as received (wire mode). The framing is checked as it passes; a
    /// malformed one throws (end the exchange as for an upstream protocol error).
    public mutating func upstreamWireReceived(_ buffer: ByteBuffer) throws(ChunkedFramingError) -> WireAction {
        precondition(passesChunkedWire, "wire bytes for a relay that decodes the body")
        guard !wireEnded else { return .relay(held: nil, length: 0) }
        var held = heldSizeLine
        heldSizeLine = nil
        var forwardEnd = buffer.readableBytes
        var cut: (length: Int, openBytes: Int, reason: StreamCloseReason, frame: ByteBuffer?)?
        let closing: (reason: StreamCloseReason, frame: ByteBuffer?)?
        if case .closingAtNextBoundary(let reason, let frame) = state, isEventStream {
            closing = (reason, frame)
        } else {
            closing = nil
        }
        do {
            try scanWire(buffer, held: &held, forwardEnd: &forwardEnd, cut: &cut, closing: closing)
        } catch {
            wireBroken = true
            state = .finished
            throw error
        }
        guard let cut else { return .relay(held: held, length: forwardEnd) }
        state = .finished
        wireEnded = true
        heldSizeLine = nil
        return .relayPrefixAndFinish(
            held: held,
            length: cut.length,
            ending: Self.chunkEnding(.data(remaining: cut.openBytes), atEventBoundary: true),
            closingFrame: cut.frame,
            reason: cut.reason
        )
    }

    private mutating func scanWire(
        _ buffer: ByteBuffer,
        held: inout ByteBuffer?,
        forwardEnd: inout Int,
        cut: inout (length: Int, openBytes: Int, reason: StreamCloseReason, frame: ByteBuffer?)?,
        closing: (reason: StreamCloseReason, frame: ByteBuffer?)?
    ) throws(ChunkedFramingError) {
        try buffer.withUnsafeReadableBytes { (bytes) throws(ChunkedFramingError) in
            var index = 0
            scanning: while true {
                switch try chunks.step(bytes, index: &index) {
                case .data(let range):
                    if isEventStream {
                        let run = UnsafeRawBufferPointer(rebasing: bytes[range])
                        if let closing {
                            if let length = tracker.consume(run, stoppingAtFirstBoundary: true) {
                                var open = range.count - length
                                if case .data(let remaining) = chunks.openChunk { open += remaining }
                                relayedBodyBytes += length
                                cut = (range.lowerBound + length, open, closing.reason, closing.frame)
                                break scanning
                            }
                        } else {
                            tracker.consume(run)
                        }
                    }
                    relayedBodyBytes += range.count
                case .lastChunk(let lineLength):
                    let lineStart = index - lineLength
                    if lineStart < 0 { held = nil }
                    forwardEnd = max(0, lineStart)
                    wireEnded = true
                    break scanning
                case .end:
                    preconditionFailure("chunked body ended without its last chunk")
                case .needMore:
                    let pending = chunks.pendingSizeLineLength
                    guard pending > 0 else { break scanning }
                    let lineStart = bytes.count - pending
                    if lineStart >= 0 {
                        heldSizeLine = buffer.getSlice(at: buffer.readerIndex + lineStart, length: pending)
                        forwardEnd = lineStart
                    } else {
                        // The line began in an earlier read and is still not complete (rare): gather it.
                        var gathered = held ?? ByteBuffer()
                        var rest = buffer
                        gathered.writeBuffer(&rest)
                        heldSizeLine = gathered
                        held = nil
                        forwardEnd = 0
                    }
                    break scanning
                }
            }
        }
    }

    /// How to end a wire-mode response now (the upstream closed, or the gateway ends the stream at an event
    /// boundary): what completes the chunk the client is in the middle of. A held size line is dropped.
    public mutating func wireEnding() -> ChunkEnding {
        heldSizeLine = nil
        guard !wireBroken else { return .impossible }
        guard passesChunkedWire, !wireEnded else { return .complete(nil) }
        wireEnded = true
        return Self.chunkEnding(chunks.openChunk, atEventBoundary: tracker.isAtEventBoundary)
    }

    /// Bytes that end an open chunk without changing what an `EventSource` reads from the stream: at an event
    /// boundary, a comment line (`:` and spaces, then LF; one LF if only one byte is owed), which another event may
    /// follow; in the middle of an event, spaces, which leave its last line unterminated so it is discarded at the end
    /// of the stream, as a cut event must be.
    static func chunkEnding(_ open: ChunkedFramingScanner.OpenChunk, atEventBoundary: Bool) -> ChunkEnding {
        switch open {
        case .none:
            return .complete(nil)
        case .lineFeed:
            return .complete(ByteBuffer(string: "\n"))
        case .carriageReturnLineFeed:
            return .complete(ByteBuffer(string: "\r\n"))
        case .data(let remaining):
            guard remaining <= maxChunkCompletionBytes else { return .impossible }
            var bytes = ByteBuffer()
            bytes.reserveCapacity(remaining + 2)
            if remaining == 0 {
                // Nothing owed (a cut right at the end of a chunk's data).
            } else if !atEventBoundary {
                bytes.writeRepeatingByte(UInt8(ascii: " "), count: remaining)
            } else if remaining == 1 {
                bytes.writeStaticString("\n")
            } else {
                bytes.writeStaticString(":")
                bytes.writeRepeatingByte(UInt8(ascii: " "), count: remaining - 2)
                bytes.writeStaticString("\n")
            }
            bytes.writeStaticString("\r\n")
            return .complete(bytes)
        }
    }

    /// The heartbeat interval passed without any byte written to the client.
    public mutating func heartbeatDue() -> Action {
        switch state {
        case .relaying where isEventStream && tracker.isAtEventBoundary && (!passesChunkedWire || chunks.isBetweenChunks):
            return .write(SSEFrame.heartbeat)
        case .relaying, .closingAtNextBoundary, .finished:
            return .none
        }
    }

    /// The gateway wants this stream to end (drain, token expiry, max duration).
    ///
    /// `closingFrame` is written just before the end (e.g. a `retry:` hint). Non-SSE bodies cannot be cut at a
    /// boundary, so they are left to finish (the caller enforces its own grace period).
    public mutating func closeRequested(_ reason: StreamCloseReason, closingFrame: ByteBuffer?) -> Action {
        switch state {
        case .finished, .closingAtNextBoundary:
            return .none
        case .relaying:
            guard isEventStream else { return .none }
            if tracker.isAtEventBoundary {
                state = .finished
                return .finish(closingFrame: closingFrame, reason: reason)
            }
            state = .closingAtNextBoundary(reason, closingFrame: closingFrame)
            return .none
        }
    }

    /// The upstream finished its response (cleanly); no more injected frames.
    public mutating func upstreamEnded() {
        state = .finished
    }
}
