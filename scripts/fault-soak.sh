#!/usr/bin/env bash
# Runs the fault scenarios against the real control plane (tests/integration/fault_scenarios_test)
# for N random seeds, one after the other, and lists the seeds that failed; replay one with
#   INFORMER_FAULT_SEED=<seed> <build>/tests/fault_scenarios_test --log_level=message
# CI runs that file once per build, with one drawn seed; this is the longer look.
#
#   scripts/fault-soak.sh N [build dir, default build/dev]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:?usage: scripts/fault-soak.sh N [build dir]}
build=${2:-$root/build/dev}

cmake --build "$build" --target fault_scenarios_test >/dev/null
binary=$(find "$build/tests" -maxdepth 2 -type f -name fault_scenarios_test -perm -u+x | head -n1)
[[ -n $binary ]] || { echo "fault-soak: fault_scenarios_test not found under $build/tests" >&2; exit 1; }

logs=$(mktemp -d "${TMPDIR:-/tmp}/fault-soak-XXXXXX")
failed=()
for ((i = 1; i <= runs; i++)); do
  seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
  start=$(date +%s)
  if INFORMER_FAULT_SEED=$seed "$binary" --log_level=message >"$logs/$seed.log" 2>&1; then
    echo "run $i/$runs: seed $seed passed ($(($(date +%s) - start)) s)"
    rm -f "$logs/$seed.log"
  else
    echo "run $i/$runs: seed $seed FAILED ($(($(date +%s) - start)) s), log: $logs/$seed.log"
    failed+=("$seed")
  fi
done
if ((${#failed[@]} > 0)); then
  echo "fault-soak: ${#failed[@]} of $runs runs failed; seeds: ${failed[*]}"
  exit 1
fi
echo "fault-soak: all $runs runs passed"
rmdir "$logs" 2>/dev/null || true
