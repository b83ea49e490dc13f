import Foundation

@testable import FuzzSupport
@testable import GatewayCore

/// A JWKS document, as fetched from `jwks_url`. Parsing never traps (deep nesting is refused before the decoder sees
/// it); keys it accepts are usable only with allowed algorithms, and installing the same document twice gives the
/// same key set; a refused document leaves the store's keys as they were.
let allowed: Set<JWTAlgorithm> = [.rs256, .es256, .eddsa, .hs256]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let document = FuzzInput(start, count).rest
    let depth = ClaimValue.nestingDepth(document)
    invariant(depth >= 0, "negative nesting depth")
    let store = JWKSKeyStore(allowedAlgorithms: allowed, policy: JWKSRefreshPolicy(refreshInterval: 300))
    let seed = Array(#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"seed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#.utf8)
    invariant((try? store.install(jwksDocument: seed, now: 0)) == 1, "the seed document does not install")
    do {
        let count = try store.install(jwksDocument: document, now: 1)
        invariant(count > 0, "installed an empty key set")
        let keys = store.keys(kid: nil)
        invariant(keys.count == count, "installed \(count), holds \(keys.count)")
        for key in keys {
            invariant(!key.algorithms.isEmpty && key.algorithms.isSubset(of: allowed), "key \(key) for \(key.algorithms)")
        }
        let again = try JWKSKeyStore.parse(document, allowed: allowed)
        invariant(again.map(\.description) == keys.map(\.description), "parsing twice differs")
    } catch {
        invariant(store.keyIDs == ["seed"], "a refused document changed the keys: \(store.keyIDs)")
    }
    return 0
}
