# The relay's entry points. `make run` and `make test` work on a fresh machine that has Swift:
# each installs the Debian packages it needs first.

# `make` alone lists the targets: every `## target: description` line below.
.DEFAULT_GOAL := help

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := libssl-dev libhiredis-dev libnats-dev redis-server nats-server openssl stunnel4 python3 python3-venv

.PHONY: help deps build release run probe test test-unit deploy-validate deploy-render image-check clean harness \
	load soak gate load-gated remote-control-load remote-control-soak remote-control-gate remote-control-load-gated \
	load-throughput load-scale load-fanout load-pairing-rate load-slow-consumers load-cross-node load-resume load-e2e soak-cluster \
	drill-harness drills drill-node-loss drill-redis-restart drill-nats-restart drill-rolling-restart drill-secret-rotation \
	drill-redis-failover bench bench-floor bench-allocations bench-check

## help: list the targets with what each does
help:
	@echo "make <target>; the README's two commands are 'make run' and 'make test'."
	@awk '/^## [a-z][a-z0-9-]*: / { sub(/^## /, ""); i = index($$0, ": "); printf "  %-26s %s\n", substr($$0, 1, i - 1), substr($$0, i + 2) }' $(MAKEFILE_LIST)

## deps: install the Debian packages the build and the tests need (only the missing ones)
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## build: debug build of every product
build: deps
	$(SWIFT) build

## release: release build of the relay
release: deps
	$(SWIFT) build -c release --product relay

## run: one relay node on :8787 with in-memory state (set REDIS_URL and NATS_URL for a cluster node)
run: release
	./.build/release/relay

## probe: relay-probe against RELAY_PROBE_URL (default the local relay on :8787); exit 0 when a phone can pair and talk
probe: deps
	$(SWIFT) build -c release --product relay-probe
	./.build/release/relay-probe $${RELAY_PROBE_ARGS:-} $${RELAY_PROBE_URL:-http://localhost:8787}

## test: the whole suite, with Redis and NATS started on loopback ports for the cluster tests
test: deps
	bash scripts/with-test-services.sh bash scripts/run-tests.sh

## Load, soak and gate (PROTOCOL §9; LoadTests/README.md). Any RELAY_LOAD_*, RELAY_GATE_* or
## RELAY_SOAK_* variable in the environment wins over the defaults here, which are the reference
## script's. With RELAY_LOAD_BASE_URL unset the harness starts a local release relay.
OUTPUT := output/remote-control
HARNESS := ./.build/release/relay-load
LOAD_DEFAULTS := RELAY_LOAD_SESSIONS=$${RELAY_LOAD_SESSIONS:-200} \
	RELAY_LOAD_MESSAGES_PER_SESSION=$${RELAY_LOAD_MESSAGES_PER_SESSION:-20} \
	RELAY_LOAD_SETUP_CONCURRENCY=$${RELAY_LOAD_SETUP_CONCURRENCY:-32} \
	RELAY_LOAD_ROUNDTRIP_TIMEOUT_MS=$${RELAY_LOAD_ROUNDTRIP_TIMEOUT_MS:-3000} \
	RELAY_LOAD_P95_BUDGET_MS=$${RELAY_LOAD_P95_BUDGET_MS:-1000} \
	RELAY_LOAD_RESULTS_PATH=$${RELAY_LOAD_RESULTS_PATH:-$(CURDIR)/$(OUTPUT)/relay-load-result.json}

## harness: release builds of the relay and the harness
harness: deps
	$(SWIFT) build -c release --product relay
	$(SWIFT) build -c release --product relay-load

## load: §9.1 (200 sessions x 20 commands); writes output/remote-control/relay-load-result.json
load: harness
	$(LOAD_DEFAULTS) $(HARNESS) load

## gate: §9.2 on the load artifact (RELAY_GATE_* thresholds); exit 1 on failure
gate: harness
	$(HARNESS) gate

## load-gated: load, then gate
load-gated: load
	$(HARNESS) gate

## soak: §9.3 (RELAY_SOAK_LOOPS load runs, default 5); summary plus an HTML report beside it
soak: harness
	$(LOAD_DEFAULTS) $(HARNESS) soak

## remote-control-load: the reference script's name for load (also -soak, -gate, -load-gated)
remote-control-load: load
remote-control-soak: soak
remote-control-gate: gate
remote-control-load-gated: load-gated

## Benchmark modes: each writes output/remote-control/relay-<mode>-result.json (the §9.1 shape
## plus its own figures) and exits 1 when it misses its target. Variables: LoadTests/README.md.
## load-throughput: open-loop messages per second at a latency budget
load-throughput: harness
	$(HARNESS) throughput
## load-scale: idle sockets per node and their memory
load-scale: harness
	$(HARNESS) scale
## load-fanout: one desktop to many phones
load-fanout: harness
	$(HARNESS) fanout
## load-resume: phones that drop and resume under traffic, counting lost, repeated, reordered envelopes
load-resume: harness
	$(HARNESS) resume
## load-e2e: extension 12's costs: client CPU to seal and open, relay CPU per sealed frame against plaintext
load-e2e: harness
	$(HARNESS) e2e
## load-pairing-rate: pairings per second
load-pairing-rate: harness
	$(HARNESS) pairing-rate
## load-slow-consumers: phones that stop reading beside ones that do not
load-slow-consumers: harness
	$(HARNESS) slow-consumers
## load-cross-node: round trips with the phone and the desktop on different nodes
load-cross-node: harness
	$(HARNESS) cross-node
## soak-cluster: Redis, NATS, three nodes: churn, a node kill, a rolling restart; fails on any loss
soak-cluster: harness
	$(HARNESS) cluster-soak

## Benchmarks (LoadTests/RESULTS.md): the relay against relay-floor, a bare SwiftNIO forwarder, in
## one run (output/bench/relay-floor-result.json; exit 1 above RELAY_FLOOR_TARGET_RATIO), then the
## allocation benchmarks against Benchmarks/Thresholds (output/bench/allocations.txt).
## Both always run (and write their artifacts); the exit status is 1 if either missed.
FLOOR := RELAY_LOAD_RESULTS_PATH=$${RELAY_LOAD_RESULTS_PATH:-$(CURDIR)/output/bench/relay-floor-result.json} $(HARNESS) floor
## bench: CPU per message against relay-floor, then allocations per frame (both reported)
bench: harness
	$(SWIFT) build -c release --product relay-floor
	@status=0; $(FLOOR) || status=1; bash scripts/bench-allocations.sh table || status=1; exit $$status

## bench-floor: only the comparison with relay-floor
bench-floor: harness
	$(SWIFT) build -c release --product relay-floor
	$(FLOOR)

## bench-allocations: only the allocation table
bench-allocations: deps
	bash scripts/bench-allocations.sh table

## bench-check: allocations per frame against the checked-in thresholds only (what CI runs)
bench-check: deps
	bash scripts/bench-allocations.sh

## Failover drills (Runbooks/failover.md): each starts Redis, NATS and three release relay nodes on
## loopback, runs client traffic through one disruption and prints what it observed; writes
## output/remote-control/drill-<name>.json; exit 1 when an expectation of the runbook does not hold.
## RELAY_DRILL_* variables: LoadTests/README.md.
DRILL := ./.build/release/relay-drill

## drill-harness: release builds of the relay and relay-drill
drill-harness: deps
	$(SWIFT) build -c release --product relay
	$(SWIFT) build -c release --product relay-drill

## drill-node-loss: kill -9 one node, clients move to the others, the node comes back
drill-node-loss: drill-harness
	$(DRILL) node-loss

## drill-redis-restart: stop Redis (append-only file) and start it again
drill-redis-restart: drill-harness
	$(DRILL) redis-restart

## drill-nats-restart: stop NATS and start it again
drill-nats-restart: drill-harness
	$(DRILL) nats-restart

## drill-rolling-restart: drain and replace every node in turn, as a rollout does
drill-rolling-restart: drill-harness
	$(DRILL) rolling-restart

## drill-secret-rotation: NATS_HMAC_SECRET rotated in three rolling restarts, nothing rejected
drill-secret-rotation: drill-harness
	$(DRILL) secret-rotation

## drill-redis-failover: kill -9 the Redis master under Sentinel mid-stream, REDIS_MIN_REPLICAS_ACK=1 then 0; what acknowledged was lost
drill-redis-failover: drill-harness
	$(DRILL) redis-failover

## drills: all six, one after the other
drills: drill-harness
	$(DRILL) node-loss && $(DRILL) redis-restart && $(DRILL) nats-restart && $(DRILL) rolling-restart \
		&& $(DRILL) secret-rotation && $(DRILL) redis-failover

## deploy-validate: render every overlay and validate it offline
deploy-validate:
	bash Deploy/validate.sh

## image-check: the runtime image's root filesystem without a container engine (debootstrap + chroot): libraries, --version, a pairing
image-check: deps
	$(SWIFT) build -c release --product relay
	$(SWIFT) build -c release --product relay-probe
	$(SUDO) bash scripts/image-check.sh

## deploy-render: print an overlay's manifests (OVERLAY=production by default)
deploy-render:
	kubectl kustomize Deploy/kubernetes/overlays/$(or $(OVERLAY),production)

## clean: remove the build and the run artifacts
clean:
	rm -rf .build output
