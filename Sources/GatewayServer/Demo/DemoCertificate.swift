import Crypto
import Foundation
import GatewayCore
import SwiftASN1
import X509

/// A throwaway self-signed certificate for `sse-gateway demo --tls`, written as PEM files into a fresh temporary
/// directory (the listener's configuration takes file paths).
///
/// Valid for a day, for `localhost`, `127.0.0.1`, `::1` and the listener's own host. Browsers warn about it: nobody
/// vouches for it, which is fine for a demo on the loopback interface and wrong anywhere else.
public struct DemoCertificate: Sendable {
    public let directory: URL
    public let certificatePath: String
    public let privateKeyPath: String

    /// The listener settings that serve this certificate.
    public var listenerConfiguration: ListenerTLSConfiguration {
        ListenerTLSConfiguration(certificatePath: certificatePath, privateKeyPath: privateKeyPath)
    }

    /// Makes a new P-256 key and a certificate signed by it, for `host` as well as the loopback names.
    public static func make(host: String, now: Date = Date()) throws -> DemoCertificate {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sse-gateway-demo-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: directory,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("sse-gateway demo")
            CommonName("localhost")
        }
        var names: [GeneralName] = [
            .dnsName("localhost"),
            .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
            .ipAddress(ASN1OctetString(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
        ]
        if let address = ipv4Bytes(host) {
            if address != [127, 0, 0, 1] { names.append(.ipAddress(ASN1OctetString(contentBytes: address[...]))) }
        } else if !host.isEmpty, host != "localhost", !host.contains(":") {
            names.append(.dnsName(host))
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now - 300,
            notValidAfter: now + 86_400,
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: .init(key)
        )
        let certificatePath = directory.appendingPathComponent("demo.crt").path
        let privateKeyPath = directory.appendingPathComponent("demo.key").path
        try certificate.serializeAsPEM().pemString.write(toFile: certificatePath, atomically: true, encoding: .utf8)
        guard
            FileManager.default.createFile(
                atPath: privateKeyPath,
                contents: Data(key.pemRepresentation.utf8),
                attributes: [.posixPermissions: 0o600]
            )
        else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: privateKeyPath])
        }
        return DemoCertificate(directory: directory, certificatePath: certificatePath, privateKeyPath: privateKeyPath)
    }

    /// Deletes the key and certificate.
    public func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    private static func ipv4Bytes(_ host: String) -> [UInt8]? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        let bytes = parts.compactMap { UInt8($0) }
        return parts.count == 4 && bytes.count == 4 ? bytes : nil
    }
}
