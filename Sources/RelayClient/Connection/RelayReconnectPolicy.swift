// How long a client waits before it connects again: exponential backoff with jitter.

/// When a dropped connection is tried again.
///
/// After the `n`th failure in a row the client waits a random time between half and all of
/// `min(maximumDelay, initialDelay × multiplier^(n-1))`: the delay doubles while the relay stays
/// away, and phones dropped together (a node lost) spread their returns instead of arriving at
/// once. A `server_shutdown` (a node draining) is tried again at once: the load
/// balancer sends the new connection to another node.
public struct RelayReconnectPolicy: Sendable, Equatable {
    /// The delay after the first failure, before jitter.
    public var initialDelay: Duration
    /// The longest delay, before jitter.
    public var maximumDelay: Duration
    /// How much each failure in a row lengthens the delay.
    public var multiplier: Double
    /// Failures in a row after which the client gives up (`nil`: never).
    public var maximumAttempts: Int?

    /// A policy; the defaults wait about 0.5 s, 1 s, 2 s … up to 30 s, forever.
    public init(
        initialDelay: Duration = .milliseconds(500), maximumDelay: Duration = .seconds(30), multiplier: Double = 2,
        maximumAttempts: Int? = nil
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = multiplier
        self.maximumAttempts = maximumAttempts
    }

    /// Never reconnects: the first drop ends the connection.
    public static var never: RelayReconnectPolicy { RelayReconnectPolicy(maximumAttempts: 0) }

    /// The delay before the next attempt after `failures` failures in a row (at least 1).
    public func delay(afterFailures failures: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(afterFailures: failures, using: &generator)
    }

    /// ``delay(afterFailures:)`` with the randomness given (tests use a seeded generator).
    public func delay(afterFailures failures: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let initial = Self.seconds(initialDelay), maximum = Self.seconds(maximumDelay)
        let exponent = Double(max(failures, 1) - 1)
        let ceiling = min(maximum, initial * Self.power(max(multiplier, 1), exponent))
        guard ceiling > 0 else { return .zero }
        let seconds = ceiling / 2 + Double.random(in: 0...(ceiling / 2), using: &generator)
        return .nanoseconds(Int64(seconds * 1e9))
    }

    private static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }

    /// `base^exponent` for a whole exponent, capped so it cannot overflow to infinity.
    private static func power(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        for _ in 0..<Int(min(exponent, 64)) { result *= base }
        return result
    }
}
