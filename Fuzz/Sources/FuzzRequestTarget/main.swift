@testable import GatewayCore

import FuzzSupport

/// Request target parsing, path normalisation and routing. A normalised path normalises to itself, holds no
/// dot-segment, and decodes to its `decoded` form; a routed request stays inside the prefix of the route it matched,
/// the one the client's own (decoded) path points at; the upstream path is the base path plus the normalised path,
/// less the prefix when the route strips it.
let routes = [
    RouteConfiguration(
        name: "events", pathPrefix: "/events/", upstream: UpstreamURL(scheme: .http, host: "a", basePath: "/api"),
        stripPrefix: true),
    RouteConfiguration(name: "admin", pathPrefix: "/admin", upstream: UpstreamURL(scheme: .http, host: "b")),
    RouteConfiguration(
        name: "feed", pathPrefix: "/feed", upstream: UpstreamURL(scheme: .http, host: "c", basePath: "/v1"),
        stripPrefix: true),
    RouteConfiguration(name: "feed-private", pathPrefix: "/feed/private/", upstream: UpstreamURL(scheme: .http, host: "d")),
]
let table = RouteTable(routes: routes)

func decoded(_ text: some StringProtocol) -> [UInt8] {
    guard let bytes = PercentDecoding.decode(Array(text.utf8)) else {
        fatalError("invariant failed: undecodable \(String(text).debugDescription)")
    }
    return bytes
}

func isDotSegment(_ segment: ArraySlice<UInt8>) -> Bool {
    segment.elementsEqual(".".utf8) || segment.elementsEqual("..".utf8)
}

/// Longest prefix, earliest route on a tie: the rule `RouteTable` documents, written out.
func referenceMatch(_ path: [UInt8]) -> Int? {
    var best: Int?
    for (index, route) in routes.enumerated() where path.starts(with: route.pathPrefix.utf8) {
        if best == nil || route.pathPrefix.utf8.count > routes[best!].pathPrefix.utf8.count { best = index }
    }
    return best
}

/// Raw bytes that decode to the first `count` decoded bytes (`%XX` is one).
func rawLength(ofDecoded count: Int, in raw: String) -> Int {
    let bytes = Array(raw.utf8)
    var index = 0
    for _ in 0..<count where index < bytes.count { index += bytes[index] == UInt8(ascii: "%") ? 3 : 1 }
    return min(index, bytes.count)
}

func checkNormalized(_ path: String) {
    guard let normalized = try? PathNormalizer.normalize(path) else { return }
    invariant(normalized.raw.hasPrefix("/"), "normalised path \(normalized.raw.debugDescription) is not absolute")
    invariant((try? PathNormalizer.normalize(normalized.raw)) == normalized, "normalising \(path.debugDescription) twice changes it")
    let decodedRaw = decoded(normalized.raw)
    invariant(decodedRaw == Array(normalized.decoded.utf8), "decoded form of \(path.debugDescription) is not the raw form decoded")
    for segment in decodedRaw.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
        invariant(!isDotSegment(segment), "\(path.debugDescription) normalises to \(normalized.raw.debugDescription), with a dot-segment")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    let uri = String(decoding: input.rest, as: UTF8.self)
    if uri.hasPrefix("/") { checkNormalized(uri) }
    guard let target = try? RequestTarget.parse(uri) else { return 0 }
    invariant(target.rawPath + (target.rawQuery.map { "?" + $0 } ?? "") == uri, "parse of \(uri.debugDescription) lost bytes")
    invariant(target.rawPath.hasPrefix("/") && !target.rawPath.contains("?"), "path \(target.rawPath.debugDescription)")
    checkNormalized(target.rawPath)

    guard let routed = try? table.route(uri: uri) else { return 0 }
    let normalized = try! PathNormalizer.normalize(target.rawPath)
    let route = routes[routed.routeIndex]
    invariant(referenceMatch(Array(normalized.decoded.utf8)) == routed.routeIndex, "\(uri.debugDescription) routed to \(route.name)")
    invariant(normalized.decoded.hasPrefix(route.pathPrefix), "\(uri.debugDescription) escapes \(route.pathPrefix)")
    if let clientRoute = referenceMatch(decoded(target.rawPath)) {
        invariant(clientRoute == routed.routeIndex, "\(uri.debugDescription) names \(routes[clientRoute].name), routed to \(route.name)")
    }
    invariant(routed.query == target.rawQuery, "query changed")
    invariant(routed.upstreamPath.hasPrefix(route.upstream.basePath), "base path lost")
    let path = routed.upstreamPath.dropFirst(route.upstream.basePath.count)
    invariant(path.hasPrefix("/"), "upstream path \(routed.upstreamPath.debugDescription) after the base is not absolute")
    var expected = Array(normalized.decoded.utf8)
    if route.stripPrefix {
        let prefix = route.pathPrefix.hasSuffix("/") ? route.pathPrefix.utf8.count - 1 : route.pathPrefix.utf8.count
        expected.removeFirst(prefix)
        // The documented rule: a rest whose *raw* form does not start with "/" gets one, so an encoded slash right
        // after the prefix (`/events%2Fa` under `/events/`) goes up as `/%2Fa`, decoding to `//a` (see README).
        if !normalized.raw.utf8.dropFirst(rawLength(ofDecoded: prefix, in: normalized.raw)).starts(with: [UInt8(ascii: "/")]) {
            expected.insert(UInt8(ascii: "/"), at: 0)
        }
    }
    invariant(decoded(path) == expected, "\(uri.debugDescription) goes upstream as \(routed.upstreamPath.debugDescription)")
    for segment in decoded(path).split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
        invariant(!isDotSegment(segment), "\(uri.debugDescription) goes upstream with a dot-segment")
    }
    return 0
}
