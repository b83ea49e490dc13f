import NIOHTTP1

/// CORS answers for credentialed `EventSource` (`new EventSource(url, {withCredentials: true})`).
///
/// An exactly listed origin is echoed, with `Access-Control-Allow-Credentials: true` when configured. A `"*"` entry
/// admits other origins as `*` and never with credentials (browsers refuse that combination anyway). Requested
/// headers outside `allowedHeaders` are not reflected: reflecting them would allow anything.
public struct CORSPolicy: Sendable {
    public static let allowedMethods = "GET, POST, OPTIONS"
    public static let allowedHeaders = "Last-Event-ID, Authorization, Content-Type, Cache-Control"

    private let origins: Set<String>
    private let allowsAnyOrigin: Bool
    private let allowCredentials: Bool
    private let maxAgeSeconds: Int64

    public init(configuration: CORSConfiguration) {
        self.origins = Set(configuration.allowedOrigins.filter { $0 != "*" })
        self.allowsAnyOrigin = configuration.allowedOrigins.contains("*")
        self.allowCredentials = configuration.allowCredentials
        self.maxAgeSeconds = configuration.maxAge.components.seconds
    }

    /// Whether `origin` may read responses.
    public func allows(origin: String) -> Bool { origins.contains(origin) || allowsAnyOrigin }

    /// Headers for an `OPTIONS` preflight; `nil` when the origin or the requested method is not allowed.
    public func preflightHeaders(origin: String, requestMethod: String?) -> HTTPHeaders? {
        guard allows(origin: origin) else { return nil }
        if let requestMethod, !["GET", "POST", "OPTIONS"].contains(requestMethod) { return nil }
        var headers = allowHeaders(origin: origin)
        headers.add(name: "Access-Control-Allow-Methods", value: Self.allowedMethods)
        headers.add(name: "Access-Control-Allow-Headers", value: Self.allowedHeaders)
        headers.add(name: "Access-Control-Max-Age", value: String(maxAgeSeconds))
        return headers
    }

    /// Headers for an actual response: allow headers for an allowed origin, and `Vary: Origin` whenever the answer
    /// depends on the origin (so caches do not serve one origin's answer to another).
    public func responseHeaders(origin: String?) -> HTTPHeaders {
        guard let origin, allows(origin: origin) else {
            return origins.isEmpty ? HTTPHeaders() : HTTPHeaders([("Vary", "Origin")])
        }
        return allowHeaders(origin: origin)
    }

    private func allowHeaders(origin: String) -> HTTPHeaders {
        if origins.contains(origin) {
            var headers = HTTPHeaders([("Access-Control-Allow-Origin", origin)])
            if allowCredentials { headers.add(name: "Access-Control-Allow-Credentials", value: "true") }
            headers.add(name: "Vary", value: "Origin")
            return headers
        }
        return HTTPHeaders([("Access-Control-Allow-Origin", "*")])
    }
}
