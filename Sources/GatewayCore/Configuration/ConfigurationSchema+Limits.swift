import Yams

/// Cross-origin access, gateway-wide limits and graceful shutdown:
///
/// ```yaml
/// cors:                                # optional; default: no CORS headers
///   allowed_origins: ["https://app.example"]   # required, non-empty; "*" only without credentials
///   allow_credentials: false           # default
///   max_age: 10m                       # default
/// limits:
///   max_connections: 10000             # default; >= 1
///   new_streams_per_second_per_ip: 20  # > 0; default: no per-IP limit
///   request_header_timeout: 10s        # default; > 0
///   max_header_bytes: 16KiB            # default; > 0
///   stream_buffer_bytes: 64KiB         # default; > 0
///   slow_client_timeout: 30s           # default; > 0
/// drain:
///   grace: 10s                         # default
///   retry_jitter: 5s                   # default
/// ```
extension ConfigurationSchema {
    func cors(_ node: Node, _ path: String) -> CORSConfiguration? {
        let keys = ["allowed_origins", "allow_credentials", "max_age"]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return nil }
        var cors = CORSConfiguration(allowedOrigins: [])
        if let node = fields["allow_credentials"], let value = reader.bool(node, fields.path("allow_credentials")) {
            cors.allowCredentials = value
        }
        if let node = fields["max_age"], let value = reader.duration(node, fields.path("max_age"), allowZero: true) {
            cors.maxAge = value
        }
        guard let node = reader.required(fields, "allowed_origins"),
            let items = reader.sequence(node, fields.path("allowed_origins"), nonEmpty: true)
        else { return nil }
        var origins: [String] = []
        for item in items {
            guard let origin = reader.string(item.node, item.path) else { continue }
            origins.append(origin)
            if let problem = AddressSyntax.origin(origin) {
                reader.fail(item.node, item.path, problem.message)
            } else {
                checkOrigin(origin, item.node, item.path, allowCredentials: cors.allowCredentials)
            }
        }
        cors.allowedOrigins = origins
        return cors
    }

    func limits(_ node: Node, _ path: String) -> LimitsConfiguration {
        var limits = LimitsConfiguration()
        let keys = [
            "max_connections", "new_streams_per_second_per_ip", "request_header_timeout", "max_header_bytes",
            "stream_buffer_bytes", "slow_client_timeout",
        ]
        guard let fields = reader.mapping(node, path, allowed: keys) else { return limits }
        if let node = fields["max_connections"],
            let value = reader.int(node, fields.path("max_connections"), minimum: 1)
        {
            limits.maxConnections = value
        }
        if let node = fields["new_streams_per_second_per_ip"] {
            limits.newStreamsPerSecondPerIP = reader.positiveNumber(node, fields.path("new_streams_per_second_per_ip"))
        }
        if let node = fields["request_header_timeout"],
            let value = reader.duration(node, fields.path("request_header_timeout"), allowZero: false)
        {
            limits.requestHeaderTimeout = value
        }
        if let node = fields["max_header_bytes"], let value = reader.byteSize(node, fields.path("max_header_bytes")) {
            limits.maxHeaderBytes = value
        }
        if let node = fields["stream_buffer_bytes"],
            let value = reader.byteSize(node, fields.path("stream_buffer_bytes"))
        {
            limits.streamBufferBytes = value
        }
        if let node = fields["slow_client_timeout"],
            let value = reader.duration(node, fields.path("slow_client_timeout"), allowZero: false)
        {
            limits.slowClientTimeout = value
        }
        return limits
    }

    func drain(_ node: Node, _ path: String) -> DrainConfiguration {
        var drain = DrainConfiguration()
        guard let fields = reader.mapping(node, path, allowed: ["grace", "retry_jitter"]) else { return drain }
        if let node = fields["grace"], let value = reader.duration(node, fields.path("grace"), allowZero: true) {
            drain.grace = value
        }
        if let node = fields["retry_jitter"],
            let value = reader.duration(node, fields.path("retry_jitter"), allowZero: true)
        {
            drain.retryJitter = value
        }
        return drain
    }
}
