import Foundation

/// Runs `executable` with `arguments` until it exits: its status and what it wrote (standard output and error).
func runToEnd(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Stops `process` and returns once it exited: SIGTERM, then SIGKILL if it is still running after `grace`.
func terminate(_ process: Process, grace: Duration = .seconds(5)) async {
    guard process.isRunning else { return }
    process.terminate()
    let deadline = ContinuousClock.now + grace
    while process.isRunning, ContinuousClock.now < deadline {
        try? await Task.sleep(for: .milliseconds(20))
    }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// What a child process writes to `pipe` (give it as standard output and error), read while it runs: a child whose
/// output outgrows the pipe's buffer (64 KiB; a sanitizer's report at exit is often larger) would otherwise block in
/// `write(2)` for ever while the test waits for it to exit before reading.
final class ProcessOutput: @unchecked Sendable {
    let pipe = Pipe()
    private let lock = NSLock()
    private var bytes = Data()
    private var ended = false

    init() {
        pipe.fileHandleForReading.readabilityHandler = { [self] handle in
            let chunk = handle.availableData
            lock.withLock {
                if chunk.isEmpty { ended = true } else { bytes.append(chunk) }
            }
            if chunk.isEmpty { handle.readabilityHandler = nil }
        }
    }

    /// Everything read so far.
    var text: String { lock.withLock { String(decoding: bytes, as: UTF8.self) } }

    /// Everything, once the child closed its end (it exited), or what was read within `timeout`.
    func textAtEnd(timeout: Duration = .seconds(10)) async -> String {
        let deadline = ContinuousClock.now + timeout
        while !lock.withLock({ ended }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return text
    }
}
