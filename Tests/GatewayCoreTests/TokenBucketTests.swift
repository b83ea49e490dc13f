import GatewayCore
import XCTest

final class TokenBucketTests: XCTestCase {
    func testBurstThenRefillAtTheRate() {
        var bucket = TokenBucket(ratePerSecond: 2, now: 100)
        XCTAssertTrue(bucket.take(now: 100))
        XCTAssertTrue(bucket.take(now: 100))
        XCTAssertFalse(bucket.take(now: 100), "the burst is one second's worth")
        XCTAssertEqual(bucket.secondsUntilNextToken(now: 100), 1)
        XCTAssertFalse(bucket.take(now: 100.4))
        XCTAssertTrue(bucket.take(now: 100.5), "one token after half a second at 2/s")
        XCTAssertFalse(bucket.take(now: 100.5))
        XCTAssertFalse(bucket.isFull(now: 100.9))
        XCTAssertTrue(bucket.isFull(now: 101.5))
    }

    func testSlowRatesWaitLonger() {
        var bucket = TokenBucket(ratePerSecond: 0.25, now: 0)
        XCTAssertEqual(bucket.capacity, 1, "at least one token of capacity")
        XCTAssertTrue(bucket.take(now: 0))
        XCTAssertFalse(bucket.take(now: 1))
        XCTAssertEqual(bucket.secondsUntilNextToken(now: 1), 3)
        XCTAssertTrue(bucket.take(now: 4))
    }

    func testClockGoingBackwardsGrantsNothing() {
        var bucket = TokenBucket(ratePerSecond: 1, now: 50)
        XCTAssertTrue(bucket.take(now: 50))
        XCTAssertFalse(bucket.take(now: 10))
        XCTAssertFalse(bucket.take(now: 50.5))
        XCTAssertTrue(bucket.take(now: 51))
    }
}
