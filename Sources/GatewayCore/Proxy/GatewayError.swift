import NIOHTTP1

/// An error the gateway answers a client with.
///
/// A public struct over a private code (as jwt-kit's `JWTError` does), so new cases never break callers.
/// The HTTP status and the JSON body are chosen here, in one place; handlers only pass the error on.
public struct GatewayError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: String, Sendable, Hashable {
        case notFound = "not_found"
        case badRequest = "bad_request"
        case headersTooLarge = "headers_too_large"
        case requestTimeout = "request_timeout"
        case badGateway = "bad_gateway"
        case gatewayTimeout = "gateway_timeout"
        case missingToken = "missing_token"
        case invalidToken = "invalid_token"
        case forbiddenOrigin = "forbidden_origin"
        case forbidden
        case contentTooLarge = "content_too_large"
        case tooManyRequests = "too_many_requests"
        case serviceUnavailable = "service_unavailable"
        case methodNotAllowed = "method_not_allowed"
    }

    private let code: Code
    /// Human-readable detail; safe to show to clients (never contains a token or secret).
    public let message: String
    /// Seconds for a `Retry-After` header (429 and 503).
    public let retryAfterSeconds: Int?

    private init(_ code: Code, _ message: String, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// The machine-readable `error` field of the body, e.g. `invalid_token`.
    public var identifier: String { code.rawValue }

    public var status: HTTPResponseStatus {
        switch code {
        case .notFound: .notFound
        case .badRequest: .badRequest
        case .headersTooLarge: .requestHeaderFieldsTooLarge
        case .requestTimeout: .requestTimeout
        case .badGateway: .badGateway
        case .gatewayTimeout: .gatewayTimeout
        case .missingToken, .invalidToken: .unauthorized
        case .forbiddenOrigin, .forbidden: .forbidden
        case .contentTooLarge: .payloadTooLarge
        case .tooManyRequests: .tooManyRequests
        case .serviceUnavailable: .serviceUnavailable
        case .methodNotAllowed: .methodNotAllowed
        }
    }

    public var description: String { "\(status.code) \(code.rawValue): \(message)" }

    /// `{"error":"...","message":"..."}`, JSON-escaped.
    public var jsonBody: String {
        "{\"error\":\"\(code.rawValue)\",\"message\":\"\(JSONString.escape(message))\"}"
    }

    public static func notFound(_ message: String = "no route matches this path") -> Self { .init(.notFound, message) }
    public static func badRequest(_ message: String) -> Self { .init(.badRequest, message) }
    public static func headersTooLarge(_ message: String = "request headers are too large") -> Self {
        .init(.headersTooLarge, message)
    }
    public static func requestTimeout(_ message: String = "the request head did not arrive in time") -> Self {
        .init(.requestTimeout, message)
    }
    public static func badGateway(_ message: String) -> Self { .init(.badGateway, message) }
    public static func gatewayTimeout(_ message: String) -> Self { .init(.gatewayTimeout, message) }
    public static func missingToken(_ message: String = "this route requires a token") -> Self {
        .init(.missingToken, message)
    }
    public static func invalidToken(_ message: String) -> Self { .init(.invalidToken, message) }
    public static func forbiddenOrigin(_ message: String = "origin not allowed") -> Self {
        .init(.forbiddenOrigin, message)
    }
    /// A valid token that may not do this (e.g. mint a ticket for a route of another policy).
    public static func forbidden(_ message: String) -> Self { .init(.forbidden, message) }
    public static func contentTooLarge(_ message: String) -> Self { .init(.contentTooLarge, message) }
    public static func tooManyRequests(_ message: String, retryAfterSeconds: Int) -> Self {
        .init(.tooManyRequests, message, retryAfterSeconds: retryAfterSeconds)
    }
    public static func serviceUnavailable(_ message: String, retryAfterSeconds: Int? = nil) -> Self {
        .init(.serviceUnavailable, message, retryAfterSeconds: retryAfterSeconds)
    }
    public static func methodNotAllowed(_ message: String) -> Self { .init(.methodNotAllowed, message) }
}

/// Minimal JSON string escaping for bodies and log lines the gateway writes itself.
public enum JSONString {
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
