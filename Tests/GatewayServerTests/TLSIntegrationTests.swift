import Foundation
import GatewayCore
import GatewayServer
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import XCTest

/// The TLS listener (HTTP/1.1 and HTTP/2 by ALPN), certificate reload, and TLS to upstreams, over real sockets.
final class TLSIntegrationTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    /// An upstream answering every request with two events and the end of the response.
    private static let twoEvents: TestUpstream.Handler = { _, responder in
        responder.sseHead()
        responder.body("id: 1\ndata: one\n\n")
        responder.body("id: 2\ndata: two\n\n")
        responder.end()
    }

    /// Runs `body` with an upstream answering with `handler`, a TLS gateway in front of it (on a certificate made for
    /// the test), and an HTTP/2 client of the gateway.
    private func withHTTP2Gateway(
        upstream handler: @escaping TestUpstream.Handler,
        configure: (inout GatewayConfiguration) -> Void = { _ in },
        _ body: (TestUpstream, GatewayHarness, HTTP2TestClient) async throws -> Void
    ) async throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withTLSGateway(
                routes: [route(upstream: upstream)],
                certificates: certificates,
                configure: configure
            ) { gateway in
                let tls = try NIOSSLContext(configuration: certificates.clientTLS(protocols: ["h2"]))
                try await body(upstream, gateway, try await gateway.connectHTTP2(group: group, tls: tls))
            }
        }
    }

    // MARK: Listener

    func testHTTP1OverTLS() async throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        try await withUpstream(group: group, handler: Self.twoEvents) { upstream in
            try await withTLSGateway(routes: [route(upstream: upstream)], certificates: certificates) { gateway in
                let tls = try NIOSSLContext(configuration: certificates.clientTLS(protocols: ["http/1.1"]))
                let client = try await gateway.connect(group: group, tls: tls)
                try await client.get("/events/feed")
                let text = try await client.wait(for: "end of stream") { $0.hasSuffix("0\r\n\r\n") }
                XCTAssertTrue(text.hasPrefix("HTTP/1.1 200"))
                XCTAssertEqual(RawClient.dechunk(text), "id: 1\ndata: one\n\nid: 2\ndata: two\n\n")
                XCTAssertEqual(upstream.requests.first?.head.headers["x-forwarded-proto"], ["https"])
            }
        }
    }

    func testPlainHTTPIsNotServedOnTheTLSListener() async throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        try await withUpstream(group: group, handler: { _, responder in responder.sseHead() }) { upstream in
            try await withTLSGateway(routes: [route(upstream: upstream)], certificates: certificates) { gateway in
                let client = try await gateway.connect(group: group)
                try await client.get("/events/feed")
                try await client.waitForClose()
                XCTAssertFalse(client.text.contains("HTTP/1.1"))
                XCTAssertTrue(upstream.requests.isEmpty)
            }
        }
    }

    func testHTTP2CarriesTenConcurrentStreamsOnOneConnection() async throws {
        // The upstream answers nobody until all ten requests are open at once: proof they share the connection.
        let waiting = NIOLockedValueBox<[(String, UpstreamResponder)]>([])
        let handler: TestUpstream.Handler = { request, responder in
            let all: [(String, UpstreamResponder)]? = waiting.withLockedValue { list in
                list.append((request.head.uri, responder))
                return list.count == 10 ? list : nil
            }
            for (uri, responder) in all ?? [] {
                let name = uri.split(separator: "/").last!
                responder.sseHead([("connection", "keep-alive")])
                responder.body("id: 1\ndata: \(name)-a\n\n")
                responder.body("id: 2\ndata: \(name)-b\n\n")
                responder.end()
            }
        }
        try await withHTTP2Gateway(upstream: handler) { upstream, _, client in
            var streams: [HTTP2TestClient.Stream] = []
            for index in 0..<10 {
                streams.append(try await client.get("/events/s\(index)"))
            }
            for (index, stream) in streams.enumerated() {
                try await stream.waitForEnd()
                XCTAssertEqual(stream.body, "id: 1\ndata: s\(index)-a\n\nid: 2\ndata: s\(index)-b\n\n")
                XCTAssertEqual(stream.head?.status, .ok)
                XCTAssertEqual(stream.head?.headers["content-type"], ["text/event-stream"])
                XCTAssertTrue(stream.head?.headers["connection"].isEmpty ?? false, "no connection header on h2")
            }
            XCTAssertEqual(upstream.requests.count, 10)
            XCTAssertEqual(upstream.connectionsAccepted, 10, "each stream had its own upstream connection")
            XCTAssertTrue(upstream.requests.allSatisfy { $0.head.headers["x-forwarded-proto"] == ["https"] })
            XCTAssertTrue(upstream.requests.allSatisfy { $0.head.version == .http1_1 })
            XCTAssertTrue(client.channel.isActive, "one connection carried every stream and stays open")
        }
    }

    func testStalledHTTP2StreamDoesNotStallOtherStreams() async throws {
        let event = "data: " + String(repeating: "x", count: 1000) + "\n\n"
        let slowEvents = 12_000  // ~12 MB: more than the stream window, gateway buffers and loopback socket buffers
        let slowResponder = NIOLockedValueBox<UpstreamResponder?>(nil)
        let handler: TestUpstream.Handler = { request, responder in
            responder.sseHead()
            if request.head.uri.hasSuffix("/slow") {
                slowResponder.withLockedValue { $0 = responder }
                responder.body(String(repeating: event, count: slowEvents))
                responder.end()
            } else {
                for index in 0..<5 {
                    responder.channel.eventLoop.scheduleTask(in: .milliseconds(Int64(50 * index))) {
                        responder.body("id: \(index)\ndata: fast\n\n")
                        if index == 4 { responder.end() }
                    }
                }
            }
        }
        try await withHTTP2Gateway(upstream: handler, configure: { $0.limits.slowClientTimeout = .seconds(60) }) {
            _, _, client in
            let slow = try await client.get("/events/slow", autoRead: false)
            // Let the slow stream fill its window and the gateway's buffers first.
            try await Task.sleep(for: .milliseconds(500))
            var fast: [HTTP2TestClient.Stream] = []
            for index in 0..<5 {
                fast.append(try await client.get("/events/fast\(index)"))
            }
            for stream in fast {
                try await stream.waitForEnd()
                XCTAssertEqual(stream.body.components(separatedBy: "data: fast\n\n").count - 1, 5)
            }
            XCTAssertFalse(slow.ended)
            XCTAssertLessThan(slow.body.utf8.count, slowEvents * event.utf8.count / 2)
            let responder = try XCTUnwrap(slowResponder.withLockedValue { $0 })
            XCTAssertFalse(responder.isWritable, "the gateway stopped reading the stalled stream's upstream")

            // The stalled stream was held back, not dropped: once it reads, every byte arrives.
            try await slow.channel.setOption(.autoRead, value: true).get()
            slow.channel.read()
            try await slow.waitForEnd(timeout: .seconds(20))
            XCTAssertEqual(slow.body.utf8.count, slowEvents * event.utf8.count)
        }
    }

    func testCurlOverHTTP2() async throws {
        let curl = "/usr/bin/curl"
        guard FileManager.default.isExecutableFile(atPath: curl) else {
            throw XCTSkip("curl is not installed")
        }
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        try await withUpstream(group: group, handler: Self.twoEvents) { upstream in
            try await withTLSGateway(routes: [route(upstream: upstream)], certificates: certificates) { gateway in
                let output = try await runProcess(curl, [
                    "-sS", "-N", "--http2", "--max-time", "10", "--cacert", certificates.ca.certificatePath,
                    "-w", "\nversion=%{http_version}", "https://127.0.0.1:\(gateway.port)/events/feed",
                ])
                XCTAssertEqual(output, "id: 1\ndata: one\n\nid: 2\ndata: two\n\n\nversion=2")
            }
        }
    }

    func testMaxConcurrentStreamsIsEnforced() async throws {
        let handler: TestUpstream.Handler = { _, responder in
            responder.sseHead()
            responder.body("data: open\n\n")
        }
        try await withHTTP2Gateway(upstream: handler, configure: { $0.http2.maxConcurrentStreams = 2 }) {
            upstream, _, client in
            var open: [HTTP2TestClient.Stream] = []
            for index in 0..<2 {
                let stream = try await client.get("/events/s\(index)")
                try await stream.wait(for: "event on stream \(index)") { $0 == "data: open\n\n" }
                open.append(stream)
            }
            // The client learned the limit from the gateway's SETTINGS: a third stream waits for a free slot.
            let third = Task { try await client.get("/events/s2") }
            try await Task.sleep(for: .milliseconds(500))
            XCTAssertEqual(upstream.requests.count, 2)
            try? await open[0].channel.close()  // RST_STREAM(CANCEL): the close future reports it as an error
            let deadline = ContinuousClock.now + .seconds(5)
            while upstream.requests.count < 3, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            XCTAssertEqual(upstream.requests.count, 3, "the third stream starts once another one closed")
            while upstream.connectionsClosed < 1, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            XCTAssertEqual(upstream.connectionsClosed, 1, "a reset stream closes its own upstream connection only")
            if upstream.requests.count == 3 { _ = try await third.value }
        }
    }

    func testDrainEndsEveryHTTP2StreamAndSendsGoAway() async throws {
        let handler: TestUpstream.Handler = { _, responder in
            responder.sseHead()
            responder.body("data: before\n\n")
        }
        try await withHTTP2Gateway(upstream: handler, configure: { $0.drain.retryJitter = .seconds(2) }) {
            _, gateway, client in
            var streams: [HTTP2TestClient.Stream] = []
            for index in 0..<3 {
                let stream = try await client.get("/events/s\(index)")
                try await stream.wait(for: "first event") { $0 == "data: before\n\n" }
                streams.append(stream)
            }
            let started = ContinuousClock.now
            await gateway.stop()
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(5), "drain must not wait for the grace period")
            for stream in streams {
                try await stream.waitForEnd()
                XCTAssertTrue(stream.ended, "ended cleanly with END_STREAM, not reset")
                XCTAssertTrue(stream.body.hasPrefix("data: before\n\nretry: "), stream.body)
            }
            XCTAssertGreaterThan(client.goAwaysReceived, 0)
            let deadline = ContinuousClock.now + .seconds(5)
            while client.channel.isActive, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            XCTAssertFalse(client.channel.isActive, "the gateway closed the connection once its streams ended")
        }
    }

    // MARK: Certificate reload

    func testReloadedCertificateIsUsedByNewHandshakes() async throws {
        let first = try TestCertificates.make()
        let second = try TestCertificates.make()
        defer {
            first.remove()
            second.remove()
        }
        let handler: TestUpstream.Handler = { _, responder in
            responder.head(.ok, [("content-length", "2")])
            responder.body("ok")
            responder.end()
        }
        try await withUpstream(group: group, handler: handler) { upstream in
            try await withTLSGateway(routes: [route(upstream: upstream)], certificates: first) { gateway in
                let trustsFirst = try NIOSSLContext(configuration: first.clientTLS())
                let trustsSecond = try NIOSSLContext(configuration: second.clientTLS())
                let before = try await gateway.connect(group: group, tls: trustsFirst)
                try await before.get("/events/a", accept: "*/*")
                try await before.wait(for: "response before reload") { $0.hasSuffix("ok") }
                let rejectedBefore = try await fetch(gateway, tls: trustsSecond)
                XCTAssertNil(rejectedBefore, "the second CA's client must not trust the first certificate")

                var configuration = gateway.gateway.configuration
                configuration.tls = ListenerTLSConfiguration(
                    certificatePath: second.server.certificatePath,
                    privateKeyPath: second.server.privateKeyPath
                )
                try await gateway.gateway.reload(configuration: configuration)

                let afterWithSecond = try await fetch(gateway, tls: trustsSecond)
                XCTAssertEqual(afterWithSecond?.hasSuffix("ok"), true, "new handshakes use the reloaded certificate")
                let afterWithFirst = try await fetch(gateway, tls: trustsFirst)
                XCTAssertNil(afterWithFirst, "the old certificate is no longer presented")
                // The connection made before the reload keeps working.
                try await before.get("/events/b", accept: "*/*")
                try await before.wait(for: "second response on the old connection") {
                    $0.components(separatedBy: "ok").count == 3
                }

                configuration.tls = nil
                do {
                    try await gateway.gateway.reload(configuration: configuration)
                    XCTFail("turning TLS off by reload must be refused")
                } catch {}
            }
        }
    }

    // MARK: Upstream TLS

    func testHTTPSUpstreamTrustedThroughCAFile() async throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        try await withHTTPSUpstream(certificates, requireClientCertificate: false) { upstream in
            let text = try await plainGet(through: httpsRoute(upstream, caFile: certificates.ca.certificatePath))
            XCTAssertTrue(text.hasPrefix("HTTP/1.1 200"), text)
            XCTAssertEqual(RawClient.dechunk(text), "data: secure\n\n")
        }
    }

    func testHTTPSUpstreamWithUnknownCAIsBadGateway() async throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        try await withHTTPSUpstream(certificates, requireClientCertificate: false) { upstream in
            let text = try await plainGet(through: httpsRoute(upstream, caFile: nil))
            XCTAssertTrue(text.hasPrefix("HTTP/1.1 502"), text)
            XCTAssertTrue(upstream.requests.isEmpty)
        }
    }

    func testUpstreamRequiringClientCertificate() async throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        try await withHTTPSUpstream(certificates, requireClientCertificate: true) { upstream in
            let rejected = try await plainGet(through: httpsRoute(upstream, caFile: certificates.ca.certificatePath))
            XCTAssertTrue(rejected.hasPrefix("HTTP/1.1 502"), rejected)
            XCTAssertTrue(upstream.requests.isEmpty)
            XCTAssertGreaterThan(upstream.handshakeFailures, 0)

            let accepted = try await plainGet(
                through: httpsRoute(upstream, caFile: certificates.ca.certificatePath, client: certificates.client)
            )
            XCTAssertTrue(accepted.hasPrefix("HTTP/1.1 200"), accepted)
            XCTAssertEqual(RawClient.dechunk(accepted), "data: secure\n\n")
            XCTAssertEqual(upstream.requests.count, 1)
        }
    }

    // MARK: Helpers

    /// Runs `body` with an https upstream on `certificates`' server identity that answers `data: secure`.
    private func withHTTPSUpstream<Value>(
        _ certificates: TestCertificates,
        requireClientCertificate: Bool,
        _ body: (TestUpstream) async throws -> Value
    ) async throws -> Value {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try certificates.server.nioCertificate)],
            privateKey: .privateKey(try certificates.server.nioPrivateKey)
        )
        if requireClientCertificate {
            tls.certificateVerification = .noHostnameVerification
            tls.trustRoots = .certificates([try certificates.ca.nioCertificate])
        }
        let secure: TestUpstream.Handler = { _, responder in
            responder.sseHead()
            responder.body("data: secure\n\n")
            responder.end()
        }
        return try await withUpstream(group: group, tls: try NIOSSLContext(configuration: tls), handler: secure, body)
    }

    private func httpsRoute(_ upstream: TestUpstream, caFile: String?, client: TestCertificates.Identity? = nil)
        -> RouteConfiguration
    {
        route(upstream: upstream) { route in
            route.upstream = UpstreamURL(scheme: .https, host: "127.0.0.1", port: upstream.port)
            route.upstreamTLS = UpstreamTLSConfiguration(
                caFilePath: caFile,
                certificatePath: client?.certificatePath,
                privateKeyPath: client?.privateKeyPath
            )
        }
    }

    /// One plain-HTTP request through a gateway with `route` (started for it and stopped after); the full response
    /// text once it ended.
    private func plainGet(through route: RouteConfiguration) async throws -> String {
        try await withGateway(routes: [route], group: group) { gateway in
            let client = try await gateway.connect(group: group)
            try await client.get("/events/feed")
            return try await client.wait(for: "complete response") {
                $0.hasSuffix("0\r\n\r\n")
                    || ($0.contains("\r\n\r\n") && $0.contains("content-length") && $0.hasSuffix("}"))
            }
        }
    }

    /// `GET /events/x` over TLS on a new connection: the response text, or `nil` if the handshake failed.
    private func fetch(_ gateway: GatewayHarness, tls: NIOSSLContext) async throws -> String? {
        let client = try await gateway.connect(group: group, tls: tls)
        try? await client.get("/events/x", accept: "*/*")
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if client.text.hasSuffix("ok") {
                await client.close()
                return client.text
            }
            if client.isClosed { return nil }
            try await Task.sleep(for: .milliseconds(5))
        }
        XCTFail("neither a response nor a closed connection within 10 s; seen: \(client.report)")
        return nil
    }
}

/// Runs a program to completion (bounded by its own timeout flags) and returns its standard output.
func runProcess(_ path: String, _ arguments: [String], timeout: Duration = .seconds(30)) async throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let deadline = ContinuousClock.now + timeout
    while process.isRunning {
        if ContinuousClock.now > deadline {
            process.terminate()
            XCTFail("\(path) did not finish within \(timeout)")
            break
        }
        try await Task.sleep(for: .milliseconds(20))
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    return String(decoding: data, as: UTF8.self)
}
