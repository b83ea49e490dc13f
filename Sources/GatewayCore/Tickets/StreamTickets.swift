import Crypto
import Foundation

/// Mints and redeems stream tickets for every policy with `tickets:`, over one `TicketStore`.
///
/// Pure apart from the store: time is passed in (unix seconds) and the random source is injected, so every rule is
/// tested without sleeping.
public final class StreamTickets: Sendable {
    public let store: any TicketStore
    private let randomBytes: @Sendable () -> [UInt8]

    /// - Parameter randomBytes: 32 bytes from a cryptographically secure generator (the system's by default).
    public init(
        store: any TicketStore = InMemoryTicketStore(),
        randomBytes: @escaping @Sendable () -> [UInt8] = StreamTickets.systemRandomBytes
    ) {
        self.store = store
        self.randomBytes = randomBytes
    }

    /// 32 bytes from `SystemRandomNumberGenerator` (the kernel's CSPRNG).
    @Sendable public static func systemRandomBytes() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// A minted ticket and how the page uses it.
    public struct Minted: Sendable, Equatable {
        public var ticket: StreamTicket
        /// Whole seconds until the first use must have happened.
        public var expiresIn: Int
        /// The URL asked for, with the ticket parameter appended.
        public var url: String
    }

    /// What a ticket is bound to: the route and the request target as it goes upstream, without the ticket.
    public struct Binding: Sendable, Equatable {
        public var route: String
        public var target: String

        /// `routed`'s upstream path and its query without `parameter` (empty query: no `?`).
        public init(_ routed: RoutedRequest, parameter: String) {
            route = routed.route.name
            target = routed.upstreamPath
            if let query = routed.query,
                let rest = QueryTokenParameters.removing(names: [parameter], from: Substring(query))
            {
                target += "?" + rest
            }
        }
    }

    /// Mints a ticket for `url` (already routed to `binding`) for a verified token. Owners are the policy and the
    /// token's subject; a token without `sub` is its own owner (by digest, never in clear).
    public func mint(
        policy: String,
        configuration: TicketConfiguration,
        url: String,
        binding: Binding,
        identity: VerifiedIdentity,
        token: String,
        now: Double
    ) -> Result<Minted, GatewayError> {
        var lifetime = configuration.ttl.inSeconds
        if let expiresAt = identity.expiresAt { lifetime = min(lifetime, expiresAt - now) }
        guard lifetime > 0 else { return .failure(.invalidToken("the token has expired")) }
        let ticket = StreamTicket(randomBytes: randomBytes())
        let grant = TicketGrant(
            route: binding.route,
            target: binding.target,
            identity: identity,
            token: token
        )
        let rules = TicketUse.Rules(
            reconnectGrace: configuration.reconnectGrace.inSeconds,
            maxResumes: configuration.maxResumes
        )
        let use = TicketUse(
            rules: rules,
            firstUseDeadline: now + lifetime,
            tokenExpiresAt: identity.expiresAt
        )
        let owner =
            policy + "\u{0}"
            + (identity.subject ?? "#"
                + SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined())
        let limits = MintLimits(
            maxOutstanding: configuration.maxOutstandingPerSubject,
            mintsPerMinute: configuration.mintsPerMinutePerSubject
        )
        switch store.insert(
            StoredTicket(sealed: ticket.seal(grant), owner: owner, use: use),
            under: ticket.digest,
            limits: limits,
            now: now
        )
        {
        case .stored:
            let separator = url.contains("?") ? "&" : "?"
            return .success(
                Minted(
                    ticket: ticket,
                    expiresIn: Int(lifetime.rounded(.down)),
                    url: url + separator + configuration.parameter + "=" + ticket.text
                )
            )
        case .tooManyOutstanding:
            return .failure(
                .tooManyRequests("too many outstanding tickets for this subject", retryAfterSeconds: 1)
            )
        case .rateLimited(let seconds):
            return .failure(
                .tooManyRequests("too many tickets minted for this subject", retryAfterSeconds: seconds)
            )
        }
    }

    /// Redeems `text` for a request bound to `binding`; on `.ok` the ticket is live until `release`.
    public func redeem(_ text: String, binding: Binding, now: Double) -> TicketRedemption {
        guard let ticket = StreamTicket(parsing: text) else { return .unknown }
        return store.redeem(ticket, now: now) {
            $0.route == binding.route && $0.target == binding.target
        }
    }

    /// The connection that redeemed `ticket` ended.
    public func release(_ ticket: StreamTicket, now: Double) {
        store.release(ticket.digest, now: now)
    }
}
