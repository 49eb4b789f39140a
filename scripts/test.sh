#!/usr/bin/env bash
# The test suite, from a fresh Debian machine to a verdict: installs what is missing, provisions
# the real control plane (etcd + kube-apiserver 1.20.2, built once and cached outside the tree),
# checks the formatting, builds (with Ninja, and once with the default generator), checks the
# library's lock annotations with clang's -Wthread-safety, runs the unit, example, consumer and
# integration tests, fuzzes every parser for a bounded time (scripts/fuzz.sh), then the unit and
# integration tests again under AddressSanitizer + UndefinedBehaviorSanitizer and under
# ThreadSanitizer.
#
#   scripts/test.sh            everything
#   INFORMER_SKIP_SANITIZERS=1 scripts/test.sh    skip the sanitizer builds (local iteration)
#   INFORMER_SANITIZE_ALL=1 scripts/test.sh       every integration test under each sanitizer
#   INFORMER_FUZZ_SECONDS=N scripts/test.sh        fuzz each target N s (default 15)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${INFORMER_JOBS:-$(nproc)}

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

step "dependencies"
"$root/scripts/install-deps.sh"
step "control plane (cached after the first run)"
"$root/scripts/provision-control-plane.sh" | tail -n1

step "format (clang-format 14, .clang-format at the root)"
git ls-files -z 'src/*.cpp' 'src/*.hpp' 'include/*.hpp' 'tests/*.cpp' 'tests/*.hpp' 'examples/*.cpp' 'examples/*.hpp' 'bench/*.cpp' 'bench/*.hpp' |
  xargs -0 clang-format-14 --dry-run -Werror

step "build (RelWithDebInfo)"
cmake -S . -B build/ci -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINFORMER_KUBERNETES_PROTO=ON >/dev/null
cmake --build build/ci -j "$jobs"

# A compile-time check, so it runs before the tests. The one clang build serves the fuzzers too
# (the library instrumented for libFuzzer, ASan and UBSan): a second clang build of the library
# would cost more than the instrumentation does.
step "lock annotations (clang -Wthread-safety) in the fuzz build"
export INFORMER_FUZZ_BUILD_DIR=build/ci-clang INFORMER_FUZZ_CXX_FLAGS="-Wthread-safety -Werror=thread-safety"
"$root/scripts/fuzz.sh" 0

step "unit, example and consumer tests"
ctest --test-dir build/ci -L 'unit|consumer|example' -j "$jobs" --output-on-failure

step "fresh build with CMake's default generator (Unix Makefiles): the library and one example"
rm -rf build/ci-make
cmake -S . -B build/ci-make -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINFORMER_KUBERNETES_PROTO=ON \
  -DINFORMER_BUILD_TESTS=OFF -DINFORMER_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/ci-make -j "$jobs" --target example_label_queries

step "integration tests (real etcd and kube-apiserver on loopback)"
ctest --test-dir build/ci -L integration -j 1 --output-on-failure

step "fuzzing (libFuzzer + ASan + UBSan, ${INFORMER_FUZZ_SECONDS:-15} s per target over the seed corpora)"
"$root/scripts/fuzz.sh" "${INFORMER_FUZZ_SECONDS:-15}"

if [[ "${INFORMER_SKIP_SANITIZERS:-0}" != 1 ]]; then
  # The integration tests each sanitizer runs: under ASan those where memory is most at stake (the
  # etcd client under stress, both sources, informers, the fault scenarios), under TSan those where
  # completions cross threads the most (both sources' informers, and the convergence of the two);
  # chosen to keep the whole of CI within about an hour on two cores. INFORMER_SANITIZE_ALL=1 runs
  # every integration test under both.
  asan_integration="etcd_client_stress_test etcd_client_test etcd_source_test apiserver_informer_test"
  asan_integration+=" source_convergence_test fault_scenarios_test"
  tsan_integration="etcd_source_test apiserver_informer_test source_convergence_test"
  sanitizer_build() {  # name, flags, integration tests
    local dir=build/ci-$1 targets=$3
    [[ "${INFORMER_SANITIZE_ALL:-0}" == 1 ]] && targets=integration_tests
    step "unit and integration tests under $1"
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DINFORMER_BUILD_EXAMPLES=OFF \
      -DINFORMER_BUILD_BENCHMARKS=OFF -DINFORMER_INSTALL=OFF -DINFORMER_KUBERNETES_PROTO=ON \
      "-DCMAKE_CXX_FLAGS=-O1 -g -fno-omit-frame-pointer $2" >/dev/null
    # shellcheck disable=SC2086 # a list of targets
    cmake --build "$dir" -j "$jobs" --target unit_tests $targets
    ctest --test-dir "$dir" -L unit -j "$jobs" --output-on-failure
    [[ -z "$targets" ]] && return
    local only=()
    [[ "$targets" != integration_tests ]] && only=(-R "^integration\.(${targets// /|})\$")
    ctest --test-dir "$dir" -L integration "${only[@]}" -j 1 --output-on-failure
  }
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  sanitizer_build asan-ubsan "-fsanitize=address,undefined -fno-sanitize-recover=undefined" "$asan_integration"
  # The suppressions cover the uninstrumented gRPC, Abseil and OpenSSL libraries and one Asio idiom
  # TSan cannot follow (see the file).
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan-suppressions.txt
  # -Wno-tsan: Boost headers use atomic_thread_fence, which g++ 12 notes TSan does not model.
  sanitizer_build tsan "-fsanitize=thread -Wno-tsan" "$tsan_integration"
fi
step "all tests passed"
