import GatewayCore
import NIOCore
import NIOHTTP1

/// One request/response through the gateway, from admission to the end of the response: what it is (route, heads,
/// identity) and what it holds (the upstream connection, the admission ticket, metrics). What happens to it is
/// decided by `ClientConnectionStateMachine`.
///
/// Owned by the client connection's `ClientConnectionHandler` and touched only on its event loop.
final class ProxyExchange {
    let runtime: GatewayRuntime
    let routed: RoutedRequest
    /// The client's request line (its headers are not kept: a stream may be held for hours).
    let method: HTTPMethod
    let uri: String
    let version: HTTPVersion
    /// The head sent upstream (rewritten target and headers), kept until the upstream's response head arrives (a
    /// stale pooled connection resends it).
    var upstreamHead: HTTPRequestHead?
    let startedAt: NIODeadline
    let metrics: GatewayMetrics.RouteMetrics

    /// The upstream connection once dialled.
    var upstream: UpstreamConnection?
    var responseStatus: HTTPResponseStatus?
    /// Returned to `StreamAdmission` when the exchange ends.
    var admissionTicket: StreamAdmission.Ticket?
    /// The stream ticket this exchange redeemed: released (its reconnect grace starts) when the exchange ends.
    var streamTicket: StreamTicket?
    /// Who the request's token belongs to (authenticated routes only).
    var identity: VerifiedIdentity?
    /// CORS headers added to the client's response (empty without CORS or for other origins).
    var corsHeaders: HTTPHeaders = [:]
    /// The shared stream this request may join (`routes[].share`), and its membership once it joined.
    var shared: SharedRequest?
    var subscription: SharedSubscription?
    /// A join that came as its stream ended is tried once more, then the request goes upstream on its own.
    var joinRetried = false
    /// Whether this exchange counts as an open stream (an event-stream response was relayed).
    var countedAsStream = false

    init(
        runtime: GatewayRuntime,
        routed: RoutedRequest,
        clientHead: HTTPRequestHead,
        upstreamHead: HTTPRequestHead,
        metrics: GatewayMetrics.RouteMetrics,
        startedAt: NIODeadline
    ) {
        self.runtime = runtime
        self.metrics = metrics
        self.routed = routed
        self.method = clientHead.method
        self.uri = clientHead.uri
        self.version = clientHead.version
        self.upstreamHead = upstreamHead
        self.startedAt = startedAt
    }

    var route: RouteConfiguration { routed.route }
    var endpoint: UpstreamEndpoint { runtime.endpoints[routed.routeIndex] }
}
