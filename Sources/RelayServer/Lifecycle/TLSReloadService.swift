// SIGHUP reloads the relay's certificate: how a renewed certificate is picked up without a restart.

import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads ``ServerTLS`` on every SIGHUP until graceful shutdown. Open sockets are untouched; a
/// reload that fails is logged and counted, and the previous certificate stays in use.
struct TLSReloadService: Service {
    let tls: ServerTLS
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            do {
                let notAfter = try tls.reload()
                logger.notice("tls_reloaded", metadata: [
                    "certificate_file": "\(tls.files.certificateFile)", "not_after": "\(notAfter)",
                ])
            } catch {
                logger.error("tls_reload_failed", metadata: ["error": "\(error.description)"])
            }
        }
    }
}
