// A device grant's end as a Date, for apps.

import Foundation
import RelayProtocol

extension DeviceGrant {
    /// A grant ending at `expiresAt` (nil: no end): what ``RelayDesktopClient/decide(_:approve:grant:)``
    /// and ``RelayDesktopClient/setScope(of:to:)`` send.
    public init(scope: DeviceScope, allowedCommands: [String]? = nil, expiresAt: Date?) {
        self.init(
            scope: scope, allowedCommands: allowedCommands,
            expiresAtMillis: expiresAt.map { Int64(($0.timeIntervalSince1970 * 1000).rounded(.down)) })
    }

    /// When the grant ends, if it does.
    public var expiresAt: Date? { expiresAtMillis.map { Date(timeIntervalSince1970: Double($0) / 1000) } }
}
