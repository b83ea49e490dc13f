import Foundation
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

    func testAQueryStartingWithACombiningMarkIsStillRedacted() {
        // Found by Fuzz/FuzzQueryTokens: "?" and a combining mark after it are one Character, so searching the URI's
        // Characters for "?" found none and the whole URI, token included, went to the log unchanged.
        XCTAssertEqual(
            TokenRedaction.redact(uri: "/events?\u{301}&access_token=secret", sources: sources),
            "/events?\u{301}&access_token=REDACTED"
        )
    }

    func testATokenValueStartingWithACombiningMarkIsRedacted() {
        // "=" and a combining mark are one Character: the scan splits bytes, as the upstream does.
        XCTAssertEqual(
            TokenRedaction.redact(uri: "/events?x=1&access_token=\u{301}secret", sources: sources),
            "/events?x=1&access_token=REDACTED"
        )
    }

    func testParameterScanAgreesWithAPlainSplit() {
        let names = ["access_token", "key"]
        func reference(_ query: String, withValue: Bool) -> Bool {
            query.split(separator: "&", omittingEmptySubsequences: false).contains { component in
                let parts = component.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
                return !parts[0].isEmpty && (!withValue || parts.count == 2) && names.contains(name)
            }
        }
        let pieces = ["", "a=1", "key", "key=", "key=v", "access_token=t", "access%5Ftoken=t", "access_token", "=v",
                      "keys=v", "ke=y", "acc+ess_token=t"]
        for first in pieces {
            for second in pieces {
                for query in [first, first + "&" + second, "&" + first + "&&" + second + "&"] {
                    for withValue in [true, false] {
                        XCTAssertEqual(
                            QueryTokenParameters.containsParameter(namedAnyOf: names, in: query[...], withValue: withValue),
                            reference(query, withValue: withValue), "\(query) withValue \(withValue)")
                    }
                    let redacted = TokenRedaction.redact(uri: "/e?" + query, sources: [.query("access_token"), .query("key")])
                    XCTAssertEqual(redacted == "/e?" + query, !reference(query, withValue: true), query)
                }
            }
        }
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
