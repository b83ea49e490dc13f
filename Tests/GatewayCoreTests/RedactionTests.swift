import Foundation
import XCTest

@testable import GatewayCore

final class RedactionTests: XCTestCase {
    let sources: [TokenSource] = [.query("access_token"), .cookie("sse_token"), .query("key")]

    func testTokenQueryValuesAreRedacted() {
        XCTAssertEqual(
            TokenRedaction.redact(uri: "/events?a=1&access_token=eyJ.x.y&key=k&access%5Ftoken=z&b", sources: sources),
            "/events?a=1&access_token=REDACTED&key=REDACTED&access%5Ftoken=REDACTED&b"
        )
        XCTAssertEqual(TokenRedaction.redact(uri: "/events?a=1", sources: sources), "/events?a=1")
        XCTAssertEqual(TokenRedaction.redact(uri: "/events", sources: sources), "/events")
        XCTAssertEqual(TokenRedaction.redact(uri: "/e?access_token=x", sources: [.cookie("c")]), "/e?access_token=x")
    }

    func testAQueryStartingWithACombiningMarkIsStillRedacted() {
        // Found by Fuzz/FuzzQueryTokens: "?" and a combining mark after it are one Character, so searching the URI's
        // Characters for "?" found none and the whole URI, token included, went to the log unchanged.
        XCTAssertEqual(
            TokenRedaction.redact(uri: "/events?\u{301}&access_token=secret", sources: sources),
            "/events?\u{301}&access_token=REDACTED"
        )
    }

    func testATokenValueStartingWithACombiningMarkIsRedacted() {
        // "=" and a combining mark are one Character: the scan splits bytes, as the upstream does.
        XCTAssertEqual(
            TokenRedaction.redact(uri: "/events?x=1&access_token=\u{301}secret", sources: sources),
            "/events?x=1&access_token=REDACTED"
        )
    }

    func testParameterScanAgreesWithAPlainSplit() {
        let names = ["access_token", "key"]
        func reference(_ query: String, withValue: Bool) -> Bool {
            query.split(separator: "&", omittingEmptySubsequences: false).contains { component in
                let parts = component.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
                return !parts[0].isEmpty && (!withValue || parts.count == 2) && names.contains(name)
            }
        }
        let pieces = ["", "a=1", "key", "key=", "key=v", "access_token=t", "access%5Ftoken=t", "access_token", "=v",
                      "keys=v", "ke=y", "acc+ess_token=t"]
        for first in pieces {
            for second in pieces {
                for query in [first, first + "&" + second, "&" + first + "&&" + second + "&"] {
                    for withValue in [true, false] {
                        XCTAssertEqual(
                            QueryTokenParameters.containsParameter(namedAnyOf: names, in: query[...], withValue: withValue),
                            reference(query, withValue: withValue), "\(query) withValue \(withValue)")
                    }
                    let redacted = TokenRedaction.redact(uri: "/e?" + query, sources: [.query("access_token"), .query("key")])
                    XCTAssertEqual(redacted == "/e?" + query, !reference(query, withValue: true), query)
                }
            }
        }
    }

    func testSecretsNeverAppearInDescriptions() throws {
        let secret = TestKeys.secret
        let jwt = JWTConfiguration(algorithms: [.hs256], secret: secret)
        let policy = AuthPolicyConfiguration(jwt: jwt)
        let config = GatewayConfiguration(authPolicies: ["users": policy])
        var dumped = ""
        dump(config, to: &dumped)
        for text in ["\(jwt)", String(reflecting: jwt), "\(policy)", String(reflecting: policy), "\(config)", dumped] {
            XCTAssertFalse(text.contains(secret), text)
        }
        XCTAssertTrue("\(jwt)".contains("<redacted>"))
        let auth = try RouteAuthenticator(name: "users", policy: policy)
        XCTAssertFalse("\(auth)".contains(secret))
        XCTAssertFalse(String(reflecting: auth.extractor).contains(secret))
    }
}

/// The byte-range scanner of `QueryTokenParameters` against the implementation it replaced (which walked
/// `Substring.UTF8View` indices and split into arrays of substrings, and was fuzzed by `Fuzz/FuzzQueryTokens`): the
/// same token, the same stripped query and the same redacted query for every one of thousands of random queries.
final class QueryTokenParametersDifferentialTests: XCTestCase {
    func testSameAnswersAsTheSubstringImplementation() {
        let names = ["access_token", "key", "acc ess"]
        let rawNames = ["access_token", "access%5Ftoken", "access%5ftoken", "acc+ess", "acc%20ess", "key", "k%65y",
                        "keys", "x", "", "ACCESS_TOKEN", "\u{301}access_token", "%zz", "%4", "%", "é"]
        let values = ["", "v", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln", "a=b", "%41", "+", "\u{301}t", "é", "%",
                      "%2", "a+b%20c"]
        var generator = SeededGenerator(seed: 0xC0FFEE)
        for _ in 0..<4_000 {
            var components: [String] = []
            for _ in 0..<Int(generator.next() % 6) {
                let name = rawNames[Int(generator.next() % UInt64(rawNames.count))]
                let value = values[Int(generator.next() % UInt64(values.count))]
                switch generator.next() % 4 {
                case 0: components.append(name)
                case 1: components.append("")
                default: components.append(name + "=" + value)
                }
            }
            let query = components.joined(separator: "&")[...]
            for name in names {
                XCTAssertEqual(
                    QueryTokenParameters.firstValue(named: name, in: query),
                    PreviousQueryTokenParameters.firstValue(named: name, in: query), "\(query.debugDescription) \(name)"
                )
            }
            XCTAssertEqual(
                QueryTokenParameters.removing(names: names, from: query),
                PreviousQueryTokenParameters.removing(names: names, from: query), query.debugDescription
            )
            XCTAssertEqual(
                QueryTokenParameters.redacting(names: names, in: query, replacement: "REDACTED"),
                PreviousQueryTokenParameters.redacting(names: names, in: query, replacement: "REDACTED"),
                query.debugDescription
            )
            for withValue in [true, false] {
                XCTAssertEqual(
                    QueryTokenParameters.containsParameter(namedAnyOf: names, in: query, withValue: withValue),
                    PreviousQueryTokenParameters.containsParameter(namedAnyOf: names, in: query, withValue: withValue),
                    query.debugDescription
                )
            }
        }
    }
}

/// `QueryTokenParameters` as it was before it scanned contiguous bytes (the reference of the test above).
private enum PreviousQueryTokenParameters {
    typealias Bytes = Substring.UTF8View

    static func firstValue(named name: String, in query: Substring) -> String? {
        for component in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let (rawName, rawValue) = split(component)
            guard nameMatches(rawName, name), let rawValue, !rawValue.isEmpty else { continue }
            let value = percentDecode(rawValue, plusIsSpace: true)
            if !value.isEmpty { return value }
        }
        return nil
    }

    static func removing(names: [String], from query: Substring) -> String? {
        if query.isEmpty { return nil }
        guard containsParameter(namedAnyOf: names, in: query, withValue: false) else { return String(query) }
        let result = query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false)
            .filter { !isParameter($0, namedAnyOf: names, withValue: false) }
            .map { Substring($0) }
            .joined(separator: "&")
        return result.isEmpty ? nil : result
    }

    static func redacting(names: [String], in query: Substring, replacement: String) -> String? {
        guard containsParameter(namedAnyOf: names, in: query, withValue: true) else { return nil }
        return query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false).map { component in
            isParameter(component, namedAnyOf: names, withValue: true)
                ? String(Substring(split(component).name)) + "=" + replacement : String(Substring(component))
        }.joined(separator: "&")
    }

    static func containsParameter(namedAnyOf names: [String], in query: Substring, withValue: Bool) -> Bool {
        let bytes = query.utf8
        var start = bytes.startIndex
        while true {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "&")) ?? bytes.endIndex
            if isParameter(bytes[start..<end], namedAnyOf: names, withValue: withValue) { return true }
            guard end < bytes.endIndex else { return false }
            start = bytes.index(after: end)
        }
    }

    static func isParameter(_ component: Bytes, namedAnyOf names: [String], withValue: Bool) -> Bool {
        let (rawName, rawValue) = split(component)
        return !rawName.isEmpty && (!withValue || rawValue != nil) && names.contains { nameMatches(rawName, $0) }
    }

    static func split(_ component: Bytes) -> (name: Bytes, value: Bytes?) {
        guard let eq = component.firstIndex(of: UInt8(ascii: "=")) else { return (component, nil) }
        return (component[..<eq], component[component.index(after: eq)...])
    }

    static func nameMatches(_ raw: Bytes, _ name: String) -> Bool {
        if !raw.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) {
            return raw.elementsEqual(name.utf8)
        }
        return percentDecode(raw, plusIsSpace: true) == name
    }

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
                    if h2 != utf8.endIndex, let hi = PercentDecoding.hexValue(utf8[h1]),
                        let lo = PercentDecoding.hexValue(utf8[h2]) {
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
}
