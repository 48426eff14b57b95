// The HELP text of every metric family the relay exports, and the step that puts it in the exposition.

/// Every metric family a relay node exports, with the sentence its `# HELP` line carries.
///
/// swift-metrics has no place for help text, so the exposition gets it here, at scrape time:
/// ``annotate(_:)`` puts a `# HELP` line before each `# TYPE` line. `docs/metrics.md` documents the
/// same families; `MetricsReferenceTests` holds the exposition, this table and that document to
/// one another.
enum MetricCatalog {
    static let help: [String: String] = [
        // Build and process.
        "relay_build_info": "Always 1; the labels say which build runs (version, revision, swift_version).",
        // Sessions and sockets (gauges refreshed at each scrape).
        "relay_sessions": "Sessions this node holds in memory.",
        "relay_sessions_with_desktop": "Sessions whose desktop socket is on this node.",
        "relay_sessions_with_mobile": "Sessions with at least one phone socket on this node.",
        "relay_active_websockets": "Authenticated WebSockets on this node (desktops and phones).",
        "relay_active_websockets_limit": "MAX_ACTIVE_WEBSOCKET_CONNECTIONS: the cap relay_active_websockets is admitted against.",
        "relay_pending_join_waiters": "Phones waiting in POST /pair/join for their desktop's decision.",
        "relay_pending_join_waiters_limit": "MAX_PENDING_JOIN_WAITERS: the cap on relay_pending_join_waiters.",
        "relay_device_tokens": "Device tokens this node indexes (current and grace tokens).",
        "relay_rate_limit_buckets": "Per-IP rate-limit buckets held in memory.",
        "relay_bus_subscriptions": "Session subjects this node is subscribed to on NATS.",
        "relay_ready": "1 while /readyz answers 200 (not draining, configured dependencies up).",
        "relay_draining": "1 from SIGTERM until the process exits.",
        "relay_dependency_up": "1 while the dependency (redis, nats) answers.",
        // HTTP.
        "relay_http_requests_total": "HTTP requests answered, by route and status.",
        "relay_http_request_duration_seconds": "Time from a request's head to its response, by route (POST /pair/join long-polls up to 45 s).",
        "relay_http_open_connections": "Connections counted against MAX_HTTP_CONNECTIONS: HTTP, and WebSockets until they authenticate.",
        "relay_http_open_connections_limit": "MAX_HTTP_CONNECTIONS.",
        "relay_http_rejections_total": "Connections and requests refused or timed out at the edge, by reason.",
        // Pairing.
        "relay_pair_requests_total": "POST /pair/start, /pair/join and /pair/refresh requests, by operation (start, join, refresh).",
        "relay_pair_successes_total": "POST /pair/start, /pair/join and /pair/refresh requests answered 200, by operation.",
        "relay_pair_join_failures_total": "POST /pair/join answered with an error, by error code.",
        "relay_pair_approval_wait_seconds": "How long a join waited for the desktop's decision.",
        // WebSockets.
        "relay_ws_auth_attempts_total": "relay.auth frames (and legacy query tokens) received.",
        "relay_ws_auth_successes_total": "Authentications answered with auth_ok.",
        "relay_ws_auth_failures_total": "Authentications refused, by reason.",
        "relay_ws_messages_total": "Frames forwarded between a desktop and its phones, by direction.",
        "relay_ws_disconnects_total": "Sockets the relay ended, by disconnect reason.",
        "relay_mobile_errors_total": "relay.error frames sent to phones, by code.",
        "relay_slow_consumer_disconnects_total": "Sockets ended because their outbound queue was full or their writes stalled.",
        "relay_outbound_send_failures_total": "Frames that could not be queued to a socket.",
        // Presence.
        "relay_presence_store_failures_total": "Presence claims, releases and reads that failed in the store.",
        "relay_presence_lease_lapses_total": "Times this node found its own presence lease lapsed.",
        "relay_presence_remote_desktop_lapses_total": "Desktops on other nodes found offline because their node's lease lapsed.",
        "relay_e2e_sealed_frames_total": "Sealed (end-to-end encrypted) phone envelopes forwarded to the desktop (extension 12).",
        "relay_e2e_handshake_messages_total": "Noise handshake messages from phones forwarded to the desktop, by pattern (IKpsk2, KK).",
        "relay_e2e_refusals_total": "End-to-end frames refused, and plaintext commands refused with e2e_required, by the relay.error code.",
        "relay_scope_denied_commands_total": "Phone commands refused with scope_denied by the device's grant, by reason (view_only, command_not_allowed).",
        "relay_device_grants_expired_total": "Phone sockets closed with device_expired because their device's grant reached grantExpiresAt.",
        "relay_device_scope_changes_total": "Device grants changed by POST /devices/scope on this node.",
        "relay_history_frames": "Desktop envelopes this node's in-memory session histories hold (extension 11; 0 when Redis keeps history).",
        "relay_history_bytes": "Bytes of desktop envelopes this node's in-memory session histories hold.",
        "relay_history_frames_recorded_total": "Desktop envelopes recorded for resume, in memory or queued for Redis.",
        "relay_history_write_failures_total": "History writes Redis did not take; resumes across them answer complete false.",
        "relay_history_replays_total": "relay.resume requests answered, by outcome (complete, incomplete).",
        "relay_history_frames_replayed_total": "Desktop envelopes sent to phones by resumes.",
        // Redis.
        "relay_redis_command_duration_seconds": "Round trip of a pipelined Redis command.",
        "relay_redis_errors_total": "Redis commands that failed, by kind (connection, server, timeout, unavailable).",
        "relay_redis_reconnects_total": "Redis connections made after the first.",
        "relay_redis_master_changes_total": "Redis masters followed after a Sentinel failover.",
        "relay_redis_replication_shortfalls_total": "Writes refused because fewer replicas than REDIS_MIN_REPLICAS_ACK confirmed them.",
        // NATS.
        "relay_nats_published_total": "Envelopes published on NATS.",
        "relay_nats_publish_failures_total": "Envelopes NATS would not take.",
        "relay_nats_received_total": "Envelopes received from NATS and accepted.",
        "relay_nats_rejected_total": "Envelopes received from NATS and dropped, by reason (signature, replay, stale, …).",
        "relay_nats_reconnects_total": "NATS connections made after the first.",
        "relay_cross_node_delivery_seconds": "From publication on one node to delivery on another (clocks of both nodes).",
        // TLS.
        "relay_tls_reloads_total": "SIGHUP reloads of TLS_CERT_FILE and TLS_KEY_FILE, by outcome.",
        "relay_tls_certificate_expiry_timestamp_seconds": "When the certificate in use expires (Unix time).",
    ]

    /// `exposition` with a `# HELP <name> <text>` line before each `# TYPE <name>` line whose
    /// family the table knows (and none where the registry already wrote one).
    static func annotate(_ exposition: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(exposition.count + help.count * 96)
        var previousLineWasHelp = false
        for line in exposition.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if line.starts(with: "# TYPE ".utf8), !previousLineWasHelp {
                let name = String(decoding: line.dropFirst(7).prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
                if let text = help[name] {
                    output.append(contentsOf: "# HELP \(name) \(text)\n".utf8)
                }
            }
            previousLineWasHelp = line.starts(with: "# HELP ".utf8)
            output.append(contentsOf: line)
            output.append(UInt8(ascii: "\n"))
        }
        // split keeps a last empty piece after the final newline: do not add a second one.
        if exposition.last == UInt8(ascii: "\n") { output.removeLast() }
        return output
    }
}
