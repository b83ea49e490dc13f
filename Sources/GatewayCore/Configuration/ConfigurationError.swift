/// One problem in a configuration file, with the position it was written at.
///
/// `description` is `FILE:LINE:COLUMN: key.path: message`, the shape compilers use, so editors can jump to it.
/// Problems with no position (an unreadable file) have `line == 0` and render as `FILE: message`;
/// problems with no key path (YAML syntax) render without the `key.path: ` part.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// 1-based, from the YAML node's mark; 0 when the problem has no position.
    public var line: Int
    /// 1-based, counted in Unicode scalars (as libyaml does).
    public var column: Int
    /// Where in the document, e.g. `routes[0].timeouts.connect` or `auth_policies.users.jwt.secret`.
    public var keyPath: String
    public var message: String

    public init(file: String, line: Int, column: Int, keyPath: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        let position = line > 0 ? "\(file):\(line):\(column)" : file
        return keyPath.isEmpty ? "\(position): \(message)" : "\(position): \(keyPath): \(message)"
    }
}

/// Every problem found in one file, ordered by position: `check` reports all of them, not just the first.
public struct ConfigurationErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [ConfigurationError]

    public init(_ errors: [ConfigurationError]) {
        self.errors = errors
    }

    /// One error per line.
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Where each key path was written, so that problems found after loading (an unparsable PEM key found by the
/// auth layer, a certificate the TLS layer rejects) can still point into the file.
public struct ConfigurationSourceMap: Sendable {
    public let file: String
    private let positions: [String: Position]

    struct Position: Sendable, Equatable {
        var line: Int
        var column: Int
    }

    init(file: String, positions: [String: Position]) {
        self.file = file
        self.positions = positions
    }

    /// Where the value of `keyPath` (e.g. `auth_policies.users.jwt.public_keys[0]`) starts, if it was written.
    public func location(of keyPath: String) -> (line: Int, column: Int)? {
        positions[keyPath].map { ($0.line, $0.column) }
    }

    /// An error at `keyPath`, or at its closest written ancestor when the key itself was left to its default.
    public func error(_ keyPath: String, _ message: String) -> ConfigurationError {
        var path = Substring(keyPath)
        while !path.isEmpty {
            if let position = positions[String(path)] {
                return ConfigurationError(
                    file: file,
                    line: position.line,
                    column: position.column,
                    keyPath: keyPath,
                    message: message
                )
            }
            guard let cut = path.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
            path = path[..<cut]
        }
        return ConfigurationError(file: file, line: 1, column: 1, keyPath: keyPath, message: message)
    }
}

/// A validated configuration together with where each of its values was written.
public struct LoadedConfiguration: Sendable {
    public var configuration: GatewayConfiguration
    public var sourceMap: ConfigurationSourceMap

    public init(configuration: GatewayConfiguration, sourceMap: ConfigurationSourceMap) {
        self.configuration = configuration
        self.sourceMap = sourceMap
    }
}
