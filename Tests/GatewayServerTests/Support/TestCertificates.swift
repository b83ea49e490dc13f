import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// A throwaway PKI made in the test: a CA, a server certificate for `localhost` and `127.0.0.1`, a client certificate.
///
/// Everything is written as PEM files into a fresh temporary directory, because the gateway's configuration takes
/// file paths (`tls.certificate`, `routes[].tls.ca_file`, ...). Call `remove()` at the end of the test.
struct TestCertificates {
    /// A certificate and its private key, in memory and on disk.
    struct Identity {
        let certificate: Certificate
        let certificatePEM: String
        let privateKeyPEM: String
        let certificatePath: String
        let privateKeyPath: String

        var nioCertificate: NIOSSLCertificate {
            get throws { try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem) }
        }

        var nioPrivateKey: NIOSSLPrivateKey {
            get throws { try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem) }
        }
    }

    let directory: URL
    let ca: Identity
    let server: Identity
    let client: Identity

    /// Makes a new CA and leaf certificates; `serverName` lands in the server certificate's subject and DNS SAN.
    static func make(serverName: String = "localhost") throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sse-gateway-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName { CommonName("sse-gateway test CA") }
        let ca = try Self.issue(
            name: "ca",
            subject: caName,
            key: caKey,
            issuer: caName,
            issuerKey: caKey,
            extensions: Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            directory: directory
        )
        let server = try Self.issue(
            name: "server",
            subject: DistinguishedName { CommonName(serverName) },
            key: P256.Signing.PrivateKey(),
            issuer: caName,
            issuerKey: caKey,
            extensions: Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([
                    .dnsName(serverName),
                    .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                ])
            },
            directory: directory
        )
        let client = try Self.issue(
            name: "client",
            subject: DistinguishedName { CommonName("sse-gateway test client") },
            key: P256.Signing.PrivateKey(),
            issuer: caName,
            issuerKey: caKey,
            extensions: Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
            },
            directory: directory
        )
        return TestCertificates(directory: directory, ca: ca, server: server, client: client)
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A client TLS configuration trusting only this CA, offering `protocols` by ALPN.
    func clientTLS(protocols: [String] = ["http/1.1"], identity: Identity? = nil) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates([try ca.nioCertificate])
        tls.applicationProtocols = protocols
        if let identity {
            tls.certificateChain = [.certificate(try identity.nioCertificate)]
            tls.privateKey = .privateKey(try identity.nioPrivateKey)
        }
        return tls
    }

    private static func issue(
        name: String,
        subject: DistinguishedName,
        key: P256.Signing.PrivateKey,
        issuer: DistinguishedName,
        issuerKey: P256.Signing.PrivateKey,
        extensions: Certificate.Extensions,
        directory: URL
    ) throws -> Identity {
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now - 3600,
            notValidAfter: now + 86400,
            issuer: issuer,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: .init(issuerKey)
        )
        let certificatePEM = try certificate.serializeAsPEM().pemString
        let keyPEM = key.pemRepresentation
        let certificatePath = directory.appendingPathComponent("\(name).crt").path
        let keyPath = directory.appendingPathComponent("\(name).key").path
        try certificatePEM.write(toFile: certificatePath, atomically: true, encoding: .utf8)
        try keyPEM.write(toFile: keyPath, atomically: true, encoding: .utf8)
        return Identity(
            certificate: certificate,
            certificatePEM: certificatePEM,
            privateKeyPEM: keyPEM,
            certificatePath: certificatePath,
            privateKeyPath: keyPath
        )
    }
}
