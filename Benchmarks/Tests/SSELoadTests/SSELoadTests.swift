import NIOCore
import XCTest

@testable import sse_load

final class SSEParserTests: XCTestCase {
    /// Feeds `chunks` one by one and returns every dispatched event's data as a string.
    private func events(_ chunks: [String]) -> [String] {
        events(bytes: chunks.map { Array($0.utf8) })
    }

    private func events(bytes chunks: [[UInt8]]) -> [String] {
        var parser = SSEParser()
        var seen: [String] = []
        for chunk in chunks {
            parser.feed(chunk) { seen.append(String(decoding: $0, as: UTF8.self)) }
        }
        return seen
    }

    func testLineEndingsLFCRLFAndCR() {
        XCTAssertEqual(events(["data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\n"]), ["a", "b", "c", "d"])
    }

    func testEventsSplitAnywhereIncludingBetweenCRAndLF() {
        let stream = "id: 1\r\ndata: 17 1 xx\r\n\r\nid: 2\r\ndata: 18 2 xx\r\n\r\n"
        let bytes = Array(stream.utf8)
        for cut in 1..<bytes.count {
            let parts = [Array(bytes[..<cut]), Array(bytes[cut...])]
            XCTAssertEqual(events(bytes: parts), ["17 1 xx", "18 2 xx"], "split at \(cut)")
        }
        XCTAssertEqual(events(bytes: bytes.map { [$0] }), ["17 1 xx", "18 2 xx"], "one byte per chunk")
    }

    func testCRLFSplitAcrossChunksIsOneLineEnd() {
        // Read as two line ends, the LF would be a blank line and dispatch "a" on its own.
        XCTAssertEqual(events(["data: a\r", "\ndata: b\r\n\r\n"]), ["a\nb"])
    }

    func testMultipleDataLinesCommentsAndFieldsWithoutSpace() {
        XCTAssertEqual(events([": hi\ndata:one\ndata: two\nevent: x\nretry: 5\n\n"]), ["one\ntwo"])
    }

    func testBlankLinesWithoutDataDispatchNothingAndLastIDIsKept() {
        var parser = SSEParser()
        var count = 0
        parser.feed(Array("\n\nid: 42\n\n: keepalive\n\n".utf8)) { _ in count += 1 }
        XCTAssertEqual(count, 0)
        XCTAssertEqual(String(decoding: parser.lastEventID, as: UTF8.self), "42")
    }

    func testIncompleteEventIsNotDispatched() {
        XCTAssertEqual(events(["data: a\n"]), [])
    }
}

final class PayloadTests: XCTestCase {
    func testParsesSendTimeAndSequence() throws {
        let payload = try XCTUnwrap(BenchPayload(Array("1795642726508903300 12 xxxx".utf8)[...]))
        XCTAssertEqual(payload.sendNanos, 1_795_642_726_508_903_300)
        XCTAssertEqual(payload.sequence, 12)
        XCTAssertNotNil(BenchPayload(Array("5 7".utf8)[...]))
    }

    func testRejectsForeignData() {
        XCTAssertNil(BenchPayload(Array("hello".utf8)[...]))
        XCTAssertNil(BenchPayload(Array("123".utf8)[...]))
        XCTAssertNil(BenchPayload(Array("123 x".utf8)[...]))
    }

    func testWriteDecimalMatchesStringConversion() {
        for value: UInt64 in [0, 7, 10, 99, 1000, 1_795_642_726_508_903_300, .max] {
            var buffer = ByteBufferAllocator().buffer(capacity: 0)
            buffer.writeDecimal(value)
            XCTAssertEqual(buffer.readString(length: buffer.readableBytes), String(value))
        }
    }
}

final class HistogramTests: XCTestCase {
    func testSmallValuesAreExact() {
        var histogram = Histogram()
        for value in 1...50 as ClosedRange<UInt64> { histogram.record(value) }
        XCTAssertEqual(histogram.value(atQuantile: 0.5), 25)
        XCTAssertEqual(histogram.value(atQuantile: 1), 50)
        XCTAssertEqual(histogram.max, 50)
        XCTAssertEqual(histogram.count, 50)
    }

    func testLargeValuesWithinThreePercent() {
        var histogram = Histogram()
        for value in stride(from: 1000 as UInt64, through: 1_000_000, by: 1000) { histogram.record(value) }
        for (q, exact) in [(0.5, 500_000.0), (0.99, 990_000.0), (0.999, 999_000.0)] {
            let got = Double(histogram.value(atQuantile: q))
            XCTAssertGreaterThanOrEqual(got, exact, "q=\(q)")
            XCTAssertLessThanOrEqual(got, exact * 1.032, "q=\(q)")
        }
        XCTAssertEqual(histogram.value(atQuantile: 1), 1_000_000)
    }

    func testMergeAddsCountsAndKeepsMax() {
        var a = Histogram()
        var b = Histogram()
        a.record(10)
        b.record(UInt64.max)
        b.record(20)
        a.merge(b)
        XCTAssertEqual(a.count, 3)
        XCTAssertEqual(a.max, .max)
        XCTAssertEqual(a.value(atQuantile: 0.5), 20)
        XCTAssertEqual(Histogram().summary.p99, 0)
    }
}

final class ArgumentTests: XCTestCase {
    func testOnlyLoopbackTargets() throws {
        let target = try TargetURL("http://127.0.0.1:8080/events/x?token=a")
        XCTAssertEqual(target.host, "127.0.0.1")
        XCTAssertEqual(target.port, 8080)
        XCTAssertEqual(target.requestTarget, "/events/x?token=a")
        XCTAssertEqual(try TargetURL("http://localhost:9/").host, "127.0.0.1")
        XCTAssertEqual(try TargetURL("http://127.1.2.3:9").requestTarget, "/")
        for bad in ["http://10.0.0.1:80/", "http://example.com/", "http://192.168.1.1:9100/", "https://127.0.0.1/",
                    "http://127.0.0.1.example.com/", "http://1127.0.0.1/"] {
            XCTAssertThrowsError(try TargetURL(bad), bad)
        }
        XCTAssertThrowsError(try ListenAddress("0.0.0.0:9100"))
        XCTAssertEqual(try ListenAddress("127.0.0.1:9100").port, 9100)
    }

    func testDurationsRatesAndHeaders() throws {
        XCTAssertEqual(try parseDuration("30s"), 30)
        XCTAssertEqual(try parseDuration("500ms"), 0.5)
        XCTAssertEqual(try parseDuration("2m"), 120)
        XCTAssertEqual(try parseDuration("1h"), 3600)
        XCTAssertThrowsError(try parseDuration("soon"))
        XCTAssertEqual(try parseRate("2000/s"), 2000)
        XCTAssertThrowsError(try parseRate("-1"))
        let headers = try parseHeaders(["Authorization:  Bearer a.b.c "])
        XCTAssertEqual(headers.first?.0, "Authorization")
        XCTAssertEqual(headers.first?.1, "Bearer a.b.c")
        XCTAssertThrowsError(try parseHeaders(["no colon"]))
    }

    func testQueryOverridesStreamSettings() {
        let defaults = StreamSettings(intervalMs: 1000, size: 100, count: nil)
        let settings = defaults.overridden(byQuery: "interval_ms=5&size=200&count=3&other=1&size=bad")
        XCTAssertEqual(settings.intervalMs, 5)
        XCTAssertEqual(settings.size, 200)
        XCTAssertEqual(settings.count, 3)
        XCTAssertEqual(defaults.overridden(byQuery: "").intervalMs, 1000)
        XCTAssertFalse(settings.stampsTick)
        XCTAssertTrue(defaults.overridden(byQuery: "size=200&stamp=tick").stampsTick)
        XCTAssertEqual(defaults.overridden(byQuery: "size=200&stamp=tick").size, 200)
    }

    func testTicksOfOneIntervalAreAlignedWhateverTheStart() {
        // Two loops whose first streams came 1.3 s apart tick at the same instants.
        let early = Broadcaster.firstTick(interval: 5000, now: .uptimeNanoseconds(12_000_000_000))
        let late = Broadcaster.firstTick(interval: 5000, now: .uptimeNanoseconds(13_300_000_000))
        XCTAssertEqual(early.uptimeNanoseconds, 15_000_000_000)
        XCTAssertEqual(late, early)
        // Exactly on a tick: the next one, never now.
        XCTAssertEqual(Broadcaster.firstTick(interval: 5, now: .uptimeNanoseconds(10_000_000)).uptimeNanoseconds,
                       15_000_000)
    }
}
