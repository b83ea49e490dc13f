import XCTest

/// Polls `read` every 5 ms until `condition` holds for its value and returns that value; after `timeout` it fails the
/// test (at the caller's line, with what was seen last) and throws. Every wait in these tests is bounded by it.
@discardableResult
func eventually<Value>(
    _ description: String,
    timeout: Duration = .seconds(10),
    file: StaticString = #filePath,
    line: UInt = #line,
    read: () -> Value,
    until condition: (Value) -> Bool
) async throws -> Value {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        let current = read()
        if condition(current) { return current }
        try await Task.sleep(for: .milliseconds(5))
    }
    XCTFail("timed out after \(timeout) waiting for \(description); last seen: \(String(describing: read()).prefix(2000))",
            file: file, line: line)
    throw CancellationError()
}
