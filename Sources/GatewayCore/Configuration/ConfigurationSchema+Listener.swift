import Yams

/// The public listener, its TLS and HTTP/2 settings, and the admin listener:
///
/// ```yaml
/// listen: "127.0.0.1:8080"          # host:port, "[::1]:8080"; default 127.0.0.1:8080
/// tls:                              # optional; certificate and private_key required within
///   certificate: certs/server.crt   # files: relative paths are resolved against this file's folder
///   private_key: certs/server.key
///   min_version: "1.2"              # "1.2" (default) | "1.3"
/// http2:
///   max_concurrent_streams: 256     # default; >= 1
/// admin:
///   listen: "127.0.0.1:9901"        # default; the string "off" disables the admin listener
/// ```
extension ConfigurationSchema {
    func listenerTLS(_ node: Node, _ path: String) -> ListenerTLSConfiguration? {
        let keys = ["certificate", "private_key", "min_version"]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return nil }
        let certificate = reader.required(fields, "certificate").flatMap {
            reader.filePath($0, fields.path("certificate"))
        }
        let key = reader.required(fields, "private_key").flatMap { reader.filePath($0, fields.path("private_key")) }
        var version = ListenerTLSConfiguration.TLSVersion.tls12
        if let node = fields["min_version"],
            let text = reader.choice(node, fields.path("min_version"), ["1.2", "1.3"])
        {
            version = .init(rawValue: text) ?? .tls12
        }
        guard let certificate, let key else { return nil }
        return ListenerTLSConfiguration(certificatePath: certificate, privateKeyPath: key, minimumVersion: version)
    }

    func http2(_ node: Node, _ path: String) -> HTTP2Configuration {
        var http2 = HTTP2Configuration()
        guard let fields = reader.mapping(node, path, allowed: ["max_concurrent_streams"]) else { return http2 }
        if let node = fields["max_concurrent_streams"],
            let streams = reader.int(node, fields.path("max_concurrent_streams"), minimum: 1)
        {
            http2.maxConcurrentStreams = streams
        }
        return http2
    }

    func admin(_ node: Node, _ path: String) -> AdminConfiguration {
        var admin = AdminConfiguration()
        guard let fields = reader.mapping(node, path, allowed: ["listen"]), let listen = fields["listen"] else {
            return admin
        }
        if case .scalar(let scalar) = listen, scalar.string == "off" {
            admin.listen = nil
        } else if let address = reader.parsed(listen, fields.path("listen"), AddressSyntax.listenAddress) {
            admin.listen = address
        }
        return admin
    }
}
