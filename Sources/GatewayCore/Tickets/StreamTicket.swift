import Crypto
import Foundation

/// A stream ticket's secret: 256 random bits, base64url without padding, behind the prefix `sset_` so secret
/// scanners can find leaked ones. The gateway never stores it: a ticket is filed under its SHA-256 (`digest`), and
/// its grant is sealed with AES-GCM under a key derived from the ticket itself (HKDF-SHA256), so a dump of the store
/// leaks no token and a digest alone opens nothing.
public struct StreamTicket: Sendable, Hashable, CustomStringConvertible {
    public static let prefix = "sset_"
    /// 32 bytes: base64url without padding is 43 characters.
    static let encodedLength = prefix.utf8.count + 43

    /// The ticket as the client sends it.
    public let text: String

    /// A new ticket from 32 random bytes.
    public init(randomBytes: [UInt8]) {
        precondition(randomBytes.count == 32, "a stream ticket is 32 random bytes")
        text =
            Self.prefix
            + Data(randomBytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// `text` if it has the shape of a ticket (prefix, 32 bytes of strict base64url), else `nil`.
    public init?(parsing text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count == Self.encodedLength, text.hasPrefix(Self.prefix),
            Base64URL.decode(bytes[Self.prefix.utf8.count...])?.count == 32
        else { return nil }
        self.text = text
    }

    /// Never the secret: tickets are printed only as `sset_…`.
    public var description: String { Self.prefix + "…" }

    /// What the store files the ticket under.
    public var digest: TicketDigest {
        TicketDigest(bytes: Array(SHA256.hash(data: Array(text.utf8))))
    }

    private var sealingKey: SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Array(text.utf8)),
            info: Array("sse-gateway stream ticket v1".utf8),
            outputByteCount: 32
        )
    }

    /// The grant encrypted and authenticated under this ticket's key.
    public func seal(_ grant: TicketGrant) -> [UInt8] {
        do {
            let box = try AES.GCM.seal(try JSONEncoder().encode(grant), using: sealingKey)
            guard let combined = box.combined else {
                preconditionFailure("AES-GCM with the default nonce size")
            }
            return Array(combined)
        } catch {
            preconditionFailure("sealing a ticket grant cannot fail: \(error)")
        }
    }

    /// The grant sealed under this ticket, or `nil` if the bytes were sealed under another (or tampered with).
    public func open(_ sealed: [UInt8]) -> TicketGrant? {
        guard let box = try? AES.GCM.SealedBox(combined: sealed),
            let plain = try? AES.GCM.open(box, using: sealingKey)
        else { return nil }
        return try? JSONDecoder().decode(TicketGrant.self, from: plain)
    }
}

/// SHA-256 of a ticket: the only form of it a store holds.
public struct TicketDigest: Sendable, Hashable {
    public let bytes: [UInt8]
}

/// What a ticket grants, sealed in the store: the stream it was minted for and what the upstream receives, exactly as
/// with the token itself.
public struct TicketGrant: Sendable, Equatable, Codable {
    /// The route's name.
    public var route: String
    /// The canonical request target it was minted for: the path as routed upstream, and the query without the ticket
    /// parameter.
    public var target: String
    public var subject: String?
    public var method: String
    /// The token's `exp`; `nil` for API keys.
    public var tokenExpiresAt: Double?
    /// The token to forward.
    public var token: String
    /// `claims_to_headers` of the token, in order, as `[name, value]` pairs.
    public var claimHeaders: [[String]]

    public init(route: String, target: String, identity: VerifiedIdentity, token: String) {
        self.route = route
        self.target = target
        self.subject = identity.subject
        self.method = identity.method.rawValue
        self.tokenExpiresAt = identity.expiresAt
        self.token = token
        self.claimHeaders = identity.claimHeaders.map { [$0.name, $0.value] }
    }

    /// The identity the token was verified as when the ticket was minted.
    public var identity: VerifiedIdentity {
        VerifiedIdentity(
            method: VerifiedIdentity.Method(rawValue: method) ?? .jwt,
            subject: subject,
            expiresAt: tokenExpiresAt,
            claimHeaders: claimHeaders.compactMap {
                $0.count == 2 ? ClaimHeader(name: $0[0], value: $0[1]) : nil
            }
        )
    }
}
