import Foundation
import GatewayCore
import XCTest

@testable import GatewayServer

/// The token `sse-gateway demo` prints: it is pasted into other tools, so its NumericDates must be integers
/// (RFC 7519 allows fractions, several JWT libraries reject them).
final class DemoTokenTests: XCTestCase {
    func testDemoTokenTimeClaimsAreJSONIntegers() async throws {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        let loaded = try GatewayConfiguration.load(path: root.appendingPathComponent("gateway.yml").path)
        let minted = try await DemoRunner.mintToken(loaded.configuration)
        let token = try XCTUnwrap(minted?.token, "the shipped configuration has an HS256 policy")
        let payload = try Self.payloadJSON(of: token)
        var seconds: [String: Int] = [:]
        for claim in ["exp", "iat", "nbf"] {
            let literal = try XCTUnwrap(Self.numberLiteral(claim, in: payload), "no \(claim) in \(payload)")
            XCTAssertTrue(literal.allSatisfy(\.isASCIIDigit), "\(claim) is \(literal), not a JSON integer: \(payload)")
            seconds[claim] = Int(literal)
        }
        XCTAssertEqual(seconds["exp"].map { $0 - (seconds["iat"] ?? 0) }, 3600, payload)
        XCTAssertEqual(seconds["nbf"], seconds["iat"], payload)
    }

    /// The decoded middle part of a compact JWS.
    static func payloadJSON(of token: String) throws -> String {
        let parts = token.split(separator: ".")
        XCTAssertEqual(parts.count, 3, token)
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        let data = try XCTUnwrap(Data(base64Encoded: base64), "payload is not base64url: \(parts[1])")
        return String(decoding: data, as: UTF8.self)
    }

    /// The text of a top-level member's number as written (`"exp":1800000000.25` gives `1800000000.25`).
    static func numberLiteral(_ name: String, in json: String) -> String? {
        guard let key = json.range(of: "\"\(name)\":") else { return nil }
        let rest = json[key.upperBound...].drop(while: { $0 == " " })
        return String(rest.prefix(while: { $0.isNumber || "+-.eE".contains($0) }))
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
