import Foundation
import GatewayCore
import GatewayServer
import JWTKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

private struct SharedBrowserClaims: JWTPayload {
    var sub: String
    var exp: Int

    func verify(using algorithm: some JWTKit.JWTAlgorithm) async throws {}
}

/// A real Chromium: two pages (iframes, each its own document and `EventSource`) on one shared stream.
final class SharedStreamBrowserTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton
    static let secret = "shared-browser-secret-0123456789abcdef0123456789"

    private static func mint(_ subject: String, lifetime: TimeInterval) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256)
        let exp = Int((Date().timeIntervalSince1970 + lifetime).rounded(.up))
        return try await keys.sign(SharedBrowserClaims(sub: subject, exp: exp))
    }

    /// `id: N / data: eN` every 200 ms from the upstream's one (shared) response.
    private static let counting: TestUpstream.Handler = { _, responder in
        responder.sseHead()
        let next = NIOLockedValueBoxInt()
        let channel = responder.channel
        let task = channel.eventLoop.scheduleRepeatedTask(initialDelay: .nanoseconds(0), delay: .milliseconds(200)) { task in
            let id = next.increment()
            guard id <= 200 else { return task.cancel() }
            responder.body("id: \(id)\ndata: e\(id)\n\n")
        }
        channel.closeFuture.whenComplete { _ in task.cancel() }
    }

    /// Page A carries a token (in a cookie) that expires after about 3 s: the gateway ends its stream with
    /// `token_expired` and `retry: 2000`, the page puts a fresh token in the cookie, and `EventSource` reconnects by
    /// itself with `Last-Event-ID`, which the shared stream's ring answers (about ten events came meanwhile). Page B
    /// (a query token) never notices. Both get every event once, in order, from one upstream request.
    func testTwoPagesShareOneStreamAndOneReconnectsFromTheRing() async throws {
        try XCTSkipIf(Chromium.executable == nil, "chromium is not installed (apt-get install -y chromium)")
        let frame = { (name: String, source: String) in
            """
            <script>
            const seen = []; let expiries = 0, done = false;
            const source = \(source);
            const report = (why) => { if (done) return; done = true; source.close();
              parent.postMessage({name: "\(name)", why, seen, expiries}, "*"); };
            source.onmessage = (event) => {
              seen.push(Number(event.lastEventId));
              if (Number(event.lastEventId) >= 35) report("35 events");
            };
            source.addEventListener("token_expired", () => {
              expiries += 1;
              document.cookie = "sse_token=" + parent.params.get("fresh") + "; path=/";
            });
            </script>
            """
        }
        let frameA = frame("a", "new EventSource(parent.gateway + \"/events/feed\", {withCredentials: true})")
        let frameB = frame("b", "new EventSource(parent.gateway + \"/events/feed?access_token=\" + parent.params.get(\"fresh\"))")
        func srcdoc(_ html: String) -> String {
            html.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        let html = """
            <!doctype html><meta charset="utf-8"><title>shared stream</title>
            <script>
            var params = new URLSearchParams(location.search);
            var gateway = "http://127.0.0.1:" + params.get("gateway");
            document.cookie = "sse_token=" + params.get("short") + "; path=/";
            const reports = {};
            window.addEventListener("message", (event) => {
              reports[event.data.name] = event.data;
              if (reports.a && reports.b) fetch("/report", {method: "POST", body: JSON.stringify(reports)});
            });
            setTimeout(() => fetch("/report", {method: "POST", body: JSON.stringify({timeout: true, reports})}), 25000);
            </script>
            <iframe srcdoc="\(srcdoc(frameA))"></iframe>
            <iframe srcdoc="\(srcdoc(frameB))"></iframe>
            """
        let short = try await Self.mint("page-a", lifetime: 3)
        let fresh = try await Self.mint("page-b", lifetime: 600)
        let policy = AuthPolicyConfiguration(
            tokenSources: [.query("access_token"), .cookie("sse_token")],
            jwt: JWTConfiguration(algorithms: [.hs256], secret: Self.secret, requiredClaims: ["sub"])
        )
        try await withUpstream(group: group, handler: Self.counting) { upstream in
            try await withPageServer(group: group, html: html) { page in
                try await withGateway(
                    routes: [
                        route(upstream: upstream) {
                            $0.auth = "browser"
                            $0.share = ShareConfiguration()
                        }
                    ],
                    configure: {
                        $0.authPolicies = ["browser": policy]
                        $0.cors = CORSConfiguration(
                            allowedOrigins: ["http://127.0.0.1:\(page.port)"], allowCredentials: true
                        )
                    },
                    group: group
                ) { gateway in
                    let query = "?gateway=\(gateway.port)&short=\(short)&fresh=\(fresh)"
                    let report = try await withChromium(url: page.url + query) { browser in
                        try await page.waitForReport(timeout: .seconds(45), browser: browser)
                    }
                    let a = try XCTUnwrap(report["a"] as? [String: Any], "\(report)")
                    let b = try XCTUnwrap(report["b"] as? [String: Any], "\(report)")
                    for page in [a, b] {
                        XCTAssertEqual(page["why"] as? String, "35 events", "\(page)")
                        let seen = try XCTUnwrap(page["seen"] as? [Int])
                        XCTAssertEqual(seen, Array((seen.first ?? 1)...35), "every id once, in order: \(seen)")
                        XCTAssertLessThanOrEqual(seen.first ?? 99, 2, "both pages joined at the start")
                    }
                    XCTAssertEqual(a["expiries"] as? Int, 1, "\(a)")
                    XCTAssertEqual(b["expiries"] as? Int, 0, "\(b)")
                    XCTAssertEqual(upstream.requests.count, 1, "one upstream request for both pages and the reconnect")
                    let metrics = OperationsIntegrationTests.samples(gateway.gateway.metricsExposition())
                    XCTAssertEqual(metrics[#"sse_gateway_shared_joins_total{route="events",result="replayed"}"#], 1)
                    XCTAssertEqual(metrics[#"sse_gateway_streams_ended_total{route="events",outcome="token_expired"}"#], 1)
                }
            }
        }
    }
}

/// A counter shared with the upstream's timer.
private final class NIOLockedValueBoxInt: Sendable {
    private let value = NIOLockedValueBox(0)

    func increment() -> Int {
        value.withLockedValue {
            $0 += 1
            return $0
        }
    }
}
