import GatewayCore
import Metrics

extension GatewayMetrics {
    /// How a join went: `new` started the stream, `joined` went live, `replayed` got events from the ring first,
    /// `ring_miss` needed a private upstream request, `retried` came as its stream ended (and joined the next one).
    enum JoinResult: String, CaseIterable {
        case new, joined, replayed
        case ringMiss = "ring_miss"
        case retried
    }

    /// The series of one route's shared streams (made once per stream, so nothing is looked up per event).
    struct SharedMetrics: Sendable {
        let route: String
        let streamsOpen: Metrics.Meter
        let subscribers: Metrics.Meter
        let ringBytes: Metrics.Meter
        let upstreamConnections: Metrics.Counter
        let reconnects: Metrics.Counter
        let joins: [Metrics.Counter]
        let metrics: GatewayMetrics

        func join(_ result: JoinResult) {
            joins[JoinResult.allCases.firstIndex(of: result)!].increment()
        }

        func upstreamError(_ kind: UpstreamFailure.Kind) {
            metrics.upstreamError(route: route, kind: kind.rawValue)
        }
    }

    func shared(_ route: String) -> SharedMetrics {
        let dimensions = [("route", route)]
        return SharedMetrics(
            route: route,
            streamsOpen: Metrics.Meter(label: "sse_gateway_shared_streams_open", dimensions: dimensions, factory: factory),
            subscribers: Metrics.Meter(label: "sse_gateway_shared_subscribers", dimensions: dimensions, factory: factory),
            ringBytes: Metrics.Meter(label: "sse_gateway_shared_ring_bytes", dimensions: dimensions, factory: factory),
            upstreamConnections: counter("sse_gateway_upstream_connections_total", ("route", route), ("kind", "shared")),
            reconnects: Metrics.Counter(
                label: "sse_gateway_shared_upstream_reconnects_total", dimensions: dimensions, factory: factory
            ),
            joins: JoinResult.allCases.map {
                counter("sse_gateway_shared_joins_total", ("route", route), ("result", $0.rawValue))
            },
            metrics: self
        )
    }
}
