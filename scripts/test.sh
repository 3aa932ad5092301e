#!/usr/bin/env bash
# The test command: sets up what is missing, then runs every test of the workspace.
# Namespace tests need root; as a non-root user set EXASOCK_SKIP_NETNS=1 to skip them (each
# skipped test prints why).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The namespace suite again over AF_XDP (issue 19): the same tests, the accel interface
# attached with --datapath xdp, so the first exasock process on it binds AF_XDP sockets to
# every RX queue (the C suite, UDP and TCP through the preload library, the real programs,
# the extension examples, faults and hostile traffic, the raw datapath).
if [ -z "${EXASOCK_SKIP_NETNS:-}" ]; then
  EXASOCK_TEST_DATAPATH=xdp cargo test -p preload --test udp --test tcp --test faults --test c_suite --test programs --test examples
  EXASOCK_TEST_DATAPATH=xdp cargo test -p e2e --test af_packet --test udp_stack
fi
