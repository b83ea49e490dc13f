import Foundation
import GatewayCore
import GatewayServer
import NIOCore
import NIOPosix
import NIOSSL
import SwiftASN1
import X509
import XCTest

/// `sse-gateway demo --tls`: the throwaway certificate, and the gateway serving the demo upstream with it.
final class DemoTLSIntegrationTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    func testDemoCertificateIsSelfSignedForTheLoopbackNames() throws {
        let made = try DemoCertificate.make(host: "127.0.0.1")
        defer { made.remove() }
        let pem = try String(contentsOfFile: made.certificatePath, encoding: .utf8)
        let certificate = try Certificate(pemEncoded: pem)
        XCTAssertEqual(certificate.issuer, certificate.subject, "self-signed")
        XCTAssertTrue(certificate.publicKey.isValidSignature(certificate.signature, for: certificate))
        let names = try XCTUnwrap(try certificate.extensions.subjectAlternativeNames)
        XCTAssertTrue(names.contains(.dnsName("localhost")))
        XCTAssertTrue(names.contains(.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))))
        XCTAssertGreaterThan(certificate.notValidAfter, Date() + 3600)
        let keyPermissions = try FileManager.default.attributesOfItem(atPath: made.privateKeyPath)[.posixPermissions]
        XCTAssertEqual(keyPermissions as? Int, 0o600, "the private key is readable by its owner only")
        made.remove()
        XCTAssertFalse(FileManager.default.fileExists(atPath: made.directory.path))
    }

    /// The gateway on the demo certificate, in front of the real demo upstream: HTTP/2 by ALPN carries two clock
    /// streams on one connection, and HTTP/1.1 over TLS works too.
    func testGatewayServesTheDemoOverTLSWithTheDemoCertificate() async throws {
        let made = try DemoCertificate.make(host: "127.0.0.1")
        defer { made.remove() }
        let upstream = try await DemoUpstream.start(host: "127.0.0.1", port: 0, group: group)
        let route = RouteConfiguration(
            name: "clock",
            pathPrefix: "/events/",
            upstream: UpstreamURL(scheme: .http, host: "127.0.0.1", port: upstream.localAddress!.port!)
        )
        try await withCleanup({ try? await upstream.close() }) {
            try await withGateway(routes: [route], configure: { $0.tls = made.listenerConfiguration }, group: group) {
                gateway in
                // BoringSSL does not take a self-signed end-entity certificate (CA:FALSE) as its own trust root, so
                // the clients skip chain verification and the test compares the certificate served with the demo's
                // file.
                var trustsDemo = TLSConfiguration.makeClientConfiguration()
                trustsDemo.certificateVerification = .none
                trustsDemo.applicationProtocols = ["h2"]
                let demoPEM = try String(contentsOfFile: made.certificatePath, encoding: .utf8)
                let demoDER = try NIOSSLCertificate(bytes: Array(demoPEM.utf8), format: .pem).toDERBytes()
                let h2 = try await gateway.connectHTTP2(group: group, tls: NIOSSLContext(configuration: trustsDemo))
                let first = try await h2.get("/events/clock")
                let second = try await h2.get("/events/clock")
                for stream in [first, second] {
                    let body = try await stream.wait(for: "a tick") { $0.contains("event: tick\n") }
                    XCTAssertTrue(body.hasPrefix("id: 1\nevent: tick\ndata: {\"n\":1,"), body)
                    XCTAssertEqual(stream.head?.status, .ok)
                }
                let servedOverH2 = try await h2.channel.nioSSL_peerCertificate().get()
                XCTAssertEqual(try servedOverH2?.toDERBytes(), demoDER)
                await h2.close()

                trustsDemo.applicationProtocols = ["http/1.1"]
                let http1 = try await gateway.connect(group: group, tls: NIOSSLContext(configuration: trustsDemo))
                try await http1.get("/events/clock")
                let text = try await http1.wait(for: "a tick over HTTP/1.1") { $0.contains("event: tick\n") }
                XCTAssertTrue(text.hasPrefix("HTTP/1.1 200 OK\r\n"), text)
                let served = try await http1.channel.nioSSL_peerCertificate().get()
                XCTAssertEqual(try served?.toDERBytes(), demoDER)
                await http1.close()

                var trustsNothing = TLSConfiguration.makeClientConfiguration()
                trustsNothing.applicationProtocols = ["http/1.1"]
                let stranger = try await gateway.connect(group: group, tls: NIOSSLContext(configuration: trustsNothing))
                try? await stranger.get("/events/clock")
                try await stranger.waitForClose()
                XCTAssertFalse(stranger.text.contains("tick"), "a client verifying against system roots refuses it")
            }
        }
    }
}
