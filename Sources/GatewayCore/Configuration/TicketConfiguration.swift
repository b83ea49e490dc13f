/// `auth_policies.*.tickets`: short-lived stream tickets, so a browser's `EventSource` URL never carries the
/// long-lived token (RFC 9700 §4.3.2). The page mints a ticket with an authenticated `POST` to `path`, then opens
/// the stream with `?<parameter>=<ticket>`.
public struct TicketConfiguration: Sendable, Equatable {
    /// Where tickets are minted (`POST`). The gateway answers this exact path itself, before routing.
    public var path: String
    /// A ticket's life; never longer than the token's remaining life.
    public var ttl: Duration
    /// The query parameter `EventSource` URLs carry the ticket in (stripped upstream, redacted in logs).
    public var parameter: String
    /// How long after a connection closes the same ticket may reconnect (`EventSource` retries by itself, with
    /// `Last-Event-ID`); zero makes tickets strictly single-use.
    public var reconnectGrace: Duration
    /// How many reconnects a ticket allows after its first use.
    public var maxResumes: Int
    /// Unexpired tickets one subject may hold at once.
    public var maxOutstandingPerSubject: Int
    /// Mints per minute per subject, in a token bucket that holds `mintBurst` (a page opening a few streams at once).
    public var mintsPerMinutePerSubject: Int

    /// The bucket's size for `mints_per_minute_per_subject`: a page may mint this many at once.
    public static let mintBurst = 10

    public init(
        path: String = "/_sse/ticket",
        ttl: Duration = .seconds(30),
        parameter: String = "sse_ticket",
        reconnectGrace: Duration = .seconds(30),
        maxResumes: Int = 3,
        maxOutstandingPerSubject: Int = 20,
        mintsPerMinutePerSubject: Int = 60
    ) {
        self.path = path
        self.ttl = ttl
        self.parameter = parameter
        self.reconnectGrace = reconnectGrace
        self.maxResumes = maxResumes
        self.maxOutstandingPerSubject = maxOutstandingPerSubject
        self.mintsPerMinutePerSubject = mintsPerMinutePerSubject
    }
}

extension GatewayConfiguration {
    /// Each policy's `tickets.path`, to the policy's name.
    public var ticketPaths: [String: String] {
        authPolicies.reduce(into: [:]) { paths, entry in
            if let tickets = entry.value.tickets { paths[tickets.path] = entry.key }
        }
    }
}
