import NIOCore
import NIOHTTP1

/// Reads HTTP/1.x responses from an upstream connection: the head, then the body as its framing says.
///
/// NIO's `HTTPResponseDecoder` hands on only a chunked body's data, so a proxy must frame every chunk anew. This
/// decoder can instead hand on a chunked body's wire bytes as they came (`passChunkedWire()`), which an HTTP/1.1
/// client can be sent unchanged: one write per upstream read, no chunk decoded and re-encoded. It also knows exactly
/// where each response ends, so a keep-alive connection is reused only after a complete response.
///
/// Framing follows RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; `Transfer-Encoding` ending in `chunked` is
/// chunked, any other transfer coding reads until the connection closes; `Content-Length` (every copy equal);
/// otherwise until close. A response with both `Transfer-Encoding` and `Content-Length` is refused (a smuggling
/// sign); so are obsolete line folding, control characters in fields and heads over `maxHeadBytes`. Informational
/// responses (100, 103) are skipped; 101 is refused (the gateway never asks for an upgrade).
public struct UpstreamResponseDecoder: Sendable {
    /// How the body of the response just decoded is delimited.
    public enum BodyFraming: Sendable, Hashable {
        case none
        case contentLength(Int)
        case chunked
        case untilClose
    }

    public enum Event: Sendable {
        /// A final response head (informational ones are skipped).
        case head(HTTPResponseHead, BodyFraming)
        /// Body data (framing removed).
        case body(ByteBuffer)
        /// A chunked body's bytes exactly as received, framing included, up to and including the trailer section.
        case wire(ByteBuffer)
        /// The response is complete.
        case end
        /// Every byte was consumed; call again with the next read.
        case needMore
    }

    /// What the end of the connection means for the response in progress.
    public enum EndOfInput: Sendable, Hashable {
        /// No response was in progress (or none had begun arriving).
        case idle
        /// The body was delimited by the close: the response is complete.
        case ended
        /// The response was cut short.
        case truncated
    }

    private enum State: Sendable {
        case idle
        case head(method: HTTPMethod)
        case contentLength(remaining: Int)
        case chunked(wire: Bool)
        case untilClose
        /// The response is complete; report `.end` next.
        case ending
    }

    /// The longest response head accepted.
    public let maxHeadBytes: Int

    private var state = State.idle
    /// A head that arrived in more than one read, gathered here (the only copy the decoder makes).
    private var partialHead: ByteBuffer?
    /// Bytes of the current head line so far, excluding CR (to find the blank line across reads).
    private var headLineLength = 0
    private var headHasLine = false
    /// Some of the response to the request outstanding arrived (an interim 1xx counts).
    private var responseBegun = false
    private var scanner = ChunkedFramingScanner()

    public init(maxHeadBytes: Int = 65536) {
        self.maxHeadBytes = maxHeadBytes
    }

    /// Whether a response is expected or in progress.
    public var isIdle: Bool {
        if case .idle = state { return partialHead == nil }
        return false
    }

    /// A request was sent: the next bytes are its response. The method matters (a response to HEAD has no body).
    public mutating func requestSent(method: HTTPMethod) {
        guard case .idle = state else {
            preconditionFailure("request sent while a response is in progress: \(state)")
        }
        state = .head(method: method)
        headLineLength = 0
        headHasLine = false
        responseBegun = false
    }

    /// For the chunked body whose head was just returned: report its bytes as `.wire`, framing and all.
    public mutating func passChunkedWire() {
        guard case .chunked(wire: false) = state else {
            preconditionFailure("passChunkedWire() without a chunked body starting: \(state)")
        }
        state = .chunked(wire: true)
    }

    /// Decodes from `buffer` (moving its reader index) up to the next event.
    public mutating func next(_ buffer: inout ByteBuffer) throws -> Event {
        while true {
            switch state {
            case .idle:
                guard buffer.readableBytes == 0 else { throw UpstreamResponseError.unexpectedBytes }
                return .needMore
            case .ending:
                state = .idle
                return .end
            case .head(let method):
                guard let head = try readHead(&buffer) else { return .needMore }
                if let event = try startBody(head, method: method) { return event }
            case .contentLength(let remaining):
                guard buffer.readableBytes > 0 else { return .needMore }
                let count = min(remaining, buffer.readableBytes)
                let data = buffer.readSlice(length: count)!
                state = count == remaining ? .ending : .contentLength(remaining: remaining - count)
                return .body(data)
            case .untilClose:
                guard buffer.readableBytes > 0 else { return .needMore }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            case .chunked(let wire):
                return try wire ? readChunkedWire(&buffer) : readChunkedData(&buffer)
            }
        }
    }

    /// The connection closed (EOF): what that means for the response in progress.
    public mutating func endOfInput() -> EndOfInput {
        defer {
            state = .idle
            partialHead = nil
        }
        switch state {
        case .idle: return .idle
        case .head: return responseBegun ? .truncated : .idle
        case .untilClose, .ending: return .ended
        case .contentLength, .chunked: return .truncated
        }
    }

    // MARK: Body

    private mutating func readChunkedData(_ buffer: inout ByteBuffer) throws -> Event {
        while buffer.readableBytes > 0 {
            var index = 0
            let step = try buffer.withUnsafeReadableBytes { bytes in try scanner.step(bytes, index: &index) }
            switch step {
            case .data(let range):
                buffer.moveReaderIndex(forwardBy: range.lowerBound)
                return .body(buffer.readSlice(length: range.count)!)
            case .lastChunk, .needMore:
                buffer.moveReaderIndex(forwardBy: index)
            case .end:
                buffer.moveReaderIndex(forwardBy: index)
                scanner = ChunkedFramingScanner()
                state = .idle
                return .end
            }
        }
        return .needMore
    }

    private mutating func readChunkedWire(_ buffer: inout ByteBuffer) throws -> Event {
        var index = 0
        let ended = try buffer.withUnsafeReadableBytes { bytes in
            while true {
                switch try scanner.step(bytes, index: &index) {
                case .data, .lastChunk: continue
                case .needMore: return false
                case .end: return true
                }
            }
        }
        if ended {
            scanner = ChunkedFramingScanner()
            state = .ending
        }
        guard index > 0 else { return .needMore }
        return .wire(buffer.readSlice(length: index)!)
    }

    // MARK: Head

    /// The complete head (status line through the blank line), or `nil` having kept a partial one.
    private mutating func readHead(_ buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard buffer.readableBytes > 0 else { return nil }
        responseBegun = true
        let end: Int? = buffer.withUnsafeReadableBytes { bytes in
            for index in 0..<bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\n") {
                    if headLineLength == 0 && headHasLine { return index + 1 }
                    headHasLine = true
                    headLineLength = 0
                } else if byte != UInt8(ascii: "\r") {
                    headLineLength += 1
                }
            }
            return nil
        }
        let length = end ?? buffer.readableBytes
        guard (partialHead?.readableBytes ?? 0) + length <= maxHeadBytes else { throw UpstreamResponseError.headTooLarge }
        var slice = buffer.readSlice(length: length)!
        if partialHead != nil {
            partialHead!.writeBuffer(&slice)
        } else if end == nil {
            // Gathered in a buffer of our own: the read's buffer is not kept alive by a slice.
            var gathered = ByteBufferAllocator().buffer(capacity: max(1024, length * 2))
            gathered.writeBuffer(&slice)
            partialHead = gathered
        }
        guard end != nil else { return nil }
        defer { partialHead = nil }
        headLineLength = 0
        headHasLine = false
        return partialHead ?? slice
    }

    /// Decides the body framing of a parsed head; `nil` for an informational response (the next head follows).
    private mutating func startBody(_ headBytes: ByteBuffer, method: HTTPMethod) throws -> Event? {
        let head = try Self.parseHead(headBytes)
        let code = head.status.code
        if code >= 100 && code < 200 {
            guard code != 101 else { throw UpstreamResponseError.switchingProtocols }
            return nil
        }
        let framing = try Self.framing(of: head, method: method)
        switch framing {
        case .none: state = .ending
        case .contentLength(let length): state = length == 0 ? .ending : .contentLength(remaining: length)
        case .chunked: state = .chunked(wire: false)
        case .untilClose: state = .untilClose
        }
        return .head(head, framing)
    }

    static func framing(of head: HTTPResponseHead, method: HTTPMethod) throws -> BodyFraming {
        let code = head.status.code
        if method == .HEAD || code == 204 || code == 304 { return .none }
        // Raw values split here (NIO's `canonicalForm` drops empty elements, which must not go unnoticed).
        let codings = Self.listElements(head.headers["transfer-encoding"])
        let lengths = Self.listElements(head.headers["content-length"])
        if !codings.isEmpty {
            guard lengths.isEmpty else { throw UpstreamResponseError.conflictingFraming }
            // Chunked at most once (RFC 9112 §7); not last: the body runs until the close (§6.3 rule 4).
            var chunkedCount = 0
            for coding in codings {
                guard !coding.isEmpty else { throw UpstreamResponseError.conflictingFraming }
                if Self.isChunked(coding) { chunkedCount += 1 }
            }
            guard chunkedCount <= 1 else { throw UpstreamResponseError.conflictingFraming }
            return Self.isChunked(codings.last!) ? .chunked : .untilClose
        }
        guard let first = lengths.first else { return .untilClose }
        guard lengths.allSatisfy({ $0.elementsEqual(first) }), first.count <= 18, !first.isEmpty,
            first.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let length = Int(Substring(first))
        else { throw UpstreamResponseError.invalidContentLength }
        return .contentLength(length)
    }

    /// `chunked`, in any case, without lowercasing a copy.
    private static func isChunked(_ coding: Substring.UTF8View) -> Bool {
        HopByHopHeaders.equalsIgnoringCase(Substring(coding), "chunked")
    }

    /// The comma-separated elements of every copy of a field, trimmed, empty ones kept. Bytes, not `Character`s: a
    /// comma followed by a combining mark still separates two elements.
    private static func listElements(_ values: [String]) -> [Substring.UTF8View] {
        var elements: [Substring.UTF8View] = []
        for value in values {
            for element in value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                elements.append(HTTPFieldSyntax.trimmingWhitespace(element))
            }
        }
        return elements
    }

    /// Parses a complete head: status line, fields, blank line. Lines end in LF, optionally preceded by CR.
    static func parseHead(_ buffer: ByteBuffer) throws -> HTTPResponseHead {
        try buffer.withUnsafeReadableBytes { bytes in
            var lines = HeadLines(bytes: bytes)
            guard let statusLine = lines.next() else { throw UpstreamResponseError.invalidStatusLine }
            let (version, status) = try parseStatusLine(UnsafeRawBufferPointer(rebasing: bytes[statusLine]))
            var headers = HTTPHeaders()
            while let line = lines.next(), !line.isEmpty {
                let (name, value) = try parseField(UnsafeRawBufferPointer(rebasing: bytes[line]))
                headers.add(name: name, value: value)
            }
            return HTTPResponseHead(version: version, status: status, headers: headers)
        }
    }

    private static func parseStatusLine(_ line: UnsafeRawBufferPointer) throws -> (HTTPVersion, HTTPResponseStatus) {
        // "HTTP/1.1 200" then optionally " reason".
        let prefix = Array("HTTP/1.".utf8)
        guard line.count >= 12, line.starts(with: prefix), line[8] == UInt8(ascii: " ") else {
            throw UpstreamResponseError.invalidStatusLine
        }
        let minor = line[7]
        guard minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1") else {
            throw UpstreamResponseError.unsupportedVersion
        }
        var code = 0
        for index in 9..<12 {
            let digit = line[index]
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else {
                throw UpstreamResponseError.invalidStatusLine
            }
            code = code * 10 + Int(digit - UInt8(ascii: "0"))
        }
        guard code >= 100 else { throw UpstreamResponseError.invalidStatusLine }
        var reason = ""
        if line.count > 12 {
            guard line[12] == UInt8(ascii: " ") else { throw UpstreamResponseError.invalidStatusLine }
            let text = UnsafeRawBufferPointer(rebasing: line[13...])
            guard !text.contains(where: HTTPFieldSyntax.isControl) else {
                throw UpstreamResponseError.invalidStatusLine
            }
            reason = String(decoding: text, as: UTF8.self)
        }
        return (HTTPVersion(major: 1, minor: Int(minor - UInt8(ascii: "0"))), HTTPResponseStatus(statusCode: code, reasonPhrase: reason))
    }

    private static func parseField(_ line: UnsafeRawBufferPointer) throws -> (String, String) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0,
            line[..<colon].allSatisfy(HTTPFieldSyntax.isTokenCharacter)
        else {
            // Includes obsolete line folding (a line starting with whitespace).
            throw UpstreamResponseError.invalidField
        }
        var start = colon + 1
        var end = line.count
        while start < end, line[start] == UInt8(ascii: " ") || line[start] == UInt8(ascii: "\t") { start += 1 }
        while end > start, line[end - 1] == UInt8(ascii: " ") || line[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        let value = UnsafeRawBufferPointer(rebasing: line[start..<end])
        guard !value.contains(where: HTTPFieldSyntax.isControl) else { throw UpstreamResponseError.invalidField }
        return (
            String(decoding: UnsafeRawBufferPointer(rebasing: line[..<colon]), as: UTF8.self),
            String(decoding: value, as: UTF8.self)
        )
    }
}

/// The lines of a head, without their line endings (LF, or CRLF).
private struct HeadLines {
    let bytes: UnsafeRawBufferPointer
    var start = 0

    mutating func next() -> Range<Int>? {
        guard start < bytes.count, let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        var end = newline
        if end > start, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        defer { start = newline + 1 }
        return start..<end
    }
}

/// Why an upstream's response was refused (the client gets 502 Bad Gateway, or a cut stream if it had begun).
public struct UpstreamResponseError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: String, Sendable, Hashable {
        case unexpectedBytes = "bytes from the upstream with no request outstanding"
        case headTooLarge = "response head too large"
        case invalidStatusLine = "invalid status line"
        case unsupportedVersion = "unsupported HTTP version"
        case invalidField = "invalid header field"
        case switchingProtocols = "unexpected 101 Switching Protocols"
        case conflictingFraming = "conflicting or repeated framing (Transfer-Encoding, Content-Length)"
        case invalidContentLength = "invalid Content-Length"
    }

    private let code: Code

    public static let unexpectedBytes = UpstreamResponseError(code: .unexpectedBytes)
    public static let headTooLarge = UpstreamResponseError(code: .headTooLarge)
    public static let invalidStatusLine = UpstreamResponseError(code: .invalidStatusLine)
    public static let unsupportedVersion = UpstreamResponseError(code: .unsupportedVersion)
    public static let invalidField = UpstreamResponseError(code: .invalidField)
    public static let switchingProtocols = UpstreamResponseError(code: .switchingProtocols)
    public static let conflictingFraming = UpstreamResponseError(code: .conflictingFraming)
    public static let invalidContentLength = UpstreamResponseError(code: .invalidContentLength)

    public var description: String { code.rawValue }
}
