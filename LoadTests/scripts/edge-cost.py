#!/usr/bin/env python3
"""What hostile clients cost one relay node (LoadTests/RESULTS.md, "Edge hardening").

1. 1,000 WebSocket auths with random tokens against a node whose Redis holds 3,000 sessions
   (written in the reference layout, so the first miss also exercises the full-reload fallback):
   the relay's CPU seconds (from /proc) and Redis's own count of the commands it processed.
2. 1,000 hostile HTTP connections held open (500 idle, 500 with a head that never ends): the
   relay's RSS and open descriptors, and whether /healthz still answers beside them.

Usage: LoadTests/scripts/edge-cost.py .build/release/relay
Traffic goes to 127.0.0.1 only; it starts its own redis-server and relay and stops both.
"""
import base64, json, os, random, socket, string, subprocess, sys, time

RELAY = sys.argv[1] if len(sys.argv) > 1 else ".build/release/relay"
REDIS_PORT, RELAY_PORT, SESSIONS, AUTHS, HOSTILE = 16411, 18811, 3000, 1000, 1000


def token(n=43):
    return "".join(random.choice(string.ascii_letters + string.digits + "-_") for _ in range(n))


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    return next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS"))


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def redis_commands():
    info = subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "INFO", "stats"], capture_output=True, text=True).stdout
    return int(next(l for l in info.splitlines() if l.startswith("total_commands_processed")).split(":")[1])


def websocket_auth(auth_token):
    """Upgrades, sends one masked relay.auth frame, returns everything the relay sent until it closed."""
    s = socket.create_connection(("127.0.0.1", RELAY_PORT))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    payload = json.dumps({"type": "relay.auth", "token": auth_token}).encode()
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    s.settimeout(10)
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except OSError:
        pass
    s.close()
    return data


redis = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"],
                         stdout=subprocess.DEVNULL)
relay = None
try:
    time.sleep(0.5)
    now = int(time.time() * 1000)
    commands = []
    for i in range(SESSIONS):
        sid = f"edge-{i}-{token(20)}"
        record = {"schema_version": 1, "session_id": sid, "join_token": token(), "join_token_expires_at_ms": now + 600_000,
                  "join_token_used_at_ms": None, "desktop_session_token": token(), "relay_web_socket_url": "ws://127.0.0.1/ws",
                  "idle_timeout_seconds": 1800, "created_at_ms": now, "last_activity_at_ms": now, "devices": {}}
        commands.append(f"SET edge:session:v1:{sid} {json.dumps(json.dumps(record))}\n"
                        f"SET edge:session:version:v1:{sid} 1\nSADD edge:sessions:index:v1 {sid}\n")
    subprocess.run(["redis-cli", "-p", str(REDIS_PORT)], input="".join(commands), text=True, capture_output=True, check=True)

    env = dict(os.environ, REDIS_URL=f"redis://127.0.0.1:{REDIS_PORT}", REDIS_KEY_PREFIX="edge", HOST="127.0.0.1",
               PORT=str(RELAY_PORT), LOG_LEVEL="error", MAX_WS_AUTH_FAILURES_PER_MINUTE="1000000",
               HTTP_IDLE_TIMEOUT_MS="600000", HTTP_HEADER_TIMEOUT_MS="600000")
    relay = subprocess.Popen([RELAY], env=env, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", RELAY_PORT)).close()
            break
        except OSError:
            time.sleep(0.1)
    time.sleep(1)

    commands_before, cpu_before, started = redis_commands(), cpu_seconds(relay.pid), time.time()
    expired = sum(b"session_expired" in websocket_auth(token()) for _ in range(AUTHS))
    commands_used = redis_commands() - commands_before - 1  # minus our own INFO
    cpu_used = cpu_seconds(relay.pid) - cpu_before
    print(f"{AUTHS} random-token auths against {SESSIONS} stored sessions ({expired} answered session_expired) in "
          f"{time.time() - started:.1f} s: relay {cpu_used:.2f} CPU-s ({cpu_used / AUTHS * 1000:.2f} ms each), "
          f"{commands_used} Redis commands ({commands_used / AUTHS:.2f} each)")

    rss0, fds0 = rss_kib(relay.pid), open_fds(relay.pid)
    held = []
    for i in range(HOSTILE):
        s = socket.create_connection(("127.0.0.1", RELAY_PORT))
        if i % 2:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never-Ends: ")
        held.append(s)
    time.sleep(2)
    rss1, fds1 = rss_kib(relay.pid), open_fds(relay.pid)
    probe = socket.create_connection(("127.0.0.1", RELAY_PORT))
    probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status = probe.recv(64).split(b"\r\n")[0].decode()
    print(f"{HOSTILE} hostile connections held (half idle, half mid-head): RSS {rss0} -> {rss1} KiB "
          f"({(rss1 - rss0) * 1024 / HOSTILE:.0f} B each), open fds {fds0} -> {fds1}; /healthz beside them: {status}")
    for s in held + [probe]:
        s.close()
finally:
    if relay:
        relay.terminate()
        relay.wait()
    redis.terminate()
    redis.wait()
