import Crypto
import Foundation

/// Identities of recently verified tokens, keyed by the token's SHA-256, so a reconnect storm skips signature checks.
///
/// Bounded: past `capacity` the oldest insertion is evicted. An entry is served only while `now < expiresAt` (the
/// token's `exp`). A lock guards it; lookups happen once per new stream, never per event.
public final class VerifiedTokenCache: @unchecked Sendable {
    public let capacity: Int
    private let lock = NSLock()
    private var entries: [SHA256Digest: VerifiedIdentity] = [:]
    /// Insertion order, as a ring: `order[head]` is the oldest key once the ring is full.
    private var order: [SHA256Digest] = []
    private var head = 0

    public init(capacity: Int = 10_000) {
        precondition(capacity > 0, "cache capacity must be positive")
        // Not reserved up front: 10,000 entries are ~1.3 MiB, which a policy whose clients are few never needs.
        self.capacity = capacity
    }

    public var count: Int { lock.withLock { entries.count } }

    /// The cached identity if present and unexpired; an expired entry is dropped.
    public func identity(for digest: SHA256Digest, now: Double) -> VerifiedIdentity? {
        lock.withLock {
            guard let identity = entries[digest] else { return nil }
            guard let expiresAt = identity.expiresAt, now < expiresAt else {
                entries[digest] = nil
                return nil
            }
            return identity
        }
    }

    /// Stores an identity that has an expiry (identities without one are not cached).
    public func insert(_ identity: VerifiedIdentity, for digest: SHA256Digest) {
        guard identity.expiresAt != nil else { return }
        lock.withLock {
            if entries.updateValue(identity, forKey: digest) != nil { return }
            if order.count < capacity {
                order.append(digest)
            } else {
                // The slot's old key may already be gone (expired); removing it again is harmless.
                entries[order[head]] = nil
                order[head] = digest
                head = (head + 1) % capacity
            }
        }
    }
}
