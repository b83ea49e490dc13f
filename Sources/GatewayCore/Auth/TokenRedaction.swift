/// Hides tokens in request URIs before they reach logs.
public enum TokenRedaction {
    public static let placeholder = "REDACTED"

    /// `uri` with the value of every `query` token source replaced by `REDACTED` (names matched after
    /// percent-decoding, as extraction does). Other bytes are unchanged.
    public static func redact(uri: String, sources: [TokenSource]) -> String {
        redact(uri: uri, queryNames: queryNames(of: sources))
    }

    /// The parameter names of the `query` sources among `sources`: what `redact(uri:queryNames:)` takes, made once
    /// per configuration rather than per log line.
    public static func queryNames(of sources: [TokenSource]) -> [String] {
        sources.compactMap { source -> String? in
            if case .query(let name) = source { return name }
            return nil
        }
    }

    /// `uri` with the value of every parameter named in `queryNames` replaced by `REDACTED`.
    public static func redact(uri: String, queryNames names: [String]) -> String {
        // Found in bytes: "?" followed by a combining mark is one Character, which `firstIndex(of: "?")` never finds.
        guard !names.isEmpty, let questionMark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return uri }
        let query = Substring(uri.utf8[uri.utf8.index(after: questionMark)...])
        // The common case, nothing to hide: the URI itself, no copy (this runs for every access-log line).
        guard let redacted = QueryTokenParameters.redacting(names: names, in: query, replacement: placeholder) else {
            return uri
        }
        return String(Substring(uri.utf8[...questionMark])) + redacted
    }
}
