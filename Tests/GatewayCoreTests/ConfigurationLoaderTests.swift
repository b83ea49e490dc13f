import Foundation
import XCTest

@testable import GatewayCore

final class ConfigurationLoaderTests: XCTestCase {
    private var directory: String = ""
    private let secret = "0123456789abcdef0123456789abcdef-secret"

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "gateway-config-\(UUID().uuidString)"
        for folder in ["keys", "certs"] {
            try FileManager.default.createDirectory(
                atPath: "\(directory)/\(folder)",
                withIntermediateDirectories: true
            )
        }
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"
        try write(pem, to: "keys/issuer.pem")
        try write("not a key\n", to: "keys/plain.txt")
        try write("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", to: "certs/server.crt")
        try write("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n", to: "certs/server.key")
        try write("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", to: "certs/ca.pem")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func write(_ text: String, to relativePath: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: "\(directory)/\(relativePath)"))
    }

    private static let fullExample = """
        listen: "127.0.0.1:8080"
        tls:
          certificate: certs/server.crt
          private_key: certs/server.key
          min_version: "1.3"
        http2:
          max_concurrent_streams: 128
        admin:
          listen: "127.0.0.1:9901"
        routes:
          - name: events
            path_prefix: /events/
            upstream: "http://127.0.0.1:9000"
            strip_prefix: true
            heartbeat: 15s
            timeouts: {connect: 2s, response_header: 20s, idle: 0s}
            auth: users
            max_streams: 1000
            max_stream_duration: 1h
          - name: secure.feed
            path_prefix: /secure/
            upstream: "https://[::1]:9443/api/v1/"
            auth: none
            tls:
              ca_file: certs/ca.pem
              certificate: certs/server.crt
              private_key: certs/server.key
              server_name: feed.internal
        auth_policies:
          users:
            token_sources:
              - query: access_token
              - cookie: sse_token
              - header: Authorization
            jwt:
              algorithms: [HS256, RS256, ES256, EdDSA]
              secret: "${JWT_SECRET}"
              public_keys: [keys/issuer.pem]
              jwks_url: "https://issuer.example/.well-known/jwks.json"
              jwks_refresh: 5m
              issuer: "https://issuer.example"
              audience: "events"
              clock_skew: 45s
              required_claims: [sub, exp]
              max_lifetime: 24h
            api_keys:
              - sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                subject: "service-a"
            forward: {header: X-Upstream-Token, scheme: Token}
            claims_to_headers: {sub: X-User-Id, org.id: X-Org-Id, role: X-Role}
            on_expiry: ignore
            max_streams_per_subject: 10
        cors:
          allowed_origins: ["https://app.example", "http://localhost:3000"]
          allow_credentials: true
          max_age: 10m
        limits:
          max_connections: 5000
          new_streams_per_second_per_ip: 2.5
          request_header_timeout: 7s
          max_header_bytes: 16KiB
          stream_buffer_bytes: 65536
          slow_client_timeout: 45s
        drain:
          grace: 20s
          retry_jitter: 3s
        """

    /// The smallest valid file; error tests append to or edit it.
    private static let minimal = """
        routes:
          - name: a
            path_prefix: /a/
            upstream: http://127.0.0.1:9000
        """

    private func parse(_ yaml: String, environment: [String: String] = [:]) throws -> LoadedConfiguration {
        try GatewayConfiguration.parse(yaml: yaml, file: "gw.yml", baseDirectory: directory, environment: environment)
    }

    /// All rendered errors of a file that must fail to load.
    private func errors(
        _ yaml: String,
        environment: [String: String] = [:],
        file: StaticString = #filePath,
        line: UInt = #line
    ) -> [String] {
        do {
            _ = try GatewayConfiguration.parse(
                yaml: yaml,
                file: "gw.yml",
                baseDirectory: directory,
                environment: environment
            )
            XCTFail("expected configuration errors", file: file, line: line)
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    private func assertOnlyError(
        _ yaml: String,
        _ expected: String,
        environment: [String: String] = [:],
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertEqual(
            errors(yaml, environment: environment, file: file, line: line),
            [expected],
            file: file,
            line: line
        )
    }

    // MARK: The full example

    func testFullExampleLoadsEveryField() throws {
        let path = "\(directory)/gateway.yml"
        try write(Self.fullExample, to: "gateway.yml")
        let loaded = try GatewayConfiguration.load(path: path, environment: ["JWT_SECRET": secret])
        let config = loaded.configuration

        XCTAssertEqual(config.listen, ListenAddress(host: "127.0.0.1", port: 8080))
        XCTAssertEqual(
            config.tls,
            ListenerTLSConfiguration(
                certificatePath: "\(directory)/certs/server.crt",
                privateKeyPath: "\(directory)/certs/server.key",
                minimumVersion: .tls13
            )
        )
        XCTAssertEqual(config.http2.maxConcurrentStreams, 128)
        XCTAssertEqual(config.admin.listen, ListenAddress(host: "127.0.0.1", port: 9901))

        XCTAssertEqual(config.routes.count, 2)
        XCTAssertEqual(
            config.routes[0],
            RouteConfiguration(
                name: "events",
                pathPrefix: "/events/",
                upstream: UpstreamURL(scheme: .http, host: "127.0.0.1", port: 9000),
                stripPrefix: true,
                heartbeat: .seconds(15),
                timeouts: RouteTimeouts(connect: .seconds(2), responseHeader: .seconds(20), idle: .zero),
                auth: "users",
                maxStreams: 1000,
                maxStreamDuration: .seconds(3600)
            )
        )
        let secure = config.routes[1]
        XCTAssertEqual(secure.name, "secure.feed")
        XCTAssertEqual(secure.upstream, UpstreamURL(scheme: .https, host: "::1", port: 9443, basePath: "/api/v1"))
        XCTAssertEqual(secure.upstream.description, "https://[::1]:9443/api/v1")
        XCTAssertNil(secure.auth)
        XCTAssertFalse(secure.stripPrefix)
        XCTAssertNil(secure.heartbeat)
        XCTAssertEqual(secure.timeouts, RouteTimeouts())
        XCTAssertEqual(
            secure.upstreamTLS,
            UpstreamTLSConfiguration(
                caFilePath: "\(directory)/certs/ca.pem",
                certificatePath: "\(directory)/certs/server.crt",
                privateKeyPath: "\(directory)/certs/server.key",
                serverName: "feed.internal"
            )
        )

        XCTAssertEqual(Array(config.authPolicies.keys), ["users"])
        let users = try XCTUnwrap(config.authPolicies["users"])
        XCTAssertEqual(users.tokenSources, [.query("access_token"), .cookie("sse_token"), .header("Authorization")])
        let jwt = try XCTUnwrap(users.jwt)
        XCTAssertEqual(jwt.algorithms, [.hs256, .rs256, .es256, .eddsa])
        XCTAssertEqual(jwt.secret, secret)
        XCTAssertEqual(jwt.publicKeyPaths, ["\(directory)/keys/issuer.pem"])
        XCTAssertEqual(jwt.jwksURL, "https://issuer.example/.well-known/jwks.json")
        XCTAssertEqual(jwt.jwksRefreshInterval, .seconds(300))
        XCTAssertEqual(jwt.issuer, "https://issuer.example")
        XCTAssertEqual(jwt.audience, "events")
        XCTAssertEqual(jwt.clockSkew, .seconds(45))
        XCTAssertEqual(jwt.requiredClaims, ["sub", "exp"])
        XCTAssertEqual(jwt.maxLifetime, .seconds(86400))
        XCTAssertEqual(users.apiKeys.count, 1)
        XCTAssertEqual(users.apiKeys.first?.subject, "service-a")
        XCTAssertEqual(users.apiKeys.first?.sha256.first, 0x9f)
        XCTAssertEqual(users.apiKeys.first?.sha256.last, 0x08)
        XCTAssertEqual(users.apiKeys.first?.sha256.count, 32)
        XCTAssertEqual(users.forward, ForwardConfiguration(header: "X-Upstream-Token", scheme: "Token"))
        XCTAssertEqual(
            users.claimsToHeaders,
            [
                ClaimHeaderMapping(claim: "sub", header: "X-User-Id"),
                ClaimHeaderMapping(claim: "org.id", header: "X-Org-Id"),
                ClaimHeaderMapping(claim: "role", header: "X-Role"),
            ]
        )
        XCTAssertEqual(users.onExpiry, .ignore)
        XCTAssertEqual(users.maxStreamsPerSubject, 10)

        XCTAssertEqual(
            config.cors,
            CORSConfiguration(
                allowedOrigins: ["https://app.example", "http://localhost:3000"],
                allowCredentials: true,
                maxAge: .seconds(600)
            )
        )
        XCTAssertEqual(
            config.limits,
            LimitsConfiguration(
                maxConnections: 5000,
                newStreamsPerSecondPerIP: 2.5,
                requestHeaderTimeout: .seconds(7),
                maxHeaderBytes: 16384,
                streamBufferBytes: 65536,
                slowClientTimeout: .seconds(45)
            )
        )
        XCTAssertEqual(config.drain, DrainConfiguration(grace: .seconds(20), retryJitter: .seconds(3)))

        XCTAssertEqual(loaded.sourceMap.file, path)
        XCTAssertEqual(loaded.sourceMap.location(of: "auth_policies.users.jwt.public_keys[0]")?.line, 38)
        XCTAssertEqual(loaded.sourceMap.location(of: "auth_policies.users.jwt.public_keys[0]")?.column, 21)
        XCTAssertEqual(loaded.sourceMap.location(of: "routes[1].upstream")?.line, 22)
        XCTAssertNil(loaded.sourceMap.location(of: "routes[1].heartbeat"))
        XCTAssertEqual(
            loaded.sourceMap.error("auth_policies.users.jwt.public_keys[0]", "not an RSA key").description,
            "\(path):38:21: auth_policies.users.jwt.public_keys[0]: not an RSA key"
        )
        // A key left to its default points at its closest written ancestor.
        XCTAssertEqual(
            loaded.sourceMap.error("routes[1].timeouts.idle", "x").description,
            "\(path):20:5: routes[1].timeouts.idle: x"
        )
    }

    func testMinimalFileUsesDefaults() throws {
        let config = try parse(Self.minimal).configuration
        XCTAssertEqual(config.listen, ListenAddress(host: "127.0.0.1", port: 8080))
        XCTAssertNil(config.tls)
        XCTAssertEqual(config.admin, AdminConfiguration())
        XCTAssertEqual(config.http2, HTTP2Configuration())
        XCTAssertEqual(config.limits, LimitsConfiguration())
        XCTAssertEqual(config.drain, DrainConfiguration())
        XCTAssertNil(config.cors)
        XCTAssertTrue(config.authPolicies.isEmpty)
        XCTAssertEqual(
            config.routes,
            [
                RouteConfiguration(
                    name: "a",
                    pathPrefix: "/a/",
                    upstream: UpstreamURL(scheme: .http, host: "127.0.0.1", port: 9000)
                )
            ]
        )
    }

    func testPolicyDefaults() throws {
        let yaml =
            Self.minimal + """

                auth_policies:
                  keys:
                    api_keys: [{sha256: "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", subject: s}]
                """
        let policy = try XCTUnwrap(parse(yaml).configuration.authPolicies["keys"])
        XCTAssertEqual(policy.tokenSources, [.header("Authorization")])
        XCTAssertNil(policy.jwt)
        XCTAssertEqual(policy.forward, ForwardConfiguration())
        XCTAssertEqual(policy.onExpiry, .close)
        XCTAssertNil(policy.maxStreamsPerSubject)
        XCTAssertEqual(policy.apiKeys.first?.sha256.first, 0x9f)
    }

    func testAdminListenOffDisablesTheAdminListener() throws {
        let config = try parse(Self.minimal + "\nadmin: {listen: off}").configuration
        XCTAssertNil(config.admin.listen)
        let quoted = try parse(Self.minimal + "\nadmin:\n  listen: \"off\"").configuration
        XCTAssertNil(quoted.admin.listen)
    }

    func testIPv6ListenAddress() throws {
        let config = try parse("listen: \"[::1]:8443\"\n" + Self.minimal).configuration
        XCTAssertEqual(config.listen, ListenAddress(host: "::1", port: 8443))
        XCTAssertEqual(config.listen.description, "[::1]:8443")
        let any = try parse("listen: 0.0.0.0:0\n" + Self.minimal).configuration
        XCTAssertEqual(any.listen, ListenAddress(host: "0.0.0.0", port: 0))
        assertOnlyError(
            "listen: \"::1:8080\"\n" + Self.minimal,
            "gw.yml:1:9: listen: IPv6 addresses must be written in brackets, e.g. [::1]"
        )
        assertOnlyError("listen: localhost\n" + Self.minimal, "gw.yml:1:9: listen: missing port (expected host:port)")
        assertOnlyError(
            "listen: \"[::1]:99999\"\n" + Self.minimal,
            "gw.yml:1:9: listen: '99999' is not a port number (0-65535)"
        )
    }

    // MARK: Environment variables

    func testEnvironmentSubstitutionWithDefault() throws {
        let yaml = """
            listen: "${HOST:-0.0.0.0}:${PORT:-8080}"
            routes:
              - name: a
                path_prefix: /a/
                upstream: "http://${UPSTREAM_HOST}:9000"
                max_streams: "${MAX:-7}"
            """
        let config = try parse(yaml, environment: ["UPSTREAM_HOST": "backend", "PORT": "9999"]).configuration
        XCTAssertEqual(config.listen, ListenAddress(host: "0.0.0.0", port: 9999))
        XCTAssertEqual(config.routes[0].upstream.host, "backend")
        XCTAssertEqual(config.routes[0].maxStreams, 7)
        // An empty variable takes the default, as in the shell.
        XCTAssertEqual(
            try parse(yaml, environment: ["UPSTREAM_HOST": "b", "HOST": ""]).configuration.listen.host,
            "0.0.0.0"
        )
    }

    func testUnsetEnvironmentVariableIsAnErrorAtItsScalar() {
        let yaml = Self.minimal + "\n    heartbeat: \"${BEAT}\""
        assertOnlyError(yaml, "gw.yml:5:16: routes[0].heartbeat: environment variable 'BEAT' is not set")
    }

    func testEnvironmentSubstitutionSyntax() {
        let env = ["A": "1", "EMPTY": ""]
        func apply(_ text: String) -> String? {
            try? EnvironmentSubstitution.apply(to: text, environment: env).get()
        }
        XCTAssertEqual(apply("x${A}y${A}"), "x1y1")
        XCTAssertEqual(apply("${B:-two words}"), "two words")
        XCTAssertEqual(apply("${EMPTY}"), "")
        XCTAssertEqual(apply("${EMPTY:-d}"), "d")
        XCTAssertEqual(apply("cost $5 and $${A}"), "cost $5 and ${A}")
        XCTAssertNil(apply("${B}"))
        XCTAssertNil(apply("${A"))
        XCTAssertNil(apply("${1A}"))
    }

    // MARK: Unknown keys and wrong types

    func testUnknownTopLevelKeyWithSuggestion() {
        assertOnlyError(
            "listne: 127.0.0.1:1\n" + Self.minimal,
            "gw.yml:1:1: listne: unknown key 'listne' (did you mean 'listen'?)"
        )
        assertOnlyError("colour: red\n" + Self.minimal, "gw.yml:1:1: colour: unknown key 'colour'")
    }

    func testUnknownKeyInRouteSuggestsClosestKey() {
        let yaml = Self.minimal.replacingOccurrences(of: "upstream:", with: "upstram:")
        XCTAssertEqual(
            errors(yaml),
            [
                "gw.yml:2:5: routes[0].upstream: required key is missing",
                "gw.yml:4:5: routes[0].upstram: unknown key 'upstram' (did you mean 'upstream'?)",
            ]
        )
    }

    func testUnknownKeyInPolicy() {
        let yaml =
            Self.minimal + """

                    auth: users
                auth_policies:
                  users:
                    api_keys: [{sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", subject: s}]
                    on_expire: close
                """
        assertOnlyError(
            yaml,
            "gw.yml:9:5: auth_policies.users.on_expire: unknown key 'on_expire' (did you mean 'on_expiry'?)"
        )
    }

    func testWrongTypes() {
        XCTAssertEqual(errors("routes: /a/"), ["gw.yml:1:9: routes: expected a list, got the scalar '/a/'"])
        XCTAssertEqual(errors("- a\n- b"), ["gw.yml:1:1: expected a mapping, got a list"])
        assertOnlyError(Self.minimal + "\nlimits: [1]", "gw.yml:5:9: limits: expected a mapping, got a list")
        assertOnlyError(
            Self.minimal + "\n    strip_prefix: yes",
            "gw.yml:5:19: routes[0].strip_prefix: expected a boolean (true or false), got 'yes'"
        )
        assertOnlyError(
            Self.minimal + "\n    max_streams: [1]",
            "gw.yml:5:18: routes[0].max_streams: expected an integer, got a list"
        )
        assertOnlyError(
            Self.minimal + "\n    heartbeat:",
            "gw.yml:5:15: routes[0].heartbeat: expected a duration, got an empty value"
        )
    }

    func testEmptyFileNeedsRoutes() {
        XCTAssertEqual(errors(""), ["gw.yml:1:1: routes: required key is missing (the file is empty)"])
        XCTAssertEqual(errors("routes: []"), ["gw.yml:1:9: routes: at least one route is required"])
    }

    // MARK: Routes

    func testDuplicateRouteNameAndPrefixAreReportedAtTheSecondOccurrence() {
        let yaml =
            Self.minimal + """

                  - name: a
                    path_prefix: /a/
                    upstream: http://127.0.0.1:9001
                """
        XCTAssertEqual(
            errors(yaml),
            [
                "gw.yml:5:11: routes[1].name: duplicate route name 'a' (first used by routes[0])",
                "gw.yml:6:18: routes[1].path_prefix: duplicate path_prefix '/a/' (first used by routes[0])",
            ]
        )
    }

    func testRouteNameAndPrefixSyntax() {
        let yaml = """
            routes:
              - name: "a b"
                path_prefix: a/
                upstream: http://h
            """
        XCTAssertEqual(
            errors(yaml),
            [
                "gw.yml:2:11: routes[0].name: 'a b' may only contain letters, digits, '_', '.' and '-'",
                "gw.yml:3:18: routes[0].path_prefix: must start with '/', got 'a/'",
            ]
        )
    }

    func testBadUpstreamURLs() {
        func upstreamError(_ url: String) -> [String] {
            errors(Self.minimal.replacingOccurrences(of: "http://127.0.0.1:9000", with: url))
        }
        XCTAssertEqual(
            upstreamError("ftp://h/x"),
            ["gw.yml:4:15: routes[0].upstream: unsupported scheme 'ftp' (expected http or https)"]
        )
        XCTAssertEqual(upstreamError("http:///x"), ["gw.yml:4:15: routes[0].upstream: missing host"])
        XCTAssertEqual(
            upstreamError("http://h/x?a=1"),
            ["gw.yml:4:15: routes[0].upstream: must not contain a query ('?')"]
        )
        XCTAssertEqual(
            upstreamError("http://h/x#f"),
            ["gw.yml:4:15: routes[0].upstream: must not contain a fragment ('#')"]
        )
        XCTAssertEqual(
            upstreamError("http://u:p@h/"),
            ["gw.yml:4:15: routes[0].upstream: must not contain credentials ('user@')"]
        )
        XCTAssertEqual(
            upstreamError("h:9000"),
            ["gw.yml:4:15: routes[0].upstream: 'h:9000' is not a URL (expected http://host[:port][/path])"]
        )
        XCTAssertEqual(
            upstreamError("http://h:x"),
            ["gw.yml:4:15: routes[0].upstream: 'x' is not a port number (0-65535)"]
        )
    }

    func testUpstreamURLForms() throws {
        func upstream(_ url: String) throws -> UpstreamURL {
            try parse(Self.minimal.replacingOccurrences(of: "http://127.0.0.1:9000", with: url)).configuration.routes[0]
                .upstream
        }
        XCTAssertEqual(try upstream("http://h"), UpstreamURL(scheme: .http, host: "h", port: 80, basePath: ""))
        XCTAssertEqual(try upstream("https://h/"), UpstreamURL(scheme: .https, host: "h", port: 443, basePath: ""))
        XCTAssertEqual(
            try upstream("http://h:81/a/b//"),
            UpstreamURL(scheme: .http, host: "h", port: 81, basePath: "/a/b")
        )
        XCTAssertEqual(try upstream("http://[fe80::1]"), UpstreamURL(scheme: .http, host: "fe80::1", port: 80))
    }

    func testBadDurationAndNonPositiveValues() {
        let yaml =
            Self.minimal + """

                    heartbeat: 15 seconds
                    timeouts: {connect: 0s, response_header: -1s, idle: 0}
                    max_streams: 0
                    max_stream_duration: 0
                """
        XCTAssertEqual(
            errors(yaml),
            [
                "gw.yml:5:16: routes[0].heartbeat: expected a duration such as 250ms, 30s, 5m or 1h, got '15 seconds'",
                "gw.yml:6:25: routes[0].timeouts.connect: must be greater than 0",
                "gw.yml:6:46: routes[0].timeouts.response_header: "
                    + "expected a duration such as 250ms, 30s, 5m or 1h, got '-1s'",
                "gw.yml:7:18: routes[0].max_streams: must be at least 1, got 0",
                "gw.yml:8:26: routes[0].max_stream_duration: must be greater than 0",
            ]
        )
    }

    func testUpstreamTLSNeedsBothCertificateAndKeyAndAnHTTPSUpstream() {
        let yaml = Self.minimal + "\n    tls: {certificate: certs/server.crt}"
        XCTAssertEqual(
            errors(yaml),
            [
                "gw.yml:5:10: routes[0].tls.private_key: required when certificate is given (mutual TLS)",
                "gw.yml:5:10: routes[0].tls: is only used with an https upstream, but upstream is http",
            ]
        )
    }

    func testAuthNamingAnUnknownPolicy() {
        let yaml =
            Self.minimal + """

                    auth: user
                auth_policies:
                  users:
                    api_keys: [{sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", subject: s}]
                """
        assertOnlyError(yaml, "gw.yml:5:11: routes[0].auth: unknown auth policy 'user' (did you mean 'users'?)")
        assertOnlyError(
            Self.minimal + "\n    auth: users",
            "gw.yml:5:11: routes[0].auth: unknown auth policy 'users' (auth_policies defines none)"
        )
    }

    // MARK: JWT

    private func policyYAML(_ jwtLines: String) -> String {
        Self.minimal + "\nauth_policies:\n  users:\n    jwt:\n" + jwtLines
    }

    func testNoneAlgorithmIsRefusedInAnyCase() {
        let yaml = policyYAML("      algorithms: [HS256, None]\n      secret: \(secret)")
        assertOnlyError(
            yaml,
            "gw.yml:8:27: auth_policies.users.jwt.algorithms[1]: "
                + "algorithm 'none' is never allowed (it accepts unsigned tokens)"
        )
    }

    func testUnknownAlgorithm() {
        XCTAssertEqual(
            errors(policyYAML("      algorithms: [hs256, XS1]\n      secret: \(secret)")),
            [
                "gw.yml:8:20: auth_policies.users.jwt.algorithms[0]: unknown algorithm 'hs256' (did you mean 'HS256'?)",
                "gw.yml:8:27: auth_policies.users.jwt.algorithms[1]: "
                    + "unknown algorithm 'XS1' "
                    + "(expected one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, "
                    + "ES256, ES384, ES512, EdDSA)",
            ]
        )
    }

    func testEmptyAlgorithmAllowList() {
        assertOnlyError(
            policyYAML("      algorithms: []"),
            "gw.yml:8:19: auth_policies.users.jwt.algorithms: must not be empty"
        )
        assertOnlyError(
            policyYAML("      issuer: x"),
            "gw.yml:8:7: auth_policies.users.jwt.algorithms: required key is missing"
        )
    }

    func testShortHMACSecret() {
        assertOnlyError(
            policyYAML("      algorithms: [HS256]\n      secret: \"${S}\""),
            "gw.yml:9:15: auth_policies.users.jwt.secret: an HMAC secret must be at least 32 bytes, got 5",
            environment: ["S": "short"]
        )
        assertOnlyError(
            policyYAML("      algorithms: [HS256, HS512]"),
            "gw.yml:8:7: auth_policies.users.jwt.secret: required because HS256, HS512 is allowed"
        )
    }

    func testAsymmetricAlgorithmNeedsKeys() {
        assertOnlyError(
            policyYAML("      algorithms: [RS256]"),
            "gw.yml:8:7: auth_policies.users.jwt: public_keys or jwks_url is required because RS256 is allowed"
        )
        XCTAssertNoThrow(try parse(policyYAML("      algorithms: [ES256]\n      jwks_url: http://idp:8080/keys?x=1")))
        assertOnlyError(
            policyYAML("      algorithms: [ES256]\n      jwks_url: file:///keys"),
            "gw.yml:9:17: auth_policies.users.jwt.jwks_url: unsupported scheme 'file' (expected http or https)"
        )
    }

    func testMissingAndNonPEMKeyFiles() {
        let yaml = policyYAML(
            "      algorithms: [RS256]\n      public_keys:\n        - keys/missing.pem\n        - keys/plain.txt"
        )
        XCTAssertEqual(
            errors(yaml),
            [
                "gw.yml:10:11: auth_policies.users.jwt.public_keys[0]: "
                    + "file '\(directory)/keys/missing.pem' does not exist",
                "gw.yml:11:11: auth_policies.users.jwt.public_keys[1]: "
                    + "file '\(directory)/keys/plain.txt' contains no PEM block ('-----BEGIN ...')",
            ]
        )
    }

    func testPolicyNeedsJWTOrAPIKeys() {
        let yaml = Self.minimal + "\nauth_policies:\n  users:\n    on_expiry: close"
        assertOnlyError(yaml, "gw.yml:7:5: auth_policies.users: a policy needs jwt or api_keys (or both)")
    }

    func testTokenSourcesAndAPIKeys() {
        let yaml =
            Self.minimal + """

                auth_policies:
                  users:
                    token_sources: [{query: a, cookie: b}, {header: "Bad Header"}, {form: x}]
                    api_keys:
                      - sha256: abc
                        subject: s
                """
        XCTAssertEqual(
            errors(yaml),
            [
                "gw.yml:7:21: auth_policies.users.token_sources[0]: expected exactly one of query, cookie or header",
                "gw.yml:7:53: auth_policies.users.token_sources[1].header: "
                    + "'Bad Header' is not a valid HTTP header name",
                "gw.yml:7:68: auth_policies.users.token_sources[2]: expected exactly one of query, cookie or header",
                "gw.yml:7:69: auth_policies.users.token_sources[2].form: unknown key 'form'",
                "gw.yml:9:17: auth_policies.users.api_keys[0].sha256: "
                    + "expected 64 hexadecimal characters (the key's SHA-256), got 3 characters",
            ]
        )
    }

    // MARK: CORS

    func testWildcardOriginWithCredentials() {
        let yaml = Self.minimal + "\ncors:\n  allowed_origins: [\"*\"]\n  allow_credentials: true"
        assertOnlyError(
            yaml,
            "gw.yml:6:21: cors.allowed_origins[0]: "
                + "'*' cannot be combined with allow_credentials: true (browsers refuse it)"
        )
        XCTAssertNoThrow(try parse(Self.minimal + "\ncors:\n  allowed_origins: [\"*\"]"))
    }

    func testOriginSyntaxAndEmptyList() {
        XCTAssertEqual(
            errors(Self.minimal + "\ncors:\n  allowed_origins: [\"https://a.example/\", app.example]"),
            [
                "gw.yml:6:21: cors.allowed_origins[0]: "
                    + "an origin has no path, query or trailing '/': write 'https://host[:port]'",
                "gw.yml:6:43: cors.allowed_origins[1]: 'app.example' is not a URL (expected http://host[:port][/path])",
            ]
        )
        assertOnlyError(
            Self.minimal + "\ncors:\n  allowed_origins: []",
            "gw.yml:6:20: cors.allowed_origins: must not be empty"
        )
    }

    // MARK: YAML-level problems

    func testYAMLSyntaxErrorPosition() {
        let rendered = errors("routes:\n  - name: a\n    path_prefix: [/a/\n")
        XCTAssertEqual(rendered.count, 1)
        XCTAssertTrue(rendered[0].hasPrefix("gw.yml:4:1: YAML syntax error: "), rendered[0])
    }

    func testControlCharacterIsReportedWhereItIs() {
        // Found by Fuzz/FuzzConfiguration: libyaml's reader errors carried no line (`gw.yml: unreadable YAML: ...`).
        XCTAssertEqual(errors("routes:\n  - name: a\u{01}\n"), ["gw.yml:2:12: unreadable YAML: control characters are not allowed"])
        XCTAssertEqual(errors("\u{0}"), ["gw.yml:1:1: unreadable YAML: control characters are not allowed"])
        // Lines counted as libyaml counts them in every other error: CR alone and CRLF end a line too.
        XCTAssertEqual(errors("routes: []\r  \r\n\u{7}"), ["gw.yml:3:1: unreadable YAML: control characters are not allowed"])
    }

    func testDuplicateMappingKeyIsReportedAtTheRepeat() {
        let yaml = Self.minimal + "\n    name: b"
        assertOnlyError(yaml, "gw.yml:5:5: routes[0].name: duplicate key 'name' (first written on line 2)")
        let top = "listen: 127.0.0.1:1\n" + Self.minimal + "\nlisten: 127.0.0.1:2\nlimits: {max_connections: 0}"
        XCTAssertEqual(
            errors(top),
            [
                "gw.yml:6:1: listen: duplicate key 'listen' (first written on line 1)",
                "gw.yml:7:27: limits.max_connections: must be at least 1, got 0",
            ]
        )
    }

    func testDuplicateKeyInAFlowMappingIsReportedAtTheFirstOccurrence() {
        // Only block mappings can be re-read past a repeated key; a flow mapping falls back to Yams' position.
        let yaml = Self.minimal + "\n    timeouts: {connect: 1s, connect: 2s}"
        assertOnlyError(yaml, "gw.yml:5:16: duplicate key 'connect'")
    }

    func testErrorsRenderOnePerLine() throws {
        try write("routes: []\nlisten: x\n", to: "bad.yml")
        XCTAssertThrowsError(try GatewayConfiguration.load(path: "\(directory)/bad.yml", environment: [:])) { error in
            XCTAssertEqual(
                (error as? ConfigurationErrors)?.description,
                """
                \(directory)/bad.yml:1:9: routes: at least one route is required
                \(directory)/bad.yml:2:9: listen: missing port (expected host:port)
                """
            )
        }
    }

    func testMultipleErrorsAreReportedTogetherInFileOrder() {
        let yaml = """
            listen: nowhere
            routes:
              - name: a
                path_prefix: /a/
                upstream: ftp://x
                heartbeat: soon
            limits:
              max_header_bytes: 16KB
            drain: {grace: forever}
            """
        XCTAssertEqual(
            errors(yaml),
            [
                "gw.yml:1:9: listen: missing port (expected host:port)",
                "gw.yml:5:15: routes[0].upstream: unsupported scheme 'ftp' (expected http or https)",
                "gw.yml:6:16: routes[0].heartbeat: expected a duration such as 250ms, 30s, 5m or 1h, got 'soon'",
                "gw.yml:8:21: limits.max_header_bytes: "
                    + "expected a byte size such as 512, 16KiB or 1MiB (KB/MB are ambiguous), got '16KB'",
                "gw.yml:9:16: drain.grace: expected a duration such as 250ms, 30s, 5m or 1h, got 'forever'",
            ]
        )
    }

    func testListenerTLS() {
        XCTAssertEqual(
            errors(Self.minimal + "\ntls:\n  certificate: certs/none.crt\n  min_version: \"1.1\""),
            [
                "gw.yml:6:3: tls.private_key: required key is missing",
                "gw.yml:6:16: tls.certificate: file '\(directory)/certs/none.crt' does not exist",
                "gw.yml:7:16: tls.min_version: expected '1.2' or '1.3', got '1.1'",
            ]
        )
    }

    // MARK: Files

    func testMissingFile() {
        XCTAssertThrowsError(try GatewayConfiguration.load(path: "\(directory)/absent.yml")) { error in
            XCTAssertEqual(
                (error as? ConfigurationErrors)?.description,
                "\(directory)/absent.yml: configuration file does not exist"
            )
        }
    }

    func testLoadResolvesRelativePathsAgainstTheFileFolder() throws {
        try FileManager.default.createDirectory(atPath: "\(directory)/conf", withIntermediateDirectories: true)
        try write(policyYAML("      algorithms: [EdDSA]\n      public_keys: [../keys/issuer.pem]"), to: "conf/gw.yml")
        let loaded = try GatewayConfiguration.load(path: "\(directory)/conf/gw.yml", environment: [:])
        XCTAssertEqual(
            loaded.configuration.authPolicies["users"]?.jwt?.publicKeyPaths,
            ["\(directory)/keys/issuer.pem"]
        )
    }

    // MARK: Value syntax tables

    func testDurations() {
        let table: [(String, Duration?)] = [
            ("250ms", .milliseconds(250)), ("30s", .seconds(30)), ("5m", .seconds(300)), ("1h", .seconds(3600)),
            ("0s", .zero), ("0", .zero), ("1m30s", .seconds(90)), ("1h0m5s", .seconds(3605)), ("2d", .seconds(172_800)),
            ("10us", .microseconds(10)), ("7ns", .nanoseconds(7)),
            ("", nil), ("30", nil), ("s", nil), ("1.5s", nil), ("-1s", nil), ("1 s", nil), ("5x", nil), ("1m30", nil),
            ("99999999999999999999h", nil), ("9999999999h", nil),
        ]
        for (text, expected) in table {
            XCTAssertEqual(DurationParser.parse(text), expected, "'\(text)'")
        }
    }

    func testByteSizes() {
        let table: [(String, Int?)] = [
            ("512", 512), ("512B", 512), ("16KiB", 16_384), ("64KiB", 65_536), ("1MiB", 1_048_576),
            ("2GiB", 2_147_483_648), ("16 KiB", 16_384), ("0", 0),
            ("16KB", nil), ("1MB", nil), ("16kib", nil), ("", nil), ("KiB", nil), ("-1", nil), ("1.5KiB", nil),
            ("99999999999999999999", nil), ("9999999999999999GiB", nil),
        ]
        for (text, expected) in table {
            XCTAssertEqual(ByteSizeParser.parse(text), expected, "'\(text)'")
        }
    }

    func testTypoSuggestions() {
        XCTAssertEqual(ConfigurationReader.closest(to: "upstram", in: ["upstream", "name"]), "upstream")
        XCTAssertEqual(ConfigurationReader.closest(to: "Path_Prefix", in: ["path_prefix"]), "path_prefix")
        XCTAssertNil(ConfigurationReader.closest(to: "colour", in: ["listen", "routes"]))
    }
}
