import Logging
import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// Process-wide services the handlers use: the logger and the metrics.
struct GatewayEnvironment: Sendable {
    var logger: Logger
    var metrics: GatewayMetrics
    var admission: StreamAdmission
}

/// The gateway's metrics (swift-metrics handles backed by a Prometheus registry owned by the gateway, exported on
/// the admin listener's `GET /metrics`).
///
/// Labelled by route name, policy name and small fixed vocabularies (outcome, reason, kind, status class), never by
/// raw URL, so label sets stay bounded. Per-event figures (events, bytes) are added once per finished request rather
/// than per event, so the relay's hot path touches no shared counter.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let routes = NIOLockedValueBox<[String: RouteMetrics]>([:])
    private let jwksSeen = NIOLockedValueBox<[String: (successes: Int, failures: Int)]>([:])
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
    }

    public init() {
        self.registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30),
            .seconds(60), .seconds(300), .seconds(1800), .seconds(3600),
        ]
        self.factory = factory
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
            )
        )
        return routes.withLockedValue { routes in
            if let existing = routes[name] { return existing }
            routes[name] = metrics
            return metrics
        }
    }

    func requestFinished(route: String, status: Int) {
        let statusClass = status >= 100 && status < 600 ? Self.statusClasses[status / 100] : "other"
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

    private static let statusClasses = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"]

    /// A counter with two labels, made once and then reused.
    private func counter(_ label: String, _ first: (String, String), _ second: (String, String)) -> Metrics.Counter {
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

    func configReload(succeeded: Bool) {
        Metrics.Counter(
            label: "sse_gateway_config_reloads_total",
            dimensions: [("result", succeeded ? "success" : "failure")],
            factory: factory
        ).increment()
    }

    /// Brings the JWKS fetch counters up to date with the fetchers' own counts (called at scrape time).
    func observeJWKS(policy: String, successes: Int, failures: Int) {
        let previous = jwksSeen.withLockedValue { seen -> (Int, Int) in
            let old = seen[policy] ?? (0, 0)
            seen[policy] = (max(old.successes, successes), max(old.failures, failures))
            return old
        }
        let labels = { (result: String) in [("policy", policy), ("result", result)] }
        if successes > previous.0 {
            Metrics.Counter(label: "sse_gateway_jwks_fetches_total", dimensions: labels("success"), factory: factory)
                .increment(by: successes - previous.0)
        }
        if failures > previous.1 {
            Metrics.Counter(label: "sse_gateway_jwks_fetches_total", dimensions: labels("failure"), factory: factory)
                .increment(by: failures - previous.1)
        }
    }

    /// The Prometheus text exposition.
    public func exposition() -> String {
        registry.emitToString()
    }
}
