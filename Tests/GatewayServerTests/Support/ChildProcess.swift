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
