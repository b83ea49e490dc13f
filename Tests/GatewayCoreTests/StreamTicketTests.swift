import XCTest

@testable import GatewayCore

/// The ticket secret: its shape, its digest, and the sealing of its grant.
final class StreamTicketTests: XCTestCase {
    private static let identity = VerifiedIdentity(
        method: .jwt,
        subject: "alice",
        expiresAt: 2_000,
        claimHeaders: [
            ClaimHeader(name: "X-User-Id", value: "alice"),
            ClaimHeader(name: "X-Org", value: "{\"id\":7}"),
        ]
    )
    private static let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

    private func grant() -> TicketGrant {
        TicketGrant(
            route: "events",
            target: "/events/orders?x=1",
            identity: Self.identity,
            token: Self.token
        )
    }

    func testATicketIsThePrefixAnd256BitsOfBase64URL() {
        let ticket = StreamTicket(randomBytes: Array(repeating: 0xFB, count: 32))
        XCTAssertTrue(ticket.text.hasPrefix("sset_"))
        XCTAssertEqual(ticket.text.count, 5 + 43)
        XCTAssertFalse(ticket.text.contains { "+/=".contains($0) }, ticket.text)
        XCTAssertEqual(StreamTicket(parsing: ticket.text), ticket)
        XCTAssertEqual("\(ticket)", "sset_…", "a ticket never prints its secret")
    }

    func testParsingRefusesAnythingElse() {
        let good = StreamTicket(randomBytes: Array(0..<32)).text
        let body = String(good.dropFirst(5))
        let almost = String(body.dropLast())
        let texts: [String] = [
            "", "sset_", body, "SSET_" + body, "sst_" + body, good + "A", String(good.dropLast()),
            "sset_" + almost + "+", "sset_" + almost + "B",  // not base64url; not canonical (leftover bits set)
        ]
        for text in texts {
            XCTAssertNil(StreamTicket(parsing: text), text)
        }
    }

    func testTheDigestIsSHA256OfTheText() {
        let ticket = StreamTicket(randomBytes: Array(repeating: 1, count: 32))
        XCTAssertEqual(ticket.digest.bytes.count, 32)
        XCTAssertEqual(ticket.digest, StreamTicket(parsing: ticket.text)?.digest)
        XCTAssertNotEqual(
            ticket.digest,
            StreamTicket(randomBytes: Array(repeating: 2, count: 32)).digest
        )
    }

    func testAGrantOpensOnlyUnderItsOwnTicket() {
        let ticket = StreamTicket(randomBytes: Array(repeating: 7, count: 32))
        let sealed = ticket.seal(grant())
        XCTAssertEqual(ticket.open(sealed), grant())
        XCTAssertEqual(ticket.open(sealed)?.identity, Self.identity)
        XCTAssertNil(StreamTicket(randomBytes: Array(repeating: 8, count: 32)).open(sealed))
        var tampered = sealed
        tampered[tampered.count / 2] ^= 1
        XCTAssertNil(ticket.open(tampered))
    }

    func testTheSealedGrantLeaksNeitherTokenNorClaims() {
        let sealed = StreamTicket(randomBytes: Array(repeating: 7, count: 32)).seal(grant())
        let text = String(decoding: sealed, as: UTF8.self)
        for secret in [Self.token, "eyJ", "alice", "/events/orders"] {
            XCTAssertFalse(text.contains(secret), "sealed bytes contain \(secret)")
        }
    }
}
