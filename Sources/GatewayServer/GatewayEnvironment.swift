import GatewayCore
import Logging
import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// Process-wide services the handlers use: the logger, the metrics, the stream limits, the stream tickets and the
/// shared streams. One instance, referenced by every connection's handler.
final class GatewayEnvironment: Sendable {
    let logger: Logger
    let metrics: GatewayMetrics
    let admission: StreamAdmission
    let tickets: StreamTickets
    /// The shared upstream streams of routes with `share`, across configuration generations.
    let sharedStreams: SharedStreams

    init(
        logger: Logger,
        metrics: GatewayMetrics,
        admission: StreamAdmission,
        tickets: StreamTickets = StreamTickets(),
        sharedStreams: SharedStreams = SharedStreams()
    ) {
        self.logger = logger
        self.metrics = metrics
        self.admission = admission
        self.tickets = tickets
        self.sharedStreams = sharedStreams
    }
}

/// The gateway's metrics (swift-metrics handles backed by a Prometheus registry owned by the gateway, exported on
/// the admin listener's `GET /metrics`).
///
/// Labelled by route name, policy name and small fixed vocabularies (outcome, reason, kind, status class), never by
/// raw URL, so label sets stay bounded. Per-event figures (events, bytes) are added once per finished request rather
/// than per event, so the relay's hot path touches no shared counter.
///
/// Every series a configuration can produce exists from the first scrape, at zero (`prepare(for:)`): dashboards
/// and `absent()` alerts must not depend on traffic having happened. The vocabularies come from the enums'
/// `allCases`, so a new outcome, reason or kind is pre-created without touching this file.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    private let process: ProcessMetrics
    private let routes = NIOLockedValueBox<[String: RouteMetrics]>([:])
    private let jwksSeen = NIOLockedValueBox<[String: (successes: Int, failures: Int)]>([:])
    /// The `result` label of reloads and JWKS fetches.
    private enum ResultLabel: String, CaseIterable {
        case success
        case failure
    }
    /// Labelled counters already made, by label and label values: asking the Prometheus registry for a counter
    /// validates and hashes its name and labels under the registry's lock, too slow for once per request.
    private let counters = NIOLockedValueBox<[CounterKey: Metrics.Counter]>([:])

    private struct CounterKey: Hashable {
        let label: String
        let first: String
        let second: String
    }

    /// Per-route handles, created once per route name.
    struct RouteMetrics: Sendable {
        let openStreams: Metrics.Meter
        let streamsStarted: Metrics.Counter
        let eventsRelayed: Metrics.Counter
        let bytesRelayed: Metrics.Counter
        let upstreamConnect: Metrics.Timer
        let timeToFirstByte: Metrics.Timer
        let streamDuration: Metrics.Timer
        let slowClientsDropped: Metrics.Counter
        /// New upstream connections of clients' own (`kind="private"`; shared streams count theirs as `shared`).
        let privateUpstreamConnections: Metrics.Counter
    }

    /// The route label of requests refused before routing (rate limit, no route), as the client handler writes it.
    static let unroutedRoute = "-"

    public init(version: String = GatewayBuild.version) {
        self.registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30),
            .seconds(60), .seconds(300), .seconds(1800), .seconds(3600),
        ]
        self.factory = factory
        self.process = ProcessMetrics(registry: registry)
        registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "sse_gateway_build",
                unitName: "info",
                helpText: "Always 1; the version label says which sse-gateway is running."
            ),
            labels: [("version", version)]
        ).set(Int64(1))
        _ = Metrics.Counter(label: "sse_gateway_connections_rejected_total", factory: factory)
        _ = Metrics.Counter(label: "sse_gateway_rate_limited_total", factory: factory)
        _ = Metrics.Counter(label: "sse_gateway_tickets_issued_total", factory: factory)
        for result in TicketRedemption.Result.allCases { _ = ticketsRedeemedCounter(result) }
        for result in ResultLabel.allCases { _ = reloadCounter(result) }
        for statusClass in Self.statusClasses {
            _ = counter("sse_gateway_requests_total", ("route", Self.unroutedRoute), ("status", statusClass))
        }
    }

    /// Creates, at zero, every series the runtime's configuration can produce: per route the stream, relay, request,
    /// outcome and upstream error series (and auth failures where the route has a policy), and the JWKS fetches of
    /// each policy with a `jwks_url`. Called at start and by each reload, before the new routes take requests; series
    /// of routes a reload removed stay (Prometheus counters never go back).
    func prepare(for runtime: GatewayRuntime) {
        for route in runtime.configuration.routes {
            let name = route.name
            _ = self.route(name)
            for statusClass in Self.statusClasses {
                _ = counter("sse_gateway_requests_total", ("route", name), ("status", statusClass))
            }
            for outcome in ExchangeOutcome.allCases {
                _ = counter("sse_gateway_streams_ended_total", ("route", name), ("outcome", outcome.rawValue))
            }
            for kind in UpstreamFailure.Kind.allCases {
                _ = counter("sse_gateway_upstream_errors_total", ("route", name), ("kind", kind.rawValue))
            }
            if route.share != nil { _ = shared(name) }
            if route.auth != nil {
                for reason in AuthFailure.Reason.allCases {
                    _ = counter("sse_gateway_auth_failures_total", ("route", name), ("reason", reason.label))
                }
            }
        }
        for policy in runtime.jwksFetchers.keys {
            for result in ResultLabel.allCases { _ = jwksCounter(policy, result) }
        }
    }

    func route(_ name: String) -> RouteMetrics {
        if let existing = routes.withLockedValue({ $0[name] }) { return existing }
        let dimensions = [("route", name)]
        let metrics = RouteMetrics(
            openStreams: Metrics.Meter(label: "sse_gateway_open_streams", dimensions: dimensions, factory: factory),
            streamsStarted: Metrics.Counter(label: "sse_gateway_streams_started_total", dimensions: dimensions, factory: factory),
            eventsRelayed: Metrics.Counter(label: "sse_gateway_events_relayed_total", dimensions: dimensions, factory: factory),
            bytesRelayed: Metrics.Counter(label: "sse_gateway_bytes_relayed_total", dimensions: dimensions, factory: factory),
            upstreamConnect: Metrics.Timer(
                label: "sse_gateway_upstream_connect_seconds", dimensions: dimensions, factory: factory
            ),
            timeToFirstByte: Metrics.Timer(
                label: "sse_gateway_time_to_first_byte_seconds", dimensions: dimensions, factory: factory
            ),
            streamDuration: Metrics.Timer(
                label: "sse_gateway_stream_duration_seconds", dimensions: dimensions, factory: factory
            ),
            slowClientsDropped: Metrics.Counter(
                label: "sse_gateway_slow_clients_dropped_total", dimensions: dimensions, factory: factory
            ),
            privateUpstreamConnections: Metrics.Counter(
                label: "sse_gateway_upstream_connections_total", dimensions: dimensions + [("kind", "private")],
                factory: factory
            )
        )
        return routes.withLockedValue { routes in
            if let existing = routes[name] { return existing }
            routes[name] = metrics
            return metrics
        }
    }

    func requestFinished(route: String, status: Int) {
        let index = (100..<600).contains(status) ? status / 100 - 1 : Self.statusClasses.count - 1
        let statusClass = Self.statusClasses[index]
        counter("sse_gateway_requests_total", ("route", route), ("status", statusClass)).increment()
    }

    func streamEnded(route: String, outcome: String) {
        counter("sse_gateway_streams_ended_total", ("route", route), ("outcome", outcome)).increment()
    }

    func authFailure(route: String, reason: String) {
        counter("sse_gateway_auth_failures_total", ("route", route), ("reason", reason)).increment()
    }

    func upstreamError(route: String, kind: String) {
        counter("sse_gateway_upstream_errors_total", ("route", route), ("kind", kind)).increment()
    }

    /// The `status` label: the class of the status answered, or `other` when there was none (the client left first).
    private static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]

    /// A counter with two labels, made once and then reused.
    func counter(_ label: String, _ first: (String, String), _ second: (String, String)) -> Metrics.Counter {
        let key = CounterKey(label: label, first: first.1, second: second.1)
        if let existing = counters.withLockedValue({ $0[key] }) { return existing }
        let made = Metrics.Counter(label: label, dimensions: [first, second], factory: factory)
        return counters.withLockedValue { counters in
            if let existing = counters[key] { return existing }
            counters[key] = made
            return made
        }
    }

    func connectionRejected() {
        Metrics.Counter(label: "sse_gateway_connections_rejected_total", factory: factory).increment()
    }

    /// A request refused by `limits.new_streams_per_second_per_ip` (429).
    func rateLimited() {
        Metrics.Counter(label: "sse_gateway_rate_limited_total", factory: factory).increment()
    }

    /// `sse_gateway_tickets_issued_total`: stream tickets minted.
    func ticketIssued() {
        Metrics.Counter(label: "sse_gateway_tickets_issued_total", factory: factory).increment()
    }

    /// `sse_gateway_tickets_redeemed_total{result}`: stream tickets presented, by what became of them.
    func ticketRedeemed(_ result: TicketRedemption.Result) {
        ticketsRedeemedCounter(result).increment()
    }

    private func ticketsRedeemedCounter(_ result: TicketRedemption.Result) -> Metrics.Counter {
        Metrics.Counter(
            label: "sse_gateway_tickets_redeemed_total",
            dimensions: [("result", result.rawValue)],
            factory: factory
        )
    }

    func configReload(succeeded: Bool) {
        reloadCounter(succeeded ? .success : .failure).increment()
    }

    private func reloadCounter(_ result: ResultLabel) -> Metrics.Counter {
        Metrics.Counter(
            label: "sse_gateway_config_reloads_total",
            dimensions: [("result", result.rawValue)],
            factory: factory
        )
    }

    private func jwksCounter(_ policy: String, _ result: ResultLabel) -> Metrics.Counter {
        counter("sse_gateway_jwks_fetches_total", ("policy", policy), ("result", result.rawValue))
    }

    /// Brings the JWKS fetch counters up to date with the fetchers' own counts (called at scrape time).
    func observeJWKS(policy: String, successes: Int, failures: Int) {
        let previous = jwksSeen.withLockedValue { seen -> (Int, Int) in
            let old = seen[policy] ?? (0, 0)
            seen[policy] = (max(old.successes, successes), max(old.failures, failures))
            return old
        }
        if successes > previous.0 { jwksCounter(policy, .success).increment(by: successes - previous.0) }
        if failures > previous.1 { jwksCounter(policy, .failure).increment(by: failures - previous.1) }
    }

    /// The Prometheus text exposition, with the process metrics sampled first.
    public func exposition() -> String {
        process.sample()
        return registry.emitToString()
    }
}
