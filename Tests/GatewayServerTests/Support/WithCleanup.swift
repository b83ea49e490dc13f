/// Runs `body`, then `cleanup` whether `body` returned or threw (a `defer` cannot await).
func withCleanup<Value>(_ cleanup: () async -> Void, _ body: () async throws -> Value) async rethrows -> Value {
    let value: Value
    do {
        value = try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return value
}
