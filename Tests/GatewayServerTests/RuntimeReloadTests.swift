import GatewayCore
import XCTest

@testable import GatewayServer

/// What a reload's new runtime takes from the one it replaces: the verified tokens of policies that did not change.
final class RuntimeReloadTests: XCTestCase {
    private func configuration(secret: String = "reload-test-secret-0123456789abcdef0123") -> GatewayConfiguration {
        var configuration = GatewayConfiguration(
            routes: [
                RouteConfiguration(
                    name: "events", pathPrefix: "/", upstream: UpstreamURL(scheme: .http, host: "127.0.0.1", port: 9)
                )
            ]
        )
        configuration.routes[0].auth = "users"
        configuration.authPolicies["users"] = AuthPolicyConfiguration(
            tokenSources: [.query("access_token")],
            jwt: JWTConfiguration(algorithms: [.hs256], secret: secret)
        )
        return configuration
    }

    func testAnUnchangedPolicyKeepsItsCacheAndAChangedOneStartsEmpty() throws {
        let first = try GatewayRuntime(configuration: configuration())
        let same = try GatewayRuntime(configuration: configuration(), previous: first)
        XCTAssertTrue(same.routeAuthenticators[0]?.cache === first.routeAuthenticators[0]?.cache)
        XCTAssertFalse(same.routeAuthenticators[0] === first.routeAuthenticators[0], "the rest is built anew")

        let rotated = try GatewayRuntime(configuration: configuration(secret: "another-secret-0123456789abcdef01234"),
                                         previous: same)
        XCTAssertFalse(rotated.routeAuthenticators[0]?.cache === first.routeAuthenticators[0]?.cache)
        let fresh = try GatewayRuntime(configuration: configuration())
        XCTAssertFalse(fresh.routeAuthenticators[0]?.cache === first.routeAuthenticators[0]?.cache)
    }
}
