# The relay's entry points. `make run` and `make test` work on a fresh machine that has Swift:
# each installs the Debian packages it needs first.

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := libssl-dev libhiredis-dev libnats-dev redis-server nats-server openssl

.PHONY: deps build release run test test-unit deploy-validate deploy-render clean \
	load soak gate load-gated remote-control-load remote-control-soak remote-control-gate remote-control-load-gated

## deps: install the Debian packages the build and the tests need (only the missing ones)
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product relay

## run: one relay node on :8787 with in-memory state (set REDIS_URL and NATS_URL for a cluster node)
run: release
	./.build/release/relay

## test: the whole suite, with Redis and NATS started on loopback ports for the cluster tests
test: deps
	bash scripts/with-test-services.sh bash scripts/run-tests.sh

## deploy-validate: render every overlay and validate it offline
deploy-validate:
	bash Deploy/validate.sh

deploy-render:
	kubectl kustomize Deploy/kubernetes/overlays/$(or $(OVERLAY),production)

clean:
	rm -rf .build output
