import GatewayCore
import NIOHTTP1

@testable import FuzzSupport

/// Token cookies in `Cookie` headers. The first input line is a configured cookie name (besides `session`), every
/// other line one `Cookie` header. With the token cookies removed no token is found any more; a header that held
/// none keeps its exact bytes, one that held some keeps every other pair's bytes, in order; a token found is the
/// (unquoted) value of a pair with that exact name.
func pairs(_ header: String) -> [(name: Substring, pair: Substring)] {
    header.split(separator: ";").compactMap { pair in
        let trimmed = pair.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed()
        let text = Substring(String(trimmed))
        guard !text.isEmpty else { return nil }
        let name = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let trimmedName = String(name.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
        return (Substring(trimmedName), text)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let configured = String(decoding: input.line(), as: UTF8.self)
    let names = configured.isEmpty ? ["session"] : ["session", configured]
    var headers = HTTPHeaders()
    headers.add(name: "Accept", value: "text/event-stream")
    var values: [String] = []
    while !input.bytes.isEmpty {
        let value = String(decoding: input.line(), as: UTF8.self)
        values.append(value)
        headers.add(name: "Cookie", value: value)
    }
    let isToken = { (name: Substring) in names.contains { name.utf8.elementsEqual($0.utf8) } }

    for name in names {
        guard let token = CookieTokens.firstValue(named: name, in: headers) else { continue }
        invariant(!token.isEmpty, "empty token")
        let found = values.flatMap(pairs).contains { entry in
            guard entry.name.utf8.elementsEqual(name.utf8) else { return false }
            let value = entry.pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().first ?? ""
            let trimmed = String(value.drop { $0 == " " || $0 == "\t" })
            return trimmed == token || trimmed == "\"" + token + "\""
        }
        invariant(found, "token \(token.debugDescription) for \(name.debugDescription) is no pair's value in \(values)")
    }

    var stripped = headers
    CookieTokens.remove(names: names, from: &stripped)
    for name in names {
        invariant(CookieTokens.firstValue(named: name, in: stripped) == nil, "cookie \(name) survives in \(stripped["cookie"])")
    }
    invariant(stripped["accept"] == ["text/event-stream"], "another header changed")
    let expected = values.compactMap { value -> String? in
        let all = pairs(value)
        guard all.contains(where: { isToken($0.name) }) else { return value }
        let kept = all.filter { !isToken($0.name) }.map(\.pair)
        return kept.isEmpty ? nil : kept.joined(separator: "; ")
    }
    invariant(stripped["cookie"] == expected, "stripped \(values) to \(stripped["cookie"]), expected \(expected)")
    return 0
}
