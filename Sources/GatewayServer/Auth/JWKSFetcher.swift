import AsyncHTTPClient
import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Keeps a `JWKSKeyStore` filled from a `jwks_url`: at start-up, periodically, and on demand for an unknown `kid`.
///
/// Concurrent refreshes are coalesced into one fetch. A failed fetch is logged and counted and the cached keys stay.
/// The rate limit for unknown `kid`s lives in the store (`RouteAuthenticator` claims it before asking for a refresh).
public final class JWKSFetcher: Service, @unchecked Sendable {
    public let url: String
    public let store: JWKSKeyStore
    private let client: HTTPClient
    private let logger: Logger
    private let timeout: TimeAmount
    private let now: @Sendable () -> Double
    private let lock = NSLock()
    private var inFlight: Task<Bool, Never>?
    private var failures = 0
    private var successes = 0

    /// Largest JWKS document accepted.
    public static let maxDocumentBytes = 1 << 20

    public init(
        url: String,
        store: JWKSKeyStore,
        client: HTTPClient = .shared,
        logger: Logger = Logger(label: "sse-gateway.jwks"),
        timeout: TimeAmount = .seconds(10),
        now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.url = url
        self.store = store
        self.client = client
        self.logger = logger
        self.timeout = timeout
        self.now = now
    }

    /// Failed fetches so far (network errors, non-200 answers, unusable documents).
    public var failureCount: Int { lock.withLock { failures } }
    /// Successful fetches so far.
    public var successCount: Int { lock.withLock { successes } }

    /// Fetches once at start-up (unless the caller already did), then whenever the store's refresh policy says so,
    /// until cancelled.
    public func run() async throws {
        try await run(fetchFirst: true)
    }

    public func run(fetchFirst: Bool) async throws {
        if fetchFirst { _ = await refresh() }
        while !Task.isCancelled {
            let delay = max(0.05, store.secondsUntilRefresh(now: now()))
            do {
                try await Task.sleep(for: .seconds(delay))
            } catch {
                return
            }
            _ = await refresh()
        }
    }

    /// Refreshes after `RouteAuthenticator` answered `.needsKeyRefresh(kid:)`; joins a fetch already in flight.
    @discardableResult
    public func refresh(forUnknownKid kid: String) async -> Bool {
        logger.debug("JWKS refresh for unknown kid", metadata: ["kid": "\(kid.prefix(64))"])
        return await refresh()
    }

    /// Fetches the JWKS now (or joins the fetch in flight); `true` if new keys were installed.
    @discardableResult
    public func refresh() async -> Bool {
        let task: Task<Bool, Never> = lock.withLock {
            if let inFlight { return inFlight }
            let task = Task { await self.fetchAndInstall() }
            inFlight = task
            return task
        }
        let result = await task.value
        lock.withLock {
            if inFlight == task { inFlight = nil }
        }
        return result
    }

    private func fetchAndInstall() async -> Bool {
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Accept", value: "application/json")
            let response = try await client.execute(request, timeout: timeout)
            guard response.status == .ok else {
                throw FetchError(message: "status \(response.status.code)")
            }
            let body = try await response.body.collect(upTo: Self.maxDocumentBytes)
            let count = try store.install(jwksDocument: Array(buffer: body), now: now())
            lock.withLock { successes += 1 }
            logger.info("JWKS refreshed", metadata: ["url": "\(url)", "keys": "\(count)", "kids": "\(store.keyIDs)"])
            return true
        } catch {
            if !(error is JWKSDocumentError) { store.recordFetchFailure(now: now()) }
            let failures = lock.withLock {
                self.failures += 1
                return self.failures
            }
            logger.warning(
                "JWKS fetch failed; keeping cached keys",
                metadata: ["url": "\(url)", "error": "\(error)", "failures": "\(failures)"]
            )
            return false
        }
    }

    private struct FetchError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}
