import Foundation
import Yams

/// Walks a composed YAML tree with typed accessors. Every accessor records a positioned error and returns `nil`
/// instead of stopping, so that one run reports every problem in the file.
final class ConfigurationReader {
    let file: String
    let baseDirectory: String
    let environment: [String: String]
    private(set) var errors: [ConfigurationError] = []
    private(set) var positions: [String: ConfigurationSourceMap.Position] = [:]
    /// Keys that `ConfigurationDocument` renamed because they were written twice: marker → (key, first line).
    let duplicateKeys: [String: (key: String, firstLine: Int)]

    init(
        file: String,
        baseDirectory: String,
        environment: [String: String],
        duplicateKeys: [String: (key: String, firstLine: Int)]
    ) {
        self.file = file
        self.baseDirectory = baseDirectory
        self.environment = environment
        self.duplicateKeys = duplicateKeys
    }

    // MARK: Errors

    func fail(_ node: Node?, _ path: String, _ message: String) {
        fail(at: node?.mark, path, message)
    }

    func fail(at mark: Mark?, _ path: String, _ message: String) {
        errors.append(
            ConfigurationError(
                file: file,
                line: mark?.line ?? 1,
                column: mark?.column ?? 1,
                keyPath: path,
                message: message
            )
        )
    }

    func record(_ node: Node, at path: String) {
        if let mark = node.mark { positions[path] = .init(line: mark.line, column: mark.column) }
    }

    // MARK: Structure

    /// A mapping whose keys were checked against the schema.
    struct Fields {
        let path: String
        let node: Node
        /// In file order, duplicates removed.
        let entries: [(key: String, keyNode: Node, value: Node)]

        subscript(key: String) -> Node? { entries.first(where: { $0.key == key })?.value }

        func path(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    }

    /// Reads a mapping; `allowed == nil` accepts any key (e.g. `claims_to_headers`, `auth_policies`).
    func mapping(_ node: Node, _ path: String, allowed: [String]?) -> Fields? {
        guard case .mapping(let mapping) = node else {
            fail(node, path, "expected a mapping, got \(describe(node))")
            return nil
        }
        var entries: [(key: String, keyNode: Node, value: Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                fail(keyNode, path, "mapping keys must be strings, got \(describe(keyNode))")
                continue
            }
            let key = keyScalar.string
            let childPath = path.isEmpty ? key : "\(path).\(key)"
            if let duplicate = duplicateKeys[key] {
                let original = path.isEmpty ? duplicate.key : "\(path).\(duplicate.key)"
                fail(
                    keyNode,
                    original,
                    "duplicate key '\(duplicate.key)' (first written on line \(duplicate.firstLine))"
                )
                continue
            }
            if let allowed, !allowed.contains(key) {
                var message = "unknown key '\(key)'"
                if let suggestion = Self.closest(to: key, in: allowed) { message += " (did you mean '\(suggestion)'?)" }
                fail(keyNode, childPath, message)
                continue
            }
            record(value, at: childPath)
            entries.append((key, keyNode, value))
        }
        return Fields(path: path, node: node, entries: entries)
    }

    /// Items of a list with their key paths (`path[0]`, `path[1]`, ...).
    func sequence(_ node: Node, _ path: String, nonEmpty: Bool = false) -> [(node: Node, path: String)]? {
        guard case .sequence(let sequence) = node else {
            fail(node, path, "expected a list, got \(describe(node))")
            return nil
        }
        if nonEmpty && sequence.isEmpty {
            fail(node, path, "must not be empty")
            return nil
        }
        return sequence.enumerated().map { index, item in
            let itemPath = "\(path)[\(index)]"
            record(item, at: itemPath)
            return (item, itemPath)
        }
    }

    /// The value of a required key, or an error at the mapping that lacks it.
    func required(_ fields: Fields, _ key: String) -> Node? {
        if let value = fields[key] { return value }
        fail(fields.node, fields.path(key), "required key is missing")
        return nil
    }

    // MARK: Scalars

    /// A scalar's text with `${NAME}` / `${NAME:-default}` substituted; `nil` (and an error) for anything else.
    func scalar(_ node: Node, _ path: String, expected: String) -> String? {
        guard case .scalar(let scalar) = node else {
            fail(node, path, "expected \(expected), got \(describe(node))")
            return nil
        }
        if Self.isNull(scalar) {
            fail(node, path, "expected \(expected), got an empty value")
            return nil
        }
        switch EnvironmentSubstitution.apply(to: scalar.string, environment: environment) {
        case .success(let text): return text
        case .failure(let problem):
            fail(node, path, problem.message)
            return nil
        }
    }

    func string(_ node: Node, _ path: String, nonEmpty: Bool = true) -> String? {
        guard let text = scalar(node, path, expected: "a string") else { return nil }
        if nonEmpty && text.isEmpty {
            fail(node, path, "must not be empty")
            return nil
        }
        return text
    }

    func bool(_ node: Node, _ path: String) -> Bool? {
        guard let text = scalar(node, path, expected: "a boolean (true or false)") else { return nil }
        switch text {
        case "true": return true
        case "false": return false
        default:
            fail(node, path, "expected a boolean (true or false), got '\(text)'")
            return nil
        }
    }

    func int(_ node: Node, _ path: String, minimum: Int) -> Int? {
        guard let text = scalar(node, path, expected: "an integer") else { return nil }
        guard let value = Int(text) else {
            fail(node, path, "expected an integer, got '\(text)'")
            return nil
        }
        guard value >= minimum else {
            fail(node, path, "must be at least \(minimum), got \(value)")
            return nil
        }
        return value
    }

    /// A number that must be greater than zero.
    func positiveNumber(_ node: Node, _ path: String) -> Double? {
        guard let text = scalar(node, path, expected: "a number") else { return nil }
        guard let value = Double(text), value.isFinite else {
            fail(node, path, "expected a number, got '\(text)'")
            return nil
        }
        guard value > 0 else {
            fail(node, path, "must be greater than 0, got \(text)")
            return nil
        }
        return value
    }

    func duration(_ node: Node, _ path: String, allowZero: Bool) -> Duration? {
        guard let text = scalar(node, path, expected: "a duration") else { return nil }
        guard let value = DurationParser.parse(text) else {
            fail(node, path, "expected a duration such as 250ms, 30s, 5m or 1h, got '\(text)'")
            return nil
        }
        if !allowZero && value == .zero {
            fail(node, path, "must be greater than 0")
            return nil
        }
        return value
    }

    func byteSize(_ node: Node, _ path: String) -> Int? {
        guard let text = scalar(node, path, expected: "a byte size") else { return nil }
        guard let value = ByteSizeParser.parse(text) else {
            fail(node, path, "expected a byte size such as 512, 16KiB or 1MiB (KB/MB are ambiguous), got '\(text)'")
            return nil
        }
        guard value > 0 else {
            fail(node, path, "must be greater than 0")
            return nil
        }
        return value
    }

    /// One of `choices`, matched exactly.
    func choice(_ node: Node, _ path: String, _ choices: [String]) -> String? {
        let expected = choices.map { "'\($0)'" }.joined(separator: " or ")
        guard let text = scalar(node, path, expected: expected) else { return nil }
        guard choices.contains(text) else {
            fail(node, path, "expected \(expected), got '\(text)'")
            return nil
        }
        return text
    }

    func stringList(_ node: Node, _ path: String, nonEmpty: Bool) -> [String]? {
        guard let items = sequence(node, path, nonEmpty: nonEmpty) else { return nil }
        let values = items.map { string($0.node, $0.path) }
        return values.contains(nil) ? nil : values.compactMap { $0 }
    }

    /// A string in one of the `AddressSyntax` forms; the parser's problem is reported at the node.
    func parsed<Value>(_ node: Node, _ path: String, _ parse: (String) -> Result<Value, ValueProblem>) -> Value? {
        guard let text = string(node, path) else { return nil }
        switch parse(text) {
        case .success(let value): return value
        case .failure(let problem):
            fail(node, path, problem.message)
            return nil
        }
    }

    /// Route and policy names appear in metrics labels and logs, so they are kept to a safe alphabet.
    func identifier(_ node: Node, _ path: String) -> String? {
        guard let text = string(node, path) else { return nil }
        return isIdentifier(node, path, text) ? text : nil
    }

    /// `[A-Za-z0-9_.-]+`; reports and returns `false` otherwise (also used for mapping keys, e.g. policy names).
    func isIdentifier(_ node: Node, _ path: String, _ text: String) -> Bool {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) })
        else {
            fail(node, path, "'\(text)' may only contain letters, digits, '_', '.' and '-'")
            return false
        }
        return true
    }

    /// An HTTP field name (RFC 9110 token); reports and returns `false` otherwise.
    func isHeaderName(_ node: Node, _ path: String, _ name: String) -> Bool {
        let valid = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A)
                || "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
        if !valid { fail(node, path, "'\(name)' is not a valid HTTP header name") }
        return valid
    }

    /// A SHA-256 digest written as 64 hexadecimal characters (an API key's hash).
    func sha256(_ node: Node, _ path: String) -> [UInt8]? {
        guard let text = string(node, path) else { return nil }
        let hex = Array(text.utf8)
        guard hex.count == 64, let bytes = Self.bytes(fromHex: hex) else {
            fail(node, path, "expected 64 hexadecimal characters (the key's SHA-256), got \(hex.count) characters")
            return nil
        }
        return bytes
    }

    /// A file path, made absolute against the configuration file's folder; the file must be readable.
    func filePath(_ node: Node, _ path: String) -> String? {
        guard let text = string(node, path) else { return nil }
        let absolute = resolve(text)
        guard FileManager.default.isReadableFile(atPath: absolute) else {
            let exists = FileManager.default.fileExists(atPath: absolute)
            fail(node, path, exists ? "file '\(absolute)' is not readable" : "file '\(absolute)' does not exist")
            return nil
        }
        return absolute
    }

    func resolve(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : (baseDirectory as NSString).appendingPathComponent(path)
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }

    // MARK: Helpers

    static func isNull(_ scalar: Node.Scalar) -> Bool {
        scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            return Self.isNull(scalar) ? "an empty value" : "the scalar '\(scalar.string)'"
        }
    }

    /// The known key nearest to a typo, if it is near enough to be a plausible intent.
    static func closest(to key: String, in known: [String]) -> String? {
        let typed = Array(key.lowercased())
        let ranked = known.map { ($0, editDistance(typed, Array($0))) }.min(by: { $0.1 < $1.1 })
        guard let (candidate, distance) = ranked, distance <= max(2, candidate.count / 3) else { return nil }
        return candidate
    }

    private static func bytes(fromHex hex: [UInt8]) -> [UInt8]? {
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.count / 2)
        for index in stride(from: 0, to: hex.count, by: 2) {
            guard let high = nibble(hex[index]), let low = nibble(hex[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        var current = previous
        for i in 1...a.count {
            current[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

/// A problem with one value, before a position is attached to it.
struct ValueProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// `${NAME}` and `${NAME:-default}` in scalar values; `$${` writes a literal `${`.
///
/// As in the shell, `:-` also applies when the variable is set but empty.
enum EnvironmentSubstitution {
    static func apply(to text: String, environment: [String: String]) -> Result<String, ValueProblem> {
        guard text.contains("${") else { return .success(text) }
        var output = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            output += rest[..<dollar]
            let afterDollar = rest[rest.index(after: dollar)...]
            if afterDollar.hasPrefix("${") {
                output += "${"
                rest = afterDollar.dropFirst(2)
                continue
            }
            guard afterDollar.hasPrefix("{") else {
                output += "$"
                rest = afterDollar
                continue
            }
            guard let close = afterDollar.firstIndex(of: "}") else {
                return .failure(ValueProblem("unterminated '${' (write '$${' for a literal '${')"))
            }
            let body = afterDollar[afterDollar.index(after: afterDollar.startIndex)..<close]
            let name: Substring
            let fallback: Substring?
            if let separator = body.range(of: ":-") {
                name = body[..<separator.lowerBound]
                fallback = body[separator.upperBound...]
            } else {
                name = body
                fallback = nil
            }
            guard let first = name.first, first == "_" || (first.isASCII && first.isLetter),
                name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) })
            else {
                return .failure(ValueProblem("invalid environment variable reference '${\(body)}'"))
            }
            if let value = environment[String(name)], !(value.isEmpty && fallback != nil) {
                output += value
            } else if let fallback {
                output += fallback
            } else {
                return .failure(ValueProblem("environment variable '\(name)' is not set"))
            }
            rest = afterDollar[afterDollar.index(after: close)...]
        }
        output += rest
        return .success(output)
    }
}
