import XCTest

@testable import GatewayCore

/// The redemption rules of one ticket (`TicketUse`): every transition, with time passed in.
final class TicketUseTests: XCTestCase {
    private func use(
        grace: Double = 30,
        maxResumes: Int = 3,
        firstUseDeadline: Double = 130,
        tokenExpiresAt: Double? = 1_000
    ) -> TicketUse {
        TicketUse(
            rules: .init(reconnectGrace: grace, maxResumes: maxResumes),
            firstUseDeadline: firstUseDeadline,
            tokenExpiresAt: tokenExpiresAt
        )
    }

    func testFirstUseBeforeTheDeadlineGoesLive() {
        var ticket = use()
        XCTAssertNil(ticket.redeem(now: 100))
        XCTAssertEqual(ticket.state, .live)
        XCTAssertNil(ticket.redeemableUntil, "a live ticket is never forgotten")
    }

    func testFirstUseAtOrAfterTheDeadlineIsExpired() {
        var ticket = use()
        XCTAssertEqual(ticket.redeem(now: 130), .expired)
        XCTAssertEqual(ticket.state, .unused)
    }

    func testASecondConnectionWhileLiveIsReused() {
        var ticket = use()
        XCTAssertNil(ticket.redeem(now: 100))
        XCTAssertEqual(ticket.redeem(now: 101), .reused)
        XCTAssertEqual(ticket.state, .live, "the first connection keeps the ticket")
    }

    func testReconnectWithinTheGraceResumes() {
        var ticket = use()
        XCTAssertNil(ticket.redeem(now: 100))
        ticket.close(now: 110)
        XCTAssertEqual(ticket.redeemableUntil, 140)
        XCTAssertNil(ticket.redeem(now: 139))
        XCTAssertEqual(ticket.resumes, 1)
    }

    func testAResumeIsBoundByTheGraceNotTheTicketsFirstUseDeadline() {
        var ticket = use()
        XCTAssertNil(ticket.redeem(now: 100))
        ticket.close(now: 500)  // a stream that ran long past the ttl
        XCTAssertNil(ticket.redeem(now: 520))
    }

    func testReconnectAfterTheGraceIsExpired() {
        var ticket = use()
        XCTAssertNil(ticket.redeem(now: 100))
        ticket.close(now: 110)
        XCTAssertEqual(ticket.redeem(now: 140), .expired)
        XCTAssertEqual(ticket.state, .closed(at: 110))
    }

    func testZeroGraceIsStrictlySingleUse() {
        var ticket = use(grace: 0)
        XCTAssertNil(ticket.redeem(now: 100))
        ticket.close(now: 101)
        XCTAssertEqual(ticket.redeem(now: 101), .reused)
        XCTAssertEqual(ticket.redeemableUntil, -.infinity)
    }

    func testResumesAreCounted() {
        var ticket = use(maxResumes: 2)
        XCTAssertNil(ticket.redeem(now: 100))
        for second in [101.0, 102] {
            ticket.close(now: second)
            XCTAssertNil(ticket.redeem(now: second + 1))
        }
        ticket.close(now: 110)
        XCTAssertEqual(ticket.redeem(now: 111), .reused)
        XCTAssertEqual(ticket.resumes, 2)
        XCTAssertEqual(ticket.redeemableUntil, -.infinity)
    }

    func testZeroResumesIsSingleUseWhateverTheGrace() {
        var ticket = use(maxResumes: 0)
        XCTAssertNil(ticket.redeem(now: 100))
        ticket.close(now: 101)
        XCTAssertEqual(ticket.redeem(now: 102), .reused)
    }

    func testNothingIsRedeemedOnceTheTokenExpired() {
        var unused = use(tokenExpiresAt: 120)
        XCTAssertEqual(unused.redeem(now: 120), .expired)
        var closed = use(tokenExpiresAt: 120)
        XCTAssertNil(closed.redeem(now: 100))
        closed.close(now: 110)
        XCTAssertEqual(closed.redeemableUntil, 120, "the token's exp comes before the end of the grace")
        XCTAssertEqual(closed.redeem(now: 121), .expired)
    }

    func testTokensWithoutExpiryAreBoundByTheTicketAlone() {
        var ticket = use(tokenExpiresAt: nil)
        XCTAssertEqual(ticket.redeemableUntil, 130)
        XCTAssertNil(ticket.redeem(now: 129))
    }
}
