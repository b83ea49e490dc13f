import Foundation
import NIOCore
import NIOHTTP1

/// Stream tickets in admission: a `POST` to a policy's `tickets.path` mints one (its body names the stream), and a
/// request with the policy's ticket parameter redeems one instead of carrying a token.
extension RequestAdmission {
    /// A mint request waiting for its body.
    public struct MintRequest: Sendable {
        public var head: HTTPRequestHead
        /// The policy whose `tickets.path` was asked.
        public var policy: String
        public var corsHeaders: HTTPHeaders
    }

    /// The largest mint body read: `{"url": ...}` with a URL of a few kilobytes.
    public static let maxMintBodyBytes = 8 * 1024

    /// A request to a tickets path: a `POST` has its body read; any other method is refused (preflights were
    /// answered before).
    func mintRequest<Ticket>(
        _ head: HTTPRequestHead,
        policy: String,
        corsHeaders: HTTPHeaders
    )
        -> Decision<Ticket>
    {
        guard head.method == .POST else {
            var headers = corsHeaders
            headers.add(name: "allow", value: "POST")
            return Self.reject(
                .methodNotAllowed("tickets are minted with POST"),
                headers: headers,
                route: nil,
                reason: "ticket_method"
            )
        }
        return .readBody(
            MintRequest(head: head, policy: policy, corsHeaders: corsHeaders),
            limit: Self.maxMintBodyBytes
        )
    }

    private struct MintBody: Decodable {
        var url: String
    }

    /// Mints a ticket for the stream the body names: the URL must route to a route of this policy, the token (from
    /// the policy's headers or cookies, never a query) must be valid for it; a cookie-authenticated mint must come
    /// from an allowed `Origin` with a JSON content type (a cross-site form can send neither). Ends in `.minted` or
    /// `.answer` — or in `.refreshKeys` when the token names a key the gateway does not hold yet (then mint once more
    /// with `allowKeyRefresh: false`, as a direct token is checked again after the refresh).
    public func mint<Ticket>(
        _ request: MintRequest,
        body: ByteBuffer,
        now: Double,
        allowKeyRefresh: Bool = true
    ) -> Decision<
        Ticket
    > {
        let headers = request.corsHeaders
        func refuse(_ error: GatewayError, route: String?, reason: String) -> Decision<Ticket> {
            Self.reject(error, headers: headers, route: route, reason: reason)
        }
        guard let configuration = configuration.authPolicies[request.policy]?.tickets else {
            preconditionFailure("tickets path of policy \(request.policy) without tickets")
        }
        guard
            let url = try? JSONDecoder().decode(MintBody.self, from: Data(body.readableBytesView)).url,
            url.hasPrefix("/"), !url.hasPrefix("//")
        else {
            return refuse(
                .badRequest("expected a JSON body {\"url\": \"/path?query\"}"),
                route: nil,
                reason: "ticket_body"
            )
        }
        let routed: RoutedRequest
        do {
            routed = try routeTable.route(uri: url)
        } catch {
            return refuse(error, route: nil, reason: error.identifier)
        }
        let route = routed.route.name
        guard routed.route.auth == request.policy, let authenticator = authenticators[routed.routeIndex]
        else {
            return refuse(
                .forbidden("route \(route) does not take tickets of policy \(request.policy)"),
                route: route,
                reason: "ticket_policy"
            )
        }
        if let query = routed.query,
            QueryTokenParameters.containsParameter(
                namedAnyOf: [configuration.parameter],
                in: Substring(query),
                withValue: false
            )
        {
            return refuse(
                .badRequest("the URL already carries \(configuration.parameter)"),
                route: route,
                reason: "ticket_body"
            )
        }
        let authenticated: AuthenticatedRequest
        switch authenticator.authenticate(
            query: Substring?.none,
            headers: request.head.headers,
            now: now,
            allowKeyRefresh: allowKeyRefresh
        ) {
        case .authenticated(let value):
            authenticated = value
        case .rejected(let failure):
            var headers = headers
            headers.add(name: "www-authenticate", value: failure.wwwAuthenticate)
            let answer = LocalAnswer(
                .error(failure.gatewayError),
                headers: headers,
                log: .rejected(route: route, reason: failure.reason.label)
            )
            return .answer(answer, refusal: .authFailure(failure.reason))
        case .needsKeyRefresh(let kid):
            return .refreshKeys(Routed(head: request.head, routed: routed, corsHeaders: headers), kid: kid)
        }
        if case .cookie = authenticated.source, let problem = crossSiteProblem(request.head.headers) {
            return refuse(problem, route: route, reason: "ticket_csrf")
        }
        let minted = tickets.mint(
            policy: request.policy,
            configuration: configuration,
            url: url,
            binding: StreamTickets.Binding(routed, parameter: configuration.parameter),
            identity: authenticated.identity,
            token: authenticated.token,
            now: now
        )
        switch minted {
        case .success(let minted):
            let json =
                "{\"ticket\":\"\(minted.ticket.text)\",\"expires_in\":\(minted.expiresIn),"
                + "\"url\":\"\(JSONString.escape(minted.url))\"}"
            let log = LocalAnswer.Log.ticketMinted(route: route, subject: authenticated.identity.subject)
            return .minted(LocalAnswer(.json(.created, json), headers: headers, log: log))
        case .failure(let error):
            return refuse(error, route: route, reason: "ticket_limit")
        }
    }

    /// Why a cookie-authenticated mint may be a cross-site forgery: no allowed `Origin`, or not a JSON body.
    private func crossSiteProblem(_ headers: HTTPHeaders) -> GatewayError? {
        guard let origin = headers.first(name: "origin"), let cors, cors.allows(origin: origin) else {
            return .forbiddenOrigin("a cookie-authenticated mint needs an Origin in cors.allowed_origins")
        }
        let contentType = headers.first(name: "content-type")?.lowercased() ?? ""
        guard contentType.hasPrefix("application/json") else {
            return .forbidden("a cookie-authenticated mint needs Content-Type: application/json")
        }
        return nil
    }

    /// Redeems the ticket a request carries in place of a token: the upstream gets the ticket's token and claim
    /// headers exactly as with the token itself. A refused ticket is a 401; a redeemed one that a stream limit then
    /// refuses is released at once.
    func redeem<Limits: AdmissionLimits>(
        _ text: String,
        parameter: String,
        _ request: Routed,
        authenticator: RouteAuthenticator,
        forwarding: ForwardingContext,
        now: Double,
        limits: Limits
    ) -> Decision<Limits.Ticket> {
        let redemption = tickets.redeem(
            text,
            binding: StreamTickets.Binding(request.routed, parameter: parameter),
            now: now
        )
        guard case .ok(let grant) = redemption, let ticket = StreamTicket(parsing: text) else {
            var headers = request.corsHeaders
            headers.add(name: "www-authenticate", value: "Bearer error=\"invalid_token\"")
            let result = redemption.result
            let answer = LocalAnswer(
                .error(.invalidToken("stream ticket refused: \(result.rawValue)")),
                headers: headers,
                log: .rejected(route: request.routed.route.name, reason: "ticket_\(result.rawValue)")
            )
            return .answer(answer, refusal: .ticket(result))
        }
        let authenticated = authenticator.authenticated(
            byTicket: grant,
            query: request.routed.query.map { Substring($0) },
            headers: request.head.headers,
            ticketParameter: parameter
        )
        let decision = admit(
            request,
            authenticated: authenticated,
            streamTicket: ticket,
            forwarding: forwarding,
            limits: limits
        )
        if case .answer = decision { tickets.release(ticket, now: now) }
        return decision
    }
}
