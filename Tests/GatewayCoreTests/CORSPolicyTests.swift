import GatewayCore
import NIOHTTP1
import XCTest

final class CORSPolicyTests: XCTestCase {
    let policy = CORSPolicy(
        configuration: CORSConfiguration(
            allowedOrigins: ["https://app.example"],
            allowCredentials: true,
            maxAge: .seconds(600)
        )
    )

    func testPreflightForAllowedOrigin() throws {
        let headers = try XCTUnwrap(policy.preflightHeaders(origin: "https://app.example", requestMethod: "GET"))
        XCTAssertEqual(headers["Access-Control-Allow-Origin"], ["https://app.example"])
        XCTAssertEqual(headers["Access-Control-Allow-Credentials"], ["true"])
        XCTAssertEqual(headers["Access-Control-Allow-Methods"], ["GET, POST, OPTIONS"])
        XCTAssertEqual(
            headers["Access-Control-Allow-Headers"],
            ["Last-Event-ID, Authorization, Content-Type, Cache-Control"]
        )
        XCTAssertEqual(headers["Access-Control-Max-Age"], ["600"])
        XCTAssertEqual(headers["Vary"], ["Origin"])
    }

    func testPreflightDeniedForOtherOriginsAndMethods() {
        XCTAssertNil(policy.preflightHeaders(origin: "https://evil.example", requestMethod: "GET"))
        XCTAssertNil(policy.preflightHeaders(origin: "https://app.example.evil", requestMethod: "GET"))
        XCTAssertNil(policy.preflightHeaders(origin: "null", requestMethod: "GET"))
        XCTAssertNil(policy.preflightHeaders(origin: "https://app.example", requestMethod: "DELETE"))
    }

    func testActualResponseHeaders() {
        let allowed = policy.responseHeaders(origin: "https://app.example")
        XCTAssertEqual(allowed["Access-Control-Allow-Origin"], ["https://app.example"])
        XCTAssertEqual(allowed["Access-Control-Allow-Credentials"], ["true"])
        XCTAssertEqual(allowed["Vary"], ["Origin"])
        let denied = policy.responseHeaders(origin: "https://evil.example")
        XCTAssertFalse(denied.contains(name: "Access-Control-Allow-Origin"))
        XCTAssertFalse(denied.contains(name: "Access-Control-Allow-Credentials"))
        XCTAssertEqual(denied["Vary"], ["Origin"])
        XCTAssertFalse(policy.responseHeaders(origin: nil).contains(name: "Access-Control-Allow-Origin"))
    }

    func testWildcardNeverCarriesCredentials() {
        let wildcard = CORSPolicy(
            configuration: CORSConfiguration(allowedOrigins: ["*", "https://app.example"], allowCredentials: true)
        )
        let other = wildcard.responseHeaders(origin: "https://any.example")
        XCTAssertEqual(other["Access-Control-Allow-Origin"], ["*"])
        XCTAssertFalse(other.contains(name: "Access-Control-Allow-Credentials"))
        XCTAssertEqual(
            wildcard.responseHeaders(origin: "https://app.example")["Access-Control-Allow-Credentials"],
            ["true"]
        )
        let noCredentials = CORSPolicy(configuration: CORSConfiguration(allowedOrigins: ["https://app.example"]))
        XCTAssertFalse(
            noCredentials.responseHeaders(origin: "https://app.example").contains(
                name: "Access-Control-Allow-Credentials"
            )
        )
    }
}
