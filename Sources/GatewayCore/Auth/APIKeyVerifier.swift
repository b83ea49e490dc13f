import Crypto

/// Matches a presented key against configured SHA-256 digests in constant time.
///
/// Every digest is compared in full, whether or not an earlier one matched, so timing reveals nothing.
public struct APIKeyVerifier: Sendable {
    private let keys: [APIKeyConfiguration]

    public init(keys: [APIKeyConfiguration]) {
        self.keys = keys
    }

    public var isEmpty: Bool { keys.isEmpty }

    /// The subject of the matching key, or `nil`.
    public func subject(forDigest digest: SHA256Digest) -> String? {
        var match: String?
        digest.withUnsafeBytes { presented in
            for key in keys {
                var difference = UInt8(key.sha256.count == 32 ? 0 : 1)
                for i in 0..<min(32, key.sha256.count) { difference |= presented[i] ^ key.sha256[i] }
                if difference == 0 && match == nil { match = key.subject }
            }
        }
        return match
    }

    public func subject(forKey key: String) -> String? {
        subject(forDigest: SHA256.hash(data: Array(key.utf8)))
    }
}
