import NIOCore

/// Tracks SSE framing over relayed bytes so the gateway can inject heartbeats / retry hints / token_expired events only
/// between events, never inside a half-relayed one. Lines end with CRLF, LF or CR; an empty line ends an event.
///
/// Feed it the upstream's bytes only. The gateway's own frames are complete events ending in a blank line, so injecting
/// one at a boundary leaves the tracker's view valid. A "\r" whose "\n" has not arrived yet is remembered, so CRLF split
/// across two buffers is one line ending. A leading UTF-8 BOM counts as content (conservative: the first boundary comes
/// one blank line later than a browser would see it).
public struct EventBoundaryTracker: Sendable {
    /// The current line has at least one byte.
    private var lineHasContent = false
    /// The current event block has at least one non-empty line (field or comment).
    private var blockHasContent = false
    /// The previous byte was "\r": a "\n" right after it is part of the same line ending.
    private var afterCarriageReturn = false

    /// Events completed so far: blank lines that end a block containing at least one non-empty line (comments count
    /// as lines, so a ": keep-alive" comment block counts as one event too, though a browser dispatches nothing for
    /// it). Runs of blank lines count once.
    public private(set) var completedEvents: Int = 0

    public init() {}

    /// true before any byte, and right after a blank line that ended an event (or a run of blank lines). False in the
    /// middle of a line or after a line ending that ended a non-empty line.
    public var isAtEventBoundary: Bool { !lineHasContent && !blockHasContent }

    /// Scans the readable bytes (does not move readerIndex). Tight loop over withUnsafeReadableBytes, no allocation.
    public mutating func consume(_ buffer: ByteBuffer) {
        _ = scan(buffer, stoppingAtFirstBoundary: false)
    }

    /// Scans up to the end of the first event that completes in `buffer` and returns how many bytes that is
    /// (including a "\n" that directly follows a blank line's "\r"), or `nil` — having scanned everything — if no event
    /// completes in it. Used to cut a stream right after an event without ever splitting one.
    public mutating func consume(_ buffer: ByteBuffer, stoppingAtFirstBoundary: Bool) -> Int? {
        scan(buffer, stoppingAtFirstBoundary: stoppingAtFirstBoundary)
    }

    /// `consume(_:)` over raw bytes (chunk data inside a larger read).
    public mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        _ = scan(bytes, stoppingAtFirstBoundary: false)
    }

    /// `consume(_:stoppingAtFirstBoundary:)` over raw bytes.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer, stoppingAtFirstBoundary: Bool) -> Int? {
        scan(bytes, stoppingAtFirstBoundary: stoppingAtFirstBoundary)
    }

    private mutating func scan(_ buffer: ByteBuffer, stoppingAtFirstBoundary: Bool) -> Int? {
        buffer.withUnsafeReadableBytes { scan($0, stoppingAtFirstBoundary: stoppingAtFirstBoundary) }
    }

    private mutating func scan(_ bytes: UnsafeRawBufferPointer, stoppingAtFirstBoundary: Bool) -> Int? {
        var lineHasContent = self.lineHasContent
        var blockHasContent = self.blockHasContent
        var afterCarriageReturn = self.afterCarriageReturn
        var completedEvents = self.completedEvents
        let boundaryEnd: Int? = { () -> Int? in
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\n") where afterCarriageReturn:
                    afterCarriageReturn = false
                    continue
                case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                    afterCarriageReturn = byte == UInt8(ascii: "\r")
                    if lineHasContent {
                        lineHasContent = false
                        blockHasContent = true
                    } else if blockHasContent {
                        blockHasContent = false
                        completedEvents += 1
                        if stoppingAtFirstBoundary {
                            if afterCarriageReturn, index < bytes.count, bytes[index] == UInt8(ascii: "\n") {
                                afterCarriageReturn = false
                                index += 1
                            }
                            return index
                        }
                    }
                default:
                    afterCarriageReturn = false
                    lineHasContent = true
                }
            }
            return nil
        }()
        self.lineHasContent = lineHasContent
        self.blockHasContent = blockHasContent
        self.afterCarriageReturn = afterCarriageReturn
        self.completedEvents = completedEvents
        return boundaryEnd
    }
}
