import Foundation

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
