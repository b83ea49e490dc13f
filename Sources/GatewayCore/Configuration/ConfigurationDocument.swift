import Yams

/// Turns YAML text into a node tree, translating Yams' errors into positioned `ConfigurationError`s.
///
/// Yams refuses a mapping with a repeated key outright, reporting only the first occurrence. To report the repeat
/// where it was written (and keep checking everything else), the repeated key of a block mapping is renamed to a
/// marker and the text composed again; `ConfigurationReader` reports each marker as "duplicate key".
enum ConfigurationDocument {
    struct Composed {
        var root: Node?
        var duplicateKeys: [String: (key: String, firstLine: Int)]
    }

    static func compose(yaml: String, file: String) -> Result<Composed, ConfigurationErrors> {
        var text = yaml
        var duplicates: [String: (key: String, firstLine: Int)] = [:]
        while true {
            do {
                return .success(Composed(root: try Yams.compose(yaml: text), duplicateKeys: duplicates))
            } catch let error as YamlError {
                guard case .duplicatedKeysInMapping(let keys, let context) = error, let key = keys.first,
                    duplicates.count < 100,
                    let renamed = rename(repeatOf: key, after: context.mark, in: text, marker: marker(duplicates.count))
                else {
                    return .failure(ConfigurationErrors([syntaxError(error, file: file)]))
                }
                duplicates[marker(duplicates.count)] = (key, context.mark.line)
                text = renamed
            } catch {
                return .failure(
                    ConfigurationErrors([
                        ConfigurationError(file: file, line: 0, column: 0, keyPath: "", message: "\(error)")
                    ])
                )
            }
        }
    }

    private static func marker(_ index: Int) -> String { "__duplicate_key_\(index)__" }

    /// Replaces the next `key:` at the same column as `mark`, within the same block mapping.
    private static func rename(repeatOf key: String, after mark: Mark, in text: String, marker: String) -> String? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard mark.line >= 1, mark.line <= lines.count else { return nil }
        for index in mark.line..<lines.count {
            let scalars = lines[index].unicodeScalars
            let indent = scalars.prefix(while: { $0 == " " }).count
            let content = scalars.dropFirst(indent)
            if content.isEmpty || content.first == "#" || content.first == "\r" { continue }
            let column = indent + 1
            if column < mark.column { return nil }
            guard column == mark.column else { continue }
            let text = String(String.UnicodeScalarView(content))
            guard text.hasPrefix(key) else { continue }
            let rest = text.dropFirst(key.count)
            guard rest.drop(while: { $0 == " " }).hasPrefix(":") else { continue }
            lines[index] = String(repeating: " ", count: indent) + marker + rest
            return lines.joined(separator: "\n")
        }
        return nil
    }

    /// Line and column (1-based, in scalars) of a character offset, with line breaks counted as libyaml counts them
    /// in its marks: CRLF, CR, LF, NEL, LS and PS.
    static func position(ofCharacter offset: Int, in text: String) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        var previous: Unicode.Scalar?
        for scalar in text.prefix(max(0, offset)).unicodeScalars {
            switch scalar {
            case "\n" where previous == "\r":
                break
            case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}":
                line += 1
                column = 1
            default:
                column += 1
            }
            previous = scalar
        }
        return (line, column)
    }

    private static func syntaxError(_ error: YamlError, file: String) -> ConfigurationError {
        func positioned(_ mark: Mark, _ message: String) -> ConfigurationError {
            ConfigurationError(file: file, line: mark.line, column: mark.column, keyPath: "", message: message)
        }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let detail = context.map { "\(problem) (\($0.text) on line \($0.mark.line))" } ?? problem
            return positioned(mark, "YAML syntax error: \(detail)")
        case .duplicatedKeysInMapping(let keys, let context):
            let names = keys.map { "'\($0)'" }.joined(separator: ", ")
            return positioned(context.mark, "duplicate key \(names)")
        case .reader(let problem, let offset, _, let yaml):
            // libyaml's reader reports an offset (in characters), not a mark: count lines up to it, so that this
            // problem points into the file like every other (a stray control character, found by fuzzing).
            let (line, column) = position(ofCharacter: offset ?? 0, in: yaml)
            return ConfigurationError(
                file: file,
                line: line,
                column: column,
                keyPath: "",
                message: "unreadable YAML: \(problem)"
            )
        default:
            return ConfigurationError(file: file, line: 0, column: 0, keyPath: "", message: "\(error)")
        }
    }
}
