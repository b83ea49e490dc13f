/// An incremental `text/event-stream` parser (WHATWG rules, the parts a load client needs): lines end in LF, CRLF or
/// CR, chunks may split anywhere (even between CR and LF), `data` lines accumulate, comments are counted (a gateway's
/// heartbeats are comments), `id` and `retry` are kept, other fields are ignored, a blank line dispatches. Buffers are
/// reused, so steady-state parsing does not allocate.
struct SSEParser {
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var lastWasCR = false
    /// The `id` field seen last; it becomes `lastEventID` only when its event is dispatched (WHATWG: an event cut off
    /// by a disconnect must not move the id a reconnect resumes from).
    private var idBuffer: [UInt8] = []
    /// The last event ID string: the id in force at the last dispatch (a blank line), as bytes. Kept across
    /// `startConnection()`, as `EventSource` keeps it to send as `Last-Event-ID`.
    private(set) var lastEventID: [UInt8] = []
    /// The last valid `retry:` value in milliseconds (digits only, as WHATWG requires), nil until one arrives.
    private(set) var retryMillis: UInt64?
    /// Comment lines seen (`:` first), heartbeats included.
    private(set) var comments: UInt64 = 0

    init() {
        line.reserveCapacity(512)
        data.reserveCapacity(512)
    }

    /// Forgets a partial line and event, for the first bytes of a new connection; keeps `lastEventID`, `retryMillis`
    /// and the comment count.
    mutating func startConnection() {
        line.removeAll(keepingCapacity: true)
        data.removeAll(keepingCapacity: true)
        hasData = false
        lastWasCR = false
        idBuffer.removeAll(keepingCapacity: true)
        idBuffer.append(contentsOf: lastEventID)
    }

    /// Feeds bytes; calls `onEvent` with each complete event's data (lines joined by LF).
    mutating func feed<Bytes: Sequence<UInt8>>(_ bytes: Bytes, onEvent: (ArraySlice<UInt8>) -> Void) {
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\n"):
                if lastWasCR {
                    lastWasCR = false  // second half of CRLF: the line already ended at the CR
                } else {
                    endLine(onEvent: onEvent)
                }
            case UInt8(ascii: "\r"):
                lastWasCR = true
                endLine(onEvent: onEvent)
            default:
                lastWasCR = false
                line.append(byte)
            }
        }
    }

    private mutating func endLine(onEvent: (ArraySlice<UInt8>) -> Void) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if lastEventID != idBuffer {  // copied element-wise: neither array shares storage, so neither reallocates
                lastEventID.removeAll(keepingCapacity: true)
                lastEventID.append(contentsOf: idBuffer)
            }
            if hasData {
                onEvent(data[...])
            }
            data.removeAll(keepingCapacity: true)
            hasData = false
            return
        }
        if line[0] == UInt8(ascii: ":") {
            comments &+= 1
            return
        }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
        var valueStart = colon == line.endIndex ? colon : colon + 1
        if valueStart < line.endIndex && line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let name = line[..<colon]
        if name.elementsEqual("data".utf8) {
            if hasData { data.append(UInt8(ascii: "\n")) }
            data.append(contentsOf: line[valueStart...])
            hasData = true
        } else if name.elementsEqual("id".utf8) {
            guard !line[valueStart...].contains(0) else { return }  // WHATWG: an id with NUL is ignored
            idBuffer.removeAll(keepingCapacity: true)
            idBuffer.append(contentsOf: line[valueStart...])
        } else if name.elementsEqual("retry".utf8) {
            let value = line[valueStart...]
            guard !value.isEmpty, value.count <= 18,
                value.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
            else { return }
            retryMillis = value.reduce(0) { $0 * 10 + UInt64($1 - UInt8(ascii: "0")) }
        }
    }
}

/// The benchmark payload `<sendTimeNanos> <seq> <padding>`, parsed without allocating.
struct BenchPayload {
    var sendNanos: UInt64
    var sequence: UInt64

    init?(_ data: ArraySlice<UInt8>) {
        var index = data.startIndex
        guard let nanos = Self.number(data, &index) else { return nil }
        guard index < data.endIndex, data[index] == UInt8(ascii: " ") else { return nil }
        index += 1
        guard let seq = Self.number(data, &index) else { return nil }
        sendNanos = nanos
        sequence = seq
    }

    private static func number(_ data: ArraySlice<UInt8>, _ index: inout Int) -> UInt64? {
        var value: UInt64 = 0
        let start = index
        while index < data.endIndex, data[index] >= UInt8(ascii: "0"), data[index] <= UInt8(ascii: "9") {
            value = value &* 10 &+ UInt64(data[index] - UInt8(ascii: "0"))
            index += 1
        }
        return index > start ? value : nil
    }
}
