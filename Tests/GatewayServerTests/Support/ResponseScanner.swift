import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a `RawClient` has received so far, kept up to date as bytes arrive: a wait reads it without decoding the
/// buffer, and a failed wait reports it.
struct ReceiveProgress: Sendable, CustomStringConvertible {
    var bytes = 0
    var closed = false
    /// Response bodies that ended: the final `0\r\n\r\n` chunk, or the last byte of a `content-length` body.
    var bodiesEnded = 0
    /// SSE events (blocks with a `data` field) in response bodies.
    var events = 0
    var firstEventID: String?
    var lastEventID: String?
    /// The first numeric `id:` that was not the previous one + 1 in the same body, as "43 after 41".
    var firstIDGap: String?

    var description: String {
        var text = "\(bytes) bytes, \(closed ? "closed" : "open"), \(bodiesEnded) bodies ended, \(events) events"
        if let lastEventID {
            let gap = firstIDGap.map { "first gap \($0)" } ?? "no gap"
            text += " (ids \(firstEventID ?? "?")...\(lastEventID), \(gap))"
        }
        return text
    }
}

/// Follows HTTP/1.1 responses as their bytes arrive, split anywhere: heads, chunked framing, `content-length` bodies,
/// and the SSE lines inside bodies. Runs on the client's event loop; only `progress` leaves it.
///
/// It does not know which requests were sent, so a response to `HEAD` (a head announcing a body that never comes)
/// puts it out of step for the rest of the connection.
struct ResponseScanner {
    private(set) var progress = ReceiveProgress()

    private enum Place {
        case head
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd(remaining: Int)
        case trailers
        case fixedBody(remaining: Int)
        case bodyUntilClose
    }

    private var place = Place.head
    /// The framing line being read (a head line, a chunk size, a trailer).
    private var line: [UInt8] = []
    private var head = (status: 0, chunked: false, length: Int?.none)

    /// The first bytes of the SSE line being read: enough for the field name and an `id` value.
    private var eventLine: [UInt8] = []
    private var eventLineLength = 0
    private var eventHasData = false
    private var previousNumericID: Int?
    private static let eventLineKept = 64

    mutating func scan(_ bytes: UnsafeRawBufferPointer) {
        progress.bytes += bytes.count
        var rest = bytes[...]
        while !rest.isEmpty {
            switch place {
            case .head, .chunkSize, .trailers:
                let byte = rest.removeFirst()
                if byte == UInt8(ascii: "\n") {
                    if line.last == UInt8(ascii: "\r") { line.removeLast() }
                    endFramingLine()
                    line.removeAll(keepingCapacity: true)
                } else {
                    line.append(byte)
                }
            case .chunkData(let remaining):
                let count = min(remaining, rest.count)
                scanEventBytes(UnsafeRawBufferPointer(rebasing: rest.prefix(count)))
                rest = rest.dropFirst(count)
                place = remaining == count ? .chunkDataEnd(remaining: 2) : .chunkData(remaining: remaining - count)
            case .chunkDataEnd(let remaining):
                rest.removeFirst()
                place = remaining == 1 ? .chunkSize : .chunkDataEnd(remaining: remaining - 1)
            case .fixedBody(let remaining):
                let count = min(remaining, rest.count)
                scanEventBytes(UnsafeRawBufferPointer(rebasing: rest.prefix(count)))
                rest = rest.dropFirst(count)
                if remaining == count { endBody() } else { place = .fixedBody(remaining: remaining - count) }
            case .bodyUntilClose:
                scanEventBytes(UnsafeRawBufferPointer(rebasing: rest))
                rest = rest.dropFirst(rest.count)
            }
        }
    }

    mutating func close() {
        progress.closed = true
    }

    private mutating func endFramingLine() {
        let text = String(decoding: line, as: UTF8.self)
        switch place {
        case .head where !text.isEmpty:
            if head.status == 0 {
                head.status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? -1
            } else if let colon = text.firstIndex(of: ":") {
                let name = text[..<colon].lowercased()
                let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces).lowercased()
                if name == "transfer-encoding" { head.chunked = value.contains("chunked") }
                if name == "content-length" { head.length = Int(value) }
            }
        case .head:
            let status = head.status
            let (chunked, length) = (head.chunked, head.length)
            head = (0, false, nil)
            previousNumericID = nil
            if (100..<200).contains(status) { return }  // an interim response; the real one follows
            if status == 204 || status == 304 || length == 0 {
                endBody()
            } else if chunked {
                place = .chunkSize
            } else if let length {
                place = .fixedBody(remaining: length)
            } else {
                place = .bodyUntilClose
            }
        case .chunkSize:
            let size = Int(text.split(separator: ";").first ?? "", radix: 16) ?? 0
            place = size == 0 ? .trailers : .chunkData(remaining: size)
        case .trailers:
            if text.isEmpty { endBody() }
        default:
            preconditionFailure("a framing line in \(place)")
        }
    }

    private mutating func endBody() {
        progress.bodiesEnded += 1
        place = .head
        eventLine.removeAll(keepingCapacity: true)
        eventLineLength = 0
        eventHasData = false
    }

    /// Splits body bytes into SSE lines (`memchr` for the newlines: a 25 MB body is scanned in a debug build too).
    private mutating func scanEventBytes(_ bytes: UnsafeRawBufferPointer) {
        guard var start = bytes.baseAddress else { return }
        let end = start + bytes.count
        while start < end {
            guard let newline = memchr(start, Int32(UInt8(ascii: "\n")), start.distance(to: end)) else {
                keepEventBytes(UnsafeRawBufferPointer(start: start, count: start.distance(to: end)))
                return
            }
            let lineEnd = UnsafeRawPointer(newline)
            keepEventBytes(UnsafeRawBufferPointer(start: start, count: start.distance(to: lineEnd)))
            endEventLine()
            start = lineEnd + 1
        }
    }

    private mutating func keepEventBytes(_ bytes: UnsafeRawBufferPointer) {
        let room = Self.eventLineKept - eventLine.count
        if room > 0 { eventLine.append(contentsOf: bytes.prefix(room)) }
        eventLineLength += bytes.count
    }

    private mutating func endEventLine() {
        defer {
            eventLine.removeAll(keepingCapacity: true)
            eventLineLength = 0
        }
        if eventLineLength <= Self.eventLineKept, eventLine.last == UInt8(ascii: "\r") { eventLine.removeLast() }
        guard let first = eventLine.first else {
            if eventHasData { progress.events += 1 }
            eventHasData = false
            return
        }
        if first == UInt8(ascii: ":") { return }  // a comment
        let colon = eventLine.firstIndex(of: UInt8(ascii: ":")) ?? eventLine.endIndex
        let field = String(decoding: eventLine[..<colon], as: UTF8.self)
        var value = eventLine[colon...].dropFirst()
        if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        switch field {
        case "data": eventHasData = true
        case "id": sawID(String(decoding: value, as: UTF8.self))
        default: break
        }
    }

    private mutating func sawID(_ id: String) {
        if progress.firstEventID == nil { progress.firstEventID = id }
        progress.lastEventID = id
        guard let number = Int(id) else { return }
        if let previous = previousNumericID, number != previous + 1, progress.firstIDGap == nil {
            progress.firstIDGap = "\(id) after \(previous)"
        }
        previousNumericID = number
    }
}
