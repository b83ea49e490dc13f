/// Parses configuration durations: a sequence of `<integer><unit>` parts, as in Go.
///
/// Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, `d`; parts add up (`1m30s`). A bare `0` is zero.
/// Fractions (`1.5s`), signs and spaces are rejected: write `1500ms`. Results that overflow are rejected.
public enum DurationParser {
    public static func parse(_ s: String) -> Duration? {
        if s == "0" { return .zero }
        var nanoseconds: Int64 = 0
        var scalars = Substring(s).unicodeScalars[...]
        guard !scalars.isEmpty else { return nil }
        while !scalars.isEmpty {
            let digits = scalars.prefix(while: { $0.properties.numericType == .decimal && $0.isASCII })
            guard !digits.isEmpty, let amount = Int64(String(String.UnicodeScalarView(digits))) else { return nil }
            scalars = scalars.dropFirst(digits.count)
            let unitScalars = scalars.prefix(while: { !($0.isASCII && $0.properties.numericType == .decimal) })
            scalars = scalars.dropFirst(unitScalars.count)
            guard let perUnit = nanosecondsPerUnit(String(String.UnicodeScalarView(unitScalars))) else { return nil }
            let (part, overflow) = amount.multipliedReportingOverflow(by: perUnit)
            guard !overflow else { return nil }
            let (sum, sumOverflow) = nanoseconds.addingReportingOverflow(part)
            guard !sumOverflow else { return nil }
            nanoseconds = sum
        }
        return .nanoseconds(nanoseconds)
    }

    private static func nanosecondsPerUnit(_ unit: String) -> Int64? {
        switch unit {
        case "ns": 1
        case "us", "µs": 1_000
        case "ms": 1_000_000
        case "s": 1_000_000_000
        case "m": 60_000_000_000
        case "h": 3_600_000_000_000
        case "d": 86_400_000_000_000
        default: nil
        }
    }
}
