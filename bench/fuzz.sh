#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a while, minimises its corpus, and prints one
# line per target: runs, corpus files before and after, crashes (crash, oom, leak and timeout
# artifacts left in fuzz/artifacts/TARGET). Not CI: issue 22's "every target for 5 minutes", in the background.
# Usage: bench/fuzz.sh [SECONDS per target, default 300] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
shift || true
scripts/setup.sh --fuzz >/dev/null
cd fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=()
  for f in fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
printf "%-12s %10s %8s %8s %8s\n" target runs before after crashes
for t in "${targets[@]}"; do
  before=$(ls "corpus/$t" | wc -l)
  rm -rf "artifacts/$t"
  # Crashes end the run early with a non-zero status: counted from artifacts/, not fatal here.
  cargo fuzz run "$t" --sanitizer none -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 || true
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cargo fuzz cmin "$t" --sanitizer none >/dev/null 2>&1 || true
  after=$(ls "corpus/$t" | wc -l)
  # slow-unit-* files are inputs that took long (a stopped or loaded machine), not failures.
  crashes=$(ls "artifacts/$t" 2>/dev/null | grep -c -E '^(crash|oom|leak|timeout)-' || true)
  printf "%-12s %10s %8s %8s %8s\n" "$t" "$runs" "$before" "$after" "$crashes"
done
