/// Finds and removes token parameters in a raw query string (the part after `?`, without it).
///
/// Names are compared after percent-decoding (`access%5Ftoken` is `access_token`), because upstream frameworks decode
/// names too and would otherwise see the token. Values follow WHATWG `URLSearchParams`: `+` is a space and `%XX` is
/// decoded; an invalid escape stays literal. An empty value counts as absent. The first non-empty copy supplies the
/// token, but every copy is stripped. Other parameters keep their exact bytes and order.
public enum QueryTokenParameters {
    /// The decoded value of the first non-empty parameter named `name`, or `nil`.
    public static func firstValue(named name: String, in query: Substring) -> String? {
        for component in query.split(separator: "&", omittingEmptySubsequences: true) {
            let (rawName, rawValue) = split(component)
            guard nameMatches(rawName, name), let rawValue, !rawValue.isEmpty else { continue }
            let value = percentDecode(rawValue, plusIsSpace: true)
            if !value.isEmpty { return value }
        }
        return nil
    }

    /// The query without any parameter whose decoded name is in `names`; `nil` if nothing is left.
    ///
    /// Returns the input unchanged (no copy beyond the `String`) when no parameter matches.
    public static func removing(names: [String], from query: Substring) -> String? {
        if query.isEmpty { return nil }
        if names.isEmpty || !containsParameter(namedAnyOf: names, in: query, withValue: false) { return String(query) }
        var kept: [Substring] = []
        var removedAny = false
        for component in query.split(separator: "&", omittingEmptySubsequences: false) {
            let (rawName, _) = split(component)
            if !rawName.isEmpty, names.contains(where: { nameMatches(rawName, $0) }) {
                removedAny = true
            } else {
                kept.append(component)
            }
        }
        if !removedAny { return String(query) }
        let result = kept.joined(separator: "&")
        return result.isEmpty ? nil : result
    }

    /// `query` with the value of every parameter named in `names` replaced by `replacement`.
    public static func redacting(names: [String], in query: Substring, replacement: String) -> String {
        guard containsParameter(namedAnyOf: names, in: query, withValue: true) else { return String(query) }
        var parts: [String] = []
        var changed = false
        for component in query.split(separator: "&", omittingEmptySubsequences: false) {
            let (rawName, rawValue) = split(component)
            if rawValue != nil, !rawName.isEmpty, names.contains(where: { nameMatches(rawName, $0) }) {
                parts.append(String(rawName) + "=" + replacement)
                changed = true
            } else {
                parts.append(String(component))
            }
        }
        return changed ? parts.joined(separator: "&") : String(query)
    }

    /// Whether a parameter's decoded name is in `names` (`withValue`: only one written with `=`). Allocates nothing,
    /// so the common request, which carries no token parameter, costs one scan of its query.
    public static func containsParameter(namedAnyOf names: [String], in query: Substring, withValue: Bool) -> Bool {
        var start = query.startIndex
        while true {
            let end = query[start...].firstIndex(of: "&") ?? query.endIndex
            let (rawName, rawValue) = split(query[start..<end])
            if !rawName.isEmpty, !withValue || rawValue != nil, names.contains(where: { nameMatches(rawName, $0) }) {
                return true
            }
            guard end < query.endIndex else { return false }
            start = query.index(after: end)
        }
    }

    static func split(_ component: Substring) -> (name: Substring, value: Substring?) {
        guard let eq = component.firstIndex(of: "=") else { return (component, nil) }
        return (component[..<eq], component[component.index(after: eq)...])
    }

    /// Compares without allocating when the raw name has no escapes (the common case).
    static func nameMatches(_ raw: Substring, _ name: String) -> Bool {
        if !raw.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) {
            return raw.utf8.elementsEqual(name.utf8)
        }
        return percentDecode(raw, plusIsSpace: true) == name
    }

    /// Decodes `%XX` escapes (invalid ones stay literal) and, if asked, `+` as space; bytes that are not UTF-8 become
    /// U+FFFD, which can never match a configured name or a valid token.
    static func percentDecode(_ text: Substring, plusIsSpace: Bool) -> String {
        let utf8 = text.utf8
        if !utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) {
            return String(text)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var i = utf8.startIndex
        while i != utf8.endIndex {
            let byte = utf8[i]
            if byte == UInt8(ascii: "%") {
                let h1 = utf8.index(after: i)
                if h1 != utf8.endIndex {
                    let h2 = utf8.index(after: h1)
                    if h2 != utf8.endIndex, let hi = hexValue(utf8[h1]), let lo = hexValue(utf8[h2]) {
                        bytes.append(hi << 4 | lo)
                        i = utf8.index(after: h2)
                        continue
                    }
                }
                bytes.append(byte)
            } else if plusIsSpace && byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
            i = utf8.index(after: i)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
