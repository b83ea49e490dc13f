import XCTest

/// The test client's incremental scan gives the same progress however the bytes are split.
final class ResponseScannerTests: XCTestCase {
    static let response =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        + "f\r\nid: 1\ndata: a\n\n\r\n" + "14\r\n: keep-alive\n\nid: 2\n\r\n" + "9;ext=1\r\ndata: b\n\n\r\n"
        + "12\r\nid: 4\r\ndata: c\r\n\r\n\r\n" + "0\r\nx-trailer: 1\r\n\r\n"
        + "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\n{\"a\":\"b\"}"

    private func scan(_ pieces: [String]) -> ReceiveProgress {
        var scanner = ResponseScanner()
        for piece in pieces {
            Array(piece.utf8).withUnsafeBytes { scanner.scan($0) }
        }
        return scanner.progress
    }

    func testWholeResponse() {
        let progress = scan([Self.response])
        XCTAssertEqual(progress.bytes, Self.response.utf8.count)
        XCTAssertEqual(progress.bodiesEnded, 2)
        XCTAssertEqual(progress.events, 3, "a comment or an id alone is no event")
        XCTAssertEqual(progress.firstEventID, "1")
        XCTAssertEqual(progress.lastEventID, "4")
        XCTAssertEqual(progress.firstIDGap, "4 after 2")
        XCTAssertFalse(progress.closed)
    }

    func testSplitAnywhere() {
        let whole = scan([Self.response])
        let bytes = Array(Self.response.utf8)
        for cut in 1..<bytes.count {
            let pieces = [bytes[..<cut], bytes[cut...]].map { String(decoding: $0, as: UTF8.self) }
            XCTAssertEqual(scan(pieces).description, whole.description, "split at \(cut)")
        }
        XCTAssertEqual(scan(bytes.map { String(decoding: [$0], as: UTF8.self) }).description, whole.description)
    }
}
