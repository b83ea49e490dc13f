import NIOHTTP1

/// Finds and removes token cookies in `Cookie` headers (RFC 6265 `name=value` pairs separated by `;`).
///
/// Whitespace around pairs is tolerated, a value in double quotes is unquoted for extraction, and every `Cookie`
/// header is searched (HTTP/2 clients split them; commas never split a header). Values are not percent-decoded: RFC 6265 does not define it.
/// Stripping rewrites only headers that held a token cookie, joining the other pairs' exact bytes with `"; "`;
/// a header left empty is removed.
public enum CookieTokens {
    /// The first non-empty cookie named `name` across all `Cookie` headers, unquoted.
    public static func firstValue(named name: String, in headers: HTTPHeaders) -> String? {
        for header in headers["cookie"] {
            for pair in header.split(separator: ";", omittingEmptySubsequences: true) {
                let (cookieName, value) = split(pair)
                guard cookieName.utf8.elementsEqual(name.utf8) else { continue }
                let unquoted = unquote(value)
                if !unquoted.isEmpty { return String(unquoted) }
            }
        }
        return nil
    }

    /// Removes every cookie named in `names` from `headers`; untouched headers keep their exact bytes.
    public static func remove(names: [String], from headers: inout HTTPHeaders) {
        guard !names.isEmpty, headers.contains(name: "cookie") else { return }
        let originals = headers["cookie"]
        var rewritten: [String] = []
        var changed = false
        for header in originals {
            var kept: [Substring] = []
            var removedHere = false
            for pair in header.split(separator: ";", omittingEmptySubsequences: true) {
                let name = split(pair).name
                if names.contains(where: { name.utf8.elementsEqual($0.utf8) }) {
                    removedHere = true
                } else if !trimmed(pair).isEmpty {
                    kept.append(trimmed(pair))
                }
            }
            if removedHere {
                changed = true
                if !kept.isEmpty { rewritten.append(kept.joined(separator: "; ")) }
            } else {
                rewritten.append(String(header))
            }
        }
        guard changed else { return }
        headers.remove(name: "cookie")
        for value in rewritten { headers.add(name: "Cookie", value: value) }
    }

    static func split(_ pair: Substring) -> (name: Substring, value: Substring) {
        let pair = trimmed(pair)
        guard let eq = pair.firstIndex(of: "=") else { return (pair, pair[pair.endIndex...]) }
        return (trimmed(pair[..<eq]), trimmed(pair[pair.index(after: eq)...]))
    }

    static func unquote(_ value: Substring) -> Substring {
        if value.utf8.count >= 2, value.first == "\"", value.last == "\"" {
            return value.dropFirst().dropLast()
        }
        return value
    }

    static func trimmed(_ text: Substring) -> Substring {
        var text = text
        while let c = text.first, c == " " || c == "\t" { text = text.dropFirst() }
        while let c = text.last, c == " " || c == "\t" { text = text.dropLast() }
        return text
    }
}
