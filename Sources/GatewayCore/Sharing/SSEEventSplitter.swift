import NIOCore

/// Cuts an upstream's event stream into whole events, so a shared stream can hand each subscriber only complete
/// events (a subscriber may join between any two) and keep them for replay.
///
/// Events are slices of the bytes read (no copy), except an event begun in one read and ended in a later one, whose
/// bytes are gathered once. Lines end with CRLF, LF or CR; a blank line ends a block that has at least one line.
/// Blank lines between blocks go out with the next event (a browser ignores them: nothing is buffered to dispatch).
/// Per block it reads the `id` field (the last one, as `EventSource` does; one with a NUL is ignored) and `retry`.
public struct SSEEventSplitter: Sendable {
    public struct Event: Sendable, Equatable {
        /// The block's bytes, blank line included.
        public var bytes: ByteBuffer
        /// The value of the block's `id` field, if it has one (`""` resets the client's last event id).
        public var id: String?
        /// `false` for a block of comments only (an upstream's keep-alive): relayed, never replayed.
        public var hasFields: Bool

        public init(bytes: ByteBuffer, id: String?, hasFields: Bool) {
            self.bytes = bytes
            self.id = id
            self.hasFields = hasFields
        }
    }

    /// An event longer than this (its blank line never coming) ends the upstream connection: nothing unbounded is
    /// gathered.
    public let maxEventBytes: Int
    /// The last `retry:` value the upstream sent, in milliseconds.
    public private(set) var retryMilliseconds: Int?

    /// Bytes of an event begun in an earlier read (readerIndex at its first byte), and how far they were scanned.
    private var pending: ByteBuffer?
    private var scanned = 0
    // Scan state, carried across reads.
    private var lineStart = 0
    private var lineHasContent = false
    private var blockHasContent = false
    private var blockHasFields = false
    private var afterCarriageReturn = false
    private var blockID: String?

    public init(maxEventBytes: Int = 1 << 20) {
        self.maxEventBytes = maxEventBytes
    }

    public struct EventTooLarge: Error, CustomStringConvertible {
        public var limit: Int
        public var description: String { "an event longer than \(limit) bytes" }
    }

    /// Splits `buffer` (the next decoded body bytes), appending the events it completes to `events`. Returns the bytes
    /// of those events as one contiguous buffer (`nil` if none completed).
    public mutating func split(_ buffer: ByteBuffer, into events: inout [Event]) throws(EventTooLarge) -> ByteBuffer? {
        var work: ByteBuffer
        if var pending {
            self.pending = nil
            pending.writeImmutableBuffer(buffer)
            work = pending
        } else {
            work = buffer
            scanned = 0
            lineStart = 0
        }
        let firstEvent = events.count
        var eventStart = 0
        var index = scanned
        let count = work.readableBytes
        work.withUnsafeReadableBytes { bytes in
            while index < count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\n") where afterCarriageReturn:
                    afterCarriageReturn = false
                    lineStart = index
                case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                    afterCarriageReturn = byte == UInt8(ascii: "\r")
                    if lineHasContent {
                        readField(UnsafeRawBufferPointer(rebasing: bytes[lineStart..<(index - 1)]))
                        lineHasContent = false
                        blockHasContent = true
                    } else if blockHasContent {
                        var end = index
                        if afterCarriageReturn, end < count, bytes[end] == UInt8(ascii: "\n") {
                            afterCarriageReturn = false
                            end += 1
                            index = end
                        }
                        events.append(
                            Event(
                                bytes: work.getSlice(at: work.readerIndex + eventStart, length: end - eventStart)!,
                                id: blockID, hasFields: blockHasFields
                            )
                        )
                        eventStart = end
                        blockHasContent = false
                        blockHasFields = false
                        blockID = nil
                    }
                    lineStart = index
                default:
                    afterCarriageReturn = false
                    lineHasContent = true
                }
            }
        }
        if eventStart < count {
            guard count - eventStart <= maxEventBytes else { throw EventTooLarge(limit: maxEventBytes) }
            pending = work.getSlice(at: work.readerIndex + eventStart, length: count - eventStart)
            scanned = count - eventStart
            lineStart -= eventStart
        }
        guard events.count > firstEvent else { return nil }
        return work.getSlice(at: work.readerIndex, length: eventStart)
    }

    /// A complete non-empty line: remembers `id` and `retry` (other fields and comments pass untouched).
    private mutating func readField(_ line: UnsafeRawBufferPointer) {
        guard let first = line.first, first != UInt8(ascii: ":") else { return }
        blockHasFields = true
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.count
        let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
        guard name.elementsEqual("id".utf8) || name.elementsEqual("retry".utf8) else { return }
        var valueStart = min(colon + 1, line.count)
        if valueStart < line.count, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let value = UnsafeRawBufferPointer(rebasing: line[valueStart...])
        if name.count == 2 {
            if !value.contains(0) { blockID = String(decoding: value, as: UTF8.self) }
        } else if !value.isEmpty, value.count <= 9, value.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            retryMilliseconds = value.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        }
    }

    /// Forgets a partial event (the upstream connection it came from is gone); `retry` is kept.
    public mutating func reset() {
        pending = nil
        scanned = 0
        lineStart = 0
        lineHasContent = false
        blockHasContent = false
        blockHasFields = false
        afterCarriageReturn = false
        blockID = nil
    }
}
