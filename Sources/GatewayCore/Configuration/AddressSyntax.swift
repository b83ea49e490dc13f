/// The textual forms of addresses in `gateway.yml`: listen addresses, upstream URLs, CORS origins.
enum AddressSyntax {
    /// `host[:port]` with IPv6 hosts in brackets; the host comes back without brackets.
    static func authority(_ text: Substring) -> Result<(host: String, port: Int?), ValueProblem> {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return .failure(ValueProblem("missing ']' after IPv6 address"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return .failure(ValueProblem("unexpected '\(after)' after ']'")) }
                portText = after.dropFirst()
            }
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                return .failure(ValueProblem("'\(host)' is not an IPv6 address"))
            }
        } else {
            let colons = text.filter { $0 == ":" }.count
            if colons > 1 { return .failure(ValueProblem("IPv6 addresses must be written in brackets, e.g. [::1]")) }
            if let colon = text.firstIndex(of: ":") {
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
            } else {
                host = text
            }
            let allowed = host.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "." }
            guard allowed else { return .failure(ValueProblem("'\(host)' is not a valid host name")) }
        }
        guard !host.isEmpty else { return .failure(ValueProblem("missing host")) }
        guard let portText else { return .success((String(host), nil)) }
        guard let port = Int(portText), (0...65535).contains(port), portText.allSatisfy(\.isNumber) else {
            return .failure(ValueProblem("'\(portText)' is not a port number (0-65535)"))
        }
        return .success((String(host), port))
    }

    /// `host:port`, `[::1]:8080`; the port is required (0 picks a free port).
    static func listenAddress(_ text: String) -> Result<ListenAddress, ValueProblem> {
        switch authority(Substring(text)) {
        case .failure(let problem): return .failure(problem)
        case .success(let (host, port)):
            guard let port else { return .failure(ValueProblem("missing port (expected host:port)")) }
            return .success(ListenAddress(host: host, port: port))
        }
    }

    /// `http(s)://host[:port][/base/path]`: no userinfo, query or fragment; the trailing "/" is trimmed.
    static func upstreamURL(_ text: String) -> Result<UpstreamURL, ValueProblem> {
        let scheme: UpstreamURL.Scheme
        let rest: Substring
        switch split(url: text) {
        case .failure(let problem): return .failure(problem)
        case .success(let parts):
            guard let known = UpstreamURL.Scheme(rawValue: parts.scheme) else {
                return .failure(ValueProblem("unsupported scheme '\(parts.scheme)' (expected http or https)"))
            }
            scheme = known
            rest = parts.rest
        }
        if rest.contains("?") { return .failure(ValueProblem("must not contain a query ('?')")) }
        if rest.contains("#") { return .failure(ValueProblem("must not contain a fragment ('#')")) }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authorityText = rest[..<slash]
        if authorityText.contains("@") { return .failure(ValueProblem("must not contain credentials ('user@')")) }
        var basePath = rest[slash...]
        while basePath.hasSuffix("/") { basePath = basePath.dropLast() }
        switch authority(authorityText) {
        case .failure(let problem): return .failure(problem)
        case .success(let (host, port)):
            if port == 0 { return .failure(ValueProblem("port 0 is not a valid upstream port")) }
            return .success(UpstreamURL(scheme: scheme, host: host, port: port, basePath: String(basePath)))
        }
    }

    /// Any `http(s)://host...` URL (a JWKS endpoint): query strings are allowed, credentials are not.
    static func httpURL(_ text: String) -> ValueProblem? {
        switch split(url: text) {
        case .failure(let problem): return problem
        case .success(let parts):
            guard parts.scheme == "http" || parts.scheme == "https" else {
                return ValueProblem("unsupported scheme '\(parts.scheme)' (expected http or https)")
            }
            let end = parts.rest.firstIndex(where: { "/?#".contains($0) }) ?? parts.rest.endIndex
            let authorityText = parts.rest[..<end]
            if authorityText.contains("@") { return ValueProblem("must not contain credentials ('user@')") }
            if case .failure(let problem) = authority(authorityText) { return problem }
            return nil
        }
    }

    /// A CORS origin: `scheme://host[:port]` exactly as browsers send it, or `*`.
    static func origin(_ text: String) -> ValueProblem? {
        if text == "*" { return nil }
        switch split(url: text) {
        case .failure(let problem): return problem
        case .success(let parts):
            guard parts.scheme == "http" || parts.scheme == "https" else {
                return ValueProblem("an origin must be http(s)://host[:port] or '*'")
            }
            if parts.rest.contains(where: { "/?#@".contains($0) }) {
                return ValueProblem(
                    "an origin has no path, query or trailing '/': write '\(parts.scheme)://host[:port]'"
                )
            }
            if case .failure(let problem) = authority(parts.rest) { return problem }
            return nil
        }
    }

    private static func split(url text: String) -> Result<(scheme: String, rest: Substring), ValueProblem> {
        guard let separator = text.range(of: "://") else {
            return .failure(ValueProblem("'\(text)' is not a URL (expected http://host[:port][/path])"))
        }
        return .success((text[..<separator.lowerBound].lowercased(), text[separator.upperBound...]))
    }
}
