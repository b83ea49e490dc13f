/// Finds and removes token parameters in a raw query string (the part after `?`, without it).
///
/// Names are compared after percent-decoding (`access%5Ftoken` is `access_token`), because upstream frameworks decode
/// names too and would otherwise see the token. Values follow WHATWG `URLSearchParams`: `+` is a space and `%XX` is
/// decoded; an invalid escape stays literal. An empty value counts as absent. The first non-empty copy supplies the
/// token, but every copy is stripped. Other parameters keep their exact bytes and order.
public enum QueryTokenParameters {
    /// A query, a component of it, or a name or value in one: its bytes. Queries are split on the bytes `&` and `=`,
    /// as upstream frameworks split them; splitting `Character`s instead would keep `&` or `=` followed by a combining
    /// mark inside a component, so a parameter the upstream sees would go unnoticed here.
    typealias Bytes = Substring.UTF8View

    /// The decoded value of the first non-empty parameter named `name`, or `nil`.
    public static func firstValue(named name: String, in query: Substring) -> String? {
        for component in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
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
        guard containsParameter(namedAnyOf: names, in: query, withValue: false) else { return String(query) }
        let result = query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false)
            .filter { !isParameter($0, namedAnyOf: names, withValue: false) }
            .map { Substring($0) }
            .joined(separator: "&")
        return result.isEmpty ? nil : result
    }

    /// `query` with the value of every parameter named in `names` replaced by `replacement`; `nil` when no parameter
    /// matches (the caller keeps what it has: nothing is copied).
    public static func redacting(names: [String], in query: Substring, replacement: String) -> String? {
        guard containsParameter(namedAnyOf: names, in: query, withValue: true) else { return nil }
        return query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false).map { component in
            isParameter(component, namedAnyOf: names, withValue: true)
                ? String(Substring(split(component).name)) + "=" + replacement : String(Substring(component))
        }.joined(separator: "&")
    }

    /// Whether a parameter's decoded name is in `names` (`withValue`: only one written with `=`). Allocates nothing,
    /// so the common request, which carries no token parameter, costs one scan of its query's bytes.
    public static func containsParameter(namedAnyOf names: [String], in query: Substring, withValue: Bool) -> Bool {
        let bytes = query.utf8
        var start = bytes.startIndex
        while true {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "&")) ?? bytes.endIndex
            if isParameter(bytes[start..<end], namedAnyOf: names, withValue: withValue) { return true }
            guard end < bytes.endIndex else { return false }
            start = bytes.index(after: end)
        }
    }

    /// One `name[=value]` component: is its decoded name in `names` (and, with `withValue`, is it written with `=`)?
    static func isParameter(_ component: Bytes, namedAnyOf names: [String], withValue: Bool) -> Bool {
        let (rawName, rawValue) = split(component)
        return !rawName.isEmpty && (!withValue || rawValue != nil) && names.contains { nameMatches(rawName, $0) }
    }

    static func split(_ component: Bytes) -> (name: Bytes, value: Bytes?) {
        guard let eq = component.firstIndex(of: UInt8(ascii: "=")) else { return (component, nil) }
        return (component[..<eq], component[component.index(after: eq)...])
    }

    /// Compares without allocating when the raw name has no escapes (the common case).
    static func nameMatches(_ raw: Bytes, _ name: String) -> Bool {
        if !raw.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) {
            return raw.elementsEqual(name.utf8)
        }
        return percentDecode(raw, plusIsSpace: true) == name
    }

    /// Decodes `%XX` escapes (invalid ones stay literal) and, if asked, `+` as space; bytes that are not UTF-8 become
    /// U+FFFD, which can never match a configured name or a valid token.
    static func percentDecode(_ utf8: Bytes, plusIsSpace: Bool) -> String {
        if !utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) {
            return String(Substring(utf8))
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
