import XCTest

/// Polls `read` every 5 ms until `condition` holds for its value and returns that value; after `timeout` it fails the
/// test (at the caller's line, with what was seen last) and throws. Every wait in these tests is bounded by it.
///
/// `report` says what was seen in the failure message (a client's progress rather than a prefix of its buffer); without
/// it, the last value read is described.
@discardableResult
func eventually<Value>(
    _ description: String,
    timeout: Duration = .seconds(10),
    file: StaticString = #filePath,
    line: UInt = #line,
    report: (() -> String)? = nil,
    read: () -> Value,
    until condition: (Value) -> Bool
) async throws -> Value {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        let current = read()
        if condition(current) { return current }
        try await Task.sleep(for: .milliseconds(5))
    }
    let seen = report?() ?? String(String(describing: read()).prefix(2000))
    XCTFail("timed out after \(timeout) waiting for \(description); seen: \(seen)", file: file, line: line)
    throw CancellationError()
}
