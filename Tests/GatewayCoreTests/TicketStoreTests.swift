import NIOConcurrencyHelpers
import XCTest

@testable import GatewayCore

/// Mint and redemption over the in-memory store: limits, binding, the use rules end to end, and purging.
final class TicketStoreTests: XCTestCase {
    private static let identity = VerifiedIdentity(
        method: .jwt,
        subject: "alice",
        expiresAt: 10_000,
        claimHeaders: [ClaimHeader(name: "X-User-Id", value: "alice")]
    )
    private static let route = RouteConfiguration(
        name: "events",
        pathPrefix: "/events/",
        upstream: UpstreamURL(scheme: .http, host: "127.0.0.1", port: 9000),
        auth: "users"
    )

    /// A well-formed ticket never minted: redeeming it runs the store's purge.
    private static let stranger = StreamTicket(randomBytes: Array(repeating: 200, count: 32)).text

    /// Counts up from 1: ticket n is 32 bytes of n.
    private static func counter() -> @Sendable () -> [UInt8] {
        let next = NIOLockedValueBox(UInt8(0))
        return {
            next.withLockedValue { value in
                value &+= 1
                return Array(repeating: value, count: 32)
            }
        }
    }

    private func binding(
        _ uri: String,
        parameter: String = "sse_ticket"
    ) throws
        -> StreamTickets.Binding
    {
        StreamTickets.Binding(
            try RouteTable(routes: [Self.route]).route(uri: uri),
            parameter: parameter
        )
    }

    private func mint(
        _ tickets: StreamTickets,
        _ configuration: TicketConfiguration = .init(),
        url: String = "/events/orders?x=1",
        identity: VerifiedIdentity = identity,
        now: Double = 1_000
    ) throws -> Result<StreamTickets.Minted, GatewayError> {
        tickets.mint(
            policy: "users",
            configuration: configuration,
            url: url,
            binding: try binding(url),
            identity: identity,
            token: "the-token",
            now: now
        )
    }

    private func issued(
        _ result: Result<StreamTickets.Minted, GatewayError>
    ) throws
        -> StreamTickets.Minted
    {
        try result.get()
    }

    // MARK: Mint

    func testMintAnswersTheTicketItsLifeAndTheURLToOpen() throws {
        let tickets = StreamTickets(randomBytes: Self.counter())
        let minted = try issued(try mint(tickets))
        XCTAssertEqual(minted.ticket, StreamTicket(randomBytes: Array(repeating: 1, count: 32)))
        XCTAssertEqual(minted.expiresIn, 30)
        XCTAssertEqual(minted.url, "/events/orders?x=1&sse_ticket=" + minted.ticket.text)
        let bare = try issued(try mint(tickets, url: "/events/orders"))
        XCTAssertEqual(bare.url, "/events/orders?sse_ticket=" + bare.ticket.text)
    }

    func testATicketNeverOutlivesItsToken() throws {
        let tickets = StreamTickets(randomBytes: Self.counter())
        var identity = Self.identity
        identity.expiresAt = 1_012.5
        XCTAssertEqual(try issued(try mint(tickets, identity: identity)).expiresIn, 12)
        identity.expiresAt = 1_000
        XCTAssertEqual(try mint(tickets, identity: identity).failure?.identifier, "invalid_token")
    }

    func testOutstandingTicketsPerSubjectAreLimited() throws {
        let tickets = StreamTickets(randomBytes: Self.counter())
        let configuration = TicketConfiguration(maxOutstandingPerSubject: 2)
        _ = try issued(try mint(tickets, configuration))
        _ = try issued(try mint(tickets, configuration))
        XCTAssertEqual(try mint(tickets, configuration).failure?.status, .tooManyRequests)
        var bob = Self.identity
        bob.subject = "bob"
        XCTAssertNoThrow(
            try issued(try mint(tickets, configuration, identity: bob)),
            "another subject has its own"
        )
        // Once the first two can no longer be redeemed, they stop counting.
        XCTAssertNoThrow(try issued(try mint(tickets, configuration, now: 1_031)))
    }

    func testMintRatePerSubjectAllowsABurstThenTheRate() throws {
        let tickets = StreamTickets(randomBytes: Self.counter())
        let configuration = TicketConfiguration(
            maxOutstandingPerSubject: 100,
            mintsPerMinutePerSubject: 6
        )
        for _ in 0..<TicketConfiguration.mintBurst { _ = try issued(try mint(tickets, configuration)) }
        let refused = try mint(tickets, configuration).failure
        XCTAssertEqual(refused?.status, .tooManyRequests)
        XCTAssertEqual(refused?.retryAfterSeconds, 10)
        XCTAssertNoThrow(try issued(try mint(tickets, configuration, now: 1_010)))
    }

    func testTokensWithoutSubjectAreLimitedPerToken() throws {
        let store = InMemoryTicketStore()
        let tickets = StreamTickets(store: store, randomBytes: Self.counter())
        var anonymous = Self.identity
        anonymous.subject = nil
        _ = try issued(try mint(tickets, identity: anonymous))
        XCTAssertEqual(store.outstanding(owner: "users\u{0}alice"), 0)
        XCTAssertEqual(store.count, 1)
    }

    // MARK: Redeem

    func testRedeemGivesBackTheGrantOnce() throws {
        let tickets = StreamTickets(randomBytes: Self.counter())
        let minted = try issued(try mint(tickets))
        let binding = try binding(minted.url)
        XCTAssertEqual(
            binding.target,
            "/events/orders?x=1",
            "the ticket parameter is not part of the binding"
        )
        guard case .ok(let grant) = tickets.redeem(minted.ticket.text, binding: binding, now: 1_001)
        else {
            return XCTFail("not redeemed")
        }
        XCTAssertEqual(grant.token, "the-token")
        XCTAssertEqual(grant.identity, Self.identity)
        XCTAssertEqual(tickets.redeem(minted.ticket.text, binding: binding, now: 1_002), .reused)
    }

    func testReplayWithinTheGraceAfterRelease() throws {
        let tickets = StreamTickets(randomBytes: Self.counter())
        let minted = try issued(try mint(tickets))
        let binding = try binding(minted.url)
        XCTAssertEqual(tickets.redeem(minted.ticket.text, binding: binding, now: 1_001).result, .ok)
        tickets.release(minted.ticket, now: 1_100)
        XCTAssertEqual(tickets.redeem(minted.ticket.text, binding: binding, now: 1_129).result, .ok)
        tickets.release(minted.ticket, now: 1_200)
        XCTAssertEqual(tickets.redeem(minted.ticket.text, binding: binding, now: 1_231), .expired)
    }

    func testStrictSingleUseWithZeroGrace() throws {
        let tickets = StreamTickets(randomBytes: Self.counter())
        let minted = try issued(try mint(tickets, TicketConfiguration(reconnectGrace: .zero)))
        let binding = try binding(minted.url)
        XCTAssertEqual(tickets.redeem(minted.ticket.text, binding: binding, now: 1_001).result, .ok)
        tickets.release(minted.ticket, now: 1_002)
        XCTAssertEqual(tickets.redeem(minted.ticket.text, binding: binding, now: 1_002), .reused)
    }

    func testBindingMismatchLeavesTheTicketUnused() throws {
        let tickets = StreamTickets(randomBytes: Self.counter())
        let minted = try issued(try mint(tickets))
        for other in [
            "/events/orders?x=2", "/events/orders", "/events/other?x=1", "/events/orders?x=1&y=2",
        ] {
            XCTAssertEqual(
                tickets.redeem(minted.ticket.text, binding: try binding(other), now: 1_001),
                .bindingMismatch
            )
        }
        XCTAssertEqual(
            tickets.redeem(minted.ticket.text, binding: try binding(minted.url), now: 1_001).result,
            .ok
        )
    }

    func testPathNormalisationIsPartOfTheBinding() throws {
        let tickets = StreamTickets(randomBytes: Self.counter())
        let minted = try issued(try mint(tickets, url: "/events/./orders"))
        let redeemURL = "/events/orders?sse_ticket=" + minted.ticket.text
        XCTAssertEqual(
            tickets.redeem(minted.ticket.text, binding: try binding(redeemURL), now: 1_001).result,
            .ok
        )
    }

    func testUnknownTickets() throws {
        let tickets = StreamTickets(randomBytes: Self.counter())
        let minted = try issued(try mint(tickets))
        let binding = try binding(minted.url)
        let never = StreamTicket(randomBytes: Array(repeating: 99, count: 32)).text
        for text in ["", "garbage", never, minted.ticket.text.uppercased()] {
            XCTAssertEqual(tickets.redeem(text, binding: binding, now: 1_001), .unknown, text)
        }
    }

    func testExpiredFirstUse() throws {
        let tickets = StreamTickets(randomBytes: Self.counter())
        let minted = try issued(try mint(tickets))
        XCTAssertEqual(
            tickets.redeem(minted.ticket.text, binding: try binding(minted.url), now: 1_030),
            .expired
        )
    }

    // MARK: Purging

    func testExpiredTicketsStopCountingThenAreForgotten() throws {
        let store = InMemoryTicketStore(retention: 60)
        let tickets = StreamTickets(store: store, randomBytes: Self.counter())
        let minted = try issued(try mint(tickets))
        let owner = "users\u{0}alice"
        XCTAssertEqual(store.outstanding(owner: owner), 1)
        let binding = try binding(minted.url)
        XCTAssertEqual(tickets.redeem(minted.ticket.text, binding: binding, now: 1_031), .expired)
        XCTAssertEqual(store.outstanding(owner: owner), 0)
        XCTAssertEqual(store.count, 1, "kept for the retention, so a late use is told expired")
        XCTAssertEqual(tickets.redeem(minted.ticket.text, binding: binding, now: 1_092), .unknown)
        XCTAssertEqual(store.count, 0)
    }

    func testALiveTicketIsNeverPurged() throws {
        let store = InMemoryTicketStore(retention: 1)
        let tickets = StreamTickets(store: store, randomBytes: Self.counter())
        let minted = try issued(try mint(tickets))
        let binding = try binding(minted.url)
        XCTAssertEqual(tickets.redeem(minted.ticket.text, binding: binding, now: 1_001).result, .ok)
        for second in stride(from: 1_040.0, to: 1_200, by: 10) {
            _ = tickets.redeem(Self.stranger, binding: binding, now: second)
        }
        XCTAssertEqual(store.count, 1)
        tickets.release(minted.ticket, now: 1_200)
        XCTAssertEqual(tickets.redeem(minted.ticket.text, binding: binding, now: 1_210).result, .ok)
    }

    func testEachOperationPurgesAFewNeverAll() throws {
        let store = InMemoryTicketStore(retention: 0)
        let tickets = StreamTickets(store: store, randomBytes: Self.counter())
        let configuration = TicketConfiguration(
            maxOutstandingPerSubject: 100,
            mintsPerMinutePerSubject: 1_000
        )
        for _ in 0..<10 { _ = try issued(try mint(tickets, configuration)) }
        let binding = try binding("/events/orders?x=1")
        _ = tickets.redeem(Self.stranger, binding: binding, now: 2_000)
        XCTAssertEqual(store.count, 10, "4 retired, none forgotten yet")
        XCTAssertEqual(store.outstanding(owner: "users\u{0}alice"), 10 - InMemoryTicketStore.purgeBatch)
        for second in 1...6 {
            _ = tickets.redeem(Self.stranger, binding: binding, now: 2_000 + Double(second))
        }
        XCTAssertEqual(store.count, 0)
    }

    func testTheDeadlineHeapPopsInOrder() {
        var heap = MinHeap<TicketDeadline>()
        let digest = TicketDigest(bytes: [])
        for deadline in [5.0, 1, 9, 3, 7, 2, 8] { heap.push(TicketDeadline(key: deadline, digest: digest)) }
        var popped: [Double] = []
        while let due = heap.popFirst(if: { $0.key < 8 }) { popped.append(due.key) }
        XCTAssertEqual(popped, [1, 2, 3, 5, 7])
        XCTAssertEqual(heap.count, 2)
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
