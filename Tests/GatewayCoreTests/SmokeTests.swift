import XCTest
@testable import GatewayCore
final class SmokeTests: XCTestCase { func testVersion() { XCTAssertFalse(GatewayCoreVersion.string.isEmpty) } }
