// Label-selector queries answered from a local indexed cache.
//
// A controller that asks the API server `GET /api/v1/pods?labelSelector=app=x` makes etcd read
// the whole namespace for every query. Holding the pods in an `informer::indexer` answers the same
// question locally: the label index hands back the matching pods without looking at the others.
// This program fills an indexer with N pods (default 100,000) spread over 100 apps and 5 tiers,
// runs a few selector queries, and prints how many pods each one read (`explain`) and how long it
// took, next to a plain scan for comparison.
//
//   label_queries [N]
#include <informer/cache/indexer.hpp>
#include <informer/core/label_selector.hpp>
#include <informer/core/object.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

std::string pod_json(int i) {
  const std::string app = "app-" + std::to_string(i % 100);
  const std::string tier = "tier-" + std::to_string(i % 5);
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + app + "-" + std::to_string(i) +
         R"(","namespace":"ns-)" + std::to_string(i % 7) + R"(","uid":"uid-)" + std::to_string(i) +
         R"(","resourceVersion":")" + std::to_string(1000 + i) + R"(","labels":{"app":")" + app + R"(","tier":")" +
         tier + R"(","canary":")" + (i % 47 == 0 ? "true" : "false") +
         R"("}},"spec":{"containers":[{"name":"main","image":"registry.example/)" + app +
         R"(:1.0"}]},"status":{"phase":"Running"}})";
}

template <class F>
double micros(F&& f, int repeat) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < repeat; ++i) f();
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / repeat;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 100000;
  informer::indexer pods;
  std::vector<informer::object::ptr> objects;
  objects.reserve(n);
  for (int i = 0; i < n; ++i) {
    auto pod = informer::object::parse(pod_json(i));
    if (!pod) {
      std::fprintf(stderr, "bad pod: %s\n", pod.error().what().c_str());
      return 1;
    }
    objects.push_back(*pod);
  }
  pods.replace(std::move(objects));
  std::printf("%d pods cached, %.1f MiB (%.0f bytes per pod, indexes included)\n", n, pods.memory_usage() / 1048576.0,
              static_cast<double>(pods.memory_usage()) / n);

  struct query {
    const char* ns;
    const char* selector;
  };
  for (auto q : {query{"", "app=app-42"}, query{"ns-2", "app=app-42"}, query{"", "app in (app-1,app-2),tier=tier-1"},
                 query{"", "canary=true,tier!=tier-0"}, query{"", "!canary"}}) {
    auto selector = informer::label_selector::parse(q.selector);
    if (!selector) {
      std::fprintf(stderr, "bad selector: %s\n", selector.error().what().c_str());
      return 1;
    }
    const auto plan = pods.explain(q.ns, *selector);
    std::size_t found = 0;
    const double indexed = micros([&] { found = pods.list(q.ns, *selector).size(); }, 20);
    std::size_t scanned = 0;
    const double scan = micros(
        [&] {
          scanned = 0;
          for (const auto& pod : pods.list())
            if ((!*q.ns || pod->ns() == q.ns) && selector->matches(pod->labels())) ++scanned;
        },
        3);
    if (scanned != found) {
      std::fprintf(stderr, "index and scan disagree for %s: %zu vs %zu\n", q.selector, found, scanned);
      return 1;
    }
    std::printf("%-5s %-36s %6zu matches, read %6zu (via %s): %9.1f us indexed, %9.1f us scanning\n",
                *q.ns ? q.ns : "all", q.selector, found, plan.candidates,
                plan.source.empty() ? "full scan" : plan.source.c_str(), indexed, scan);
  }
  return 0;
}
