import GatewayCore
import NIOConcurrencyHelpers

/// Overload protection shared by every event loop: concurrent streams per route and per verified subject, new
/// streams per second per client IP. (The connection limit is `OpenConnections.admit`.)
///
/// A lock per decision: this is the per-request path, never the per-event one.
final class StreamAdmission: AdmissionLimits, Sendable {
    /// Proof of admission; hand it back with `release` when the request ends.
    struct Ticket: Sendable {
        fileprivate let route: String
        fileprivate let subjectKey: String?
    }

    private struct State {
        var streamsByRoute: [String: Int] = [:]
        var streamsBySubject: [String: Int] = [:]
        var bucketsByIP: [String: TokenBucket] = [:]
    }

    private let state = NIOLockedValueBox(State())
    /// Above this many tracked IPs, full buckets are forgotten (they would admit anyway).
    private let maxTrackedIPs = 50_000

    /// The per-IP rate limit, checked before any token is verified (floods are refused cheaply).
    func admitNewRequest(clientIP: String?, newStreamsPerSecond: Double?, now: Double) -> GatewayError? {
        guard let rate = newStreamsPerSecond, let ip = clientIP else { return nil }
        return state.withLockedValue { state -> GatewayError? in
            var bucket = state.bucketsByIP[ip] ?? TokenBucket(ratePerSecond: rate, now: now)
                let admitted = bucket.take(now: now)
                if state.bucketsByIP.count >= maxTrackedIPs {
                    state.bucketsByIP = state.bucketsByIP.filter { !$0.value.isFull(now: now) }
                }
                state.bucketsByIP[ip] = bucket
                guard admitted else {
                    return .tooManyRequests(
                        "too many new streams from this address",
                        retryAfterSeconds: bucket.secondsUntilNextToken(now: now)
                    )
                }
                return nil
        }
    }

    /// Admits a stream under the route's and the subject's concurrency limits, or answers why not (429).
    func admitStream(
        route: RouteConfiguration,
        subject: SubjectStreamLimit?
    ) -> Result<Ticket, GatewayError> {
        state.withLockedValue { state in
            let routeCount = state.streamsByRoute[route.name, default: 0]
            if let limit = route.maxStreams, routeCount >= limit {
                return .failure(.tooManyRequests("route \(route.name) is at its stream limit", retryAfterSeconds: 1))
            }
            var subjectKey: String?
            if let subject {
                let key = subject.policy + "\u{0}" + subject.subject
                if state.streamsBySubject[key, default: 0] >= subject.limit {
                    return .failure(
                        .tooManyRequests("too many concurrent streams for this subject", retryAfterSeconds: 1)
                    )
                }
                state.streamsBySubject[key, default: 0] += 1
                subjectKey = key
            }
            state.streamsByRoute[route.name] = routeCount + 1
            return .success(Ticket(route: route.name, subjectKey: subjectKey))
        }
    }

    func release(_ ticket: Ticket) {
        state.withLockedValue { state in
            state.streamsByRoute[ticket.route, default: 1] -= 1
            if state.streamsByRoute[ticket.route] == 0 { state.streamsByRoute[ticket.route] = nil }
            if let key = ticket.subjectKey {
                state.streamsBySubject[key, default: 1] -= 1
                if state.streamsBySubject[key] == 0 { state.streamsBySubject[key] = nil }
            }
        }
    }
}
