import GatewayCore
import NIOCore
import NIOHTTP1

/// One request/response through the gateway, from the client's request head to the end of the response.
///
/// Owned by the client connection's `ClientConnectionHandler` and touched only on its event loop.
final class ProxyExchange {
    let runtime: GatewayRuntime
    let routed: RoutedRequest
    let clientHead: HTTPRequestHead
    /// The head sent upstream (rewritten target and headers).
    let upstreamHead: HTTPRequestHead
    let startedAt: NIODeadline

    /// The upstream connection once dialled.
    var upstream: UpstreamConnection?
    /// Request parts that arrived while the upstream was still being dialled.
    var pendingRequestParts: [HTTPClientRequestPart] = []
    /// Set when we retried a stale pooled connection once already.
    var retriedStaleConnection = false
    /// Whether the connection last used came from the idle pool (`nil` before any).
    var lastConnectionWasReused: Bool?
    var sentRequestBody = false
    var requestForwardedCompletely = false

    /// Set once the upstream's response head was relayed.
    var relay: StreamRelayStateMachine?
    var responseStatus: HTTPResponseStatus?
    var upstreamKeepAlive = false
    var responseEnded = false
    /// Upstream bytes written to the client but not yet flushed.
    var needsFlush = false
    var lastClientWrite: NIODeadline
    var lastUpstreamRead: NIODeadline

    /// Returned to `StreamAdmission` when the exchange ends.
    var admissionTicket: StreamAdmission.Ticket?
    var maxDurationTimer: Scheduled<Void>?
    /// Who the request's token belongs to (authenticated routes only).
    var identity: VerifiedIdentity?
    /// CORS headers added to the client's response (empty without CORS or for other origins).
    var corsHeaders: HTTPHeaders = [:]

    var responseHeaderTimer: Scheduled<Void>?
    var expiryTimer: Scheduled<Void>?
    var heartbeatTimer: Scheduled<Void>?
    var idleTimer: Scheduled<Void>?

    let metrics: GatewayMetrics.RouteMetrics
    /// Whether this exchange counts as an open stream (an event-stream response was relayed).
    var countedAsStream = false

    init(
        runtime: GatewayRuntime,
        routed: RoutedRequest,
        clientHead: HTTPRequestHead,
        upstreamHead: HTTPRequestHead,
        metrics: GatewayMetrics.RouteMetrics
    ) {
        self.runtime = runtime
        self.metrics = metrics
        self.routed = routed
        self.clientHead = clientHead
        self.upstreamHead = upstreamHead
        let now = NIODeadline.now()
        self.startedAt = now
        self.lastClientWrite = now
        self.lastUpstreamRead = now
    }

    var route: RouteConfiguration { routed.route }
    var endpoint: UpstreamEndpoint { runtime.endpoints[routed.routeIndex] }

    func cancelTimers() {
        responseHeaderTimer?.cancel()
        expiryTimer?.cancel()
        expiryTimer = nil
        maxDurationTimer?.cancel()
        maxDurationTimer = nil
        heartbeatTimer?.cancel()
        idleTimer?.cancel()
        responseHeaderTimer = nil
        heartbeatTimer = nil
        idleTimer = nil
    }
}

extension Duration {
    /// The same span as a NIO `TimeAmount`.
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
