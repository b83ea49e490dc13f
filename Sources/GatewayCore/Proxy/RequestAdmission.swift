import NIOCore
import NIOHTTP1

/// The shared counters admission consults: new streams per client IP, concurrent streams per route and per verified
/// subject. The gateway's implementation is one locked table for all event loops (`StreamAdmission`); tests count.
public protocol AdmissionLimits {
    /// Proof of a stream's admission, handed back when the stream ends.
    associatedtype Ticket
    /// The per-IP token bucket: `nil` to admit, or the 429 to answer.
    func admitNewRequest(clientIP: String?, newStreamsPerSecond: Double?, now: Double) -> GatewayError?
    /// The route's and the subject's concurrency limits.
    func admitStream(route: RouteConfiguration, subject: SubjectStreamLimit?) -> Result<Ticket, GatewayError>
}

/// `max_streams_per_subject` of the policy a verified subject came through.
public struct SubjectStreamLimit: Sendable, Hashable {
    public var policy: String
    public var subject: String
    public var limit: Int

    public init(policy: String, subject: String, limit: Int) {
        self.policy = policy
        self.subject = subject
        self.limit = limit
    }
}

/// Admission of a request head, before any upstream is touched, in this order: `Host` (RFC 9112 §3.2), CORS
/// preflight (never carries
/// credentials), the per-IP rate limit (checked before any token is verified, so floods are refused cheaply),
/// routing and path normalisation, the token, the stream limits; then the upstream request (token removed from the
/// query and cookies, forward header and claim headers set, hop-by-hop headers removed).
///
/// Built once per configuration; every decision is a value (`Decision`) the connection state machine takes.
public struct RequestAdmission: Sendable {
    public typealias LocalAnswer = ClientConnectionStateMachine.LocalAnswer

    public let configuration: GatewayConfiguration
    public let routeTable: RouteTable
    /// Indexed like `configuration.routes`; `nil` for public routes.
    public let authenticators: [RouteAuthenticator?]
    public let cors: CORSPolicy?
    /// Each policy's `tickets.path`, to the policy's name.
    let ticketPaths: [String: String]
    /// Minted stream tickets; shared by every configuration generation, so a reload keeps them.
    public let tickets: StreamTickets

    public init(
        configuration: GatewayConfiguration,
        routeTable: RouteTable,
        authenticators: [RouteAuthenticator?],
        cors: CORSPolicy?,
        tickets: StreamTickets = StreamTickets()
    ) {
        self.configuration = configuration
        self.routeTable = routeTable
        self.authenticators = authenticators
        self.cors = cors
        self.tickets = tickets
        self.ticketPaths = configuration.ticketPaths
    }

    /// A request that passed routing and waits for its token to be checked (again, after a key refresh).
    public struct Routed: Sendable {
        public var head: HTTPRequestHead
        public var routed: RoutedRequest
        /// CORS headers every answer to this request carries (empty without CORS or for other origins).
        public var corsHeaders: HTTPHeaders
    }

    /// An admitted request: what goes upstream, and who asked.
    public struct Admitted<Ticket> {
        /// The route, with the query as forwarded (token parameters removed).
        public var routed: RoutedRequest
        public var upstreamHead: HTTPRequestHead
        public var identity: VerifiedIdentity?
        public var corsHeaders: HTTPHeaders
        public var ticket: Ticket
        /// The stream ticket this request redeemed: live until the exchange ends (`StreamTickets.release`).
        public var streamTicket: StreamTicket?
        /// Set when the route shares its streams (`share`) and the request can join one; `upstreamHead` is still
        /// what a private upstream request sends (a subscriber whose `Last-Event-ID` the shared stream cannot serve).
        public var shared: SharedRequest?
    }

    /// What a refusal adds to, beside `requests_total`.
    public enum Refusal: Sendable, Equatable {
        /// `auth_failures_total{reason}`.
        case authFailure(AuthFailure.Reason)
        /// `rate_limited_total`.
        case rateLimited
        /// `tickets_redeemed_total{result}`: a stream ticket that was refused.
        case ticket(TicketRedemption.Result)
    }

    public enum Decision<Ticket> {
        /// The gateway answers itself; `refusal` says which counter the answer adds to.
        case answer(LocalAnswer, refusal: Refusal?)
        /// Routed, the token still to check (`authenticate`).
        case routed(Routed)
        /// The token names a key the gateway does not hold: refresh the keys, then `authenticate` once more without
        /// a further refresh.
        case refreshKeys(Routed, kid: String)
        case forward(Admitted<Ticket>)
        /// A `POST` to a tickets path: read its body (at most `limit` bytes), then `mint`.
        case readBody(MintRequest, limit: Int)
        /// A ticket was minted (`tickets_issued_total`); the answer carries it.
        case minted(LocalAnswer)
    }

    /// The checks before the token: preflight, rate limit, route. Ends in `.answer` or `.routed`.
    public func route<Limits: AdmissionLimits>(
        _ head: HTTPRequestHead,
        clientIP: String?,
        now: Double,
        limits: Limits
    ) -> Decision<Limits.Ticket> {
        let origin = head.headers.first(name: "origin")
        let corsHeaders = cors?.responseHeaders(origin: origin) ?? [:]
        if let problem = HostHeader.problem(in: head) {
            return Self.reject(.badRequest(problem), headers: corsHeaders, route: nil, reason: "bad_host")
        }
        if head.method == .OPTIONS, let cors, let origin,
            let requestMethod = head.headers.first(name: "access-control-request-method")
        {
            let allowed = cors.preflightHeaders(origin: origin, requestMethod: requestMethod)
            return .answer(LocalAnswer(.empty(.noContent), headers: allowed ?? corsHeaders, log: .none), refusal: nil)
        }
        if let refused = limits.admitNewRequest(
            clientIP: clientIP,
            newStreamsPerSecond: configuration.limits.newStreamsPerSecondPerIP,
            now: now
        ) {
            return Self.reject(refused, headers: corsHeaders, route: nil, reason: "rate_limited", refusal: .rateLimited)
        }
        if let policy = ticketPaths[String(head.uri.prefix { $0 != "?" })] {
            return mintRequest(head, policy: policy, corsHeaders: corsHeaders)
        }
        do {
            let routed = try routeTable.route(uri: head.uri)
            return .routed(Routed(head: head, routed: routed, corsHeaders: corsHeaders))
        } catch {
            return Self.reject(error, headers: corsHeaders, route: nil, reason: error.identifier)
        }
    }

    /// The token (for routes with `auth`), the stream limits, and the upstream request.
    public func authenticate<Limits: AdmissionLimits>(
        _ request: Routed,
        allowKeyRefresh: Bool,
        forwarding: ForwardingContext,
        now: Double,
        limits: Limits
    ) -> Decision<Limits.Ticket> {
        let route = request.routed.route
        guard let authenticator = authenticators[request.routed.routeIndex] else {
            return admit(request, authenticated: nil, forwarding: forwarding, limits: limits)
        }
        if let parameter = route.auth.flatMap({ configuration.authPolicies[$0]?.tickets?.parameter }),
            let query = request.routed.query,
            let ticket = QueryTokenParameters.firstValue(named: parameter, in: Substring(query))
        {
            return redeem(
                ticket, parameter: parameter, request, authenticator: authenticator, forwarding: forwarding, now: now,
                limits: limits
            )
        }
        let outcome = authenticator.authenticate(
            query: request.routed.query, headers: request.head.headers, now: now, allowKeyRefresh: allowKeyRefresh
        )
        switch outcome {
        case .authenticated(let authenticated):
            return admit(request, authenticated: authenticated, forwarding: forwarding, limits: limits)
        case .rejected(let failure):
            var headers = request.corsHeaders
            headers.add(name: "www-authenticate", value: failure.wwwAuthenticate)
            let answer = LocalAnswer(
                .error(failure.gatewayError), headers: headers,
                log: .rejected(route: route.name, reason: failure.reason.label)
            )
            return .answer(answer, refusal: .authFailure(failure.reason))
        case .needsKeyRefresh(let kid):
            return .refreshKeys(request, kid: kid)
        }
    }

    func admit<Limits: AdmissionLimits>(
        _ request: Routed,
        authenticated: AuthenticatedRequest?,
        streamTicket: StreamTicket? = nil,
        forwarding: ForwardingContext,
        limits: Limits
    ) -> Decision<Limits.Ticket> {
        var routed = request.routed
        var subjectLimit: SubjectStreamLimit?
        if let policy = routed.route.auth, let subject = authenticated?.identity.subject,
            let limit = configuration.authPolicies[policy]?.maxStreamsPerSubject
        {
            subjectLimit = SubjectStreamLimit(policy: policy, subject: subject, limit: limit)
        }
        let ticket: Limits.Ticket
        switch limits.admitStream(route: routed.route, subject: subjectLimit) {
        case .success(let admitted):
            ticket = admitted
        case .failure(let refused):
            return Self.reject(refused, headers: request.corsHeaders, route: routed.route.name, reason: "stream_limit")
        }
        var clientHeaders = request.head.headers
        if let authenticated {
            routed.query = authenticated.query
            clientHeaders = authenticated.headers
        }
        let headers = RequestHeaderRewriter.upstreamHeaders(
            from: clientHeaders, upstream: routed.route.upstream, context: forwarding
        )
        let upstreamHead = HTTPRequestHead(
            version: .http1_1, method: request.head.method, uri: routed.upstreamURI, headers: headers
        )
        let shared = Self.sharedRequest(
            route: routed.route, clientHead: request.head, upstreamHead: upstreamHead,
            identity: authenticated?.identity, policy: routed.route.auth.flatMap { configuration.authPolicies[$0] }
        )
        return .forward(
            Admitted(
                routed: routed, upstreamHead: upstreamHead, identity: authenticated?.identity,
                corsHeaders: request.corsHeaders, ticket: ticket, streamTicket: streamTicket, shared: shared
            )
        )
    }

    static func reject<Ticket>(
        _ error: GatewayError,
        headers: HTTPHeaders,
        route: String?,
        reason: String,
        refusal: Refusal? = nil
    ) -> Decision<Ticket> {
        .answer(LocalAnswer(.error(error), headers: headers, log: .rejected(route: route, reason: reason)), refusal: refusal)
    }

    /// The timers of an admitted exchange, from its route and its token. `exp` is wall-clock time (`wallClock`,
    /// seconds since 1970), turned into a deadline on the event loop's clock (`now`) once, here.
    public func plan(
        route: RouteConfiguration,
        method: HTTPMethod,
        identity: VerifiedIdentity?,
        now: NIODeadline,
        wallClock: Double
    ) -> ClientConnectionStateMachine.ExchangePlan {
        var tokenExpiry: NIODeadline?
        if let expiresAt = identity?.expiresAt, let policy = route.auth,
            configuration.authPolicies[policy]?.onExpiry == .close
        {
            tokenExpiry = now + .milliseconds(max(0, Int64((expiresAt - wallClock) * 1000)))
        }
        return .init(
            responseHeaderTimeout: route.timeouts.responseHeader.timeAmount,
            idleTimeout: route.timeouts.idle > .zero ? route.timeouts.idle.timeAmount : nil,
            heartbeat: route.heartbeat?.timeAmount,
            maxStreamDuration: route.maxStreamDuration?.timeAmount,
            tokenExpiry: tokenExpiry,
            isIdempotent: method == .GET || method == .HEAD
        )
    }
}

extension Duration {
    /// The same span as a NIO `TimeAmount`.
    public var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// The same span in seconds, for the unix-seconds clocks of auth and tickets.
    public var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
