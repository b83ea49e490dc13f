/// A request path after dot-segment removal, in the two forms routing needs.
public struct NormalizedPath: Sendable, Equatable {
    /// Dot-segments removed; every other segment keeps the client's percent-encoding. This is what goes upstream.
    public var raw: String
    /// `raw` percent-decoded; used for matching. Valid UTF-8, never contains NUL.
    public var decoded: String

    public init(raw: String, decoded: String) {
        self.raw = raw
        self.decoded = decoded
    }
}

/// Removes dot-segments so that routing and the upstream see the same path.
///
/// Stricter than RFC 3986 on purpose, because a disagreement between the gateway and the upstream about what a path
/// means is how route-level auth gets bypassed:
/// * a segment that *decodes* to "." or ".." (`%2e`, `.%2E`, ...) is a dot-segment;
/// * climbing above the root is an error, not clamped to "/";
/// * a segment whose decoded form is "." or ".." before a ";" (Tomcat-style `..;`) is rejected;
/// * a decoded path that would still contain a dot-segment once `%2F` becomes "/" (`..%2F`) is rejected.
public enum PathNormalizer {
    /// RFC 3986 remove_dot_segments, where a segment that DECODES to "." or ".." (%2e, %2E%2e...) counts as a dot
    /// segment. A path that climbs above the root ("/..", "/a/../../b") -> badRequest. Decoded NUL/invalid UTF-8 ->
    /// badRequest. "//" is kept as-is (not collapsed). A "%2F" stays encoded in `raw` but becomes "/" in `decoded`.
    public static func normalize(_ rawPath: String) throws(GatewayError) -> NormalizedPath {
        guard rawPath.utf8.first == UInt8(ascii: "/") else { throw .badRequest("path must start with \"/\"") }
        // Fast path: without "." or "%" there is nothing to remove and nothing to decode (and nothing to copy).
        if !rawPath.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "%") || $0 == 0 }) {
            return NormalizedPath(raw: rawPath, decoded: rawPath)
        }
        let bytes = Array(rawPath.utf8)

        let segments = bytes.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        var output: [ArraySlice<UInt8>] = []
        output.reserveCapacity(segments.count)
        for (position, segment) in segments.enumerated() {
            let isLast = position == segments.count - 1
            switch try dotSegmentKind(segment) {
            case .current:
                if isLast { output.append([]) }
            case .parent:
                guard !output.isEmpty else { throw .badRequest("path climbs above the root") }
                output.removeLast()
                if isLast { output.append([]) }
            case .none:
                output.append(segment)
            }
        }

        var raw: [UInt8] = [UInt8(ascii: "/")]
        raw.reserveCapacity(bytes.count)
        for (position, segment) in output.enumerated() {
            if position > 0 { raw.append(UInt8(ascii: "/")) }
            raw.append(contentsOf: segment)
        }
        guard let decoded = PercentDecoding.decode(raw) else {
            throw .badRequest("path contains an invalid percent-escape")
        }
        guard !decoded.contains(0) else { throw .badRequest("path contains an encoded NUL") }
        guard PercentDecoding.isValidUTF8(decoded) else { throw .badRequest("path does not decode to valid UTF-8") }
        if decoded.count != raw.count {
            // An encoded "/" may have created segments; none of them may be a dot-segment.
            for segment in decoded.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            where isDotLike(segment) {
                throw .badRequest("path contains an encoded slash next to a dot-segment")
            }
        }
        return NormalizedPath(
            raw: String(decoding: raw, as: UTF8.self),
            decoded: String(decoding: decoded, as: UTF8.self)
        )
    }

    private enum DotSegment {
        case current
        case parent
        case none
    }

    private static func dotSegmentKind(_ segment: ArraySlice<UInt8>) throws(GatewayError) -> DotSegment {
        // Dot-segments are at most 6 raw bytes ("%2e%2e"); ";"-suffixed ones may be longer, so decode when cheap.
        guard segment.contains(UInt8(ascii: ".")) || segment.contains(UInt8(ascii: "%")) else { return .none }
        guard let decoded = PercentDecoding.decode(segment) else {
            throw .badRequest("path contains an invalid percent-escape")
        }
        switch decoded {
        case [UInt8(ascii: ".")]: return .current
        case [UInt8(ascii: "."), UInt8(ascii: ".")]: return .parent
        default:
            if isDotLike(decoded[...]) {
                throw .badRequest("path contains a dot-segment with parameters (\";\")")
            }
            return .none
        }
    }

    /// "." or "..", optionally followed by ";..." (path parameters some servers strip before resolving dots).
    private static func isDotLike(_ segment: ArraySlice<UInt8>) -> Bool {
        let name = segment.prefix { $0 != UInt8(ascii: ";") }
        return name.elementsEqual([UInt8(ascii: ".")]) || name.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")])
    }
}
