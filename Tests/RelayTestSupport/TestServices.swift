// The environment the integration tests need, and the error a missing piece of it raises.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A test precondition or expectation that is not met; thrown so the test fails with this message.
package struct TestFailure: Error, CustomStringConvertible {
    package let description: String

    package init(_ description: String) { self.description = description }
}

/// The Redis and NATS servers the integration tests run against, named by environment variables.
///
/// `make test` (scripts/with-test-services.sh) starts a redis-server and a nats-server on loopback
/// ports and exports all four variables. A test run without them fails with a message saying so;
/// it never skips.
package enum TestServices {
    /// The shared Redis every test that needs no restart uses (`RELAY_TEST_REDIS_URL`).
    package static func redisURL() throws -> String {
        try required("RELAY_TEST_REDIS_URL", "the URL of a running redis-server, such as redis://127.0.0.1:16379")
    }

    /// The shared NATS every test that needs no restart uses (`RELAY_TEST_NATS_URL`).
    package static func natsURL() throws -> String {
        try required("RELAY_TEST_NATS_URL", "the URL of a running nats-server, such as nats://127.0.0.1:14222")
    }

    /// The redis-server binary, for tests that start and stop their own (`RELAY_TEST_REDIS_SERVER`).
    package static func redisServer() throws -> String {
        try requiredExecutable("RELAY_TEST_REDIS_SERVER", "the redis-server binary: $(command -v redis-server)")
    }

    /// The nats-server binary, for tests that start and stop their own (`RELAY_TEST_NATS_SERVER`).
    package static func natsServer() throws -> String {
        try requiredExecutable("RELAY_TEST_NATS_SERVER", "the nats-server binary: $(command -v nats-server)")
    }

    /// The value of the environment variable `name`.
    ///
    /// - Parameter meaning: what the variable holds, for the message.
    /// - Throws: `TestFailure` naming the variable and how to provide it when it is unset or empty.
    package static func required(_ name: String, _ meaning: String) throws -> String {
        guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else {
            throw TestFailure(
                "\(name) is not set (\(meaning)). These tests need real Redis and NATS servers: run them with "
                    + "`make test` (scripts/with-test-services.sh starts redis-server and nats-server and exports "
                    + "RELAY_TEST_REDIS_URL, RELAY_TEST_NATS_URL, RELAY_TEST_REDIS_SERVER and RELAY_TEST_NATS_SERVER), "
                    + "or export \(name) yourself.")
        }
        return value
    }

    /// `required(name, meaning)`, which must also name an executable file.
    package static func requiredExecutable(_ name: String, _ meaning: String) throws -> String {
        let value = try required(name, meaning)
        guard access(value, X_OK) == 0 else { throw TestFailure("\(name)=\(value) is not an executable file") }
        return value
    }
}
