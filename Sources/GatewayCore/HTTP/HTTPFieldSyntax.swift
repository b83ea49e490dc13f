/// The byte classes of HTTP/1 field syntax, shared by what parses upstream heads and chunk framing and by what
/// serialises the heads the gateway sends.
public enum HTTPFieldSyntax {
    /// RFC 9110 `tchar`: a byte of a field name (a `token`).
    @inlinable
    public static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"),
            UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"),
            UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// A control character other than horizontal tab: never in a field value, a reason phrase or a chunk line (CR
    /// and LF would split the message).
    @inlinable
    public static func isControl(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != UInt8(ascii: "\t")) || byte == 0x7F
    }

    /// Whether a byte of `string`'s UTF-8 satisfies `predicate`, checked in one pass over the string's own storage
    /// rather than through `String.UTF8View` indices (several times slower per byte, and a request target or an
    /// `Authorization` value can be a JWT of hundreds of bytes, checked as each head is written).
    @inlinable
    public static func containsByte(in string: String, where predicate: (UInt8) -> Bool) -> Bool {
        string.utf8.withContiguousStorageIfAvailable { $0.contains(where: predicate) }
            ?? string.utf8.contains(where: predicate)
    }

    /// `bytes` without the optional whitespace (spaces and horizontal tabs) around it, as list elements and
    /// parameters are read.
    public static func trimmingWhitespace(_ bytes: Substring.UTF8View) -> Substring.UTF8View {
        var trimmed = bytes
        while let first = trimmed.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
            trimmed.removeFirst()
        }
        while let last = trimmed.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") {
            trimmed.removeLast()
        }
        return trimmed
    }
}
