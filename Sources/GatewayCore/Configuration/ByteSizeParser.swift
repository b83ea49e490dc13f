/// Parses configuration byte sizes: a plain integer (`512`), or an integer with a binary unit.
///
/// Units: `B`, `KiB`, `MiB`, `GiB` (powers of 1024), optionally after one space (`16 KiB`).
/// `KB`/`MB`/`GB` are rejected on purpose: half of all readers take them as 1000 and half as 1024.
public enum ByteSizeParser {
    public static func parse(_ s: String) -> Int? {
        let digits = s.prefix(while: { $0.isASCII && $0.isNumber })
        guard !digits.isEmpty, let amount = Int(digits) else { return nil }
        var unit = s.dropFirst(digits.count)
        if unit.first == " " { unit = unit.dropFirst() }
        let multiplier: Int
        switch unit {
        case "", "B": multiplier = 1
        case "KiB": multiplier = 1 << 10
        case "MiB": multiplier = 1 << 20
        case "GiB": multiplier = 1 << 30
        default: return nil
        }
        let (bytes, overflow) = amount.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }
}
