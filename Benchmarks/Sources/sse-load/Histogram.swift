/// A log-linear histogram of non-negative values (microseconds here): exact below 64, then 32 buckets per power of
/// two (about 3% relative error). Fixed size, so recording never allocates; histograms merge by adding buckets.
struct Histogram: Sendable {
    private static let linearLimit: UInt64 = 64
    private static let bucketsPerOctave = 32
    private static let bucketCount = 64 + (63 - 6 + 1) * 32

    private var buckets = [UInt64](repeating: 0, count: Histogram.bucketCount)
    private(set) var count: UInt64 = 0
    private(set) var max: UInt64 = 0
    private(set) var sum: UInt64 = 0

    @inline(__always)
    private static func index(of value: UInt64) -> Int {
        if value < linearLimit { return Int(value) }
        let msb = 63 - value.leadingZeroBitCount
        let shift = msb - 5
        return 64 + (msb - 6) * bucketsPerOctave + Int((value >> UInt64(shift)) - 32)
    }

    /// Largest value that falls into bucket `index`.
    private static func upperBound(of index: Int) -> UInt64 {
        if index < 64 { return UInt64(index) }
        let octave = (index - 64) / bucketsPerOctave
        let sub = UInt64((index - 64) % bucketsPerOctave) + 32
        let shift = UInt64(octave + 1)
        return ((sub + 1) &<< shift) &- 1
    }

    @inline(__always)
    mutating func record(_ value: UInt64) {
        buckets[Self.index(of: value)] &+= 1
        count &+= 1
        sum &+= value
        if value > max { max = value }
    }

    mutating func merge(_ other: Histogram) {
        for index in 0..<buckets.count { buckets[index] &+= other.buckets[index] }
        count &+= other.count
        sum &+= other.sum
        if other.max > max { max = other.max }
    }

    /// The value at quantile `q` (0...1): the upper bound of the bucket holding it, never above the exact max.
    func value(atQuantile q: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let rank = Swift.max(1, UInt64((q * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for index in 0..<buckets.count {
            seen &+= buckets[index]
            if seen >= rank { return Swift.min(Self.upperBound(of: index), max) }
        }
        return max
    }

    /// Percentiles in the fixed shape both reports use.
    var summary: Percentiles {
        Percentiles(
            count: count, p50: value(atQuantile: 0.5), p90: value(atQuantile: 0.9), p99: value(atQuantile: 0.99),
            p999: value(atQuantile: 0.999), max: max, mean: count == 0 ? 0 : Double(sum) / Double(count)
        )
    }
}

/// Percentiles of one histogram, in its unit (microseconds).
struct Percentiles: Codable, Sendable {
    var count: UInt64
    var p50: UInt64
    var p90: UInt64
    var p99: UInt64
    var p999: UInt64
    var max: UInt64
    var mean: Double
}
