import NIOCore

@testable import GatewayCore

// Shared fixtures and independent reference implementations for the chunked-wire tests
// (ChunkedFramingScannerTests, UpstreamResponseDecoderTests, StreamRelayWireTests).
//
// Nothing here calls the code under test: expectations are derived from how a fixture was *built*
// (which byte belongs to which part of the framing), never from what the scanner or relay report.

/// A chunked body described part by part, so that every byte's role in the framing is known in advance.
struct ChunkedBody: CustomStringConvertible {
    struct Chunk {
        /// The size as written on the wire (any case, leading zeros allowed).
        var hex: String
        /// Everything between the size and the CRLF (e.g. `;a=b`), possibly empty.
        var extensions: String
        var data: [UInt8]
    }

    /// What a prefix of the wire bytes leaves open, as a framing scanner must report it.
    struct PrefixState: Equatable, CustomStringConvertible {
        var pendingSizeLineLength: Int
        var isBetweenChunks: Bool
        var openChunk: ChunkedFramingScanner.OpenChunk
        var isComplete: Bool

        var description: String {
            "(pending: \(pendingSizeLineLength), between: \(isBetweenChunks), open: \(openChunk), complete: \(isComplete))"
        }
    }

    let name: String
    let chunks: [Chunk]
    /// The last chunk's line without its CRLF (`0`, `000`, `0;x=y`).
    let lastChunkLine: String
    /// Trailer field lines without CRLF.
    let trailerLines: [String]

    /// The body on the wire.
    private(set) var wire: [UInt8] = []
    /// The decoded body (chunk data concatenated).
    private(set) var data: [UInt8] = []
    /// Wire offsets where each data chunk's size line starts.
    private(set) var sizeLineStarts: [Int] = []
    /// Wire offset of the first data byte of each chunk.
    private(set) var dataStarts: [Int] = []
    /// Decoded-data offset of the first data byte of each chunk.
    private(set) var dataOffsets: [Int] = []
    /// Wire offset where the last chunk's line starts.
    private(set) var lastChunkLineStart = 0
    /// Wire offset just after the last chunk's LF.
    private(set) var lastChunkLineEnd = 0
    /// Wire offset just after the trailer section (the end of the body).
    private(set) var end = 0

    init(_ name: String, chunks: [Chunk], lastChunkLine: String = "0", trailerLines: [String] = []) {
        self.name = name
        self.chunks = chunks
        self.lastChunkLine = lastChunkLine
        self.trailerLines = trailerLines
        for chunk in chunks {
            precondition(Int(chunk.hex, radix: 16) == chunk.data.count, "fixture \(name): size \(chunk.hex) is wrong")
            precondition(!chunk.data.isEmpty, "fixture \(name): a data chunk cannot be empty")
            sizeLineStarts.append(wire.count)
            wire += Array("\(chunk.hex)\(chunk.extensions)\r\n".utf8)
            dataStarts.append(wire.count)
            dataOffsets.append(data.count)
            wire += chunk.data
            data += chunk.data
            wire += Array("\r\n".utf8)
        }
        lastChunkLineStart = wire.count
        wire += Array("\(lastChunkLine)\r\n".utf8)
        lastChunkLineEnd = wire.count
        for line in trailerLines { wire += Array("\(line)\r\n".utf8) }
        wire += Array("\r\n".utf8)
        end = wire.count
    }

    /// Convenience: a body from data strings, sizes in lower-case hex, no extensions.
    init(_ name: String, dataChunks: [String], trailerLines: [String] = []) {
        self.init(
            name,
            chunks: dataChunks.map { Chunk(hex: String($0.utf8.count, radix: 16), extensions: "", data: Array($0.utf8)) },
            trailerLines: trailerLines
        )
    }

    var description: String { name }

    /// The state any correct scanner is in after exactly `p` wire bytes.
    func state(after p: Int) -> PrefixState {
        for (index, chunk) in chunks.enumerated() {
            let lineStart = sizeLineStarts[index]
            let dataStart = dataStarts[index]
            let dataEnd = dataStart + chunk.data.count
            if p >= lineStart, p < dataStart {
                return PrefixState(pendingSizeLineLength: p - lineStart, isBetweenChunks: true, openChunk: .none, isComplete: false)
            }
            if p >= dataStart, p < dataEnd {
                return PrefixState(
                    pendingSizeLineLength: 0,
                    isBetweenChunks: false,
                    openChunk: .data(remaining: dataEnd - p),
                    isComplete: false
                )
            }
            if p == dataEnd {
                return PrefixState(pendingSizeLineLength: 0, isBetweenChunks: false, openChunk: .carriageReturnLineFeed, isComplete: false)
            }
            if p == dataEnd + 1 {
                return PrefixState(pendingSizeLineLength: 0, isBetweenChunks: false, openChunk: .lineFeed, isComplete: false)
            }
        }
        if p >= lastChunkLineStart, p < lastChunkLineEnd {
            return PrefixState(pendingSizeLineLength: p - lastChunkLineStart, isBetweenChunks: true, openChunk: .none, isComplete: false)
        }
        return PrefixState(pendingSizeLineLength: 0, isBetweenChunks: true, openChunk: .none, isComplete: p >= end)
    }

    /// The decoded data carried by the first `p` wire bytes.
    func dataPrefix(_ p: Int) -> [UInt8] {
        Array(data[..<dataCount(inFirst: p)])
    }

    /// How many decoded bytes the first `p` wire bytes carry.
    func dataCount(inFirst p: Int) -> Int {
        var count = 0
        for (index, chunk) in chunks.enumerated() {
            let start = dataStarts[index]
            count += max(0, min(p, start + chunk.data.count) - start)
        }
        return count
    }

    /// The wire offset of decoded byte `offset`.
    func wireOffset(ofDataByte offset: Int) -> Int {
        for (index, chunk) in chunks.enumerated() where offset < dataOffsets[index] + chunk.data.count {
            return dataStarts[index] + offset - dataOffsets[index]
        }
        preconditionFailure("data offset \(offset) out of range")
    }

    /// The decoded offset where the chunk holding decoded byte `offset - 1` ends (the data a cut after `offset` bytes
    /// still owes the client is `chunkDataEnd(after:) - offset`).
    func chunkDataEnd(containingDataOffset offset: Int) -> Int {
        for (index, chunk) in chunks.enumerated() where offset < dataOffsets[index] + chunk.data.count {
            return dataOffsets[index] + chunk.data.count
        }
        preconditionFailure("data offset \(offset) out of range")
    }

    /// The wire bytes a pass-through relay has forwarded once it has seen the first `p` wire bytes: everything except
    /// a size line still in progress, and never the last chunk's line or the trailers.
    func forwardedWire(after p: Int) -> [UInt8] {
        if p >= lastChunkLineStart { return Array(wire[..<lastChunkLineStart]) }
        for (index, lineStart) in sizeLineStarts.enumerated() where p >= lineStart && p < dataStarts[index] {
            return Array(wire[..<lineStart])
        }
        return Array(wire[..<p])
    }
}

extension ChunkedBody {
    /// Representative bodies. Sizes in both cases, leading zeros, extensions (with quoted strings, tabs and BWS),
    /// CRLF and lone CR/LF inside data, a last chunk with extensions and trailers.
    static var representative: [ChunkedBody] {
        [
            ChunkedBody(
                "wikipedia, upper-case hex, CRLF inside data",
                chunks: [
                    Chunk(hex: "4", extensions: "", data: Array("Wiki".utf8)),
                    Chunk(hex: "6", extensions: "", data: Array("pedia ".utf8)),
                    Chunk(hex: "E", extensions: "", data: Array("in \r\n\r\nchunks.".utf8)),
                ]
            ),
            ChunkedBody(
                "lower-case hex, extensions, trailers",
                chunks: [
                    Chunk(hex: "1a", extensions: ";a=b", data: Array("abcdefghijklmnopqrstuvwxyz".utf8)),
                    Chunk(hex: "0A", extensions: " ; name=\"quo;ted\"\t;x", data: Array("0123456789".utf8)),
                    Chunk(hex: "1", extensions: ";", data: Array("\r".utf8)),
                    Chunk(hex: "2", extensions: "", data: Array("\n\r".utf8)),
                ],
                lastChunkLine: "0;last=yes",
                trailerLines: ["X-Checksum: abc", "Expires:\tnever ", "X-Empty:"]
            ),
            ChunkedBody(
                "SSE events spanning chunks",
                chunks: [
                    Chunk(hex: "d", extensions: "", data: Array("data: hello\n\n".utf8)),
                    Chunk(hex: "7", extensions: "", data: Array("id: 1\nd".utf8)),
                    Chunk(hex: "00010", extensions: "", data: Array("ata: split\r\n\r\nev".utf8)),
                    Chunk(hex: "1C", extensions: ";e", data: Array("ent: x\rdata: a\rdata: b\r\r: c\n".utf8)),
                ],
                lastChunkLine: "000",
                trailerLines: ["Trailer-A: 1"]
            ),
            ChunkedBody(
                "one-byte chunks",
                chunks: [
                    Chunk(hex: "1", extensions: "", data: [UInt8(ascii: "x")]),
                    Chunk(hex: "01", extensions: "", data: [UInt8(ascii: "\r")]),
                    Chunk(hex: "001", extensions: "", data: [UInt8(ascii: "\n")]),
                    Chunk(hex: "1", extensions: ";z", data: [0]),
                ]
            ),
        ]
    }

    /// A short body, for splitting at every pair of positions.
    static var short: ChunkedBody {
        ChunkedBody(
            "short",
            chunks: [
                Chunk(hex: "3", extensions: "", data: Array("a\r\n".utf8)),
                Chunk(hex: "B", extensions: ";e", data: Array("data: x\n\nyz".utf8)),
            ],
            trailerLines: ["T: v"]
        )
    }

    /// SSE bodies for the relay: events span chunks, CRLF/CR/LF endings, comments, a CRLF split across chunks.
    static var eventStreams: [ChunkedBody] {
        [
            ChunkedBody(
                "events spanning chunks",
                chunks: [
                    Chunk(hex: "e", extensions: "", data: Array("data: first\n\nd".utf8)),
                    Chunk(hex: "0C", extensions: ";ext=1", data: Array("ata: second\n".utf8)),
                    Chunk(hex: "15", extensions: "", data: Array("\nid: 3\r\ndata: third\r\n".utf8)),
                    Chunk(hex: "2", extensions: "", data: Array("\r\n".utf8)),
                    Chunk(hex: "1d", extensions: "", data: Array(": note\n\nevent: e\rdata: four\r\r".utf8)),
                ],
                trailerLines: ["X-T: 1"]
            ),
            ChunkedBody(
                "several events in one chunk, CRLF split across chunks",
                chunks: [
                    Chunk(hex: "22", extensions: "", data: Array("data: a\n\ndata: b\n\ndata: c\ndata: d\r".utf8)),
                    Chunk(hex: "3", extensions: "", data: Array("\n\r\n".utf8)),
                    Chunk(hex: "A", extensions: ";x;y", data: Array("data: e\r\r\n".utf8)),
                ],
                lastChunkLine: "0;done"
            ),
        ]
    }
}

/// An independent, strict decoder of a complete chunked body (RFC 9112 §7.1). Returns `nil` unless `bytes` is exactly
/// one well-formed chunked body.
func referenceDechunk(_ bytes: [UInt8]) -> (data: [UInt8], trailers: [String])? {
    var index = 0
    func line() -> [UInt8]? {
        var cursor = index
        while cursor + 1 < bytes.count {
            if bytes[cursor] == UInt8(ascii: "\r") {
                guard bytes[cursor + 1] == UInt8(ascii: "\n") else { return nil }
                let result = Array(bytes[index..<cursor])
                index = cursor + 2
                return result
            }
            if bytes[cursor] == UInt8(ascii: "\n") { return nil }
            cursor += 1
        }
        return nil
    }
    var data: [UInt8] = []
    while true {
        guard let sizeLine = line() else { return nil }
        let digits = sizeLine.prefix { UInt8(ascii: "0")...UInt8(ascii: "9") ~= $0 || UInt8(ascii: "a")...UInt8(ascii: "f") ~= $0 || UInt8(ascii: "A")...UInt8(ascii: "F") ~= $0 }
        guard !digits.isEmpty, digits.count <= 15, let size = Int(String(decoding: digits, as: UTF8.self), radix: 16) else { return nil }
        let rest = sizeLine.dropFirst(digits.count)
        if let first = rest.first, ![UInt8(ascii: ";"), UInt8(ascii: " "), UInt8(ascii: "\t")].contains(first) { return nil }
        if size == 0 { break }
        guard index + size + 2 <= bytes.count else { return nil }
        data += bytes[index..<(index + size)]
        index += size
        guard bytes[index] == UInt8(ascii: "\r"), bytes[index + 1] == UInt8(ascii: "\n") else { return nil }
        index += 2
    }
    var trailers: [String] = []
    while true {
        guard let trailer = line() else { return nil }
        if trailer.isEmpty { break }
        trailers.append(String(decoding: trailer, as: UTF8.self))
    }
    return index == bytes.count ? (data, trailers) : nil
}

/// Frames `payload` as one chunk.
func chunkFramed(_ payload: [UInt8]) -> [UInt8] {
    Array("\(String(payload.count, radix: 16))\r\n".utf8) + payload + Array("\r\n".utf8)
}

/// An event as an `EventSource` dispatches it.
struct DispatchedEvent: Equatable, CustomStringConvertible {
    var type: String
    var data: String
    var lastEventID: String

    var description: String { "\(type)(\(data.debugDescription), id: \(lastEventID.debugDescription))" }
}

/// A minimal `text/event-stream` interpreter following the WHATWG HTML "event stream interpretation" rules, for a
/// stream that has ended: a leading BOM is skipped; lines end in CRLF, LF or CR; a final line with no line ending is
/// discarded; comments (`:`) are ignored; a blank line dispatches the event if its data buffer is not empty; an event
/// still being built at the end of the stream is discarded.
func parseEventStream(_ bytes: [UInt8]) -> [DispatchedEvent] {
    var bytes = bytes[...]
    if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
    var lines: [ArraySlice<UInt8>] = []
    var lineStart = bytes.startIndex
    var index = bytes.startIndex
    while index < bytes.endIndex {
        let byte = bytes[index]
        if byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
            lines.append(bytes[lineStart..<index])
            if byte == UInt8(ascii: "\r"), index + 1 < bytes.endIndex, bytes[index + 1] == UInt8(ascii: "\n") { index += 1 }
            lineStart = index + 1
        }
        index += 1
    }
    // bytes[lineStart...] is an unterminated line: discarded at the end of the stream.
    var events: [DispatchedEvent] = []
    var type = ""
    var data = ""
    var lastEventID = ""
    for line in lines {
        if line.isEmpty {
            if !data.isEmpty {
                if data.hasSuffix("\n") { data.removeLast() }
                events.append(DispatchedEvent(type: type.isEmpty ? "message" : type, data: data, lastEventID: lastEventID))
            }
            data = ""
            type = ""
            continue
        }
        if line.first == UInt8(ascii: ":") { continue }
        let field: ArraySlice<UInt8>
        var value: ArraySlice<UInt8>
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = line[..<colon]
            value = line[(colon + 1)...]
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        } else {
            field = line
            value = []
        }
        let text = String(decoding: value, as: UTF8.self)
        switch String(decoding: field, as: UTF8.self) {
        case "data": data += text + "\n"
        case "event": type = text
        case "id" where !value.contains(0): lastEventID = text
        default: break
        }
    }
    return events
}

/// SSE lines with CRLF and CR normalised to LF (a CR at the very end counts as a line ending); the last element is
/// the unterminated rest (empty if the bytes end with a line ending).
func referenceLines(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
    var normalized: [UInt8] = []
    var index = bytes.startIndex
    while index < bytes.endIndex {
        if bytes[index] == UInt8(ascii: "\r") {
            normalized.append(UInt8(ascii: "\n"))
            if index + 1 < bytes.endIndex, bytes[index + 1] == UInt8(ascii: "\n") { index += 1 }
        } else {
            normalized.append(bytes[index])
        }
        index += 1
    }
    let lines = normalized.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    return lines
}

/// Whether SSE bytes end exactly between two events, by an independent rule: normalise CRLF and CR to LF (a CR at
/// the very end counts as a line ending), then the stream is at a boundary if it is empty of content since the last
/// blank line that ended a non-empty block, and not in the middle of a line.
func referenceIsAtEventBoundary(_ bytes: ArraySlice<UInt8>) -> Bool {
    let lines = referenceLines(bytes)
    var blockHasContent = false
    for line in lines.dropLast() {
        if !line.isEmpty { blockHasContent = true } else { blockHasContent = false }
    }
    return lines.last!.isEmpty && !blockHasContent
}

/// Splits `bytes` into reads at the given (sorted, possibly repeated or out-of-range) positions; empty reads dropped.
func splitReads(_ bytes: [UInt8], at positions: [Int]) -> [[UInt8]] {
    var reads: [[UInt8]] = []
    var start = 0
    for position in positions.sorted() + [bytes.count] where position > start && position <= bytes.count {
        reads.append(Array(bytes[start..<position]))
        start = position
    }
    return reads
}

extension ByteBuffer {
    var bytes: [UInt8] { getBytes(at: readerIndex, length: readableBytes) ?? [] }
}

/// A readable rendering of bytes for failure messages (long runs are shortened).
func show(_ bytes: [UInt8]) -> String { brief(String(decoding: bytes, as: UTF8.self)) }

/// `text.debugDescription`, shortened in the middle if long.
func brief(_ text: String) -> String {
    let description = text.debugDescription
    guard description.count > 160 else { return description }
    return "\(description.prefix(70))…(\(text.utf8.count) bytes)…\(description.suffix(70))"
}

/// Blocks of SSE lines ended by a blank line (comment-only blocks included), by the same independent rule as
/// `referenceIsAtEventBoundary`: what `EventBoundaryTracker.completedEvents` counts.
func referenceCompletedBlocks(_ bytes: ArraySlice<UInt8>) -> Int {
    let lines = referenceLines(bytes)
    var blocks = 0
    var blockHasContent = false
    for line in lines.dropLast() {
        if !line.isEmpty {
            blockHasContent = true
        } else if blockHasContent {
            blocks += 1
            blockHasContent = false
        }
    }
    return blocks
}

/// Decodes `bytes` with `ChunkedFramingScanner`, in one range: the data and the offset of the end (nil if the body
/// does not end, or throws).
func scannerDechunk(_ bytes: [UInt8]) throws -> (data: [UInt8], end: Int?) {
    var scanner = ChunkedFramingScanner()
    var data: [UInt8] = []
    var index = 0
    while true {
        let step = try bytes.withUnsafeBytes { raw in try scanner.step(raw, index: &index) }
        switch step {
        case .data(let range): data += bytes[range]
        case .lastChunk: continue
        case .end: return (data, index)
        case .needMore: return (data, nil)
        }
    }
}
