import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

/// Serves one test page on its own origin (`http://127.0.0.1:PORT`) and collects what the page reports back.
///
/// `GET /` answers `html`; `POST /report` records its body (the page's JSON verdict). No WebDriver: the page
/// itself says what it saw. Other requests go to `routes` (e.g. `GET /token` minting a fresh token), else 404.
/// Prefer `withPageServer`, which always stops it.
final class PageServer: Sendable {
    /// What `routes` answers for one request.
    struct Response: Sendable {
        var status: HTTPResponseStatus = .ok
        var headers: [(String, String)] = []
        var body: String = ""
    }

    typealias Routes = @Sendable (HTTPRequestHead) async throws -> Response?

    let channel: any Channel
    private let reports: NIOLockedValueBox<[String]>

    var port: Int { channel.localAddress!.port! }
    var url: String { "http://127.0.0.1:\(port)/" }

    init(group: any EventLoopGroup, html: String, routes: Routes? = nil) async throws {
        let reports = NIOLockedValueBox<[String]>([])
        self.reports = reports
        self.channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        PageHandler(html: html, routes: routes, record: { report in reports.withLockedValue { $0.append(report) } })
                    )
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    var allReports: [String] { reports.withLockedValue { $0 } }

    /// Waits for the first report, decoded as a JSON object; fails the test after `timeout`.
    func waitForReport(timeout: Duration, browser: Chromium) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let report = allReports.first {
                let object = try JSONSerialization.jsonObject(with: Data(report.utf8))
                return try XCTUnwrap(object as? [String: Any], "report is not a JSON object: \(report)")
            }
            if !browser.isRunning {
                XCTFail("chromium exited early: \(browser.log.suffix(3000))")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("the page sent no report within \(timeout); chromium log: \(browser.log.suffix(3000))")
        throw CancellationError()
    }

    func stop() async {
        try? await channel.close()
    }
}

/// Starts a `PageServer`, runs `body` with it, and stops it however `body` ends.
func withPageServer<Value>(
    group: any EventLoopGroup,
    html: String,
    routes: PageServer.Routes? = nil,
    _ body: (PageServer) async throws -> Value
) async throws -> Value {
    let page = try await PageServer(group: group, html: html, routes: routes)
    return try await withCleanup(page.stop) { try await body(page) }
}

private final class PageHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let html: String
    let routes: PageServer.Routes?
    let record: @Sendable (String) -> Void
    var head: HTTPRequestHead?
    var body = ""

    init(html: String, routes: PageServer.Routes?, record: @escaping @Sendable (String) -> Void) {
        self.html = html
        self.routes = routes
        self.record = record
    }

    /// Answers from `routes` off the event loop; the pipelining handler holds later requests until `.end` is written.
    private func answer(_ head: HTTPRequestHead, routes: @escaping PageServer.Routes, channel: any Channel) {
        Task {
            let response = (try? await routes(head)) ?? PageServer.Response(status: .notFound)
            var headers = HTTPHeaders([("cache-control", "no-store")] + response.headers)
            headers.replaceOrAdd(name: "content-length", value: String(response.body.utf8.count))
            let responseHead = HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)
            channel.write(HTTPServerResponsePart.head(responseHead), promise: nil)
            channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: response.body))), promise: nil)
            channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = ""
        case .body(let buffer):
            body += String(buffer: buffer)
        case .end:
            guard let head else { return }
            let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let isBuiltIn = (head.method == .POST && path == "/report") || (head.method == .GET && path == "/")
            if !isBuiltIn, let routes {
                answer(head, routes: routes, channel: context.channel)
                return
            }
            var headers = HTTPHeaders([("cache-control", "no-store")])
            var content = ByteBuffer()
            var status = HTTPResponseStatus.ok
            if head.method == .POST, path == "/report" {
                record(body)
                status = .noContent
            } else if head.method == .GET, path == "/" {
                headers.add(name: "content-type", value: "text/html; charset=utf-8")
                content = ByteBuffer(string: html)
            } else {
                status = .notFound
            }
            headers.add(name: "content-length", value: String(content.readableBytes))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            if content.readableBytes > 0 {
                context.write(wrapOutboundOut(.body(.byteBuffer(content))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// A headless Chromium showing one URL, killed by `stop()` (prefer `withChromium`, which always does).
final class Chromium: Sendable {
    private let process: Process
    private let profile: URL
    private let logFile: URL

    /// The Chromium binary, or `nil` if it is not installed (tests then skip).
    static var executable: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Opens `url`; `ignoreCertificateErrors` applies to this browser instance only (its own profile directory).
    init(url: String, ignoreCertificateErrors: Bool = false) throws {
        guard let executable = Self.executable else {
            throw XCTSkip("chromium is not installed (apt-get install -y chromium); browser tests skipped")
        }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("sse-gateway-chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        profile = base.appendingPathComponent("profile")
        logFile = base.appendingPathComponent("chromium.log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        var arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile.path)",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
            "--enable-logging=stderr", "--v=0",
        ]
        if ignoreCertificateErrors {
            arguments.append("--ignore-certificate-errors")
        }
        arguments.append(url)
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        // Chromium keeps its singleton socket in TMPDIR; under the removed directory it goes even after a SIGKILL.
        process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": base.path]) { $1 }
        let log = try FileHandle(forWritingTo: logFile)
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Terminates the browser (SIGKILL if it ignores SIGTERM for 5 s) and removes its profile. Its helper processes
    /// (zygote, renderer, GPU, network) can outlive the browser by a moment and write into the profile while it is
    /// being removed, which left about one directory in fifty behind: they are killed first (each names the profile
    /// on its command line), so nothing writes there once the removal starts.
    func stop() async {
        await terminate(process)
        killProcesses(mentioning: profile.path)
        try? FileManager.default.removeItem(at: profile.deletingLastPathComponent())
    }

    /// SIGKILLs every process whose command line contains `text` (Linux: `/proc/PID/cmdline`).
    private func killProcesses(mentioning text: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return }
        let needle = Data(text.utf8)
        for entry in entries {
            guard let pid = pid_t(entry), pid != getpid(),
                let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
                cmdline.range(of: needle) != nil
            else { continue }
            kill(pid, SIGKILL)
        }
    }
}

/// Opens `url` in a headless Chromium, runs `body` with it, and kills the browser however `body` ends.
func withChromium<Value>(
    url: String,
    ignoreCertificateErrors: Bool = false,
    _ body: (Chromium) async throws -> Value
) async throws -> Value {
    let browser = try Chromium(url: url, ignoreCertificateErrors: ignoreCertificateErrors)
    return try await withCleanup(browser.stop) { try await body(browser) }
}
