// Memory of the object cache: how many bytes N pods cost once they sit in an indexer with its
// namespace and label indexes, measured three ways:
//   heap   - bytes allocated and still live (glibc mallinfo2), the figure comparable to Go's heap
//   rss    - growth of the resident set
//   est    - the cache's own estimate (indexer::memory_usage + the shared key/value tables)
// The budget (issue 2): client-go 1.20 holds 20,000 typical pods (8.9 KB of JSON each) in
// 148 MiB of Go heap, 183 MB resident; informer must hold them in a third of that or less:
// about 3 KB per pod, indexes included.
//
//   cache_memory_bench [pods=20000] [deployments=1]
// Build with the project's benchmarks (always -O2): cmake --build build --target cache_memory_bench
#include "informer/cache/indexer.hpp"

#include "core/detail/key_table.hpp"
#include "core/detail/value_table.hpp"
#include "sample_pods.hpp"

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

std::size_t heap_in_use() { return mallinfo2().uordblks + mallinfo2().hblkhd; }

std::size_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * 4096;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t pods = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 20000;
  const std::size_t deployments = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1;

  malloc_trim(0);
  const auto heap0 = heap_in_use();
  const auto rss0 = rss_bytes();
  std::size_t json_bytes = 0;
  const auto started = std::chrono::steady_clock::now();
  informer::indexer cache;
  for (std::size_t i = 0; i < pods; ++i) {
    informer::testing::pod_shape shape;
    shape.app = "app-" + std::to_string(i % deployments);
    shape.tier = i % 2 ? "backend" : "frontend";
    shape.node = "node-" + std::to_string(i % 50);
    const auto json = informer::testing::sample_pod_json(i, shape);
    json_bytes += json.size();
    auto pod = informer::object::parse(json);
    if (!pod) {
      std::fprintf(stderr, "parse failed: %s\n", pod.error().what().c_str());
      return 1;
    }
    cache.add(*pod);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  malloc_trim(0);
  const auto heap = heap_in_use() - heap0;
  const auto rss = rss_bytes() - rss0;
  const auto shared =
      informer::detail::key_table::instance().memory_usage() + informer::detail::value_table::instance().memory_usage();
  const auto estimate = cache.memory_usage() + shared;

  const double n = static_cast<double>(pods);
  std::printf("pods %zu in %zu deployment(s), %.0f bytes of JSON each, parsed and cached in %.2f s (%.1f us/pod)\n",
              pods, deployments, json_bytes / n, seconds, seconds * 1e6 / n);
  std::printf("heap  %8.1f MiB  %6.0f bytes/pod\n", heap / 1048576.0, heap / n);
  std::printf("rss   %8.1f MiB  %6.0f bytes/pod\n", rss / 1048576.0, rss / n);
  std::printf("est   %8.1f MiB  %6.0f bytes/pod (shared key/value tables %.1f KiB, %zu shared values)\n",
              estimate / 1048576.0, estimate / n, shared / 1024.0, informer::detail::value_table::instance().size());
  std::printf(
      "client-go 1.20 reference: 148 MiB Go heap, 183 MB RSS for 20,000 pods of 8.9 KB (7,760 bytes/pod heap)\n");
  std::printf("budget (a third): %.0f bytes/pod; heap here is %.2fx client-go's per-pod heap\n", 7760.0 / 3,
              (heap / n) / 7760.0);
  return 0;
}
