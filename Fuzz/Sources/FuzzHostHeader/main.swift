import GatewayCore
import NIOHTTP1

@testable import FuzzSupport

/// The `Host` rule. `HostHeader.isValid` agrees with the RFC 3986 `host [ ":" port ]` grammar written out below, and
/// `HostHeader.problem` refuses exactly: a missing `Host` but for HTTP/1.0, more than one unless HTTP/2 copies agree,
/// and an invalid value. The input is one or more `Host` values, one a line; its first byte picks the version.
func isUnreserved(_ c: UInt8) -> Bool {
    (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || "-._~".utf8.contains(c)
}
func isSubDelimiter(_ c: UInt8) -> Bool { "!$&'()*+,;=".utf8.contains(c) }
func isHex(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) }

func referenceIsValid(_ value: [UInt8]) -> Bool {
    var host = value[...]
    var port: ArraySlice<UInt8> = []
    var hasPort = false
    if value.first == UInt8(ascii: "[") {
        guard let close = value.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return false }
        let literal = value[1..<close]
        guard literal.allSatisfy({ isHex($0) || $0 == UInt8(ascii: ":") || isUnreserved($0) || isSubDelimiter($0) }) else { return false }
        let rest = value[(close + 1)...]
        if let first = rest.first {
            guard first == UInt8(ascii: ":") else { return false }
            hasPort = true
            port = rest.dropFirst()
        }
    } else {
        if let colon = value.firstIndex(of: UInt8(ascii: ":")) {
            host = value[..<colon]
            port = value[(colon + 1)...]
            hasPort = true
        }
        var i = host.startIndex
        while i < host.endIndex {
            if host[i] == UInt8(ascii: "%") {
                guard i + 2 < host.endIndex, isHex(host[i + 1]), isHex(host[i + 2]) else { return false }
                i += 3
            } else {
                guard isUnreserved(host[i]) || isSubDelimiter(host[i]) else { return false }
                i += 1
            }
        }
    }
    return !hasPort || (port.count <= 5 && port.allSatisfy { $0 >= 0x30 && $0 <= 0x39 })
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let versions: [HTTPVersion] = [.http1_1, .http1_0, .http2]
    let version = versions[Int(input.byte()) % versions.count]
    var values: [[UInt8]] = []
    while !input.bytes.isEmpty { values.append(Array(input.line())) }
    let strings = values.map { String(decoding: $0, as: UTF8.self) }
    for (bytes, string) in zip(values, strings) {
        let expected = referenceIsValid(Array(string.utf8))
        invariant(HostHeader.isValid(string) == expected, "isValid(\(string.debugDescription)) is \(!expected); \(bytes)")
    }
    var head = HTTPRequestHead(version: version, method: .GET, uri: "/")
    for string in strings { head.headers.add(name: "Host", value: string) }
    let problem = HostHeader.problem(in: head)
    let expected: Bool
    if strings.isEmpty {
        expected = version != .http1_0
    } else if strings.count > 1 && !(version == .http2 && Set(strings).count == 1) {
        expected = true
    } else {
        expected = !HostHeader.isValid(strings[0])
    }
    invariant((problem != nil) == expected, "problem \(String(describing: problem)) for \(strings) over \(version)")
    return 0
}
