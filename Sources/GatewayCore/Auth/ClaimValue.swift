/// A decoded JSON value from a JWT header or payload, for claims the gateway does not know in advance.
///
/// Objects keep their keys sorted so `compactJSON` is deterministic.
public enum ClaimValue: Sendable, Hashable {
    case string(String)
    case integer(Int64)
    case number(Double)
    case bool(Bool)
    case null
    case array([ClaimValue])
    case object([String: ClaimValue])

    /// The most nesting a header or payload may have; real tokens use two or three levels.
    static let maxDepth = 16

    /// Parses a JSON object, refusing deep nesting before the decoder sees it.
    static func parseObject(_ bytes: [UInt8]) -> [String: ClaimValue]? {
        guard case .object(let object)? = ClaimJSONParser.parse(bytes, maxDepth: maxDepth) else { return nil }
        return object
    }

    /// Counts the deepest `[`/`{` nesting outside strings without decoding.
    static func nestingDepth(_ bytes: [UInt8]) -> Int {
        var depth = 0
        var deepest = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }

    /// Follows a dotted path (`org.id`) through nested objects.
    public func value(at path: Substring) -> ClaimValue? {
        var current = self
        for key in path.split(separator: ".", omittingEmptySubsequences: false) {
            guard case .object(let object) = current, let next = object[String(key)] else { return nil }
            current = next
        }
        return current
    }

    public var doubleValue: Double? {
        switch self {
        case .integer(let i): Double(i)
        case .number(let d): d
        default: nil
        }
    }

    /// The text a header carries: strings verbatim, everything else as compact JSON; `nil` for `null`.
    public var headerText: String? {
        switch self {
        case .string(let s): s
        case .null: nil
        default: compactJSON
        }
    }

    public var compactJSON: String {
        switch self {
        case .string(let s): "\"" + JSONString.escape(s) + "\""
        case .integer(let i): String(i)
        case .number(let d):
            d.isFinite && d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
        case .bool(let b): b ? "true" : "false"
        case .null: "null"
        case .array(let items): "[" + items.map(\.compactJSON).joined(separator: ",") + "]"
        case .object(let object):
            "{"
                + object.keys.sorted().map { "\"" + JSONString.escape($0) + "\":" + object[$0]!.compactJSON }
                .joined(separator: ",") + "}"
        }
    }
}
