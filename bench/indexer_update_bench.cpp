// Cost of one update in the indexer as the cache grows (issue 12: the cost per event must not
// depend on the cache size). Fills an indexer (its built-in namespace and label indexes, as an
// informer has them) with N pods of the issue's workload, then replaces M of them by a new
// version and reports the wall time per update:
//   same    - the new version carries the same labels (a status or annotation change: the
//             common watch event); no index value changes
//   changed - the new version moves to another `tier` (one label value changes)
// and the ratio of the largest N to the smallest, which should stay near 1.
//
//   indexer_update_bench [same|changed|both] [updates=20000] [N...=20000 100000]
// Instruction counts, repeatable on a noisy machine, count only the timed loop (and valgrind
// instruments only that loop, so filling 100,000 pods stays quick):
//   valgrind --tool=callgrind --instr-atstart=no --toggle-collect='*run_updates*' \
//     --callgrind-out-file=/dev/null build/rel/bench/indexer_update_bench same 2000 20000
// (instructions per update = "Collected" / updates).
#include "informer/cache/indexer.hpp"

#include "issue12_pod.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// Kept out of line so that callgrind can count exactly this loop (--toggle-collect).
[[gnu::noinline]] void run_updates(informer::indexer& cache, std::vector<informer::object::ptr>& updates) {
  for (auto& pod : updates) cache.update(std::move(pod));
}

double ns_per_update(std::size_t n, std::size_t m, bool change_label) {
  informer::indexer cache;
  for (std::size_t i = 0; i < n; ++i) cache.add(bench::issue12_pod(i, i, 1000000));
  // Updates hit objects spread over the whole cache (a stride prime to n), as a watch does.
  std::vector<informer::object::ptr> updates;
  updates.reserve(m);
  for (std::size_t k = 0; k < m; ++k) {
    const auto i = (k * 7919) % n;
    updates.push_back(bench::issue12_pod(i, change_label ? i + 1 + k / n : i, 1000001 + k));
  }
  const auto started = std::chrono::steady_clock::now();
  CALLGRIND_START_INSTRUMENTATION;
  run_updates(cache, updates);
  CALLGRIND_STOP_INSTRUMENTATION;
  const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - started;
  if (cache.size() != n) {
    std::fprintf(stderr, "expected %zu objects, have %zu\n", n, cache.size());
    std::exit(1);
  }
  return took.count() / static_cast<double>(m);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string variant = argc > 1 ? argv[1] : "both";
  const std::size_t m = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 20000;
  std::vector<std::size_t> sizes;
  for (int a = 3; a < argc; ++a) sizes.push_back(std::strtoul(argv[a], nullptr, 10));
  if (sizes.empty()) sizes = {20000, 100000};
  if (variant != "same" && variant != "changed" && variant != "both") {
    std::fprintf(stderr, "usage: indexer_update_bench [same|changed|both] [updates] [N...]\n");
    return 2;
  }
  std::printf("%-8s %10s %10s %14s\n", "variant", "N", "updates", "ns/update");
  for (const bool change : {false, true}) {
    if (variant != "both" && (variant == "changed") != change) continue;
    std::vector<double> results;
    for (auto n : sizes) {
      results.push_back(ns_per_update(n, m, change));
      std::printf("%-8s %10zu %10zu %14.0f\n", change ? "changed" : "same", n, m, results.back());
    }
    if (results.size() > 1)
      std::printf("%-8s ratio N=%zu / N=%zu: %.2f\n", change ? "changed" : "same", sizes.back(), sizes.front(),
                  results.back() / results.front());
  }
  return 0;
}
