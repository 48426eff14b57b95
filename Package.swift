// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// The per-frame path (RelayCore, RelayServer, RelayNATS) is compiled without dynamic exclusivity
// checks: every access to a class's stored property or a global cost a `swift_beginAccess` /
// `swift_endAccess` pair and a thread-local lookup, about 10 % of the relay's CPU in the
// steady-state profile (LoadTests/RESULTS.md). The compile-time checks stay, and the shared state on
// that path is behind `Mutex` or confined to one event loop. RelayProtocol and RelayClient keep the
// checks: apps depend on them, and SwiftPM refuses unsafe flags in a dependency.
let hotPathSettings = swiftSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "swift-relay",
    // The client library runs on iOS and macOS too (Synchronization's Mutex sets the floor); the relay
    // itself is built and run on Linux.
    platforms: [.macOS(.v15), .iOS(.v18)],
    products: [
        .executable(name: "relay", targets: ["relay"]),
        .executable(name: "relay-probe", targets: ["relay-probe"]),
        .library(name: "RelayProtocol", targets: ["RelayProtocol"]),
        .library(name: "RelayCore", targets: ["RelayCore"]),
        .library(name: "RelayServer", targets: ["RelayServer"]),
        .library(name: "RelayClient", targets: ["RelayClient"]),
        .library(name: "RelayRedis", targets: ["RelayRedis"]),
        .library(name: "RelayNATS", targets: ["RelayNATS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        // TLS: BoringSSL through NIOSSL on Linux (client and server), Network.framework through
        // NIOTransportServices for the client on Apple platforms.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-nio-transport-services.git", from: "1.28.0"),
        // Allocation benchmarks (Benchmarks/); the interposer counts every malloc.
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.0", traits: ["MallocInterposer"]),
        // Traces: the API in the core, the OTLP/HTTP exporter in the server (no gRPC: it would
        // add grpc-swift and minutes to every clean build).
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.0"),
        // Extension 12's cryptography in the client library: Curve25519, ChaChaPoly, SHA-256, HMAC
        // (CryptoKit's API; BoringSSL underneath on Linux). Other dependencies already resolve it,
        // so it adds no package to a clean build.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // Wire contract as types: envelopes, relay.* messages, error codes, validation, JSON.
        .target(name: "RelayProtocol", swiftSettings: swiftSettings),
        // Sessions, pairing, routing, limits; no transport or store library.
        .target(
            name: "RelayCore",
            dependencies: [
                "RelayProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: hotPathSettings
        ),
        // C bridges: Debian's hiredis 0.14, the NATS C client 3.4, OpenSSL's libcrypto (HMAC, SHA-256).
        // No pkgConfig for hiredis: its .pc adds -D_FILE_OFFSET_BITS=64, which SwiftPM drops with a
        // warning; the headers are in /usr/include and the module map links the library.
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CNats", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // The StateStore over Redis: its own connection thread, pipelined, reconnecting.
        .target(
            name: "RelayRedis",
            dependencies: [
                "CHiredis", "COpenSSL", "RelayCore", "RelayProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The ClusterBus over NATS: signed envelopes, replay checks, callbacks bridged off C threads.
        .target(
            name: "RelayNATS",
            dependencies: [
                "CNats", "COpenSSL", "RelayCore", "RelayProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: hotPathSettings
        ),
        // HTTP (Hummingbird) and WebSocket (SwiftNIO) transport, config, metrics export, lifecycle.
        .target(
            name: "RelayServer",
            dependencies: [
                "RelayCore",
                "RelayProtocol",
                "RelayRedis",
                "RelayNATS",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ],
            swiftSettings: hotPathSettings
        ),
        // The client library apps ship: join links, TLS, a phone and a desktop that stay connected,
        // typed events and commands. Its HTTP and WebSocket transport is `package`: the frame-level
        // client of the tests (RelayTestClient) is built on it.
        .target(
            name: "RelayClient",
            dependencies: [
                "RelayProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOTransportServices", package: "swift-nio-transport-services"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // The frame-level desktop and phone the tests, the harness and the drills drive the relay
        // with: raw frames, test defaults, every HTTP status returned. Not a product.
        .target(
            name: "RelayTestClient",
            dependencies: [
                "RelayClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/RelayTestClient",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "relay",
            dependencies: [
                "RelayServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // A synthetic desktop and phone that prove a deployment works end to end: once (exit status),
        // or every N seconds with its own Prometheus metrics (Deploy/kubernetes/components/relay-probe).
        .executableTarget(
            name: "relay-probe",
            dependencies: [
                "RelayClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Local processes on loopback: relay nodes, redis-server, nats-server, whole clusters to
        // kill and restart. Used by the load harness, the drills and the integration tests.
        .target(
            name: "RelayLocalCluster",
            dependencies: ["RelayTestClient"],
            path: "LoadTests/RelayLocalCluster",
            swiftSettings: swiftSettings
        ),
        // The load, soak and gate harness as a library: scenarios, artifacts, gate and soak logic,
        // process accounting, reports.
        .target(
            name: "RelayLoadKit",
            dependencies: [
                "RelayClient",
                "RelayTestClient",
                "RelayLocalCluster",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "LoadTests/RelayLoadKit",
            swiftSettings: swiftSettings
        ),
        // The harness's command line: load, gate, soak and the benchmark modes.
        .executableTarget(
            name: "relay-load",
            dependencies: [
                "RelayLoadKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "LoadTests/relay-load",
            swiftSettings: swiftSettings
        ),
        // The floor `relay-load floor` measures the relay against: a bare SwiftNIO WebSocket
        // forwarder (two sockets joined by a key in the URL, frames forwarded unparsed).
        .executableTarget(
            name: "relay-floor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "LoadTests/relay-floor",
            swiftSettings: swiftSettings
        ),
        // Allocations per frame on the per-frame paths, with thresholds in Thresholds/ that
        // `make bench-check` (run by .ci/run) enforces.
        .executableTarget(
            name: "RelayBenchmarks",
            dependencies: [
                "RelayCore", "RelayProtocol",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/RelayBenchmarks",
            swiftSettings: swiftSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Failover drills (node loss, Redis and NATS restarts, rolling restart, secret rotation, a Redis
        // master killed under Sentinel) rehearsed against a local cluster with client traffic; what
        // Runbooks/failover.md describes, observed.
        .target(
            name: "RelayDrills",
            dependencies: ["RelayLoadKit", "RelayLocalCluster", "RelayTestClient"],
            path: "LoadTests/RelayDrills",
            swiftSettings: swiftSettings
        ),
        // The drills' command line: `relay-drill node-loss` and the others; the make drill-* targets.
        .executableTarget(
            name: "relay-drill",
            dependencies: [
                "RelayDrills", "RelayLoadKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "LoadTests/relay-drill",
            swiftSettings: swiftSettings
        ),
        // Test plumbing the integration test targets share: child processes, loopback ports, the
        // required test environment, polling. No Testing: it only throws.
        .target(name: "RelayTestSupport", dependencies: ["RelayLocalCluster", "RelayCore"], path: "Tests/RelayTestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "RelayProtocolTests", dependencies: ["RelayProtocol"], swiftSettings: swiftSettings),
        // NoiseInteropTests runs Support/noise_peer.py (noiseprotocol) from the checkout: not a resource.
        .testTarget(
            name: "RelayClientTests",
            dependencies: ["RelayClient", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Support/noise_peer.py"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "RelayCoreTests", dependencies: ["RelayCore", "RelayTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "RelayRedisTests", dependencies: ["RelayRedis", "RelayCore", "RelayProtocol", "RelayTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "RelayNATSTests", dependencies: ["RelayNATS", "RelayCore", "RelayTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "RelayServerTests",
            dependencies: [
                "RelayServer", "RelayCore", "RelayTestClient", "RelayProtocol", "RelayRedis", "RelayNATS", "RelayLocalCluster",
                "RelayTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RelayLoadKitTests",
            dependencies: ["RelayLoadKit", "RelayDrills", "RelayLocalCluster", "RelayTestClient", "RelayTestSupport"],
            swiftSettings: swiftSettings
        ),
        // The runbooks and alert rules against a running relay and the repository's commands.
        .testTarget(name: "DeployTests", dependencies: ["RelayTestClient", "RelayServer", "RelayDrills", "RelayLocalCluster", "RelayTestSupport"], swiftSettings: swiftSettings),
    ]
)
