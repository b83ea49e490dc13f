import Foundation
import JWTKit

/// When to fetch a JWKS again: periodically, early after a failure, and on demand for an unknown `kid`.
///
/// Pure: every input carries `now` (unix seconds), so tests drive time without sleeping.
public struct JWKSRefreshPolicy: Sendable, Hashable {
    /// Seconds between routine refreshes after a success.
    public let refreshInterval: Double
    /// The fewest seconds between two fetches triggered by unknown `kid`s (a flood of forged kids must not become a
    /// flood of fetches).
    public let unknownKeyInterval: Double
    /// Seconds before retrying after a failed fetch (capped by `refreshInterval`).
    public let retryInterval: Double

    public private(set) var lastSuccess: Double?
    public private(set) var lastFailure: Double?
    public private(set) var lastUnknownKeyRefresh: Double?

    public init(refreshInterval: Double, unknownKeyInterval: Double = 30, retryInterval: Double = 15) {
        self.refreshInterval = max(1, refreshInterval)
        self.unknownKeyInterval = max(0, unknownKeyInterval)
        self.retryInterval = max(1, min(retryInterval, refreshInterval))
    }

    /// Seconds until the next routine fetch is due (0 = now).
    public func secondsUntilRefresh(now: Double) -> Double {
        var due = (lastSuccess ?? -.infinity) + refreshInterval
        if let lastFailure, lastFailure >= (lastSuccess ?? -.infinity) { due = min(due, lastFailure + retryInterval) }
        if lastSuccess == nil && lastFailure == nil { return 0 }
        return max(0, due - now)
    }

    /// Whether an unknown `kid` may trigger a fetch now; if so, the slot is taken.
    public mutating func claimUnknownKeyRefresh(now: Double) -> Bool {
        if let last = lastUnknownKeyRefresh, now - last < unknownKeyInterval { return false }
        lastUnknownKeyRefresh = now
        return true
    }

    public mutating func recordSuccess(now: Double) { lastSuccess = now }
    public mutating func recordFailure(now: Double) { lastFailure = now }
}

/// The current JWKS keys by `kid`, shared by the fetcher (writer) and authenticators (readers).
///
/// A lock guards the set: reads happen once per new stream, not per event. A failed or empty fetch keeps the old keys.
public final class JWKSKeyStore: @unchecked Sendable {
    public let allowedAlgorithms: Set<JWTAlgorithm>
    private let lock = NSLock()
    private var keys: [VerificationKey] = []
    private var policy: JWKSRefreshPolicy

    public init(allowedAlgorithms: Set<JWTAlgorithm>, policy: JWKSRefreshPolicy) {
        self.allowedAlgorithms = allowedAlgorithms
        self.policy = policy
    }

    /// The store for a policy's `jwks_url`: its allow-list and `jwks_refresh_interval`.
    public convenience init(configuration: JWTConfiguration, unknownKeyInterval: Double = 30) {
        self.init(
            allowedAlgorithms: Set(configuration.algorithms),
            policy: JWKSRefreshPolicy(
                refreshInterval: configuration.jwksRefreshInterval.inSeconds,
                unknownKeyInterval: unknownKeyInterval
            )
        )
    }

    /// Keys with this `kid`, or all keys when the token names none.
    public func keys(kid: String?) -> [VerificationKey] {
        lock.withLock { kid.map { kid in keys.filter { $0.kid == kid } } ?? keys }
    }

    /// The `kid`s currently held, sorted.
    public var keyIDs: [String] { lock.withLock { keys.compactMap(\.kid).sorted() } }

    public var refreshPolicy: JWKSRefreshPolicy { lock.withLock { policy } }

    /// Replaces the key set with a JWKS document's usable keys; on error the old keys stay and a failure is recorded.
    @discardableResult
    public func install(jwksDocument: [UInt8], now: Double) throws(JWKSDocumentError) -> Int {
        let parsed: [VerificationKey]
        do {
            parsed = try Self.parse(jwksDocument, allowed: allowedAlgorithms)
        } catch {
            lock.withLock { policy.recordFailure(now: now) }
            throw error
        }
        lock.withLock {
            keys = parsed
            policy.recordSuccess(now: now)
        }
        return parsed.count
    }

    /// Records a fetch that failed before there was a document (network, status code).
    public func recordFetchFailure(now: Double) { lock.withLock { policy.recordFailure(now: now) } }

    public func secondsUntilRefresh(now: Double) -> Double { lock.withLock { policy.secondsUntilRefresh(now: now) } }

    /// Whether an unknown `kid` may trigger a fetch now (rate-limited); a `true` answer takes the slot.
    public func claimUnknownKeyRefresh(now: Double) -> Bool {
        lock.withLock { policy.claimUnknownKeyRefresh(now: now) }
    }

    /// Parses a JWKS document with jwt-kit's `JWKS` type, keeping keys that fit the allow-list.
    public static func parse(
        _ document: [UInt8],
        allowed: Set<JWTAlgorithm>
    ) throws(JWKSDocumentError) -> [VerificationKey] {
        guard document.count <= 1 << 20 else { throw JWKSDocumentError(message: "document larger than 1 MiB") }
        guard ClaimValue.nestingDepth(document) <= ClaimValue.maxDepth else {
            throw JWKSDocumentError(message: "document nested too deeply")
        }
        let entries: [LenientJWK]
        do {
            entries = try JSONDecoder().decode(LenientJWKS.self, from: Data(document)).keys
        } catch {
            throw JWKSDocumentError(message: "not a JWKS document")
        }
        let keys = entries.compactMap { $0.jwk.flatMap { VerificationKey.jwk($0, allowed: allowed) } }
        guard !keys.isEmpty else {
            throw JWKSDocumentError(message: "no usable key among \(entries.count) (types or alg not allowed)")
        }
        return keys
    }

    /// One entry jwt-kit cannot decode (`kty: oct`, a new curve) must not void the whole document.
    private struct LenientJWK: Decodable {
        let jwk: JWK?
        init(from decoder: any Decoder) throws { jwk = try? JWK(from: decoder) }
    }

    private struct LenientJWKS: Decodable {
        let keys: [LenientJWK]
    }
}

/// A JWKS document the gateway could not use.
public struct JWKSDocumentError: Error, Sendable, Hashable, CustomStringConvertible {
    public let message: String
    public var description: String { "JWKS: \(message)" }
}
