import XCTest

@testable import GatewayCore

/// `auth_policies.*.tickets`: defaults, every key, and every rule that refuses a file.
final class TicketConfigurationTests: XCTestCase {
    private static let secret = "0123456789abcdef0123456789abcdef-secret"

    /// A file with one route under `users`; `tickets` is the policy's `tickets:` block (indented by 4).
    private static func yaml(
        tickets: String,
        sources: String = "",
        prefix: String = "/events/"
    )
        -> String
    {
        """
        routes:
          - name: events
            path_prefix: \(prefix)
            upstream: http://127.0.0.1:9000
            auth: users
        auth_policies:
          users:
            jwt: {algorithms: [HS256], secret: "\(secret)"}
        \(sources)
        \(tickets)
        """
    }

    private func parse(_ yaml: String) throws -> GatewayConfiguration {
        try GatewayConfiguration.parse(yaml: yaml, file: "gw.yml", baseDirectory: "/", environment: [:])
            .configuration
    }

    private func errors(
        _ yaml: String,
        file: StaticString = #filePath,
        line: UInt = #line
    )
        -> [String]
    {
        do {
            _ = try parse(yaml)
            XCTFail("expected configuration errors", file: file, line: line)
            return []
        } catch {
            return (error as? ConfigurationErrors)?.errors.map(\.description) ?? ["\(error)"]
        }
    }

    func testNoTicketsByDefault() throws {
        XCTAssertNil(try parse(Self.yaml(tickets: "")).authPolicies["users"]?.tickets)
    }

    func testAnEmptyBlockTakesEveryDefault() throws {
        let tickets = try parse(Self.yaml(tickets: "    tickets: {}")).authPolicies["users"]?.tickets
        XCTAssertEqual(tickets, TicketConfiguration())
        XCTAssertEqual(tickets?.path, "/_sse/ticket")
        XCTAssertEqual(tickets?.ttl, .seconds(30))
        XCTAssertEqual(tickets?.parameter, "sse_ticket")
        XCTAssertEqual(tickets?.reconnectGrace, .seconds(30))
        XCTAssertEqual(tickets?.maxResumes, 3)
        XCTAssertEqual(tickets?.maxOutstandingPerSubject, 20)
        XCTAssertEqual(tickets?.mintsPerMinutePerSubject, 60)
    }

    func testEveryKey() throws {
        let block = """
                tickets:
                  path: /auth/ticket
                  ttl: 10s
                  parameter: t
                  reconnect_grace: 0s
                  max_resumes: 0
                  max_outstanding_per_subject: 5
                  mints_per_minute_per_subject: 12
            """
        XCTAssertEqual(
            try parse(Self.yaml(tickets: block)).authPolicies["users"]?.tickets,
            TicketConfiguration(
                path: "/auth/ticket",
                ttl: .seconds(10),
                parameter: "t",
                reconnectGrace: .zero,
                maxResumes: 0,
                maxOutstandingPerSubject: 5,
                mintsPerMinutePerSubject: 12
            )
        )
    }

    func testValuesOutOfRange() {
        let block = """
                tickets:
                  path: ticket
                  ttl: 0s
                  reconnect_grace: -1s
                  max_resumes: -1
                  max_outstanding_per_subject: 0
                  mints_per_minute_per_subject: 0
                  max_uses: 1
            """
        let found = errors(Self.yaml(tickets: block))
        let expected = [
            "auth_policies.users.tickets.path: must start with '/'",
            "auth_policies.users.tickets.ttl:",
            "auth_policies.users.tickets.reconnect_grace:",
            "auth_policies.users.tickets.max_resumes:",
            "auth_policies.users.tickets.max_outstanding_per_subject:",
            "auth_policies.users.tickets.mints_per_minute_per_subject:",
            "auth_policies.users.tickets.max_uses",
        ]
        XCTAssertEqual(found.count, expected.count, "\(found)")
        for (error, fragment) in zip(found, expected) {
            XCTAssertTrue(error.contains(fragment), "\(error)")
        }
    }

    func testTheParameterCannotBeAQueryTokenSource() {
        let found = errors(
            Self.yaml(
                tickets: "    tickets: {parameter: access_token}",
                sources: "    token_sources: [{query: access_token}, {header: Authorization}]"
            )
        )
        XCTAssertEqual(found.count, 1, "\(found)")
        XCTAssertTrue(
            found.first?.hasSuffix(
                "auth_policies.users.tickets.parameter: 'access_token' is already a query token source of this policy"
            ) == true,
            "\(found)"
        )
    }

    func testTheTicketsPathIsNoRoutesPrefix() {
        let found = errors(Self.yaml(tickets: "    tickets: {path: /events/}"))
        XCTAssertEqual(
            found,
            ["gw.yml:3:18: routes[0].path_prefix: '/events/' is the tickets path of auth policy 'users'"]
        )
    }

    func testATicketsPathUnderARoutesPrefixIsAllowed() throws {
        XCTAssertEqual(
            try parse(Self.yaml(tickets: "    tickets: {path: /events/ticket}")).authPolicies["users"]?
                .tickets?.path,
            "/events/ticket"
        )
    }

    func testTwoPoliciesCannotShareATicketsPath() {
        let yaml =
            Self.yaml(tickets: "    tickets: {}") + """

                  admins:
                    jwt: {algorithms: [HS256], secret: "\(Self.secret)"}
                    tickets: {ttl: 5s}
                """
        let found = errors(yaml)
        XCTAssertEqual(found.count, 1, "\(found)")
        XCTAssertTrue(
            found.first?.contains(
                "auth_policies.admins.tickets.path: duplicate tickets path '/_sse/ticket' (first used by policy 'users')"
            ) == true,
            "\(found)"
        )
    }
}
