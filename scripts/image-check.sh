#!/usr/bin/env bash
# The runtime image, checked without a container engine: debootstrap the Debian release of
# Deploy/Dockerfile's runtime stage with exactly the packages that stage installs, put in the
# release binaries and the Swift runtime libraries they link (as the build stage copies them),
# then inside it with chroot: every shared library resolves, `relay --version` runs, and a relay
# serving on loopback passes `relay-probe` (a whole pairing, traffic, rotation, revoke, stop).
#
#   scripts/image-check.sh            # what `make image-check` runs (after the release builds)
#
# Environment: IMAGE_CHECK_MIRROR (default: the host's Debian mirror, else deb.debian.org),
# IMAGE_CHECK_DIR (default: a temporary directory, removed afterwards), IMAGE_CHECK_PORT (18790),
# IMAGE_CHECK_DOCKERFILE (default Deploy/Dockerfile; a copy with a package taken out shows the check fail).
# Needs root (debootstrap, chroot) and network access to the mirror. Exit 0 only if all passed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'image-check: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap and chroot)"
command -v debootstrap >/dev/null || { log "installing debootstrap"; apt-get install -y -qq debootstrap >/dev/null; }

dockerfile=${IMAGE_CHECK_DOCKERFILE:-Deploy/Dockerfile}
# The runtime stage's base (debian:<release>-slim) and its apt-get install line.
runtime_image=$(sed -n 's/^ARG RUNTIME_IMAGE=//p' "$dockerfile")
release=${runtime_image#debian:}; release=${release%-slim}
packages=$(awk '/^FROM \$\{RUNTIME_IMAGE\}/ { runtime = 1 } runtime && /apt-get install/ { take = 1; next }
  take { if ($0 ~ /rm -rf/) exit; gsub(/[\\&]/, ""); printf "%s ", $0 }' "$dockerfile" | xargs)
[ -n "$release" ] && [ -n "$packages" ] || die "cannot read the runtime stage of $dockerfile"
mirror=${IMAGE_CHECK_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
bin=$(swift build -c release --show-bin-path)
for product in relay relay-probe; do [ -x "$bin/$product" ] || die "$bin/$product missing: swift build -c release --product $product"; done

work=${IMAGE_CHECK_DIR:-$(mktemp -d)}
root="$work/rootfs"
relay_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
  if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc" || true; fi
  if [ -z "${IMAGE_CHECK_DIR:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

started=$(date +%s)
log "debootstrap $release (minbase) from $mirror with: $packages"
debootstrap --variant=minbase --include="$(echo "$packages" | tr ' ' ',')" "$release" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap"; }

log "copying the binaries and the Swift runtime libraries they link"
install -d "$root/usr/local/bin" "$root/usr/lib/swift/linux"
cp "$bin/relay" "$bin/relay-probe" "$root/usr/local/bin/"
toolchain_libs=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")/lib/swift/linux
ldd "$bin/relay" "$bin/relay-probe" | awk -v dir="$toolchain_libs/" 'index($3, dir) == 1 { print $3 }' | sort -u \
  | xargs -r cp --dereference -t "$root/usr/lib/swift/linux/"
echo /usr/lib/swift/linux > "$root/etc/ld.so.conf.d/swift.conf"
chroot "$root" ldconfig
# As a container runtime does: the Swift runtime reads a process's arguments from /proc.
mount -t proc proc "$root/proc"

log "ldd inside the image"
missing=$(chroot "$root" ldd /usr/local/bin/relay /usr/local/bin/relay-probe | grep 'not found' || true)
[ -z "$missing" ] || die "libraries missing from the image: $missing"

log "relay --version inside the image"
version=$(timeout 30 chroot "$root" /usr/local/bin/relay --version) || die "relay --version"
case "$version" in relay\ *) log "$version" ;; *) die "relay --version printed: $version" ;; esac

port=${IMAGE_CHECK_PORT:-18790}
log "relay on 127.0.0.1:$port inside the image, relay-probe inside the image against it"
chroot "$root" /usr/bin/env -i PORT="$port" HOST=127.0.0.1 PUBLIC_BASE_URL="http://127.0.0.1:$port" LOG_LEVEL=warning \
  /usr/local/bin/relay >"$work/relay.log" 2>&1 &
relay_pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
chroot "$root" /usr/local/bin/relay-probe --timeout 10 "http://127.0.0.1:$port" || { cat "$work/relay.log" >&2; die "the pairing smoke test"; }
kill "$relay_pid"; wait "$relay_pid" 2>/dev/null || true; relay_pid=""

umount "$root/proc"
log "passed in $(( $(date +%s) - started )) s: $(du -sxh "$root" | cut -f1) root filesystem, $(ls "$root/usr/lib/swift/linux" | wc -l) Swift libraries"
