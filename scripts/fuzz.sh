#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang with ASan + UBSan, the library instrumented too)
# and runs each for a bounded time over a copy of its seed corpus (tests/fuzz/corpus/<target>/,
# never written to), with its dictionary when there is one. Fails when any target finds a crash,
# a leak, a UBSan report, a timeout or an out-of-memory; the input that did it is kept in
# BUILD_DIR/fuzz-artifacts/ and named in the output (reproduce: BUILD_DIR/tests/fuzz/<target>_fuzz FILE).
#
#   scripts/fuzz.sh [SECONDS]     seconds per target (default 60); 0: build only
# Environment: INFORMER_FUZZ_BUILD_DIR (default build/fuzz), INFORMER_FUZZ_CXX_FLAGS (added to the
#   build's flags, e.g. CI's -Werror=thread-safety), INFORMER_FUZZ_TARGETS (names, default all),
#   INFORMER_JOBS (targets run at once, default nproc).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-60}
dir=${INFORMER_FUZZ_BUILD_DIR:-build/fuzz}
jobs=${INFORMER_JOBS:-$(nproc)}
targets=${INFORMER_FUZZ_TARGETS:-"label_selector field_selector json_watch protobuf_watch protobuf_envelope kubeconfig etcd_decoder list_page"}

# -O1: fast enough to fuzz, quick to build; -g: symbolised reports.
cmake -S . -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DINFORMER_KUBERNETES_PROTO=ON \
  -DINFORMER_BUILD_FUZZERS=ON -DINFORMER_BUILD_TESTS=OFF -DINFORMER_BUILD_EXAMPLES=OFF \
  -DINFORMER_BUILD_BENCHMARKS=OFF -DINFORMER_INSTALL=OFF \
  "-DCMAKE_CXX_FLAGS=-O1 -g ${INFORMER_FUZZ_CXX_FLAGS:-}" >/dev/null
# shellcheck disable=SC2086
cmake --build "$dir" -j "$jobs" --target $(printf '%s_fuzz ' $targets)
[[ $seconds == 0 ]] && exit 0

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
artifacts=$root/$dir/fuzz-artifacts
mkdir -p "$artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Runs one target; its log ends in $scratch/<target>.log, its verdict in $scratch/<target>.rc.
run_target() {
  local name=$1 corpus=$scratch/$1 dict=tests/fuzz/$1.dict rc=0
  local -a args=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1 "-artifact_prefix=$artifacts/$name-")
  [[ $name == protobuf_* || $name == etcd_decoder ]] && dict=tests/fuzz/protobuf.dict
  [[ -f $dict ]] && args+=("-dict=$dict")
  mkdir -p "$corpus"
  [[ -d tests/fuzz/corpus/$name ]] && cp -r "tests/fuzz/corpus/$name/." "$corpus/"
  "$dir/tests/fuzz/${name}_fuzz" "${args[@]}" "$corpus" >"$scratch/$name.log" 2>&1 || rc=$?
  echo "$rc" >"$scratch/$name.rc"
}

running=0
for name in $targets; do
  run_target "$name" &
  if ((++running >= jobs)); then
    wait -n || true
    ((running--))
  fi
done
wait

failed=0
printf '%-18s %10s %10s %8s %s\n' target runs execs/s corpus verdict
for name in $targets; do
  log=$scratch/$name.log rc=$(<"$scratch/$name.rc")
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  size=$(find "$scratch/$name" -type f | wc -l)
  if [[ $rc == 0 ]]; then
    printf '%-18s %10s %10s %8s ok\n' "$name" "${runs:-?}" "${rate:-?}" "$size"
  else
    failed=1
    printf '%-18s %10s %10s %8s FAILED (exit %s)\n' "$name" "${runs:-?}" "${rate:-?}" "$size" "$rc"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz check failed|.*runtime error|artifact_prefix|Test unit written)' "$log" |
      head -n 20 | sed 's/^/    /'
    echo "    full log: $artifacts/$name.log"
    cp "$log" "$artifacts/$name.log"
  fi
done
exit "$failed"
