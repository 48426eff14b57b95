// What this binary is: its version, the commit it was built from, and the compiler that built it.

/// The build of this binary, for `relay --version`, the `listening` log line and
/// `relay_build_info`.
public enum BuildInfo {
    /// The release version; the release process raises it with the image tag.
    public static let version = "0.2.0"

    /// The git commit the binary was built from: `BuildRevision.swift`, which the image build
    /// writes from its `RELAY_REVISION` argument; `unknown` in a checkout build.
    public static let revision = buildRevision

    /// The Swift compiler version that built the binary.
    public static let swiftVersion: String = {
        #if compiler(>=6.4)
        "6.4 or later"
        #elseif compiler(>=6.3)
        "6.3"
        #elseif compiler(>=6.2)
        "6.2"
        #else
        "6.1"
        #endif
    }()

    /// `relay 0.2.0 (revision abc1234, Swift 6.3)`.
    public static var description: String { "relay \(version) (revision \(revision), Swift \(swiftVersion))" }
}
