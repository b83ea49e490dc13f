import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The sample streaming API that `sse-gateway demo` puts behind the gateway.
///
/// - `GET /events/clock`: an endless SSE stream, one `tick` a second, with `id:` so a reconnect with `Last-Event-ID`
///   resumes where it left off.
/// - `POST /v1/chat/completions`: a chat-style answer streamed token by token as SSE, ending with `data: [DONE]`,
///   the way LLM APIs stream.
/// - `GET /`: a page that shows both arriving through `EventSource` and `fetch`, and eight more clock streams at once
///   (opened by itself over https, where HTTP/2 lets all of them tick on one connection).
/// It echoes the `Authorization` header's presence (never its value) so the demo shows what the upstream received.
public enum DemoUpstream {
    public static func start(host: String, port: Int, group: any EventLoopGroup) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(DemoUpstreamHandler())
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}

private final class DemoUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var head: HTTPRequestHead?
    private var body = ""
    private var timer: Scheduled<Void>?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = ""
        case .body(let buffer):
            if body.utf8.count < 64 * 1024 { body += String(buffer: buffer) }
        case .end:
            guard let head else { return }
            respond(to: head, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
        let authorized = head.headers["authorization"].first.map { _ in "yes" } ?? "no"
        switch (head.method, path) {
        case (.GET, "/events/clock"):
            let start = Int(head.headers["last-event-id"].first ?? "") ?? 0
            startEventStream(context: context)
            var n = start
            let user = head.headers["x-user-id"].first ?? "anonymous"
            every(.seconds(1), context: context) { handler in
                n += 1
                let time = ISO8601DateFormatter().string(from: Date())
                let event = "id: \(n)\nevent: tick\ndata: {\"n\":\(n),\"time\":\"\(time)\",\"user\":\"\(user)\","
                    + "\"upstream_saw_authorization\":\"\(authorized)\"}\n\n"
                context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: event)))), promise: nil)
                return true
            }
        case (.POST, "/v1/chat/completions"):
            startEventStream(context: context)
            let answer =
                "Server-sent events keep one HTTP response open and push each token as it is generated. "
                + "sse-gateway checks your token first, then relays every event the moment it arrives."
            var tokens = answer.split(separator: " ").map { String($0) + " " }[...]
            every(.milliseconds(80), context: context) { handler in
                if let token = tokens.popFirst() {
                    let escaped = token.replacingOccurrences(of: "\"", with: "\\\"")
                    let event = "data: {\"token\":\"\(escaped)\"}\n\n"
                    context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: event)))), promise: nil)
                    return true
                }
                context.write(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "data: [DONE]\n\n")))), promise: nil)
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
                return false
            }
        case (.GET, "/"), (.GET, "/index.html"):
            send(status: .ok, contentType: "text/html; charset=utf-8", body: DemoPage.html, context: context)
        default:
            send(status: .notFound, contentType: "application/json", body: "{\"error\":\"not_found\"}", context: context)
        }
    }

    /// Runs `tick` now and then every `interval` on the channel's loop while it returns `true`.
    private func every(
        _ interval: TimeAmount,
        context: ChannelHandlerContext,
        _ tick: @escaping (DemoUpstreamHandler) -> Bool
    ) {
        guard tick(self) else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: interval) { [weak self] in
            self?.every(interval, context: context, tick)
        }
    }

    private func startEventStream(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/event-stream")
        headers.add(name: "cache-control", value: "no-cache")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
    }

    private func send(status: HTTPResponseStatus, contentType: String, body: String, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.utf8.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// The demo page: an `EventSource` on the clock, a streamed chat answer and eight parallel clocks, through the gateway.
enum DemoPage {
    static let html = """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>sse-gateway demo</title>
        <style>body{font:15px system-ui;margin:2em;max-width:50em}pre{background:#f4f4f4;padding:1em;height:14em;
        overflow:auto}button{font-size:1em}#many span{display:inline-block;width:11em;margin:.3em;padding:.4em;
        background:#eef}</style></head>
        <body>
        <h1>sse-gateway demo</h1>
        <p>A plain <code>EventSource</code> (no custom headers) through the gateway. The page first mints a stream
        ticket (<code>POST /_sse/ticket</code> with <code>Authorization: Bearer …</code>), so the stream's URL
        carries a short-lived ticket, not the token (without tickets configured, the token travels in the URL); the
        gateway checks it, strips it, and the upstream receives <code>Authorization: Bearer …</code>.</p>
        <h2>Clock stream <small id="state">connecting…</small></h2>
        <pre id="clock"></pre>
        <h2>Chat completion (POST answered with SSE)</h2>
        <button id="ask">Stream an answer</button>
        <pre id="chat"></pre>
        <h2>Many streams</h2>
        <p>Eight more <code>EventSource</code>s on the clock at once, each with its own count. Over HTTP/2
        (<code>sse-gateway demo --tls</code>) they share one connection and all tick; over HTTP/1.1 a browser opens
        at most six connections per host, so the rest wait.</p>
        <button id="many-open">Open 8 streams</button>
        <div id="many"></div>
        <script>
        const token = new URLSearchParams(location.search).get("access_token");
        const q = token ? "?access_token=" + encodeURIComponent(token) : "";
        // A stream ticket for `path` when the gateway mints them, else the token in the query.
        const streamURL = async (path) => {
          if (!token) return path;
          const minted = await fetch("/_sse/ticket", {method: "POST",
            headers: {"authorization": "Bearer " + token, "content-type": "application/json"},
            body: JSON.stringify({url: path})});
          return minted.status === 201 ? (await minted.json()).url : path + q;
        };
        const clock = document.getElementById("clock"), state = document.getElementById("state");
        (async () => {
        const es = new EventSource(await streamURL("/events/clock"));
        es.onopen = () => state.textContent = "open";
        es.onerror = () => state.textContent = "reconnecting…";
        es.addEventListener("tick", e => { clock.textContent = e.data + "\\n" + clock.textContent; });
        es.addEventListener("token_expired", () => state.textContent = "token expired: reload the page for a new one");
        })();
        const openMany = async () => {
          document.getElementById("many-open").disabled = true;
          for (let i = 1; i <= 8; i++) {
            const cell = document.createElement("span");
            cell.textContent = "#" + i + ": connecting…";
            document.getElementById("many").appendChild(cell);
            let count = 0;
            const source = new EventSource(await streamURL("/events/clock"));
            source.addEventListener("tick", () => {
              count += 1;
              cell.textContent = "#" + i + ": " + count + " ticks";
            });
            source.onerror = () => cell.textContent = "#" + i + ": reconnecting…";
          }
        };
        document.getElementById("many-open").onclick = openMany;
        if (location.protocol === "https:") openMany();
        document.getElementById("ask").onclick = async () => {
          const chat = document.getElementById("chat"); chat.textContent = "";
          const res = await fetch("/v1/chat/completions" + q, {method: "POST",
            headers: {"content-type": "application/json"}, body: JSON.stringify({prompt: "What is SSE?"})});
          const reader = res.body.getReader(), decoder = new TextDecoder();
          for (;;) { const {done, value} = await reader.read(); if (done) break;
            for (const line of decoder.decode(value).split("\\n")) {
              if (line.startsWith("data: {")) chat.textContent += JSON.parse(line.slice(6)).token; } }
        };
        </script>
        </body></html>
        """
}
