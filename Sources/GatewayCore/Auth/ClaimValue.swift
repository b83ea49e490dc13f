import Foundation

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
        guard nestingDepth(bytes) <= maxDepth else { return nil }
        guard let value = try? JSONDecoder().decode(ClaimValue.self, from: Data(bytes)),
            case .object(let object) = value
        else { return nil }
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

extension ClaimValue: Decodable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        if let container = try? decoder.container(keyedBy: Key.self) {
            var object: [String: ClaimValue] = [:]
            for key in container.allKeys {
                object[key.stringValue] = try container.decode(ClaimValue.self, forKey: key)
            }
            self = .object(object)
        } else if var container = try? decoder.unkeyedContainer() {
            var items: [ClaimValue] = []
            while !container.isAtEnd { items.append(try container.decode(ClaimValue.self)) }
            self = .array(items)
        } else {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let b = try? container.decode(Bool.self) {
                self = .bool(b)
            } else if let i = try? container.decode(Int64.self) {
                self = .integer(i)
            } else if let d = try? container.decode(Double.self) {
                self = .number(d)
            } else {
                self = .string(try container.decode(String.self))
            }
        }
    }
}
