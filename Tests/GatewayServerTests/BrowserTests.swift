import Foundation
import GatewayCore
import GatewayServer
import JWTKit
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

/// Claims of the tokens these tests mint with jwt-kit (HS256, the `browser` policy's audience).
private struct BrowserClaims: JWTPayload {
    var sub = "browser-user"
    /// Whole seconds, as every token the gateway's own tools mint.
    var exp: Int
    var aud = "events"

    func verify(using algorithm: some JWTKit.JWTAlgorithm) async throws {}
}

/// A real Chromium (headless) opens a page from another origin whose `EventSource`s go through the gateway.
///
/// The page reports what it saw to its own server (`PageServer`); no WebDriver. Skipped when `chromium` is not
/// installed. Every wait is bounded: a hung browser fails the test, and the browser is always killed.
///
/// Token cases mint real HS256 tokens; pages that need the gateway's port or a token read them from their own URL
/// (`?gateway=PORT&token=...`), because the gateway's CORS configuration needs the page's origin first.
final class BrowserTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton
    static let secret = "browser-test-secret-0123456789abcdef0123456789"

    private static func mint(lifetime: TimeInterval = 600) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256)
        return try await keys.sign(BrowserClaims(exp: Int((Date().timeIntervalSince1970 + lifetime).rounded(.up))))
    }

    /// Runs `body` with a gateway whose `/events/` route needs the `browser` policy (query, then cookie), plus
    /// optional CORS.
    private func withBrowserGateway<Value>(
        _ upstream: TestUpstream,
        cors: CORSConfiguration? = nil,
        log: CapturedLog? = nil,
        _ body: (GatewayHarness) async throws -> Value
    ) async throws -> Value {
        let policy = AuthPolicyConfiguration(
            tokenSources: [.query("access_token"), .cookie("sse_token")],
            jwt: JWTConfiguration(
                algorithms: [.hs256],
                secret: Self.secret,
                audience: "events",
                requiredClaims: ["sub"]
            )
        )
        return try await withGateway(
            routes: [route(upstream: upstream) { $0.auth = "browser" }],
            configure: {
                $0.authPolicies = ["browser": policy]
                $0.cors = cors
            },
            group: group,
            logger: log?.logger ?? GatewayHarness.silent,
            body
        )
    }

    /// An upstream that streams `id: N / data: eN` every 200 ms, starting after `?last_event_id=` (or
    /// `Last-Event-ID`), up to id 100; `extraHeaders` go into its response head.
    private static func counting(_ extraHeaders: [(String, String)] = []) -> TestUpstream.Handler {
        { request, responder in
            let query = URLComponents(string: request.head.uri)?.queryItems ?? []
            let resume =
                query.first { $0.name == "last_event_id" }?.value ?? request.head.headers["last-event-id"].first
            let next = NIOLockedValueBox(Int(resume ?? "") ?? 0)
            responder.sseHead(extraHeaders)
            let channel = responder.channel
            let every = TimeAmount.milliseconds(200)
            let task = channel.eventLoop.scheduleRepeatedTask(initialDelay: .nanoseconds(0), delay: every) { task in
                let id = next.withLockedValue { value in
                    value += 1
                    return value
                }
                guard id <= 100 else { return task.cancel() }
                responder.body("id: \(id)\ndata: e\(id)\n\n")
            }
            channel.closeFuture.whenComplete { _ in task.cancel() }
        }
    }

    /// Opens `page` (its URL followed by `query`) in Chromium and waits up to 40 s for the page's report; the browser
    /// is killed once it reported, or when the wait failed.
    private func browse(
        _ page: PageServer,
        query: String = "",
        ignoreCertificateErrors: Bool = false,
        timeout: Duration = .seconds(40)
    ) async throws -> [String: Any] {
        try await withChromium(url: page.url + query, ignoreCertificateErrors: ignoreCertificateErrors) { browser in
            try await page.waitForReport(timeout: timeout, browser: browser)
        }
    }

    /// Case 1: `?access_token=` from a page on another origin; the upstream sees `Authorization: Bearer` and the
    /// token appears in no upstream URL and no log line.
    func testQueryTokenFromAnotherOrigin() async throws {
        try XCTSkipIf(Chromium.executable == nil, "chromium is not installed (apt-get install -y chromium)")
        let html = """
            <!doctype html><meta charset="utf-8"><title>query token</title>
            <script>
            const params = new URLSearchParams(location.search);
            const seen = [];
            let done = false;
            const report = (why) => {
              if (done) return;
              done = true;
              fetch("/report", {method: "POST", body: JSON.stringify({why, seen})});
            };
            const source = new EventSource("http://127.0.0.1:" + params.get("gateway") + "/events/feed?access_token="
              + encodeURIComponent(params.get("token")));
            source.onmessage = (event) => {
              seen.push(event.lastEventId + ":" + event.data);
              if (seen.length === 3) { source.close(); report("three events"); }
            };
            source.onerror = () => { if (source.readyState === EventSource.CLOSED) report("closed"); };
            setTimeout(() => report("timeout"), 15000);
            </script>
            """
        let log = CapturedLog()
        let token = try await Self.mint()
        let handler = Self.counting([("access-control-allow-origin", "*")])
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withBrowserGateway(upstream, log: log) { gateway in
                let report = try await withPageServer(group: group, html: html) { page in
                    try await browse(page, query: "?gateway=\(gateway.port)&token=\(token)")
                }

                XCTAssertEqual(report["why"] as? String, "three events", "\(report)")
                XCTAssertEqual(report["seen"] as? [String], ["1:e1", "2:e2", "3:e3"])
                let seen = try XCTUnwrap(upstream.requests.first)
                XCTAssertEqual(seen.head.uri, "/events/feed", "the token is stripped from the forwarded URL")
                XCTAssertEqual(seen.head.headers["authorization"], ["Bearer \(token)"])
                XCTAssertEqual(seen.head.headers["accept"].first, "text/event-stream", "a real EventSource request")
                await gateway.stop()
                let signature = String(token.split(separator: ".")[2])
                XCTAssertTrue(log.text.contains("access_token=REDACTED"), log.text)
                XCTAssertFalse(log.text.contains(signature), "no token in any log line")
            }
        }
    }

    /// Case 2: a cookie token sent cross-origin by `EventSource(url, {withCredentials: true})`. Page and gateway share
    /// the host 127.0.0.1 (cookies ignore ports) on different ports (different origins), so only the gateway's CORS
    /// answer (exact origin, `Access-Control-Allow-Credentials: true`) lets the page read the stream.
    func testCookieTokenWithCredentialsAcrossOrigins() async throws {
        try XCTSkipIf(Chromium.executable == nil, "chromium is not installed (apt-get install -y chromium)")
        let html = """
            <!doctype html><meta charset="utf-8"><title>cookie token</title>
            <script>
            const params = new URLSearchParams(location.search);
            document.cookie = "sse_token=" + params.get("token") + "; path=/";
            const seen = [];
            let done = false;
            const report = (why) => {
              if (done) return;
              done = true;
              fetch("/report", {method: "POST", body: JSON.stringify({why, seen})});
            };
            const source = new EventSource("http://127.0.0.1:" + params.get("gateway") + "/events/feed",
              {withCredentials: true});
            source.onmessage = (event) => {
              seen.push(event.lastEventId + ":" + event.data);
              if (seen.length === 3) { source.close(); report("three events"); }
            };
            source.onerror = () => { if (source.readyState === EventSource.CLOSED) report("closed"); };
            setTimeout(() => report("timeout"), 15000);
            </script>
            """
        let token = try await Self.mint()
        try await withUpstream(group: group, handler: Self.counting()) { upstream in  // no CORS headers of its own
            try await withPageServer(group: group, html: html) { page in
                let origin = "http://127.0.0.1:\(page.port)"
                try await withBrowserGateway(
                    upstream,
                    cors: CORSConfiguration(allowedOrigins: [origin], allowCredentials: true)
                ) { gateway in
                    let report = try await browse(page, query: "?gateway=\(gateway.port)&token=\(token)")

                    XCTAssertEqual(report["why"] as? String, "three events", "\(report)")
                    XCTAssertEqual(report["seen"] as? [String], ["1:e1", "2:e2", "3:e3"])
                    let seen = try XCTUnwrap(upstream.requests.first)
                    XCTAssertEqual(
                        seen.head.headers["authorization"], ["Bearer \(token)"], "the browser sent the cookie"
                    )
                    XCTAssertFalse(
                        seen.head.headers["cookie"].joined().contains("sse_token"), "the token cookie is stripped"
                    )
                    XCTAssertEqual(seen.head.uri, "/events/feed")

                    // The same request without a browser, to see the CORS headers Chromium relied on.
                    let client = try await gateway.connect(group: group)
                    try await client.get("/events/feed", headers: ["Origin: \(origin)", "Cookie: sse_token=\(token)"])
                    let head = try await client.wait(for: "response head") { $0.contains("\r\n\r\n") }
                    XCTAssertTrue(head.hasPrefix("HTTP/1.1 200 "), head)
                    XCTAssertTrue(head.contains("Access-Control-Allow-Origin: \(origin)\r\n"), head)
                    XCTAssertTrue(head.contains("Access-Control-Allow-Credentials: true\r\n"), head)
                }
            }
        }
    }

    /// Case 3: 2-second tokens. On `token_expired` the page fetches a fresh token from its server and opens a new
    /// `EventSource` with `last_event_id=` the last id it saw; it receives every id exactly once, in order.
    func testExpiredTokenIsRenewedWithoutLosingEvents() async throws {
        try XCTSkipIf(Chromium.executable == nil, "chromium is not installed (apt-get install -y chromium)")
        let html = """
            <!doctype html><meta charset="utf-8"><title>token renewal</title>
            <script>
            const params = new URLSearchParams(location.search);
            const base = "http://127.0.0.1:" + params.get("gateway") + "/events/feed";
            const seen = [];
            let lastId = null, opens = 0, expiries = 0, done = false, source = null;
            const report = (why) => {
              if (done) return;
              done = true;
              if (source) source.close();
              fetch("/report", {method: "POST", body: JSON.stringify({why, seen, opens, expiries})});
            };
            const open = (token) => {
              let url = base + "?access_token=" + encodeURIComponent(token);
              if (lastId !== null) url += "&last_event_id=" + encodeURIComponent(lastId);
              source = new EventSource(url);
              opens += 1;
              source.onmessage = (event) => {
                seen.push(Number(event.lastEventId));
                lastId = event.lastEventId;
                if (seen.length === 25) report("25 events");
              };
              source.addEventListener("token_expired", async () => {
                source.close();
                expiries += 1;
                const response = await fetch("/token");
                open(await response.text());
              });
              source.onerror = () => { if (source.readyState === EventSource.CLOSED) report("closed"); };
            };
            open(params.get("token"));
            setTimeout(() => report("timeout"), 20000);
            </script>
            """
        let first = try await Self.mint(lifetime: 2)
        let minted = NIOLockedValueBox<[String]>([])
        let tokenRoute: PageServer.Routes = { head in
            guard head.method == .GET, head.uri == "/token" else { return nil }
            let token = try await BrowserTests.mint(lifetime: 2)
            minted.withLockedValue { $0.append(token) }
            return PageServer.Response(headers: [("content-type", "text/plain")], body: token)
        }
        let handler = Self.counting([("access-control-allow-origin", "*")])
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withBrowserGateway(upstream) { gateway in
                let report = try await withPageServer(group: group, html: html, routes: tokenRoute) { page in
                    try await browse(page, query: "?gateway=\(gateway.port)&token=\(first)", timeout: .seconds(45))
                }

                XCTAssertEqual(report["why"] as? String, "25 events", "\(report)")
                XCTAssertEqual(report["seen"] as? [Int], Array(1...25), "every id exactly once, in order")
                let expiries = try XCTUnwrap(report["expiries"] as? Int)
                XCTAssertGreaterThanOrEqual(expiries, 1, "25 events at 200 ms outlive a 2 s token")
                XCTAssertEqual(report["opens"] as? Int, expiries + 1)
                let tokens = [first] + minted.withLockedValue { $0 }
                let requests = upstream.requests
                XCTAssertEqual(requests.count, expiries + 1)
                for (index, request) in requests.enumerated() {
                    let expected = index < tokens.count ? ["Bearer \(tokens[index])"] : []
                    XCTAssertEqual(request.head.headers["authorization"], expected)
                    XCTAssertFalse(request.head.uri.contains("access_token"), request.head.uri)
                    XCTAssertEqual(request.head.uri.contains("last_event_id="), index > 0, request.head.uri)
                }
            }
        }
    }

    /// Case 5: a token that is already expired is refused with 401 before the upstream is contacted, and
    /// `EventSource` gives up (readyState CLOSED) instead of retrying, because the 401 carries the CORS headers.
    func testExpiredTokenIsRefusedAndEventSourceStops() async throws {
        try XCTSkipIf(Chromium.executable == nil, "chromium is not installed (apt-get install -y chromium)")
        let html = """
            <!doctype html><meta charset="utf-8"><title>expired token</title>
            <script>
            const params = new URLSearchParams(location.search);
            let messages = 0, errors = 0, done = false;
            const report = (why) => {
              if (done) return;
              done = true;
              fetch("/report", {method: "POST", body: JSON.stringify({why, messages, errors})});
            };
            const source = new EventSource("http://127.0.0.1:" + params.get("gateway") + "/events/feed?access_token="
              + encodeURIComponent(params.get("token")));
            source.onmessage = () => { messages += 1; };
            source.onerror = () => {
              errors += 1;
              if (source.readyState === EventSource.CLOSED) setTimeout(() => report("closed"), 1000);
            };
            setTimeout(() => report("timeout"), 15000);
            </script>
            """
        let expired = try await Self.mint(lifetime: -3600)
        try await withUpstream(group: group, handler: Self.counting()) { upstream in
            try await withPageServer(group: group, html: html) { page in
                // Without CORS on the 401 the browser could not read it: a network error, which EventSource retries.
                try await withBrowserGateway(
                    upstream,
                    cors: CORSConfiguration(allowedOrigins: ["http://127.0.0.1:\(page.port)"])
                ) { gateway in
                    let report = try await browse(page, query: "?gateway=\(gateway.port)&token=\(expired)")

                    XCTAssertEqual(report["why"] as? String, "closed", "\(report)")
                    XCTAssertEqual(report["messages"] as? Int, 0)
                    XCTAssertEqual(report["errors"] as? Int, 1, "no retry loop")
                    XCTAssertEqual(upstream.connectionsAccepted, 0, "the upstream is never contacted")
                }
            }
        }
    }

    /// Case 3: the upstream ends the stream twice; the browser reconnects by itself with `Last-Event-ID`, the
    /// upstream sees it, and the page receives every event exactly once. A final 204 stops the reconnecting.
    func testEventSourceReconnectsWithLastEventID() async throws {
        try XCTSkipIf(Chromium.executable == nil, "chromium is not installed (apt-get install -y chromium)")
        let cors = [("access-control-allow-origin", "*")]
        let upstreamHandler: TestUpstream.Handler = { request, responder in
            switch request.head.headers["last-event-id"].first {
            case nil:
                responder.sseHead(cors)
                responder.body("retry: 100\n\nid: 1\ndata: e1\n\nid: 2\ndata: e2\n\nid: 3\ndata: e3\n\n")
                responder.end()
            case "3":
                responder.sseHead(cors)
                responder.body("id: 4\ndata: e4\n\nid: 5\ndata: e5\n\nid: 6\ndata: e6\n\n")
                responder.end()
            default:
                responder.head(.noContent, cors)
                responder.end()
            }
        }
        try await withUpstream(group: group, handler: upstreamHandler) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], group: group) { gateway in
                let html = """
                    <!doctype html><meta charset="utf-8"><title>reconnect</title>
                    <script>
                    const seen = [];
                    let opens = 0;
                    const source = new EventSource("http://127.0.0.1:\(gateway.port)/events/feed");
                    const report = (why) => fetch("/report", {method: "POST", body: JSON.stringify({why, seen, opens})});
                    source.onopen = () => { opens += 1; };
                    source.onmessage = (event) => seen.push(event.lastEventId + ":" + event.data);
                    source.onerror = () => { if (source.readyState === EventSource.CLOSED) report("closed"); };
                    setTimeout(() => report("timeout"), 15000);
                    </script>
                    """
                let report = try await withPageServer(group: group, html: html) { page in
                    try await browse(page)
                }

                XCTAssertEqual(report["why"] as? String, "closed")
                XCTAssertEqual(report["seen"] as? [String], ["1:e1", "2:e2", "3:e3", "4:e4", "5:e5", "6:e6"])
                XCTAssertEqual(report["opens"] as? Int, 2)
                XCTAssertEqual(upstream.requests.map { $0.head.headers["last-event-id"].first }, [nil, "3", "6"])
            }
        }
    }

    /// Stream tickets: the page mints with `fetch` and an `Authorization` header, opens `EventSource` with the ticket
    /// URL, survives the upstream's close by reconnecting (same URL, `Last-Event-ID`) within the grace, and a copy of
    /// the URL fetched while that stream is live is refused.
    func testStreamTicketMintedByFetchSurvivesAReconnectAndACopyIsRefused() async throws {
        try XCTSkipIf(Chromium.executable == nil, "chromium is not installed (apt-get install -y chromium)")
        let upstreamHandler: TestUpstream.Handler = { request, responder in
            responder.sseHead()
            if request.head.headers["last-event-id"].first == "3" {
                responder.body("id: 4\ndata: e4\n\nid: 5\ndata: e5\n\nid: 6\ndata: e6\n\n")  // and stays open
            } else {
                responder.body("retry: 100\n\nid: 1\ndata: e1\n\nid: 2\ndata: e2\n\nid: 3\ndata: e3\n\n")
                responder.end()
            }
        }
        let html = """
            <!doctype html><meta charset="utf-8"><title>stream ticket</title>
            <script>
            const params = new URLSearchParams(location.search);
            const gateway = "http://127.0.0.1:" + params.get("gateway");
            const seen = [];
            let opens = 0, copied = null, done = false;
            const report = (why) => {
              if (done) return;
              done = true;
              fetch("/report", {method: "POST", body: JSON.stringify({why, seen, opens, copied})});
            };
            (async () => {
              const minted = await fetch(gateway + "/_sse/ticket", {
                method: "POST",
                headers: {"Authorization": "Bearer " + params.get("token"), "Content-Type": "application/json"},
                body: JSON.stringify({url: "/events/feed"}),
              });
              if (minted.status !== 201) return report("mint answered " + minted.status);
              const {url} = await minted.json();
              const source = new EventSource(gateway + url);
              source.onopen = () => { opens += 1; };
              source.onmessage = async (event) => {
                seen.push(event.lastEventId + ":" + event.data);
                if (seen.length === 6) {
                  copied = (await fetch(gateway + url)).status;  // the same ticket elsewhere, while live
                  source.close();
                  report("six events");
                }
              };
              source.onerror = () => { if (source.readyState === EventSource.CLOSED) report("closed"); };
            })();
            setTimeout(() => report("timeout"), 15000);
            </script>
            """
        let token = try await Self.mint()
        try await withUpstream(group: group, handler: upstreamHandler) { upstream in
            try await withPageServer(group: group, html: html) { page in
                let policy = AuthPolicyConfiguration(
                    tokenSources: [.header("Authorization")],
                    jwt: JWTConfiguration(algorithms: [.hs256], secret: Self.secret, audience: "events"),
                    tickets: TicketConfiguration()
                )
                try await withGateway(
                    routes: [route(upstream: upstream) { $0.auth = "browser" }],
                    configure: {
                        $0.authPolicies = ["browser": policy]
                        $0.cors = CORSConfiguration(allowedOrigins: ["http://127.0.0.1:\(page.port)"])
                    },
                    group: group
                ) { gateway in
                    let report = try await browse(page, query: "?gateway=\(gateway.port)&token=\(token)")

                    XCTAssertEqual(report["why"] as? String, "six events", "\(report)")
                    XCTAssertEqual(report["seen"] as? [String], ["1:e1", "2:e2", "3:e3", "4:e4", "5:e5", "6:e6"])
                    XCTAssertEqual(report["opens"] as? Int, 2, "one reconnect with the same ticket")
                    XCTAssertEqual(report["copied"] as? Int, 401, "the copy is refused while the stream is live")
                    let requests = upstream.requests
                    XCTAssertEqual(requests.map { $0.head.headers["last-event-id"].first }, [nil, "3"])
                    for request in requests {
                        XCTAssertEqual(request.head.uri, "/events/feed", "the ticket is stripped")
                        XCTAssertEqual(request.head.headers["authorization"], ["Bearer \(token)"])
                    }
                }
            }
        }
    }

    /// Case 4: over https (a certificate the test made), ten `EventSource`s on one page all receive events. The
    /// upstream sends `ready` only once all ten requests are open at the same time: over HTTP/1.1 Chromium opens
    /// at most six connections per host, so this can only pass over HTTP/2.
    func testTenEventSourcesShareOneHTTP2Connection() async throws {
        try XCTSkipIf(Chromium.executable == nil, "chromium is not installed (apt-get install -y chromium)")
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let open = NIOLockedValueBox<[UpstreamResponder]>([])
        let upstreamHandler: TestUpstream.Handler = { request, responder in
            responder.sseHead([("access-control-allow-origin", "*")])
            responder.body("data: open\n\n")
            let all: [UpstreamResponder]? = open.withLockedValue { list in
                list.append(responder)
                return list.count == 10 ? list : nil
            }
            for waiting in all ?? [] {
                waiting.body("data: ready\n\n")
            }
        }
        try await withUpstream(group: group, handler: upstreamHandler) { upstream in
            try await withGateway(routes: [route(upstream: upstream)], configure: { configuration in
                configuration.tls = ListenerTLSConfiguration(
                    certificatePath: certificates.server.certificatePath,
                    privateKeyPath: certificates.server.privateKeyPath
                )
            }, group: group) { gateway in
                let html = """
                    <!doctype html><meta charset="utf-8"><title>ten streams</title>
                    <script>
                    const opened = new Set(), ready = new Set();
                    let done = false;
                    const report = (why) => {
                      if (done) return;
                      done = true;
                      fetch("/report", {method: "POST", body: JSON.stringify({why, opened: opened.size, ready: ready.size})});
                    };
                    for (let index = 0; index < 10; index++) {
                      const source = new EventSource("https://127.0.0.1:\(gateway.port)/events/s" + index);
                      source.onmessage = (event) => {
                        (event.data === "ready" ? ready : opened).add(index);
                        if (ready.size === 10) report("all ready");
                      };
                    }
                    setTimeout(() => report("timeout"), 15000);
                    </script>
                    """
                let report = try await withPageServer(group: group, html: html) { page in
                    try await browse(page, ignoreCertificateErrors: true)
                }

                XCTAssertEqual(report["why"] as? String, "all ready", "\(report)")
                XCTAssertEqual(report["opened"] as? Int, 10)
                XCTAssertEqual(report["ready"] as? Int, 10)
                XCTAssertEqual(upstream.requests.count, 10)
                XCTAssertTrue(upstream.requests.allSatisfy { $0.head.headers["x-forwarded-proto"] == ["https"] })
            }
        }
    }
}
