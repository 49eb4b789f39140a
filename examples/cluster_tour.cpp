// A tour of the SDK against a real cluster: what `scripts/demo.sh --tour` runs.
//
// It fills a namespace with pods through the REST client, then keeps two informers on them: one
// through kube-apiserver (protobuf), one straight from etcd. It shows that
//   - both caches hold the very same objects (keys, resourceVersions, bodies);
//   - a label query answered from the local index costs microseconds and nothing on the server,
//     where the same query sent to the server costs a round trip and a scan of the namespace;
//   - changes reach both informers' handlers as they happen.
//
//   cluster_tour KUBECONFIG ETCD_ENDPOINT [PODS]     (PODS: default 2000)
//
// Use a scratch cluster: the tour creates and deletes the namespace "tour". Exit code 0 when
// everything checked out, 1 otherwise.
#include <informer/apiserver/kubeconfig.hpp>
#include <informer/apiserver/lister_watcher.hpp>
#include <informer/apiserver/rest_client.hpp>
#include <informer/client/shared_informer.hpp>
#include <informer/core/label_selector.hpp>
#include <informer/etcd/kubernetes_source.hpp>

#include "example_support.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace asio = boost::asio;
using example::clock_type;
using example::eventually;
using example::ms_since;
using example::same_objects;

namespace {

constexpr int apps = 20;
constexpr const char* ns = "tour";

example::checks check;

template <class Future>
auto wait(Future f) {
  return example::wait(std::move(f), "cluster_tour");
}

std::string pod_manifest(int i) {
  const std::string n = std::to_string(i);
  const std::string app = "app-" + std::to_string(i % apps);
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"pod-)" + n + R"(","labels":{"app":")" + app +
         R"(","tier":")" + (i % 4 == 0 ? "frontend" : "backend") +
         R"("}},"spec":{"containers":[{"name":"main","image":"registry.example.com/)" + app +
         R"(:1.0","ports":[{"containerPort":8080}],"resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]}})";
}

// The tour proper; `io` is run by other threads.
int tour(asio::io_context& io, const informer::rest_config& config, const std::string& etcd_endpoint, int pods) {
  {
    auto http = informer::http_client::create(io.get_executor(), config).value();
    auto etcd = std::make_shared<informer::etcd::client>(
        informer::etcd::client::connect({.endpoints = {etcd_endpoint}}).value());
    const auto pod_resource = informer::parse_resource("pods").value();
    const informer::rest_client namespaces(http, informer::parse_resource("namespaces").value(), "");
    const informer::rest_client pod_client(http, pod_resource, ns);

    std::printf("1. %d pods in namespace %s, created through the REST client\n", pods, ns);
    const auto setup = clock_type::now();
    if (auto [e, created] =
            wait(namespaces.async_create(boost::json::parse(R"({"metadata":{"name":"tour"}})"), {}, asio::use_future));
        e) {
      std::fprintf(stderr, "cluster_tour: creating namespace %s: %s\n", ns, e.what().c_str());
      return 1;
    }
    {
      std::vector<std::future<std::tuple<informer::error, informer::object::ptr>>> pending;
      for (int i = 0; i < pods; ++i) {
        pending.push_back(pod_client.async_create(boost::json::parse(pod_manifest(i)), {}, asio::use_future));
        if (pending.size() == 32 || i + 1 == pods) {  // 32 requests in flight at most
          for (auto& f : pending) {
            auto [e, obj] = wait(std::move(f));
            if (e) {
              std::fprintf(stderr, "cluster_tour: creating a pod: %s\n", e.what().c_str());
              return 1;
            }
          }
          pending.clear();
        }
      }
    }
    std::printf("  created in %.0f ms\n", ms_since(setup));

    std::printf("2. two informers on them: through kube-apiserver (protobuf) and straight from etcd\n");
    auto api_source = informer::apiserver_lister_watcher::create(
                          http, pod_resource, {.ns = ns, .encoding = informer::wire_encoding::protobuf})
                          .value();
    auto etcd_source =
        informer::etcd::make_kubernetes_source(etcd, io.get_executor(), {.resource = pod_resource, .ns = ns});
    auto via_api = informer::shared_informer::create(api_source, {.name = "pods via apiserver"});
    auto via_etcd = informer::shared_informer::create(etcd_source, {.name = "pods via etcd"});
    std::atomic<int> api_events{0};
    std::atomic<int> etcd_events{0};
    const auto counter = [](std::atomic<int>& n) {
      return informer::resource_event_handlers{
          .on_add = [&n](const informer::object::ptr&, bool initial) { n += initial ? 0 : 1; },
          .on_update = [&n](const informer::object::ptr&, const informer::object::ptr&) { ++n; },
          .on_delete = [&n](const informer::deleted_object&) { ++n; }};
    };
    via_api->add_event_handler(counter(api_events));
    via_etcd->add_event_handler(counter(etcd_events));
    const auto sync_start = clock_type::now();
    via_api->run();
    via_etcd->run();
    double api_sync_ms = -1;
    double etcd_sync_ms = -1;
    const bool synced = eventually(
        [&] {
          if (api_sync_ms < 0 && via_api->has_synced()) api_sync_ms = ms_since(sync_start);
          if (etcd_sync_ms < 0 && via_etcd->has_synced()) etcd_sync_ms = ms_since(sync_start);
          return api_sync_ms >= 0 && etcd_sync_ms >= 0;
        },
        std::chrono::seconds(60));
    check(synced, "both informers listed and synced");
    std::printf("  synced (concurrently): through the API server in %.0f ms, from etcd in %.0f ms\n", api_sync_ms,
                etcd_sync_ms);
    check(static_cast<int>(via_api->get_store()->size()) == pods, "the API-server cache holds every pod");
    check(eventually([&] { return same_objects(*via_api, *via_etcd); }),
          "both caches hold the same objects: names, resourceVersions, bodies");
    std::printf("  cache memory: %.0f bytes per pod, indexes included\n",
                static_cast<double>(via_api->get_indexer()->memory_usage()) / pods);

    std::printf("3. label query app=app-7,tier=backend: local index vs the server\n");
    const auto selector = informer::label_selector::parse("app=app-7,tier=backend").value();
    const auto lister = via_api->lister();
    constexpr int local_runs = 2000;
    std::size_t local_hits = 0;
    const auto local_start = clock_type::now();
    for (int i = 0; i < local_runs; ++i) local_hits = lister.list(ns, selector).size();
    const double local_us = ms_since(local_start) * 1000.0 / local_runs;
    informer::list_options server_query;
    server_query.label_selector = selector.to_string();
    constexpr int server_runs = 20;
    std::size_t server_hits = 0;
    const auto server_start = clock_type::now();
    for (int i = 0; i < server_runs; ++i) {
      auto [e, list] = wait(pod_client.async_list(server_query, asio::use_future));
      if (e) {
        std::fprintf(stderr, "cluster_tour: server-side list: %s\n", e.what().c_str());
        return 1;
      }
      server_hits = list.items.size();
    }
    const double server_us = ms_since(server_start) * 1000.0 / server_runs;
    std::printf("  local index: %zu pods in %.1f us per query; server: %zu pods in %.0f us per query (%.0fx)\n",
                local_hits, local_us, server_hits, server_us, server_us / local_us);
    check(local_hits == server_hits && local_hits > 0, "the local answer matches the server's");

    std::printf("4. live changes: relabel and delete pods, watch both informers follow\n");
    const int before_api = api_events.load();
    const int before_etcd = etcd_events.load();
    const auto change_start = clock_type::now();
    const int changes = std::min(pods / 2, 50);
    for (int i = 0; i < changes; ++i) {
      informer::patch_options patch;
      wait(pod_client.async_patch("pod-" + std::to_string(i), informer::patch_type::merge_patch,
                                  R"({"metadata":{"labels":{"canary":"true"}}})", patch, asio::use_future));
      informer::delete_options remove;
      wait(pod_client.async_delete("pod-" + std::to_string(pods - 1 - i), remove, asio::use_future));
    }
    check(eventually([&] {
            return api_events.load() - before_api >= 2 * changes && etcd_events.load() - before_etcd >= 2 * changes;
          }),
          "both informers' handlers saw every change");
    std::printf("  %d updates + %d deletes seen by both within %.0f ms of the first write\n", changes, changes,
                ms_since(change_start));
    const auto canaries = informer::label_selector::parse("canary=true").value();
    check(eventually([&] {
            return static_cast<int>(via_etcd->lister().list(ns, canaries).size()) == changes &&
                   same_objects(*via_api, *via_etcd);
          }),
          "the caches converged again: " + std::to_string(changes) + " canaries in each");

    via_api->stop();
    via_etcd->stop();
    informer::delete_options remove;
    wait(namespaces.async_delete(ns, remove, asio::use_future));
    std::printf("%s\n", check.failures() == 0 ? "the tour checked out" : "the tour found problems");
  }
  return check.failures() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: cluster_tour KUBECONFIG ETCD_ENDPOINT [PODS]\n");
    return 2;
  }
  const int pods = argc > 3 ? std::atoi(argv[3]) : 2000;
  if (pods < 1) {
    std::fprintf(stderr, "cluster_tour: PODS must be at least 1\n");
    return 2;
  }
  auto config = example::load_config(argv[1], "cluster_tour");
  config.qps = 0;  // a scratch cluster: no client-side throttling for the set-up
  example::io_pool io;
  return tour(io.context(), config, argv[2], pods);
}
