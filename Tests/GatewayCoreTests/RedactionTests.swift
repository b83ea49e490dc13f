import GatewayCore
import XCTest

final class RedactionTests: XCTestCase {
    let sources: [TokenSource] = [.query("access_token"), .cookie("sse_token"), .query("key")]

    func testTokenQueryValuesAreRedacted() {
        XCTAssertEqual(
            TokenRedaction.redact(uri: "/events?a=1&access_token=eyJ.x.y&key=k&access%5Ftoken=z&b", sources: sources),
            "/events?a=1&access_token=REDACTED&key=REDACTED&access%5Ftoken=REDACTED&b"
        )
        XCTAssertEqual(TokenRedaction.redact(uri: "/events?a=1", sources: sources), "/events?a=1")
        XCTAssertEqual(TokenRedaction.redact(uri: "/events", sources: sources), "/events")
        XCTAssertEqual(TokenRedaction.redact(uri: "/e?access_token=x", sources: [.cookie("c")]), "/e?access_token=x")
    }

    func testSecretsNeverAppearInDescriptions() throws {
        let secret = TestKeys.secret
        let jwt = JWTConfiguration(algorithms: [.hs256], secret: secret)
        let policy = AuthPolicyConfiguration(jwt: jwt)
        let config = GatewayConfiguration(authPolicies: ["users": policy])
        var dumped = ""
        dump(config, to: &dumped)
        for text in ["\(jwt)", String(reflecting: jwt), "\(policy)", String(reflecting: policy), "\(config)", dumped] {
            XCTAssertFalse(text.contains(secret), text)
        }
        XCTAssertTrue("\(jwt)".contains("<redacted>"))
        let auth = try RouteAuthenticator(name: "users", policy: policy)
        XCTAssertFalse("\(auth)".contains(secret))
        XCTAssertFalse(String(reflecting: auth.extractor).contains(secret))
    }
}
