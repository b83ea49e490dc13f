import NIOCore

/// Why an exchange ended: one value per ending, logged as `outcome=` and counted in
/// `sse_gateway_streams_ended_total{outcome}`.
public enum ExchangeOutcome: String, Sendable, Hashable, CaseIterable {
    /// The upstream ended its response (or closed an event stream at its end).
    case upstreamClosed = "upstream_closed"
    /// The client went away first.
    case clientClosed = "client_closed"
    /// The upstream reset the connection mid-response: the client connection is closed so `EventSource` reconnects.
    case upstreamReset = "upstream_reset"
    /// A plain (non-SSE) body ended before its length: the client connection is closed (a clean end would lie).
    case upstreamTruncated = "upstream_truncated"
    /// No upstream byte for `timeouts.idle` while the gateway was asking for more.
    case upstreamIdle = "upstream_idle"
    /// The verified token expired (`on_expiry: close`).
    case tokenExpired = "token_expired"
    /// The gateway is draining (SIGTERM).
    case drained
    /// `max_stream_duration` elapsed.
    case maxDuration = "max_duration"
    /// The client stayed unwritable for `slow_client_timeout`.
    case slowClient = "slow_client"
    /// The shared upstream stream this client subscribed to ended (its grace passed, or it answered non-200).
    case sharedStreamEnded = "shared_stream_ended"
    /// The upstream could not be reached or answered badly before its response head: an error was answered.
    case error
    /// The gateway answered the request itself (route, auth, limits).
    case rejected
    /// A stream ticket was minted (`POST` to a policy's `tickets.path`).
    case ticketMinted = "ticket_minted"

    public init(_ reason: StreamCloseReason) {
        switch reason {
        case .draining: self = .drained
        case .tokenExpired: self = .tokenExpired
        case .maxDuration: self = .maxDuration
        }
    }
}

/// Why an upstream could not serve an exchange, classified once where the error is caught (no type-name sniffing
/// later): the metrics label, the status answered, and a message for the client's JSON error body.
public struct UpstreamFailure: Error, Sendable, Hashable {
    /// The `kind` label of `sse_gateway_upstream_errors_total`.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case refused
        case connectTimeout = "connect_timeout"
        case responseHeaderTimeout = "response_header_timeout"
        case reset
        case tls
        case closed
        case protocolError = "protocol"
    }

    public var kind: Kind
    /// What the client's error body says (never a token: upstream addresses and error descriptions only).
    public var message: String

    public init(_ kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    /// 504 for timeouts, 502 for everything else.
    public var gatewayError: GatewayError {
        switch kind {
        case .connectTimeout, .responseHeaderTimeout: return .gatewayTimeout(message)
        default: return .badGateway(message)
        }
    }
}
