#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds and removes token parameters in a raw query string (the part after `?`, without it).
///
/// Names are compared after percent-decoding (`access%5Ftoken` is `access_token`), because upstream frameworks decode
/// names too and would otherwise see the token. Values follow WHATWG `URLSearchParams`: `+` is a space and `%XX` is
/// decoded; an invalid escape stays literal. An empty value counts as absent. The first non-empty copy supplies the
/// token, but every copy is stripped. Other parameters keep their exact bytes and order.
///
/// Queries are split on the bytes `&` and `=`, as upstream frameworks split them (splitting `Character`s instead
/// would keep `&` or `=` followed by a combining mark inside a component, so a parameter the upstream sees would go
/// unnoticed here), and scanned as one contiguous run of bytes: a JWT in the query is hundreds of bytes, and walking
/// them with `Substring.UTF8View` indices cost ~10 µs per request to find, strip and redact (2.6% of the gateway's
/// CPU in a reconnect storm of 2,000 connections with tokens in the query, the access log's redaction alone).
public enum QueryTokenParameters {
    /// A query's bytes; components, names and values are ranges in it.
    typealias Bytes = UnsafeBufferPointer<UInt8>

    /// The decoded value of the first non-empty parameter named `name`, or `nil`.
    public static func firstValue(named name: String, in query: Substring) -> String? {
        withBytes(of: query) { bytes in
            var found: String?
            forEachComponent(of: bytes) { component in
                guard !component.isEmpty else { return true }
                let (rawName, rawValue) = split(component, in: bytes)
                guard let rawValue, !rawValue.isEmpty, nameIsAny(rawName, in: bytes, of: CollectionOfOne(name)) else {
                    return true
                }
                let value = percentDecode(Bytes(rebasing: bytes[rawValue]), plusIsSpace: true)
                if value.isEmpty { return true }
                found = value
                return false
            }
            return found
        }
    }

    /// The query without any parameter whose decoded name is in `names`; `nil` if nothing is left.
    ///
    /// Returns the input unchanged (no copy beyond the `String`) when no parameter matches.
    public static func removing(names: [String], from query: Substring) -> String? {
        if query.isEmpty { return nil }
        return withBytes(of: query) { bytes in
            guard contains(namedAnyOf: names, in: bytes, withValue: false) else { return String(query) }
            let result = rebuild(bytes) { component in
                isParameter(component, in: bytes, namedAnyOf: names, withValue: false) ? .drop : .keep
            }
            return result.isEmpty ? nil : result
        }
    }

    /// `query` with the value of every parameter named in `names` replaced by `replacement`; `nil` when no parameter
    /// matches (the caller keeps what it has: nothing is copied).
    public static func redacting(names: [String], in query: Substring, replacement: String) -> String? {
        withBytes(of: query) { bytes in
            guard contains(namedAnyOf: names, in: bytes, withValue: true) else { return nil }
            return rebuild(bytes) { component in
                isParameter(component, in: bytes, namedAnyOf: names, withValue: true)
                    ? .replaceValue(with: replacement) : .keep
            }
        }
    }

    /// Whether a parameter's decoded name is in `names` (`withValue`: only one written with `=`). Allocates nothing,
    /// so the common request, which carries no token parameter, costs one scan of its query's bytes.
    public static func containsParameter(namedAnyOf names: [String], in query: Substring, withValue: Bool) -> Bool {
        withBytes(of: query) { contains(namedAnyOf: names, in: $0, withValue: withValue) }
    }

    // MARK: Bytes

    /// Runs `body` on the query's UTF-8 bytes: a native string's own storage, or a copy of the bytes otherwise.
    static func withBytes<Result>(of query: Substring, _ body: (Bytes) -> Result) -> Result {
        if let result = query.utf8.withContiguousStorageIfAvailable(body) { return result }
        return Array(query.utf8).withUnsafeBufferPointer(body)
    }

    /// Calls `body` with each `&`-separated component's range, empty ones included, until it returns `false`.
    static func forEachComponent(of bytes: Bytes, _ body: (Range<Int>) -> Bool) {
        var start = 0
        while true {
            let end = index(of: UInt8(ascii: "&"), in: bytes, from: start)
            guard body(start..<end), end < bytes.count else { return }
            start = end + 1
        }
    }

    /// The index of the first `byte` at or after `start`, or the end (`memchr`: a token value is hundreds of bytes).
    static func index(of byte: UInt8, in bytes: Bytes, from start: Int) -> Int {
        guard start < bytes.count, let base = bytes.baseAddress,
            let found = memchr(base + start, CInt(byte), bytes.count - start)
        else { return bytes.count }
        return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }

    static func contains(namedAnyOf names: [String], in bytes: Bytes, withValue: Bool) -> Bool {
        var found = false
        forEachComponent(of: bytes) { component in
            found = isParameter(component, in: bytes, namedAnyOf: names, withValue: withValue)
            return !found
        }
        return found
    }

    /// One `name[=value]` component: is its decoded name in `names` (and, with `withValue`, is it written with `=`)?
    static func isParameter(_ component: Range<Int>, in bytes: Bytes, namedAnyOf names: [String], withValue: Bool)
        -> Bool
    {
        let (rawName, rawValue) = split(component, in: bytes)
        return !rawName.isEmpty && (!withValue || rawValue != nil) && nameIsAny(rawName, in: bytes, of: names)
    }

    static func split(_ component: Range<Int>, in bytes: Bytes) -> (name: Range<Int>, value: Range<Int>?) {
        let eq = index(of: UInt8(ascii: "="), in: Bytes(rebasing: bytes[component]), from: 0) + component.lowerBound
        guard eq < component.upperBound else { return (component, nil) }
        return (component.lowerBound..<eq, (eq + 1)..<component.upperBound)
    }

    /// Whether the raw name decodes to one of `names`. Without escapes (the common case) it is a comparison of
    /// lengths, then of bytes, with nothing allocated; with escapes it is decoded once.
    static func nameIsAny(_ raw: Range<Int>, in bytes: Bytes, of names: some Collection<String>) -> Bool {
        let rawBytes = Bytes(rebasing: bytes[raw])
        if rawBytes.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) {
            let decoded = percentDecode(rawBytes, plusIsSpace: true)
            return names.contains(decoded)
        }
        return names.contains { name in
            name.utf8.count == rawBytes.count
                && (name.utf8.withContiguousStorageIfAvailable { $0.elementsEqual(rawBytes) }
                    ?? name.utf8.elementsEqual(rawBytes))
        }
    }

    /// What `rebuild` does with one component.
    enum Edit {
        case keep
        case drop
        case replaceValue(with: String)
    }

    /// The components, each kept, dropped or given a new value, joined by `&` again (gathered as bytes, made a string
    /// once).
    static func rebuild(_ bytes: Bytes, _ edit: (Range<Int>) -> Edit) -> String {
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count + 16)
        var first = true
        forEachComponent(of: bytes) { component in
            let action = edit(component)
            if case .drop = action { return true }
            if !first { result.append(UInt8(ascii: "&")) }
            first = false
            switch action {
            case .keep:
                result.append(contentsOf: bytes[component])
            case .replaceValue(let replacement):
                result.append(contentsOf: bytes[split(component, in: bytes).name])
                result.append(UInt8(ascii: "="))
                result.append(contentsOf: replacement.utf8)
            case .drop:
                break
            }
            return true
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// Decodes `%XX` escapes (invalid ones stay literal) and, if asked, `+` as space; bytes that are not UTF-8 become
    /// U+FFFD, which can never match a configured name or a valid token.
    static func percentDecode(_ utf8: Bytes, plusIsSpace: Bool) -> String {
        if !utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) {
            return String(decoding: utf8, as: UTF8.self)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            let byte = utf8[i]
            if byte == UInt8(ascii: "%"), i + 2 < utf8.count, let hi = PercentDecoding.hexValue(utf8[i + 1]),
                let lo = PercentDecoding.hexValue(utf8[i + 2])
            {
                bytes.append(hi << 4 | lo)
                i += 3
                continue
            }
            bytes.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
