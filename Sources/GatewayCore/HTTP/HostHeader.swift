import NIOHTTP1

/// The `Host` rules of RFC 9112 §3.2 (and RFC 9113 §8.3.1 for HTTP/2, whose `:authority` arrives as `host`): an
/// HTTP/1.1 request without `Host`, with two `Host` lines, or with an invalid value is refused with 400, before it
/// reaches routing or an upstream (and before `X-Forwarded-Host` is built from it). HTTP/1.0 may omit it.
public enum HostHeader {
    /// Why a request's `Host` is refused, or `nil` when it is acceptable.
    public static func problem(in head: HTTPRequestHead) -> String? {
        let values = head.headers["host"]
        guard let first = values.first else {
            return head.version == .http1_0 ? nil : "the request has no Host header"
        }
        if values.count > 1 {
            // HTTP/2: `:authority` and a `host` field may both be present, but must name the same authority.
            guard head.version.major == 2, values.allSatisfy({ $0 == first }) else {
                return "the request has more than one Host header"
            }
        }
        return isValid(first) ? nil : "the Host header is not a valid host[:port]"
    }

    /// `uri-host [ ":" port ]` (RFC 3986): an IP literal in brackets, or a reg-name of unreserved characters,
    /// percent-encodings and sub-delimiters; the port is digits. An empty value is allowed (no authority).
    public static func isValid(_ value: String) -> Bool {
        var bytes = Substring(value).utf8[...]
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")) else { return false }
            let literal = bytes[bytes.index(after: bytes.startIndex)..<close]
            guard !literal.isEmpty, literal.allSatisfy(isIPLiteralByte) else { return false }
            bytes = bytes[bytes.index(after: close)...]
        } else {
            let hostEnd = bytes.firstIndex(of: UInt8(ascii: ":")) ?? bytes.endIndex
            guard isRegName(bytes[..<hostEnd]) else { return false }
            bytes = bytes[hostEnd...]
        }
        guard let colon = bytes.first else { return true }
        guard colon == UInt8(ascii: ":") else { return false }
        let port = bytes.dropFirst()
        return port.count <= 5 && port.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    private static func isRegName(_ bytes: Substring.UTF8View.SubSequence) -> Bool {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                let first = bytes.index(after: index)
                guard first < bytes.endIndex, bytes.index(after: first) < bytes.endIndex,
                    isHexDigit(bytes[first]), isHexDigit(bytes[bytes.index(after: first)])
                else { return false }
                index = bytes.index(first, offsetBy: 2)
                continue
            }
            guard isUnreserved(byte) || isSubDelimiter(byte) else { return false }
            index = bytes.index(after: index)
        }
        return true
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    private static func isSubDelimiter(_ byte: UInt8) -> Bool {
        "!$&'()*+,;=".utf8.contains(byte)
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"),
            UInt8(ascii: "A")...UInt8(ascii: "F"):
            return true
        default:
            return false
        }
    }

    /// Hex digits, dots and colons of an IPv6 address (or an IPvFuture's unreserved and sub-delimiters).
    private static func isIPLiteralByte(_ byte: UInt8) -> Bool {
        isHexDigit(byte) || byte == UInt8(ascii: ":") || byte == UInt8(ascii: ".") || isUnreserved(byte)
            || isSubDelimiter(byte)
    }
}
