/// A token bucket: `ratePerSecond` tokens refill continuously up to `capacity`; each admission takes one.
///
/// Pure (time is passed in), so the rate limit is tested without sleeping.
public struct TokenBucket: Sendable, Equatable {
    public let ratePerSecond: Double
    public let capacity: Double
    private var tokens: Double
    private var updatedAt: Double

    /// A full bucket; `capacity` defaults to one second's worth (at least 1).
    public init(ratePerSecond: Double, capacity: Double? = nil, now: Double) {
        precondition(ratePerSecond > 0, "a token bucket needs a positive rate")
        self.ratePerSecond = ratePerSecond
        self.capacity = max(1, capacity ?? ratePerSecond)
        self.tokens = self.capacity
        self.updatedAt = now
    }

    /// Takes one token if there is one.
    public mutating func take(now: Double) -> Bool {
        refill(now: now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Whole seconds until a token is available (for `Retry-After`), at least 1.
    public func secondsUntilNextToken(now: Double) -> Int {
        var copy = self
        copy.refill(now: now)
        let missing = max(0, 1 - copy.tokens)
        return max(1, Int((missing / ratePerSecond).rounded(.up)))
    }

    /// Full again (so the bucket can be forgotten without changing any decision).
    public func isFull(now: Double) -> Bool {
        var copy = self
        copy.refill(now: now)
        return copy.tokens >= capacity
    }

    private mutating func refill(now: Double) {
        guard now > updatedAt else { return }
        tokens = min(capacity, tokens + (now - updatedAt) * ratePerSecond)
        updatedAt = now
    }
}
