import NIOHTTP1

/// Reads a token from a request using a policy's `token_sources`, and strips every configured source.
///
/// All sources are stripped, not only the one used, so no unverified token-looking value reaches the upstream.
public struct TokenExtractor: Sendable {
    public let sources: [TokenSource]
    private let queryNames: [String]
    private let cookieNames: [String]
    private let headerNames: [String]

    public init(sources: [TokenSource]) {
        self.sources = sources
        var q: [String] = []
        var c: [String] = []
        var h: [String] = []
        for source in sources {
            switch source {
            case .query(let name): q.append(name)
            case .cookie(let name): c.append(name)
            case .header(let name): h.append(name)
            }
        }
        self.queryNames = q
        self.cookieNames = c
        self.headerNames = h
    }

    /// The token of the first source present (an empty value counts as absent), and the source it came from.
    public func token(query: Substring?, headers: HTTPHeaders) -> (token: String, source: TokenSource)? {
        for source in sources {
            switch source {
            case .query(let name):
                if let query, let value = QueryTokenParameters.firstValue(named: name, in: query) {
                    return (value, source)
                }
            case .cookie(let name):
                if let value = CookieTokens.firstValue(named: name, in: headers) { return (value, source) }
            case .header(let name):
                for value in headers[name] {
                    if let token = Self.bearerToken(value) { return (token, source) }
                }
            }
        }
        return nil
    }

    /// The query with every configured token parameter removed (`nil` when nothing is left).
    public func strippedQuery(_ query: Substring?) -> String? {
        guard let query else { return nil }
        return QueryTokenParameters.removing(names: queryNames, from: query)
    }

    /// Removes every configured token cookie and token header.
    public func strip(_ headers: inout HTTPHeaders) {
        CookieTokens.remove(names: cookieNames, from: &headers)
        for name in headerNames { headers.remove(name: name) }
    }

    /// `Bearer <token>` with the scheme matched case-insensitively; `nil` for other schemes or an empty token.
    public static func bearerToken(_ value: String) -> String? {
        let utf8 = value.utf8
        guard utf8.count > 7 else { return nil }
        let scheme = utf8.prefix(6)
        guard scheme.elementsEqual("bearer".utf8, by: { $0 | 0x20 == $1 }) else { return nil }
        var rest = Substring(value).dropFirst(6)
        guard let first = rest.first, first == " " || first == "\t" else { return nil }
        rest = CookieTokens.trimmed(rest)
        return rest.isEmpty ? nil : String(rest)
    }
}
