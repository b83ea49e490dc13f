import Logging
import Metrics

/// Process-wide services the handlers use: the logger and the metrics.
struct GatewayEnvironment: Sendable {
    var logger: Logger
    var metrics: GatewayMetrics
}

/// The gateway's metrics, created once (swift-metrics; exported by the admin listener).
///
/// Labelled by route name only, never by raw URL: label sets stay bounded.
struct GatewayMetrics: Sendable {
    let slowClientsDropped = Counter(label: "sse_gateway_slow_clients_dropped_total")
}
