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
        var queryStart: String.UTF8View.Index? = nil
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let byte = bytes[i]
            switch byte {
            case 0x00...0x20, 0x7F:
                throw .badRequest("request target contains a space or control character")
            case 0x80...0xFF:
                throw .badRequest("request target contains non-ASCII bytes; percent-encode them")
            case UInt8(ascii: "#"):
                throw .badRequest("request target must not contain a fragment (#)")
            case UInt8(ascii: "\\"):
                throw .badRequest("request target must not contain a backslash")
            case UInt8(ascii: "%"):
                let high = bytes.index(after: i)
                guard high != bytes.endIndex, PercentDecoding.hexValue(bytes[high]) != nil,
                    bytes.index(after: high) != bytes.endIndex,
                    PercentDecoding.hexValue(bytes[bytes.index(after: high)]) != nil
                else { throw .badRequest("request target contains an invalid percent-escape") }
            case UInt8(ascii: "?") where queryStart == nil:
                queryStart = i
            default:
                break
            }
            bytes.formIndex(after: &i)
        }
        guard let queryStart else { return RequestTarget(rawPath: uri, rawQuery: nil) }
        // Sliced as bytes (every byte is ASCII by now): no rounding to Character boundaries.
        return RequestTarget(
            rawPath: String(Substring(bytes[..<queryStart])),
            rawQuery: String(Substring(bytes[bytes.index(after: queryStart)...]))
        )
    }
}
