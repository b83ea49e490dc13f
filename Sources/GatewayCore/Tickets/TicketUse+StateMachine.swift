/// The redemption rules of one stream ticket, as a state machine: `unused` → `live` (one connection) → `closed(at)` →
/// `live` again only within `reconnect_grace` of the close, at most `max_resumes` times, and only while the token is
/// valid. A ticket's `ttl` bounds its first use only: `EventSource` reconnects to the same URL for as long as the
/// stream runs, so a resume is bounded by the grace and the token instead.
public struct TicketUse: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case unused
        /// A connection holds the ticket.
        case live
        /// The last connection closed at this time (unix seconds).
        case closed(at: Double)
    }

    /// The rules a ticket was minted under (its policy's `tickets:`).
    public struct Rules: Sendable, Equatable {
        /// Seconds after a close within which the ticket may reconnect; 0: strictly single use.
        public var reconnectGrace: Double
        public var maxResumes: Int

        public init(reconnectGrace: Double, maxResumes: Int) {
            self.reconnectGrace = reconnectGrace
            self.maxResumes = maxResumes
        }
    }

    /// Why a redemption was refused.
    public enum Refusal: String, Sendable, Equatable {
        /// Past its first-use deadline, its reconnect grace, or its token's `exp`.
        case expired
        /// Live on another connection, single use and used, or out of resumes.
        case reused
    }

    public private(set) var state: State = .unused
    public private(set) var resumes = 0
    public let rules: Rules
    /// Deadline of the first use (mint time + `ttl`).
    public let firstUseDeadline: Double
    /// The token's `exp`; `nil` for tokens that do not expire (API keys).
    public let tokenExpiresAt: Double?

    public init(rules: Rules, firstUseDeadline: Double, tokenExpiresAt: Double?) {
        self.rules = rules
        self.firstUseDeadline = firstUseDeadline
        self.tokenExpiresAt = tokenExpiresAt
    }

    /// A connection presents the ticket: `nil` admits it (the ticket is now live), else why not.
    public mutating func redeem(now: Double) -> Refusal? {
        if let tokenExpiresAt, now >= tokenExpiresAt { return .expired }
        switch state {
        case .unused:
            guard now < firstUseDeadline else { return .expired }
        case .live:
            return .reused
        case .closed(let closedAt):
            guard rules.reconnectGrace > 0, resumes < rules.maxResumes else { return .reused }
            guard now < closedAt + rules.reconnectGrace else { return .expired }
            resumes += 1
        }
        state = .live
        return nil
    }

    /// The connection that held the ticket ended.
    public mutating func close(now: Double) {
        guard state == .live else { preconditionFailure("ticket closed in state \(state)") }
        state = .closed(at: now)
    }

    /// Until when the ticket can still be redeemed; `nil` while live (it cannot be forgotten), `-infinity` once no
    /// redemption can ever succeed again. A store may forget the ticket after this time.
    public var redeemableUntil: Double? {
        let deadline: Double
        switch state {
        case .unused:
            deadline = firstUseDeadline
        case .live:
            return nil
        case .closed(let closedAt):
            guard rules.reconnectGrace > 0, resumes < rules.maxResumes else { return -.infinity }
            deadline = closedAt + rules.reconnectGrace
        }
        return min(deadline, tokenExpiresAt ?? .infinity)
    }
}
