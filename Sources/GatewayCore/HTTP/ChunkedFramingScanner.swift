/// Reads the framing of an HTTP/1.1 chunked body (RFC 9112 §7.1), one byte range at a time, without copying it.
///
/// Feed it every body byte in order, in ranges of any size; it reports where chunk data lies, where the last chunk's
/// line ends and where the trailer section ends. The relay uses it twice: the upstream decoder to find where a
/// response ends, and `StreamRelayStateMachine` to pass the upstream's framing through to an HTTP/1.1 client
/// unchanged while still seeing every data byte (for event boundaries).
///
/// Strict where it matters for passing bytes through: lines end in CRLF, sizes are hex digits (at most 15, so no
/// overflow), chunk extensions and trailer lines hold no control characters, and both are bounded.
public struct ChunkedFramingScanner: Sendable, Hashable {
    /// What the bytes just scanned were.
    public enum Step: Sendable, Hashable {
        /// Chunk data at these indices of the bytes passed in.
        case data(Range<Int>)
        /// The last chunk's line (`0\r\n`, with any extensions) ended just before the index; it was `lineLength` bytes
        /// long, counting bytes of earlier ranges. The trailer section follows.
        case lastChunk(lineLength: Int)
        /// The trailer section, and with it the body, ended just before the index.
        case end
        /// Every byte was consumed without completing anything reported above.
        case needMore
    }

    private enum State: Sendable, Hashable {
        case sizeDigits
        case sizeExtensions
        case sizeLineFeed
        case data
        case dataCarriageReturn
        case dataLineFeed
        case trailerLine(hasContent: Bool)
        case trailerLineFeed(hasContent: Bool)
        case done
    }

    /// A size line longer than this (digits and extensions, not counting its CRLF) is refused.
    public static let maxSizeLineBytes = 4096
    /// A trailer section longer than this (every line with its CRLF, the final blank line included) is refused.
    public static let maxTrailerBytes = 16384

    private var state = State.sizeDigits
    private var size = 0
    private var digits = 0
    /// Bytes of the current size line so far (zero outside one).
    private var lineLength = 0
    /// Data bytes of the current chunk not yet scanned.
    private var remaining = 0
    private var trailerBytes = 0

    public init() {}

    /// Bytes of a size line that has begun but not ended; they may have come in earlier ranges. Such bytes are what a
    /// pass-through relay holds back until the line is complete.
    public var pendingSizeLineLength: Int {
        switch state {
        case .sizeDigits, .sizeExtensions, .sizeLineFeed: return lineLength
        default: return 0
        }
    }

    /// Whether everything scanned so far, minus a pending size line, ends exactly between two chunks (or after the
    /// last chunk's line): the place where another complete chunk can be inserted.
    public var isBetweenChunks: Bool {
        switch state {
        case .sizeDigits, .sizeExtensions, .sizeLineFeed, .trailerLine, .trailerLineFeed, .done: return true
        case .data, .dataCarriageReturn, .dataLineFeed: return false
        }
    }

    /// Whether the trailer section ended (the body is complete).
    public var isComplete: Bool { state == .done }

    /// What ending the chunk in progress needs, for a relay that has passed the bytes scanned so far (minus a pending
    /// size line) to a client and must now end the body cleanly.
    public enum OpenChunk: Sendable, Hashable {
        /// Nothing: the bytes end between chunks.
        case none
        /// `remaining` more data bytes, then CRLF.
        case data(remaining: Int)
        /// CRLF (all data was sent).
        case carriageReturnLineFeed
        /// LF (the CR was sent).
        case lineFeed
    }

    public var openChunk: OpenChunk {
        switch state {
        case .data: return .data(remaining: remaining)
        case .dataCarriageReturn: return .carriageReturnLineFeed
        case .dataLineFeed: return .lineFeed
        default: return .none
        }
    }

    /// Scans from `index` and stops after the first thing worth reporting; `index` moves past what was scanned. Call
    /// it again with the same bytes until it returns `.needMore` (or `.end`: bytes after the end are not consumed).
    public mutating func step(
        _ bytes: UnsafeRawBufferPointer,
        index: inout Int
    ) throws(ChunkedFramingError) -> Step {
        while index < bytes.count {
            switch state {
            case .data:
                let count = min(remaining, bytes.count - index)
                let range = index..<(index + count)
                index += count
                remaining -= count
                if remaining == 0 { state = .dataCarriageReturn }
                return .data(range)
            case .sizeDigits:
                let byte = bytes[index]
                index += 1
                lineLength += 1
                if let value = Self.hexValue(byte) {
                    guard digits < 15 else { throw .sizeTooLarge }
                    size = size << 4 | value
                    digits += 1
                } else if digits == 0 {
                    throw .invalidSizeLine
                } else if byte == UInt8(ascii: "\r") {
                    state = .sizeLineFeed
                } else if byte == UInt8(ascii: ";") || byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
                    state = .sizeExtensions
                } else {
                    throw .invalidSizeLine
                }
            case .sizeExtensions:
                let byte = bytes[index]
                index += 1
                lineLength += 1
                if byte == UInt8(ascii: "\r") {
                    state = .sizeLineFeed
                } else if lineLength > Self.maxSizeLineBytes {
                    throw .sizeLineTooLong
                } else if HTTPFieldSyntax.isControl(byte) {
                    throw .invalidSizeLine
                }
            case .sizeLineFeed:
                guard bytes[index] == UInt8(ascii: "\n") else { throw .invalidLineEnding }
                index += 1
                let length = lineLength + 1
                lineLength = 0
                digits = 0
                if size == 0 {
                    state = .trailerLine(hasContent: false)
                    return .lastChunk(lineLength: length)
                }
                remaining = size
                size = 0
                state = .data
            case .dataCarriageReturn:
                guard bytes[index] == UInt8(ascii: "\r") else { throw .invalidLineEnding }
                index += 1
                state = .dataLineFeed
            case .dataLineFeed:
                guard bytes[index] == UInt8(ascii: "\n") else { throw .invalidLineEnding }
                index += 1
                state = .sizeDigits
            case .trailerLine(let hasContent):
                let byte = bytes[index]
                index += 1
                trailerBytes += 1
                guard trailerBytes <= Self.maxTrailerBytes else { throw .trailersTooLong }
                if byte == UInt8(ascii: "\r") {
                    state = .trailerLineFeed(hasContent: hasContent)
                } else if HTTPFieldSyntax.isControl(byte) {
                    throw .invalidTrailer
                } else if !hasContent {
                    state = .trailerLine(hasContent: true)
                }
            case .trailerLineFeed(let hasContent):
                guard bytes[index] == UInt8(ascii: "\n") else { throw .invalidLineEnding }
                index += 1
                trailerBytes += 1
                guard trailerBytes <= Self.maxTrailerBytes else { throw .trailersTooLong }
                guard hasContent else {
                    state = .done
                    return .end
                }
                state = .trailerLine(hasContent: false)
            case .done:
                return .end
            }
        }
        return state == .done ? .end : .needMore
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte &- UInt8(ascii: "a") &+ 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte &- UInt8(ascii: "A") &+ 10)
        default: return nil
        }
    }
}

/// Why a chunked body's framing was refused.
public struct ChunkedFramingError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: String, Sendable, Hashable {
        case invalidSizeLine = "invalid chunk size line"
        case sizeTooLarge = "chunk size too large"
        case sizeLineTooLong = "chunk size line too long"
        case invalidLineEnding = "chunk framing line does not end in CRLF"
        case invalidTrailer = "invalid trailer field"
        case trailersTooLong = "trailer section too long"
    }

    private let code: Code

    public static let invalidSizeLine = ChunkedFramingError(code: .invalidSizeLine)
    public static let sizeTooLarge = ChunkedFramingError(code: .sizeTooLarge)
    public static let sizeLineTooLong = ChunkedFramingError(code: .sizeLineTooLong)
    public static let invalidLineEnding = ChunkedFramingError(code: .invalidLineEnding)
    public static let invalidTrailer = ChunkedFramingError(code: .invalidTrailer)
    public static let trailersTooLong = ChunkedFramingError(code: .trailersTooLong)

    public var description: String { code.rawValue }
}
