import AsyncHTTPClient
import Crypto
import Foundation
import GatewayCore
import GatewayServer
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

/// A JWKS endpoint on 127.0.0.1:0 whose document the test can swap.
private final class JWKSEndpoint: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let document: NIOLockedValueBox<String>
    let requests = NIOLockedValueBox(0)

    init(document: NIOLockedValueBox<String>) { self.document = document }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        requests.withLockedValue { $0 += 1 }
        let body = document.withLockedValue { $0 }
        var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "\(body.utf8.count)")])
        headers.add(name: "Connection", value: "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
            promise: nil
        )
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
    }
}

/// Serves `endpoint` on 127.0.0.1:0 and runs `body` with its listener and an HTTP client; closes the listener (if
/// `body` did not) and shuts the client down however `body` ends.
private func withJWKSServer<Value>(
    _ endpoint: JWKSEndpoint,
    group: any EventLoopGroup,
    _ body: (_ server: any Channel, HTTPClient) async throws -> Value
) async throws -> Value {
    let server = try await ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture(withResultOf: {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandler(endpoint)
            })
        }
        .bind(host: "127.0.0.1", port: 0).get()
    let client = HTTPClient(eventLoopGroupProvider: .shared(group))
    return try await withCleanup({
        try? await server.close()
        try? await client.shutdown()
    }) {
        try await body(server, client)
    }
}

final class JWKSFetcherTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    static func base64url(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func jwks(_ keys: [(String, P256.Signing.PrivateKey)]) -> String {
        let entries = keys.map { kid, key in
            let point = Array(key.publicKey.x963Representation)
            return
                #"{"kty":"EC","crv":"P-256","kid":"\#(kid)","#
                    + #""x":"\#(base64url(point[1..<33]))","y":"\#(base64url(point[33..<65]))"}"#
        }
        return #"{"keys":[\#(entries.joined(separator: ","))]}"#
    }

    static func token(kid: String, key: P256.Signing.PrivateKey, exp: Double) throws -> String {
        let input =
            base64url(Array(#"{"alg":"ES256","kid":"\#(kid)"}"#.utf8)) + "."
            + base64url(Array(#"{"sub":"user","exp":\#(Int(exp))}"#.utf8))
        let signature = try key.signature(for: SHA256.hash(data: Array(input.utf8)))
        return input + "." + base64url(signature.rawRepresentation)
    }

    func testFetchRotateAndKeepCachedKeysWhenEndpointGoesDown() async throws {
        let k1 = P256.Signing.PrivateKey()
        let k2 = P256.Signing.PrivateKey()
        let document = NIOLockedValueBox(Self.jwks([("k1", k1)]))
        try await withJWKSServer(JWKSEndpoint(document: document), group: group) { server, client in
            let port = try XCTUnwrap(server.localAddress?.port)
            let now = NIOLockedValueBox(1_800_000_000.0)
            let store = JWKSKeyStore(
                allowedAlgorithms: [.es256],
                policy: JWKSRefreshPolicy(refreshInterval: 300, unknownKeyInterval: 30)
            )
            let fetcher = JWKSFetcher(
                url: "http://127.0.0.1:\(port)/.well-known/jwks.json",
                store: store,
                client: client,
                timeout: .seconds(2),
                now: { now.withLockedValue { $0 } }
            )
            let auth = try RouteAuthenticator(
                name: "users",
                policy: AuthPolicyConfiguration(
                    jwt: JWTConfiguration(algorithms: [.es256], jwksURL: "http://127.0.0.1:\(port)/")
                ),
                jwks: store
            )
            func bearer(_ token: String) -> AuthOutcome {
                auth.authenticate(
                    query: nil as String?,
                    headers: HTTPHeaders([("Authorization", "Bearer \(token)")]),
                    now: now.withLockedValue { $0 }
                )
            }

            // Start-up fetch.
            let fetched = await fetcher.refresh()
            XCTAssertTrue(fetched)
            XCTAssertEqual(store.keyIDs, ["k1"])
            let t1 = try Self.token(kid: "k1", key: k1, exp: 1_800_000_600)
            guard case .authenticated = bearer(t1) else { return XCTFail("k1 token should verify") }

            // Rotation: the issuer publishes k2; a k2 token triggers a refresh, after which it verifies.
            document.withLockedValue { $0 = Self.jwks([("k1", k1), ("k2", k2)]) }
            let t2 = try Self.token(kid: "k2", key: k2, exp: 1_800_000_600)
            guard case .needsKeyRefresh(let kid) = bearer(t2) else { return XCTFail("expected needsKeyRefresh") }
            let refreshed = await fetcher.refresh(forUnknownKid: kid)
            XCTAssertTrue(refreshed)
            XCTAssertEqual(store.keyIDs, ["k1", "k2"])
            guard case .authenticated = bearer(t2) else { return XCTFail("k2 token should verify after refresh") }

            // Concurrent refreshes are coalesced or sequential, never lost.
            async let r1 = fetcher.refresh()
            async let r2 = fetcher.refresh()
            let both = await [r1, r2]
            XCTAssertEqual(both, [true, true])
            XCTAssertEqual(fetcher.failureCount, 0)

            // The endpoint goes down: the fetch fails, is counted, and cached keys survive.
            try await server.close()
            now.withLockedValue { $0 += 400 }
            let failed = await fetcher.refresh()
            XCTAssertFalse(failed)
            XCTAssertEqual(fetcher.failureCount, 1)
            XCTAssertEqual(store.keyIDs, ["k1", "k2"])
            let t3 = try Self.token(kid: "k2", key: k2, exp: 1_800_001_000)
            guard case .authenticated = bearer(t3) else { return XCTFail("cached k2 must still verify") }
            XCTAssertEqual(store.refreshPolicy.lastFailure, 1_800_000_400)
            XCTAssertLessThanOrEqual(store.secondsUntilRefresh(now: 1_800_000_400), 15, "retry soon after a failure")
        }
    }

    func testRunFetchesAtStartUpAndStopsWhenCancelled() async throws {
        let document = NIOLockedValueBox(Self.jwks([("k1", P256.Signing.PrivateKey())]))
        let endpoint = JWKSEndpoint(document: document)
        try await withJWKSServer(endpoint, group: group) { server, client in
            let store = JWKSKeyStore(allowedAlgorithms: [.es256], policy: JWKSRefreshPolicy(refreshInterval: 300))
            let fetcher = JWKSFetcher(
                url: "http://127.0.0.1:\(server.localAddress!.port!)/", store: store, client: client
            )
            let task = Task { try await fetcher.run() }
            defer { task.cancel() }
            for _ in 0..<200 where store.keyIDs.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
            XCTAssertEqual(store.keyIDs, ["k1"])
            task.cancel()
            try await task.value
            XCTAssertEqual(endpoint.requests.withLockedValue { $0 }, 1)
        }
    }
}
