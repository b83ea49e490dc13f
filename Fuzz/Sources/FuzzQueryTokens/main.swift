import GatewayCore
import NIOHTTP1

@testable import FuzzSupport

/// Query token parameters, as `TokenExtractor` strips them and `TokenRedaction` hides them. The first line of the
/// input is a configured parameter name (besides `access_token`), the rest the query. With the token parameters
/// removed, no parameter's name decodes (by the independent decoder below) to a token source, and every other
/// parameter is kept byte for byte, in order; a token found is a value of a removed parameter; a redacted URI has the
/// same parameters, each token value replaced.
/// `%XX` and `+` decoded the way `URLSearchParams` does; an invalid escape stays literal.
func referenceDecodeName(_ raw: Substring) -> String {
    var bytes: [UInt8] = []
    let utf8 = Array(raw.utf8)
    var i = 0
    while i < utf8.count {
        if utf8[i] == UInt8(ascii: "%"), i + 2 < utf8.count, let value = UInt8(String(decoding: utf8[(i + 1)...(i + 2)], as: UTF8.self), radix: 16),
            utf8[i + 1] != UInt8(ascii: "+"), utf8[i + 1] != UInt8(ascii: "-")
        {
            bytes.append(value)
            i += 3
        } else {
            bytes.append(utf8[i] == UInt8(ascii: "+") ? UInt8(ascii: " ") : utf8[i])
            i += 1
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

func name(of component: Substring) -> Substring {
    component.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? component
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let configured = String(decoding: input.line(), as: UTF8.self)
    let query = Substring(String(decoding: input.rest, as: UTF8.self))
    let names = configured.isEmpty ? ["access_token"] : ["access_token", configured]
    let isToken: (Substring) -> Bool = { component in
        let raw = name(of: component)
        return !raw.isEmpty && names.contains(referenceDecodeName(raw))
    }
    let extractor = TokenExtractor(sources: names.map { .query($0) } + [.header("Authorization")])

    let components = query.split(separator: "&", omittingEmptySubsequences: false)
    let kept = components.filter { !isToken($0) }
    let stripped = extractor.strippedQuery(query)
    let expected = kept.joined(separator: "&")
    invariant(stripped == (expected.isEmpty ? nil : expected), "stripped \(query.debugDescription) to \(String(describing: stripped)), expected \(expected.debugDescription)")
    if let stripped {
        invariant(extractor.token(query: Substring(stripped), headers: [:]) == nil, "a token survives in \(stripped.debugDescription)")
    }

    if let (token, source) = extractor.token(query: query, headers: [:]) {
        guard case .query(let sourceName) = source else { fatalError("invariant failed: token from \(source)") }
        invariant(!token.isEmpty, "empty token")
        invariant(components.contains { isToken($0) && referenceDecodeName(name(of: $0)) == sourceName }, "token \(token.debugDescription) from no token parameter")
    } else {
        // Absent means every token parameter's value decodes to nothing.
        for component in components where isToken(component) {
            let value = component.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().first ?? ""
            invariant(referenceDecodeName(value).isEmpty, "the token in \(component.debugDescription) was not found")
        }
    }

    let uri = "/events?" + query
    let redacted = TokenRedaction.redact(uri: uri, sources: extractor.sources)
    // In bytes: "?" and a combining mark after it are one Character.
    invariant(redacted.utf8.starts(with: "/events?".utf8), "redaction changed the path")
    let redactedComponents = Substring(redacted.utf8.dropFirst("/events?".utf8.count))
        .split(separator: "&", omittingEmptySubsequences: false)
    invariant(redactedComponents.count == components.count, "redaction changed the parameter count: \(redacted.debugDescription)")
    for (before, after) in zip(components, redactedComponents) {
        if isToken(before) && before.contains("=") {
            invariant(after == name(of: before) + "=" + TokenRedaction.placeholder, "\(before.debugDescription) redacted as \(after.debugDescription)")
        } else {
            invariant(after == before, "\(before.debugDescription) changed to \(after.debugDescription) by redaction")
        }
    }
    return 0
}
