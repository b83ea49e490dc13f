import GatewayCore
import NIOCore
import NIOHTTP1

@testable import FuzzSupport

/// The upstream response decoder's output must not depend on how the input is split into reads, nor on whether a
/// chunked body is handed on decoded or as wire bytes (the wire bytes, de-chunked by the unit tests' reference
/// decoder, are the decoded body).
enum Item: Equatable {
    case head(version: HTTPVersion, status: Int, headers: [String], framing: UpstreamResponseDecoder.BodyFraming)
    case body([UInt8])
    case end
    case failed(String)
    case endOfInput(UpstreamResponseDecoder.EndOfInput)
}

func decode(_ reads: [[UInt8]], method: HTTPMethod, wire: Bool, maxHeadBytes: Int) -> [Item] {
    var decoder = UpstreamResponseDecoder(maxHeadBytes: maxHeadBytes)
    var items: [Item] = []
    var wireBytes: [UInt8]?
    func append(_ item: Item) {
        // Body bytes merge, so that the split of a body into events does not count.
        if case .body(let more) = item, case .body(let earlier)? = items.last {
            items[items.count - 1] = .body(earlier + more)
        } else {
            items.append(item)
        }
    }
    decoder.requestSent(method: method)
    for read in reads {
        var buffer = ByteBuffer(bytes: read)
        do {
            reading: while true {
                switch try decoder.next(&buffer) {
                case .head(let head, let framing):
                    append(.head(version: head.version, status: Int(head.status.code),
                                 headers: head.headers.map { "\($0.name): \($0.value)" }, framing: framing))
                    if wire, framing == .chunked {
                        decoder.passChunkedWire()
                        wireBytes = []
                    }
                case .body(let data):
                    invariant(wireBytes == nil, "decoded body data in wire mode")
                    if data.readableBytes > 0 { append(.body(data.bytes)) }
                case .wire(let data):
                    invariant(wireBytes != nil, "wire bytes without asking for them")
                    invariant(data.readableBytes > 0, "empty wire bytes")
                    wireBytes! += data.bytes
                case .end:
                    if let bytes = wireBytes {
                        guard let reference = referenceDechunk(bytes) else {
                            fatalError("invariant failed: wire bytes are not one chunked body: \(show(bytes))")
                        }
                        if !reference.data.isEmpty { append(.body(reference.data)) }
                        wireBytes = nil
                    }
                    append(.end)
                    decoder.requestSent(method: method)
                case .needMore:
                    invariant(buffer.readableBytes == 0, "needMore with \(buffer.readableBytes) bytes left")
                    break reading
                }
            }
        } catch {
            append(.failed("\(error)"))
            return items
        }
    }
    if let bytes = wireBytes, !bytes.isEmpty {
        // A chunked body cut short: its complete chunks' data, as the decoded mode reported it.
        let decoded = (try? scannerDechunk(bytes))?.data ?? []
        if !decoded.isEmpty { append(.body(decoded)) }
    }
    append(.endOfInput(decoder.endOfInput()))
    return items
}

func withoutBodyBeforeFailure(_ items: [Item]) -> [Item] {
    guard case .failed? = items.last, items.count >= 2, case .body = items[items.count - 2] else { return items }
    return items.prefix(items.count - 2) + [items.last!]
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let options = input.byte()
    let choices = [input.uint16(), input.uint16(), input.uint16()]
    let bytes = input.rest
    let method: HTTPMethod = options & 1 == 0 ? .GET : .HEAD
    let maxHeadBytes = options & 2 == 0 ? 65536 : 64
    let whole = decode([bytes], method: method, wire: false, maxHeadBytes: maxHeadBytes)
    let reads = splitReads(bytes, at: splitPoints(choices, count: bytes.count))
    let split = decode(reads, method: method, wire: false, maxHeadBytes: maxHeadBytes)
    invariant(whole == split, "split at \(choices): \(whole) vs \(split)")
    // Wire mode hands on no byte of a read in which the framing breaks, so the body cut by an error is not compared.
    let wire = decode(reads, method: method, wire: true, maxHeadBytes: maxHeadBytes)
    invariant(withoutBodyBeforeFailure(whole) == withoutBodyBeforeFailure(wire), "wire mode: \(whole) vs \(wire)")
    if bytes.count <= 256 {
        let single = decode(bytes.map { [$0] }, method: method, wire: false, maxHeadBytes: maxHeadBytes)
        invariant(whole == single, "byte by byte: \(whole) vs \(single)")
    }
    return 0
}
