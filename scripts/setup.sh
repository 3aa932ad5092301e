#!/usr/bin/env bash
# Installs what a fresh machine lacks for building and testing exasock, and mounts the bpffs.
# Idempotent: installs only missing packages, mounts only when not mounted.
# Usage: scripts/setup.sh [--fuzz]   (--fuzz also installs cargo-fuzz)
set -euo pipefail

packages=(
  clang llvm libbpf-dev linux-libc-dev   # BPF programs: clang -target bpf, libbpf headers
  iproute2 ethtool bpftool               # namespaces, veth, offloads, BPF inspection
  socat netcat-openbsd sockperf tcpdump  # real kernel peers and captures in tests and benchmarks
  python3 procps psmisc iputils-ping     # asyncio peer programs; pkill, fuser; ping
  nginx curl iperf3 wget wrk             # real TCP programs run under exasock in tests
  redis-server redis-tools memcached     # (the programs tests, crates/preload/tests/programs.rs)
  dnsmasq-base bind9-dnsutils            # a UDP server with IP_PKTINFO (dnsmasq) and dig
  ca-certificates
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; this project needs a stable Rust toolchain (rustup)" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# The bpffs where attached interfaces keep their programs and maps. It must live in the initial
# mount namespace: `ip netns exec` gives each command a private mount namespace, so a bpffs
# mounted inside one would be invisible to the next (docs/ARCHITECTURE.md, control plane).
mount_bpffs() {
  mkdir -p /run/exasock
  mountpoint -q /run/exasock || mount -t bpf bpf /run/exasock
}
if [ "$(id -u)" = 0 ]; then
  if [ -r /proc/1/ns/mnt ] && [ "$(readlink /proc/1/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ]; then
    nsenter -t 1 -m -- bash -c "mkdir -p /run/exasock; mountpoint -q /run/exasock || mount -t bpf bpf /run/exasock"
  else
    mount_bpffs
  fi
else
  echo "setup: not root: skipping the bpffs mount (namespace tests need root)" >&2
fi

if [ "${1:-}" = "--fuzz" ] && ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
echo "setup: ok"
