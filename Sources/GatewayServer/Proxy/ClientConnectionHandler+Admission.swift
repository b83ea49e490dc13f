import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1

/// A request head on its way through admission: kept while a key refresh is in flight, and for the access-log line
/// of a request the gateway answers itself.
struct PendingAdmission {
    let head: HTTPRequestHead
    let runtime: GatewayRuntime
    let corsHeaders: HTTPHeaders
    var routed: RoutedRequest?
    /// The unknown key id a refresh looks for.
    var unknownKid: String?
}

extension ClientConnectionHandler {
    typealias Admission = ClientConnectionStateMachine.Admission

    /// Admission of a request head, before any upstream is touched: CORS preflight, the per-IP rate limit, routing,
    /// the token, and the stream limits. Ends in `admissionDecided`.
    func admit(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let runtime = runtimes.current
        let origin = head.headers.first(name: "origin")
        var pending = PendingAdmission(
            head: head, runtime: runtime, corsHeaders: runtime.cors?.responseHeaders(origin: origin) ?? [:]
        )
        admission = pending
        if head.method == .OPTIONS, let cors = runtime.cors, let origin,
            let requestMethod = head.headers.first(name: "access-control-request-method")
        {
            // A CORS preflight never carries credentials: answer it here, before routing and auth.
            let allowed = cors.preflightHeaders(origin: origin, requestMethod: requestMethod)
            decide(.answer(.init(.empty(.noContent), headers: allowed ?? pending.corsHeaders, log: .none)))
            return
        }
        if let refused = environment.admission.admitNewRequest(
            clientIP: context.channel.remoteAddress?.ipAddress,
            newStreamsPerSecond: runtime.configuration.limits.newStreamsPerSecondPerIP,
            now: Date().timeIntervalSince1970
        ) {
            decide(reject(refused, headers: pending.corsHeaders, route: nil, reason: "rate_limited"))
            return
        }
        do {
            pending.routed = try runtime.routeTable.route(uri: head.uri)
        } catch {
            decide(reject(error, headers: pending.corsHeaders, route: nil, reason: error.identifier))
            return
        }
        admission = pending
        authenticate(pending, allowKeyRefresh: true, context: context)
    }

    /// The token's key was unknown: refresh the policy's JWKS (off the event loop), then decide once more.
    func refreshKeys(context: ChannelHandlerContext) {
        guard let pending = admission, let routed = pending.routed, let kid = pending.unknownKid,
            let authenticator = pending.runtime.routeAuthenticators[routed.routeIndex]
        else {
            preconditionFailure("key refresh without a pending admission")
        }
        let fetcher = pending.runtime.jwksFetchers[authenticator.name]
        context.eventLoop.makeFutureWithTask { await fetcher?.refresh(forUnknownKid: kid) ?? false }
            .assumeIsolated()
            .whenComplete { [weak self] _ in
                guard let self, let context = self.context, context.channel.isActive, let pending = self.admission
                else { return }
                self.authenticate(pending, allowKeyRefresh: false, context: context)
            }
    }

    private func authenticate(_ pending: PendingAdmission, allowKeyRefresh: Bool, context: ChannelHandlerContext) {
        guard let routed = pending.routed else { preconditionFailure("authentication before routing") }
        guard let authenticator = pending.runtime.routeAuthenticators[routed.routeIndex] else {
            decide(forward(pending, routed: routed, authenticated: nil, context: context))
            return
        }
        let outcome = authenticator.authenticate(
            query: routed.query, headers: pending.head.headers, now: Date().timeIntervalSince1970,
            allowKeyRefresh: allowKeyRefresh
        )
        switch outcome {
        case .authenticated(let request):
            decide(forward(pending, routed: routed, authenticated: request, context: context))
        case .rejected(let failure):
            var headers = pending.corsHeaders
            headers.add(name: "www-authenticate", value: failure.wwwAuthenticate)
            environment.metrics.authFailure(route: routed.route.name, reason: failure.reason.label)
            decide(reject(failure.gatewayError, headers: headers, route: routed.route.name, reason: failure.reason.label))
        case .needsKeyRefresh(let kid):
            admission?.unknownKid = kid
            decide(.refreshKeys)
        }
    }

    private func decide(_ decision: Admission) {
        run(state.admissionDecided(decision, now: now))
    }

    private func reject(_ error: GatewayError, headers: HTTPHeaders, route: String?, reason: String) -> Admission {
        .answer(.init(.error(error), headers: headers, log: .rejected(route: route, reason: reason)))
    }

    /// Stream limits, then the upstream request (token removed, forward header and claim headers set) and the
    /// exchange that carries it.
    private func forward(
        _ pending: PendingAdmission,
        routed: RoutedRequest,
        authenticated: AuthenticatedRequest?,
        context: ChannelHandlerContext
    ) -> Admission {
        let runtime = pending.runtime
        var subjectLimit: (policy: String, subject: String, limit: Int)?
        if let policyName = routed.route.auth, let subject = authenticated?.identity.subject,
            let limit = runtime.configuration.authPolicies[policyName]?.maxStreamsPerSubject
        {
            subjectLimit = (policyName, subject, limit)
        }
        let ticket: StreamAdmission.Ticket
        switch environment.admission.admitStream(route: routed.route, subject: subjectLimit) {
        case .success(let admitted):
            ticket = admitted
        case .failure(let refused):
            return reject(refused, headers: pending.corsHeaders, route: routed.route.name, reason: "stream_limit")
        }
        var routed = routed
        var clientHeaders = pending.head.headers
        if let authenticated {
            routed.query = authenticated.query
            clientHeaders = authenticated.headers
        }
        let headers = RequestHeaderRewriter.upstreamHeaders(
            from: clientHeaders,
            upstream: routed.route.upstream,
            context: ForwardingContext(clientAddress: context.channel.remoteAddress?.ipAddress, clientScheme: clientScheme)
        )
        let exchange = ProxyExchange(
            runtime: runtime,
            routed: routed,
            clientHead: pending.head,
            upstreamHead: HTTPRequestHead(
                version: .http1_1, method: pending.head.method, uri: routed.upstreamURI, headers: headers
            ),
            metrics: environment.metrics.route(routed.route.name),
            startedAt: now
        )
        exchange.identity = authenticated?.identity
        exchange.corsHeaders = pending.corsHeaders
        exchange.admissionTicket = ticket
        self.exchange = exchange
        admission = nil
        return .forward(plan(for: exchange))
    }

    /// The timers of an exchange, from its route and its token.
    private func plan(for exchange: ProxyExchange) -> ClientConnectionStateMachine.ExchangePlan {
        let route = exchange.route
        var tokenExpiry: NIODeadline?
        if let expiresAt = exchange.identity?.expiresAt, let policyName = route.auth,
            exchange.runtime.configuration.authPolicies[policyName]?.onExpiry == .close
        {
            // `exp` is wall-clock time: turned into a deadline on the loop's clock once, here.
            let remaining = max(0, Int64((expiresAt - Date().timeIntervalSince1970) * 1000))
            tokenExpiry = now + .milliseconds(remaining)
        }
        return .init(
            responseHeaderTimeout: route.timeouts.responseHeader.timeAmount,
            idleTimeout: route.timeouts.idle > .zero ? route.timeouts.idle.timeAmount : nil,
            heartbeat: route.heartbeat?.timeAmount,
            maxStreamDuration: route.maxStreamDuration?.timeAmount,
            tokenExpiry: tokenExpiry,
            isIdempotent: exchange.clientHead.method == .GET || exchange.clientHead.method == .HEAD
        )
    }
}
