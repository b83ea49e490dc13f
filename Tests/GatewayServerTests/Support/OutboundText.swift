import NIOCore
import NIOEmbedded
import XCTest

extension EmbeddedChannel {
    /// Everything written to the wire so far (byte buffers; a file region fails the test), as one string.
    func outboundText(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        var text = ""
        while let data = try readOutbound(as: IOData.self) {
            guard case .byteBuffer(let bytes) = data else {
                XCTFail("a file region", file: file, line: line)
                continue
            }
            text += String(buffer: bytes)
        }
        return text
    }
}
