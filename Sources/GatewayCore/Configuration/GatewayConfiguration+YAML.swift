import Foundation
import Yams

/// Loading `gateway.yml`. Unknown keys are errors (a typo must never silently disable auth) and every problem is
/// reported with its position, all at once. Each section's keys and defaults are listed where it is read:
///
/// ```yaml
/// listen: "127.0.0.1:8080"   # listen, tls, http2, admin: ConfigurationSchema+Listener.swift
/// tls: {...}
/// http2: {...}
/// admin: {...}
/// routes: [...]              # required: ConfigurationSchema+Routes.swift
/// auth_policies: {...}       # ConfigurationSchema+AuthPolicies.swift
/// cors: {...}                # cors, limits, drain: ConfigurationSchema+Limits.swift
/// limits: {...}
/// drain: {...}
/// ```
///
/// The rules that tie one key to another (a route's policy exists, `*` without credentials, ...) are listed in
/// ConfigurationSchema+Validation.swift.
///
/// Scalars: `${NAME}` and `${NAME:-default}` are replaced from the environment (`$${` is a literal `${`); an unset
/// variable without a default is an error. Booleans are `true`/`false` only. Integers and numbers may be quoted
/// (so that they can come from the environment). An empty value (`key:`) is an error, never "use the default".
/// Durations, byte sizes, names and the other value syntax are read by `ConfigurationReader`.
extension GatewayConfiguration {
    /// Reads and validates the file at `path`; relative paths inside it are resolved against its folder.
    public static func load(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationErrors) -> LoadedConfiguration {
        let absolute =
            path.hasPrefix("/")
            ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        func fileError(_ message: String) -> ConfigurationErrors {
            ConfigurationErrors([ConfigurationError(file: path, line: 0, column: 0, keyPath: "", message: message)])
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory) else {
            throw fileError("configuration file does not exist")
        }
        guard !isDirectory.boolValue else { throw fileError("is a directory, not a configuration file") }
        guard let data = FileManager.default.contents(atPath: absolute) else {
            throw fileError("configuration file cannot be read")
        }
        guard let yaml = String(data: data, encoding: .utf8) else { throw fileError("is not UTF-8 text") }
        return try parse(
            yaml: yaml,
            file: path,
            baseDirectory: (absolute as NSString).deletingLastPathComponent,
            environment: environment
        )
    }

    /// Validates YAML text; `file` is only used in error messages, `baseDirectory` resolves relative file paths.
    public static func parse(
        yaml: String,
        file: String,
        baseDirectory: String,
        environment: [String: String]
    ) throws(ConfigurationErrors) -> LoadedConfiguration {
        let composed: ConfigurationDocument.Composed
        switch ConfigurationDocument.compose(yaml: yaml, file: file) {
        case .success(let value): composed = value
        case .failure(let errors): throw errors
        }
        let reader = ConfigurationReader(
            file: file,
            baseDirectory: baseDirectory,
            environment: environment,
            duplicateKeys: composed.duplicateKeys
        )
        var configuration = GatewayConfiguration()
        if let root = composed.root {
            ConfigurationSchema(reader: reader).read(root, into: &configuration)
        } else {
            reader.fail(at: nil, "routes", "required key is missing (the file is empty)")
        }
        guard reader.errors.isEmpty else {
            // Stable sort: problems found in the same place keep the order they were found in.
            let ordered = reader.errors.enumerated().sorted {
                ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset)
            }
            throw ConfigurationErrors(ordered.map(\.element))
        }
        return LoadedConfiguration(
            configuration: configuration,
            sourceMap: ConfigurationSourceMap(file: file, positions: reader.positions)
        )
    }
}

/// The schema of `gateway.yml`, section by section, on top of `ConfigurationReader`: the top level here, each
/// section in its own `ConfigurationSchema+Section.swift`.
struct ConfigurationSchema {
    let reader: ConfigurationReader

    func read(_ root: Node, into configuration: inout GatewayConfiguration) {
        let keys = ["listen", "tls", "http2", "admin", "routes", "auth_policies", "cors", "limits", "drain"]
        guard let top = reader.mapping(root, "", allowed: keys) else { return }
        if let node = top["listen"], let address = reader.parsed(node, "listen", AddressSyntax.listenAddress) {
            configuration.listen = address
        }
        if let node = top["tls"] { configuration.tls = listenerTLS(node, "tls") }
        if let node = top["http2"] { configuration.http2 = http2(node, "http2") }
        if let node = top["admin"] { configuration.admin = admin(node, "admin") }
        if let node = top["auth_policies"] { configuration.authPolicies = policies(node, "auth_policies") }
        if let node = reader.required(top, "routes") {
            configuration.routes = routes(
                node, "routes", policies: configuration.authPolicies, ticketPaths: configuration.ticketPaths
            )
        }
        if let node = top["cors"] { configuration.cors = cors(node, "cors") }
        if let node = top["limits"] { configuration.limits = limits(node, "limits") }
        if let node = top["drain"] { configuration.drain = drain(node, "drain") }
    }
}
