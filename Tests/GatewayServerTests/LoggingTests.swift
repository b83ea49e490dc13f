import Foundation
import Logging
import NIOConcurrencyHelpers
import XCTest

@testable import GatewayServer

final class LoggingTests: XCTestCase {
    private func capture(_ format: GatewayLogHandler.Format, _ body: (Logger) -> Void) -> [String] {
        let lines = NIOLockedValueBox<[String]>([])
        let handler = GatewayLogHandler(label: "gw", format: format, level: .info) { line in
            lines.withLockedValue { $0.append(line) }
        }
        body(Logger(label: "gw", factory: { _ in handler }))
        return lines.withLockedValue { $0 }
    }

    func testTextLinesHaveAUTCTimestampSortedKeysAndQuoting() throws {
        let lines = capture(.text) { logger in
            logger.info("access", metadata: ["status": "200", "path": "/a b", "client": "127.0.0.1"])
            logger.debug("below the level")
        }
        XCTAssertEqual(lines.count, 1)
        let line = try XCTUnwrap(lines.first)
        let pattern = #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z info gw: access client=127\.0\.0\.1 path="/a b" status=200\n$"#
        XCTAssertNotNil(line.range(of: pattern, options: .regularExpression), line)
        // The timestamp is now, in UTC.
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let stamp = try XCTUnwrap(formatter.date(from: String(line.prefix(24))))
        XCTAssertLessThan(abs(stamp.timeIntervalSinceNow), 5)
    }

    func testJSONLinesAreValidJSONWithEscapedValues() throws {
        let lines = capture(.json) { logger in
            logger.warning("say \"hi\"", metadata: ["quote": "a\"b\nc", "n": .stringConvertible(42)])
        }
        let object = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(try XCTUnwrap(lines.first).utf8)) as? [String: String]
        )
        XCTAssertEqual(object["level"], "warning")
        XCTAssertEqual(object["logger"], "gw")
        XCTAssertEqual(object["message"], "say \"hi\"")
        XCTAssertEqual(object["quote"], "a\"b\nc")
        XCTAssertEqual(object["n"], "42")
        XCTAssertNotNil(object["time"])
    }

    func testAnAccessRecordIsWrittenExactlyAsTheSameFieldsAsMetadata() throws {
        let record = AccessRecord(
            client: "127.0.0.1", method: "GET", route: "prices", path: "/a b?access_token=REDACTED", status: 200,
            durationMilliseconds: 12, bytes: 345, events: 6, subject: nil, upstream: "http://127.0.0.1:9",
            outcome: "completed", reason: "say \"x\"=1"
        )
        let fields: Logger.Metadata = [
            "bytes": "345", "client": "127.0.0.1", "duration_ms": "12", "events": "6", "method": "GET",
            "outcome": "completed", "path": "/a b?access_token=REDACTED", "reason": "say \"x\"=1", "route": "prices",
            "status": "200", "subject": "-", "upstream": "http://127.0.0.1:9",
        ]
        let stamp = #"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"#
        for format in GatewayLogHandler.Format.allCases {
            let lines = capture(format) { logger in
                logger.info("access", metadata: [AccessRecord.metadataKey: .stringConvertible(record)])
                logger.info("access", metadata: fields)
            }
            XCTAssertEqual(lines.count, 2)
            let untimed = lines.map { $0.replacingOccurrences(of: stamp, with: "TIME", options: .regularExpression) }
            XCTAssertEqual(untimed[0], untimed[1], "\(format)")
            XCTAssertTrue(untimed[0].contains("bytes"), untimed[0])
        }
        // Any other log handler prints its text form.
        XCTAssertEqual(
            record.description,
            #"bytes=345 client=127.0.0.1 duration_ms=12 events=6 method=GET outcome=completed "#
                + #"path=/a b?access_token=REDACTED reason=say "x"=1 route=prices status=200 subject=- "#
                + "upstream=http://127.0.0.1:9"
        )
    }

    func testLogWriterDeliversEveryLineInOrder() throws {
        let pipe = Pipe()
        let writer = LogWriter(fileDescriptor: pipe.fileHandleForWriting.fileDescriptor)
        for index in 0..<500 { writer.append("line \(index)\n") }
        writer.flush()
        try pipe.fileHandleForWriting.close()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(text, (0..<500).map { "line \($0)\n" }.joined())
    }

    func testLogWriterDropsAndCountsLinesWhileTheReaderStallsInsteadOfBlocking() throws {
        let pipe = Pipe()
        // Room for one line in memory; the pipe (64 KiB on Linux) fills because nobody reads it yet.
        let writer = LogWriter(fileDescriptor: pipe.fileHandleForWriting.fileDescriptor, capacity: 1_100)
        let line = String(repeating: "x", count: 999) + "\n"
        let started = Date()
        for _ in 0..<300 { writer.append(line) }
        // Appending never waited for the stalled reader.
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        let reader = pipe.fileHandleForReading
        var received = ""
        while !received.contains("dropped") {
            received += String(decoding: reader.availableData, as: UTF8.self)
        }
        writer.flush()
        try pipe.fileHandleForWriting.close()
        received += String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
        let lines = received.split(separator: "\n")
        let delivered = lines.filter { $0 == line.dropLast() }.count
        // "log writer: N line(s) dropped: ...", once per batch that had drops.
        let notices = lines.filter { $0.contains("dropped") }
        let dropped = notices.compactMap { Int($0.split(separator: " ")[2]) }.reduce(0, +)
        XCTAssertGreaterThan(dropped, 0)
        XCTAssertEqual(delivered + dropped, 300, notices.joined(separator: "\n"))
    }
}
