import Foundation
import GatewayCore
import GatewayServer
import JWTKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import XCTest

private struct ShareClaims: JWTPayload {
    var sub: String
    var exp: Int

    func verify(using algorithm: some JWTKit.JWTAlgorithm) async throws {}
}

/// The upstream responses a test writes events to: every request gets an event-stream head, and `send` writes to
/// the newest (or every) response.
final class UpstreamFeed: Sendable {
    private let responders = NIOLockedValueBox<[UpstreamResponder]>([])

    var handler: TestUpstream.Handler {
        { [responders] _, responder in
            responder.sseHead([("set-cookie", "upstream=secret"), ("x-upstream", "yes")])
            responders.withLockedValue { $0.append(responder) }
        }
    }

    var count: Int { responders.withLockedValue { $0.count } }
    var latest: UpstreamResponder? { responders.withLockedValue { $0.last } }

    func send(_ text: String) {
        latest?.body(text)
    }

    func sendEvents(_ ids: ClosedRange<Int>, padding: Int = 0) {
        let pad = String(repeating: "p", count: padding)
        send(ids.map { "id: \($0)\ndata: event \($0) \(pad)\n\n" }.joined())
    }
}

/// `routes[].share` end to end: real upstream, real gateway, raw clients on loopback.
final class SharedStreamIntegrationTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton
    static let secret = "share-secret-0123456789abcdef0123456789abcdef"

    private func token(subject: String = "user-1", expiresIn seconds: Int = 600) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256)
        return try await keys.sign(ShareClaims(sub: subject, exp: Int(Date().timeIntervalSince1970) + seconds))
    }

    private static let policy = AuthPolicyConfiguration(
        tokenSources: [.query("access_token"), .header("Authorization")],
        jwt: JWTConfiguration(algorithms: [.hs256], secret: secret, requiredClaims: ["sub"]),
        claimsToHeaders: [ClaimHeaderMapping(claim: "sub", header: "X-User-Id")]
    )

    private func withSharedGateway<Value>(
        _ upstream: TestUpstream,
        share: ShareConfiguration = ShareConfiguration(upstreamHeaders: ["Authorization": "Bearer service"]),
        auth: Bool = false,
        heartbeat: Duration? = nil,
        _ body: (GatewayHarness) async throws -> Value
    ) async throws -> Value {
        try await withGateway(
            routes: [
                route(upstream: upstream) {
                    $0.share = share
                    $0.heartbeat = heartbeat
                    if auth { $0.auth = "users" }
                }
            ],
            configure: { $0.authPolicies = ["users": Self.policy] },
            group: group,
            body
        )
    }

    private func subscribe(_ gateway: GatewayHarness, _ path: String = "/events/prices?x=1", headers: [String] = []) async throws -> RawClient {
        let client = try await gateway.connect(group: group)
        try await client.get(path, headers: headers)
        try await client.wait(for: "the response head") { $0.contains("\r\n\r\n") }
        return client
    }

    private func samples(_ gateway: GatewayHarness) -> [String: Double] {
        OperationsIntegrationTests.samples(gateway.gateway.metricsExposition())
    }

    func testSubscribersShareOneUpstreamRequestAndEachGetsEveryEventInOrder() async throws {
        let feed = UpstreamFeed()
        try await withUpstream(group: group, handler: feed.handler) { upstream in
            try await withSharedGateway(upstream) { gateway in
                var clients: [RawClient] = []
                for i in 0..<5 {
                    clients.append(
                        try await subscribe(gateway, headers: ["Cookie: session=client\(i)", "Last-Event-ID: "])
                    )
                }
                XCTAssertEqual(upstream.connectionsAccepted, 1)
                XCTAssertEqual(upstream.requests.count, 1)
                let request = try XCTUnwrap(upstream.requests.first).head
                XCTAssertEqual(request.uri, "/events/prices?x=1")
                XCTAssertEqual(request.headers["authorization"], ["Bearer service"], "the service credential, never a client's")
                XCTAssertEqual(request.headers["accept"], ["text/event-stream"])
                XCTAssertTrue(request.headers["cookie"].isEmpty, "no subscriber's cookie goes upstream")
                XCTAssertTrue(request.headers["x-forwarded-for"].isEmpty)
                feed.sendEvents(1...50)
                for client in clients {
                    let progress = try await client.waitForEvents(50)
                    XCTAssertEqual(progress.firstEventID, "1")
                    XCTAssertEqual(progress.lastEventID, "50")
                    XCTAssertNil(progress.firstIDGap, "\(progress)")
                    XCTAssertTrue(client.text.hasPrefix("HTTP/1.1 200 OK"), client.text)
                    XCTAssertTrue(client.text.contains("x-upstream: yes"))
                    XCTAssertFalse(client.text.lowercased().contains("set-cookie"), "one upstream's cookie is nobody's")
                }
                let metrics = samples(gateway)
                XCTAssertEqual(metrics[#"sse_gateway_upstream_connections_total{route="events",kind="shared"}"#], 1)
                XCTAssertEqual(metrics[#"sse_gateway_shared_streams_open{route="events"}"#], 1)
                XCTAssertEqual(metrics[#"sse_gateway_shared_subscribers{route="events"}"#], 5)
                XCTAssertEqual(metrics[#"sse_gateway_shared_joins_total{route="events",result="new"}"#], 1)
                XCTAssertEqual(metrics[#"sse_gateway_shared_joins_total{route="events",result="joined"}"#], 4)
                XCTAssertEqual(metrics[#"sse_gateway_open_streams{route="events"}"#], 5)
            }
        }
    }

    func testDifferentQueriesAndVaryHeadersAreDifferentStreams() async throws {
        let feed = UpstreamFeed()
        try await withUpstream(group: group, handler: feed.handler) { upstream in
            try await withSharedGateway(upstream, share: ShareConfiguration(varyHeaders: ["accept-language"])) { gateway in
                _ = try await subscribe(gateway, "/events/a", headers: ["Accept-Language: fr"])
                _ = try await subscribe(gateway, "/events/a", headers: ["Accept-Language: fr"])
                _ = try await subscribe(gateway, "/events/a", headers: ["Accept-Language: de"])
                _ = try await subscribe(gateway, "/events/b", headers: ["Accept-Language: fr"])
                XCTAssertEqual(upstream.requests.count, 3)
                XCTAssertEqual(
                    Set(upstream.requests.map { "\($0.head.uri) \($0.head.headers["accept-language"])" }),
                    ["/events/a [\"fr\"]", "/events/a [\"de\"]", "/events/b [\"fr\"]"]
                )
            }
        }
    }

    func testAJoinWithLastEventIDReplaysFromTheRingAndAnUnknownOneGetsItsOwnUpstream() async throws {
        let feed = UpstreamFeed()
        try await withUpstream(group: group, handler: feed.handler) { upstream in
            try await withSharedGateway(upstream) { gateway in
                let first = try await subscribe(gateway)
                feed.sendEvents(1...5)
                try await first.waitForEvents(5)
                let resumed = try await subscribe(gateway, headers: ["Last-Event-ID: 2"])
                try await resumed.waitForEvents(3)
                feed.sendEvents(6...6)
                let progress = try await resumed.waitForEvents(4)
                XCTAssertEqual(progress.firstEventID, "3")
                XCTAssertEqual(progress.lastEventID, "6")
                XCTAssertNil(progress.firstIDGap)
                XCTAssertEqual(upstream.connectionsAccepted, 1, "replayed from the ring")
                let lost = try await subscribe(gateway, headers: ["Last-Event-ID: 999"])
                XCTAssertEqual(upstream.requests.count, 2, "an id the ring does not hold asks the upstream")
                XCTAssertEqual(upstream.requests.last?.head.headers["last-event-id"], ["999"])
                XCTAssertTrue(lost.text.hasPrefix("HTTP/1.1 200"), lost.text)
                let metrics = samples(gateway)
                XCTAssertEqual(metrics[#"sse_gateway_shared_joins_total{route="events",result="replayed"}"#], 1)
                XCTAssertEqual(metrics[#"sse_gateway_shared_joins_total{route="events",result="ring_miss"}"#], 1)
                XCTAssertEqual(metrics[#"sse_gateway_upstream_connections_total{route="events",kind="private"}"#], 1)
            }
        }
    }

    /// Joins while events flow: every subscriber gets a gap-free run of ids from where it joined.
    func testJoinsRacingEventsNeverLoseOrRepeatOne() async throws {
        let feed = UpstreamFeed()
        try await withUpstream(group: group, handler: feed.handler) { upstream in
            try await withSharedGateway(upstream) { gateway in
                let first = try await subscribe(gateway)
                let sender = Task {
                    for id in 1...400 {
                        feed.sendEvents(id...id)
                        if id % 20 == 0 { try await Task.sleep(for: .milliseconds(5)) }
                    }
                }
                var joined: [RawClient] = []
                for _ in 0..<20 {
                    joined.append(try await subscribe(gateway))
                }
                try await sender.value
                feed.sendEvents(401...401)  // every subscriber joined before this one
                try await first.waitForEvents(401)
                for client in joined {
                    let progress = try await client.waitForProgress("events up to 401") { $0.lastEventID == "401" }
                    XCTAssertNil(progress.firstIDGap, "\(progress)")
                    XCTAssertEqual(progress.events, 401 - Int(progress.firstEventID!)! + 1, "\(progress)")
                }
            }
        }
    }

    func testEachSubscriberHasItsOwnTokenExpiryAndTheUpstreamNeverSeesEither() async throws {
        let feed = UpstreamFeed()
        try await withUpstream(group: group, handler: feed.handler) { upstream in
            try await withSharedGateway(upstream, auth: true) { gateway in
                let short = try await token(subject: "a", expiresIn: 2)
                let long = try await token(subject: "b", expiresIn: 600)
                let soon = try await subscribe(gateway, "/events/p?access_token=\(short)")
                let later = try await subscribe(gateway, "/events/p?access_token=\(long)")
                XCTAssertEqual(upstream.requests.count, 1)
                let request = try XCTUnwrap(upstream.requests.first).head
                XCTAssertEqual(request.uri, "/events/p", "the token parameter is not part of the shared request")
                XCTAssertEqual(request.headers["authorization"], ["Bearer service"])
                XCTAssertTrue(request.headers["x-user-id"].isEmpty, "no subscriber's claims go upstream with key: route")
                try await soon.wait(for: "token_expired", timeout: .seconds(10)) { $0.contains("event: token_expired") }
                try await soon.waitForEnd()
                feed.sendEvents(1...3)
                let progress = try await later.waitForEvents(3)
                XCTAssertEqual(progress.lastEventID, "3")
                XCTAssertFalse(later.text.contains("token_expired"))
                XCTAssertEqual(upstream.connectionsClosed, 0, "the stream goes on for the other subscriber")
            }
        }
    }

    func testKeySubjectSharesPerSubjectWithThatSubjectsToken() async throws {
        let feed = UpstreamFeed()
        try await withUpstream(group: group, handler: feed.handler) { upstream in
            try await withSharedGateway(upstream, share: ShareConfiguration(key: .subject), auth: true) { gateway in
                let alice1 = try await token(subject: "alice", expiresIn: 300)
                let alice2 = try await token(subject: "alice", expiresIn: 900)
                let bob = try await token(subject: "bob")
                _ = try await subscribe(gateway, "/events/inbox", headers: ["Authorization: Bearer \(alice1)"])
                _ = try await subscribe(gateway, "/events/inbox", headers: ["Authorization: Bearer \(alice2)"])
                _ = try await subscribe(gateway, "/events/inbox", headers: ["Authorization: Bearer \(bob)"])
                XCTAssertEqual(upstream.requests.count, 2, "one upstream per subject")
                let bySubject = Dictionary(
                    uniqueKeysWithValues: upstream.requests.map { ($0.head.headers["x-user-id"].first ?? "-", $0.head) }
                )
                XCTAssertEqual(bySubject["alice"]?.headers["authorization"], ["Bearer \(alice1)"])
                XCTAssertEqual(bySubject["bob"]?.headers["authorization"], ["Bearer \(bob)"])
            }
        }
    }

    /// The upstream dies in the middle of an event: subscribers stay, never see the torn event, and get it whole from
    /// the reconnect (which asks with the last id; what the upstream repeats is dropped).
    func testAnUpstreamKilledMidEventIsReconnectedBehindTheSubscribers() async throws {
        let feed = UpstreamFeed()
        try await withUpstream(group: group, handler: feed.handler) { upstream in
            let share = ShareConfiguration(upstreamGrace: .seconds(10))
            try await withSharedGateway(upstream, share: share, heartbeat: .milliseconds(200)) { gateway in
                let clients = [try await subscribe(gateway), try await subscribe(gateway)]
                feed.send("retry: 100\n\n")
                feed.sendEvents(1...2)
                feed.send("id: 3\ndata: torn")
                for client in clients { try await client.waitForEvents(2) }
                feed.latest?.reset()
                try await eventually("the gateway reconnects", timeout: .seconds(10), read: { feed.count }) { $0 == 2 }
                XCTAssertEqual(upstream.requests.last?.head.headers["last-event-id"], ["2"])
                feed.sendEvents(2...4)
                for client in clients {
                    let progress = try await client.waitForProgress("events up to 4") { $0.lastEventID == "4" }
                    XCTAssertEqual(progress.events, 4, "\(progress)")
                    XCTAssertNil(progress.firstIDGap, "\(progress)")
                    XCTAssertFalse(client.dechunkedBody.contains("torn"))
                    XCTAssertFalse(client.isClosed)
                }
                XCTAssertEqual(samples(gateway)[#"sse_gateway_shared_upstream_reconnects_total{route="events"}"#], 1)
            }
        }
    }

    func testAnUpstreamThatRefusesEndsTheStreamForEverySubscriber() async throws {
        let attempts = NIOLockedValueBox(0)
        let feed = UpstreamFeed()
        let handler: TestUpstream.Handler = { request, responder in
            let attempt = attempts.withLockedValue { $0 += 1; return $0 }
            if attempt == 1 {
                feed.handler(request, responder)
            } else {
                responder.head(.forbidden, [("content-length", "0")])
                responder.end()
            }
        }
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withSharedGateway(upstream) { gateway in
                let client = try await subscribe(gateway)
                feed.sendEvents(1...1)
                try await client.waitForEvents(1)
                feed.latest?.close()
                try await client.waitForEnd(timeout: .seconds(10))
                XCTAssertTrue(client.dechunkedBody.contains("retry: "), client.dechunkedBody)
                let refused = try await subscribe(gateway)
                XCTAssertTrue(refused.text.hasPrefix("HTTP/1.1 502"), refused.text)
            }
        }
    }

    func testTheLastSubscriberLeavingClosesTheUpstreamAfterTheLinger() async throws {
        let feed = UpstreamFeed()
        try await withUpstream(group: group, handler: feed.handler) { upstream in
            let share = ShareConfiguration(linger: .milliseconds(300))
            try await withSharedGateway(upstream, share: share) { gateway in
                let first = try await subscribe(gateway)
                await first.close()
                try await Task.sleep(for: .milliseconds(50))
                let second = try await subscribe(gateway)
                XCTAssertEqual(upstream.connectionsAccepted, 1, "a join within the linger keeps the upstream")
                await second.close()
                try await eventually("the upstream closes", timeout: .seconds(5), read: { upstream.connectionsClosed }) {
                    $0 == 1
                }
                try await eventually("the stream is gone", read: { self.samples(gateway) }) {
                    $0[#"sse_gateway_shared_streams_open{route="events"}"#] == 0
                        && $0[#"sse_gateway_shared_subscribers{route="events"}"#] == 0
                }
            }
        }
    }

    /// A subscriber that stops reading is closed once it is its buffer behind; the others get every event.
    func testASlowSubscriberIsClosedAndNeverSlowsTheOthers() async throws {
        let feed = UpstreamFeed()
        try await withUpstream(group: group, handler: feed.handler) { upstream in
            let share = ShareConfiguration(subscriberBufferBytes: 64 << 10)
            try await withSharedGateway(upstream, share: share) { gateway in
                let stalled = try await gateway.connect(group: group, autoRead: false, receiveBuffer: 4096)
                try await stalled.get("/events/prices?x=1")
                stalled.read()
                var readers: [RawClient] = []
                for _ in 0..<10 { readers.append(try await subscribe(gateway)) }
                // 50 KB at a time, the next only once every reader has the last (however slow the machine, no
                // reader is ever further behind than that), until the stalled one has been closed: its socket and
                // the gateway's write buffer fill, then its 64 KiB.
                let dropped = #"sse_gateway_slow_clients_dropped_total{route="events"}"#
                var sent = 0
                while samples(gateway)[dropped] == 0 {
                    XCTAssertLessThan(sent, 40_000, "40 MB and the stalled subscriber is still open")
                    guard sent < 40_000 else { break }
                    feed.sendEvents((sent + 1)...(sent + 50), padding: 1000)
                    sent += 50
                    for reader in readers {
                        let progress = try await reader.waitForEvents(sent, timeout: .seconds(30))
                        XCTAssertNil(progress.firstIDGap)
                    }
                }
                print("slow subscriber: closed after \(sent) events of 1 KB; \(readers.count) readers got each one")
                XCTAssertTrue(readers.allSatisfy { !$0.isClosed })
                XCTAssertEqual(samples(gateway)[#"sse_gateway_shared_subscribers{route="events"}"#], 10)
                XCTAssertEqual(upstream.connectionsAccepted, 1)
            }
        }
    }

    /// HTTP/2 streams and an HTTP/1.1 connection subscribe to one shared stream over TLS.
    func testHTTP2AndHTTP1SubscribersShareOneUpstream() async throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let feed = UpstreamFeed()
        try await withUpstream(group: group, handler: feed.handler) { upstream in
            let shared = route(upstream: upstream) { $0.share = ShareConfiguration() }
            try await withTLSGateway(routes: [shared], certificates: certificates) { gateway in
                let h2 = try await gateway.connectHTTP2(
                    group: group, tls: NIOSSLContext(configuration: certificates.clientTLS(protocols: ["h2"]))
                )
                defer { Task { await h2.close() } }
                let streams = [try await h2.get("/events/live"), try await h2.get("/events/live")]
                let h1 = try await gateway.connect(
                    group: group, tls: NIOSSLContext(configuration: certificates.clientTLS(protocols: ["http/1.1"]))
                )
                try await h1.get("/events/live")
                try await h1.wait(for: "the response head") { $0.contains("\r\n\r\n") }
                for stream in streams {
                    try await eventually("the h2 head", read: { stream.head }) { $0 != nil }
                }
                feed.sendEvents(1...3)
                for stream in streams {
                    let body = try await stream.wait(for: "three events") { $0.contains("id: 3\n") }
                    XCTAssertEqual(body, (1...3).map { "id: \($0)\ndata: event \($0) \n\n" }.joined())
                    XCTAssertNil(stream.head?.headers.first(name: "set-cookie"))
                }
                let progress = try await h1.waitForEvents(3)
                XCTAssertEqual(progress.lastEventID, "3")
                XCTAssertEqual(upstream.requests.count, 1)
            }
        }
    }
}
