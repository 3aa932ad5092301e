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
