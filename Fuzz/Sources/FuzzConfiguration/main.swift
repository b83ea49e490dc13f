import GatewayCore

@testable import FuzzSupport

/// The configuration loader on any text. It never traps; a refused file's every problem carries a position inside the
/// file (line 1 or later, at most one past its last line) and renders as `FILE:LINE:COLUMN: ...`; an accepted one has
/// routes and parses again to the same configuration.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = String(decoding: FuzzInput(start, count).rest, as: UTF8.self)
    let environment = ["FUZZ": "fuzz", "PORT": "8080", "SECRET": "0123456789abcdef0123456789abcdef"]
    // An upper bound on the lines libyaml counts (CR, LF, CRLF, NEL, LS, PS each end one).
    let lines = text.unicodeScalars.count { ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"].contains($0) } + 1
    func parse() -> Result<LoadedConfiguration, ConfigurationErrors> {
        Result { () throws(ConfigurationErrors) in
            try GatewayConfiguration.parse(yaml: text, file: "fuzz.yml", baseDirectory: "/nonexistent-fuzz", environment: environment)
        }
    }
    switch parse() {
    case .success(let loaded):
        invariant(!loaded.configuration.routes.isEmpty, "accepted without routes")
        guard case .success(let again) = parse(), again.configuration == loaded.configuration else {
            fatalError("invariant failed: parsing twice differs")
        }
    case .failure(let errors):
        invariant(!errors.errors.isEmpty, "refused without a problem")
        for error in errors.errors {
            invariant(error.line >= 1 && error.line <= lines + 1, "problem at line \(error.line) of \(lines): \(error)")
            invariant(error.column >= 1, "problem at column \(error.column): \(error)")
            invariant(error.description.hasPrefix("fuzz.yml:\(error.line):\(error.column): "), "rendered as \(error)")
        }
    }
    return 0
}
