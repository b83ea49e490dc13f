import Foundation

/// A ticket as a store holds it: sealed, filed under its digest, with the state of its redemptions.
public struct StoredTicket: Sendable, Equatable {
    /// The `TicketGrant`, sealed under the ticket (`StreamTicket.seal`).
    public var sealed: [UInt8]
    /// Whose ticket it is, for `max_outstanding_per_subject` and the mint rate (policy and subject, never the token).
    public var owner: String
    public var use: TicketUse
    /// Counted in the owner's outstanding tickets (until its deadline passes).
    var counted = true

    public init(sealed: [UInt8], owner: String, use: TicketUse) {
        self.sealed = sealed
        self.owner = owner
        self.use = use
    }
}

/// A policy's limits on minting, per owner.
public struct MintLimits: Sendable, Equatable {
    public var maxOutstanding: Int
    public var mintsPerMinute: Int

    public init(maxOutstanding: Int, mintsPerMinute: Int) {
        self.maxOutstanding = maxOutstanding
        self.mintsPerMinute = mintsPerMinute
    }
}

/// The answer of `TicketStore.insert`.
public enum TicketInsertion: Sendable, Equatable {
    case stored
    /// The owner holds `max_outstanding_per_subject` tickets that can still be redeemed.
    case tooManyOutstanding
    /// The owner's mint rate is used up.
    case rateLimited(retryAfterSeconds: Int)
}

/// The answer of a redemption; its `result` labels `sse_gateway_tickets_redeemed_total`.
public enum TicketRedemption: Sendable, Equatable {
    /// The ticket is now live on this connection; release it when the connection ends.
    case ok(TicketGrant)
    case expired
    /// Not a ticket, never minted, already forgotten, or sealed under something else.
    case unknown
    case reused
    /// Minted for another route, path or query; the ticket is left as it was.
    case bindingMismatch

    public enum Result: String, Sendable, CaseIterable {
        case ok, expired, unknown, reused
        case bindingMismatch = "binding_mismatch"
    }

    public var result: Result {
        switch self {
        case .ok: .ok
        case .expired: .expired
        case .unknown: .unknown
        case .reused: .reused
        case .bindingMismatch: .bindingMismatch
        }
    }
}

/// Where tickets live between mint and their last redemption. In memory by default; a store shared by several
/// gateway replicas implements the same three atomic operations.
public protocol TicketStore: Sendable {
    /// Files a new ticket, unless its owner is at a limit.
    func insert(
        _ ticket: StoredTicket,
        under digest: TicketDigest,
        limits: MintLimits,
        now: Double
    )
        -> TicketInsertion
    /// Atomically: finds the ticket, opens its grant, checks it against `binding`, and applies `TicketUse.redeem`.
    func redeem(
        _ ticket: StreamTicket,
        now: Double,
        binding: (TicketGrant) -> Bool
    )
        -> TicketRedemption
    /// The connection holding a redeemed ticket ended (its reconnect grace starts).
    func release(_ digest: TicketDigest, now: Double)
}

/// The default `TicketStore`: one lock-protected table. Tickets that can no longer be redeemed are retired a few at
/// a time on each operation, in order of their deadlines (a min-heap), never by a scan.
public final class InMemoryTicketStore: TicketStore, @unchecked Sendable {
    private struct State {
        var tickets: [TicketDigest: StoredTicket] = [:]
        var outstanding: [String: Int] = [:]
        var mintBuckets: [String: TokenBucket] = [:]
        var deadlines = MinHeap<TicketDeadline>()
    }

    /// How many expired tickets one operation forgets at most (each operation adds at most one deadline).
    static let purgeBatch = 4
    private let lock = NSLock()
    private var state = State()
    /// Seconds a ticket is kept after it can no longer be redeemed.
    let retention: Double

    public init(retention: Double = 60) {
        self.retention = retention
    }

    /// Tickets held (live, redeemable, or retired and not yet forgotten).
    public var count: Int { lock.withLock { state.tickets.count } }

    /// Tickets of `owner` that count towards `max_outstanding_per_subject`.
    public func outstanding(owner: String) -> Int {
        lock.withLock { state.outstanding[owner, default: 0] }
    }

    public func insert(
        _ ticket: StoredTicket,
        under digest: TicketDigest,
        limits: MintLimits,
        now: Double
    ) -> TicketInsertion {
        lock.withLock {
            purge(now: now)
            if state.outstanding[ticket.owner, default: 0] >= limits.maxOutstanding {
                return .tooManyOutstanding
            }
            let rate = Double(limits.mintsPerMinute) / 60
            var bucket =
                state.mintBuckets[ticket.owner]
                ?? TokenBucket(
                    ratePerSecond: rate,
                    capacity: Double(TicketConfiguration.mintBurst),
                    now: now
                )
            guard bucket.take(now: now) else {
                state.mintBuckets[ticket.owner] = bucket
                return .rateLimited(retryAfterSeconds: bucket.secondsUntilNextToken(now: now))
            }
            state.mintBuckets[ticket.owner] = bucket
            state.tickets[digest] = ticket
            state.outstanding[ticket.owner, default: 0] += 1
            if let deadline = ticket.use.redeemableUntil {
                state.deadlines.push(TicketDeadline(key: deadline, digest: digest))
            }
            return .stored
        }
    }

    public func redeem(
        _ ticket: StreamTicket,
        now: Double,
        binding: (TicketGrant) -> Bool
    )
        -> TicketRedemption
    {
        let digest = ticket.digest
        return lock.withLock {
            purge(now: now)
            guard var stored = state.tickets[digest], let grant = ticket.open(stored.sealed) else {
                return .unknown
            }
            guard binding(grant) else { return .bindingMismatch }
            if let refusal = stored.use.redeem(now: now) {
                return refusal == .expired ? .expired : .reused
            }
            state.tickets[digest] = stored
            return .ok(grant)
        }
    }

    public func release(_ digest: TicketDigest, now: Double) {
        lock.withLock {
            guard var stored = state.tickets[digest] else {
                preconditionFailure("released a ticket the store forgot")
            }
            stored.use.close(now: now)
            state.tickets[digest] = stored
            if let deadline = stored.use.redeemableUntil {
                state.deadlines.push(TicketDeadline(key: deadline, digest: digest))
            }
            purge(now: now)
        }
    }

    /// Retires up to `purgeBatch` tickets whose deadline has passed, in two steps: at its deadline a ticket stops
    /// counting towards its owner's outstanding tickets, `retention` later it is forgotten (until then, a late
    /// redemption is told `expired` or `reused` rather than `unknown`). A heap entry is stale when its ticket went
    /// live or got a later deadline since (a close pushes the new one): it is dropped, the ticket kept.
    private func purge(now: Double) {
        var popped = 0
        while popped < Self.purgeBatch, let due = state.deadlines.popFirst(if: { $0.key < now }) {
            popped += 1
            let digest = due.digest
            guard var stored = state.tickets[digest], let current = stored.use.redeemableUntil,
                current <= due.key
            else { continue }
            guard stored.counted else {
                state.tickets[digest] = nil
                continue
            }
            stored.counted = false
            state.tickets[digest] = stored
            state.deadlines.push(TicketDeadline(key: max(current, now) + retention, digest: digest))
            state.outstanding[stored.owner, default: 1] -= 1
            if state.outstanding[stored.owner] == 0 {
                state.outstanding[stored.owner] = nil
                if state.mintBuckets[stored.owner]?.isFull(now: now) == true {
                    state.mintBuckets[stored.owner] = nil
                }
            }
        }
    }
}

/// A ticket's deadline in the store's heap (a ticket may have stale ones in it too; `purge` drops them).
struct TicketDeadline: MinHeapEntry {
    let key: Double
    let digest: TicketDigest

    func placed(at index: Int) {}
}
