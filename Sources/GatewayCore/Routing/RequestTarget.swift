/// An origin-form request target split at the first "?".
///
/// The gateway only accepts origin-form (`/path?query`): it is a reverse proxy, not a forward proxy, so
/// absolute-form, authority-form (`CONNECT`) and asterisk-form (`OPTIONS *`) are answered 400.
public struct RequestTarget: Sendable, Equatable {
    /// The path as sent, e.g. `/events/a%20b`.
    public var rawPath: String
    /// The query without "?"; `nil` if there was no "?", `""` if "?" had nothing after it.
    public var rawQuery: String?

    public init(rawPath: String, rawQuery: String?) {
        self.rawPath = rawPath
        self.rawQuery = rawQuery
    }

    /// Only origin-form ("/..."). Absolute-form ("http://x/..."), authority-form, "*", empty, control chars,
    /// spaces, '#' fragments, and invalid percent-escapes -> `GatewayError.badRequest` with a clear message.
    ///
    /// Also rejected: bytes outside ASCII (clients must percent-encode them) and backslashes, which some
    /// upstream servers treat as "/" and so could smuggle a path past route matching.
    public static func parse(_ uri: String) throws(GatewayError) -> RequestTarget {
        let bytes = uri.utf8
        guard let first = bytes.first else { throw .badRequest("empty request target") }
        guard first == UInt8(ascii: "/") else {
            if uri == "*" { throw .badRequest("asterisk-form request target (*) is not supported") }
            if uri.contains("://") {
                throw .badRequest("absolute-form request target is not accepted; send the path only (origin-form)")
            }
            throw .badRequest("request target must start with \"/\" (origin-form)")
        }
        // Scanned as contiguous bytes: a query may carry a JWT of hundreds of bytes, and stepping `String.UTF8View`
        // indices through them costs several times as much.
        let scan = bytes.withContiguousStorageIfAvailable { scanTarget($0) } ?? scanTarget(Array(bytes))
        let queryOffset = try scan.get()
        guard let queryOffset else { return RequestTarget(rawPath: uri, rawQuery: nil) }
        // Sliced as bytes (every byte is ASCII by now): no rounding to Character boundaries.
        let queryStart = bytes.index(bytes.startIndex, offsetBy: queryOffset)
        return RequestTarget(
            rawPath: String(Substring(bytes[..<queryStart])),
            rawQuery: String(Substring(bytes[bytes.index(after: queryStart)...]))
        )
    }

    /// Checks every byte of an origin-form target; the offset of its first "?", if any.
    private static func scanTarget(_ bytes: some RandomAccessCollection<UInt8>) -> Result<Int?, GatewayError> {
        var queryOffset: Int?
        var offset = 0
        var i = bytes.startIndex
        while i != bytes.endIndex {
            switch bytes[i] {
            case 0x00...0x20, 0x7F:
                return .failure(.badRequest("request target contains a space or control character"))
            case 0x80...0xFF:
                return .failure(.badRequest("request target contains non-ASCII bytes; percent-encode them"))
            case UInt8(ascii: "#"):
                return .failure(.badRequest("request target must not contain a fragment (#)"))
            case UInt8(ascii: "\\"):
                return .failure(.badRequest("request target must not contain a backslash"))
            case UInt8(ascii: "%"):
                let high = bytes.index(after: i)
                guard high != bytes.endIndex, PercentDecoding.hexValue(bytes[high]) != nil,
                    bytes.index(after: high) != bytes.endIndex,
                    PercentDecoding.hexValue(bytes[bytes.index(after: high)]) != nil
                else { return .failure(.badRequest("request target contains an invalid percent-escape")) }
            case UInt8(ascii: "?") where queryOffset == nil:
                queryOffset = offset
            default:
                break
            }
            bytes.formIndex(after: &i)
            offset += 1
        }
        return .success(queryOffset)
    }
}
