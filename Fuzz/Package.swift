// swift-tools-version:6.0
import PackageDescription

/// libFuzzer targets for every parser in GatewayCore that reads bytes from the network or from files (issue 13).
///
/// Kept out of the main package: built only by `Fuzz/run.sh`, with `--sanitize=fuzzer --sanitize=address` applied to
/// every module (GatewayCore and its dependencies alike, so coverage guides the fuzzer through Yams and jwt-kit too).
/// Each target is one `main.swift` defining `LLVMFuzzerTestOneInput`; `FuzzSupport` holds the input splitting and the
/// reference decoders shared with the unit tests (`ChunkedWireTestSupport.swift` is the tests' own file, linked).
let targets = [
    "FuzzRequestTarget", "FuzzQueryTokens", "FuzzCookieTokens", "FuzzChunkedScanner", "FuzzResponseDecoder",
    "FuzzEventTracker", "FuzzRelayWire", "FuzzJWT", "FuzzJWKS", "FuzzHostHeader", "FuzzConfiguration",
]

let package = Package(
    name: "sse-gateway-fuzz",
    platforms: [.macOS(.v14)],
    products: targets.map { .executable(name: $0, targets: [$0]) },
    dependencies: [
        .package(name: "sse-gateway", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .target(
            name: "FuzzSupport",
            dependencies: [
                .product(name: "GatewayCore", package: "sse-gateway"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        )
    ]
        + targets.map { name in
            .executableTarget(
                name: name,
                dependencies: [
                    "FuzzSupport",
                    .product(name: "GatewayCore", package: "sse-gateway"),
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOHTTP1", package: "swift-nio"),
                    .product(name: "Crypto", package: "swift-crypto"),
                ]
            )
        }
)
