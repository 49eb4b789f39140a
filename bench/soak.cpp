// The reliability soak (not in CI; docs/reliability.md shows a run): a steady write load for a
// long time against informers that must neither grow nor fall behind, and must agree with the
// server at the end.
//
// It starts its own control plane (etcd + kube-apiserver on loopback, as the tests do), fills
// namespace "soak" with OBJECTS ConfigMaps, and keeps
//   - an informer through kube-apiserver (protobuf) and one straight from etcd, each with a
//     handler that mirrors what it was told (key -> resourceVersion);
//   - a controller fed by the first informer, whose reconcile reads the object from the cache;
// while writer threads change the ConfigMaps at RATE writes per second (merge patches; one write
// in fifty deletes an object and creates it again). Every SAMPLE seconds it prints one CSV line:
//
//   seconds,writes,writes_per_s,rss_mb,api_cache,etcd_cache,api_pending,etcd_pending,queue_depth,
//   reconciles,api_events,etcd_events
//
// After SECONDS the writers stop and the run checks convergence: both caches equal a fresh list
// from the server (keys, resourceVersions, bodies), both handler mirrors equal their caches, and
// the queue drained. Exit code 0 when it converged, 1 otherwise.
//
//   soak [--seconds 3600] [--rate 1000] [--objects 20000] [--sample 10] [--writers 16]
#include "control_plane.hpp"

#include <informer/apiserver/kubeconfig.hpp>
#include <informer/apiserver/lister_watcher.hpp>
#include <informer/apiserver/rest_client.hpp>
#include <informer/client/shared_informer.hpp>
#include <informer/controller/controller.hpp>
#include <informer/core/mutex.hpp>
#include <informer/core/token_bucket.hpp>
#include <informer/etcd/kubernetes_source.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr const char* ns = "soak";

struct settings {
  int seconds = 3600;
  double rate = 1000;
  int objects = 20000;
  int sample = 10;
  int writers = 16;
};

constexpr const char* usage =
    "usage: soak [--seconds 3600] [--rate 1000] [--objects 20000] [--sample 10] [--writers 16]\n";

settings parse_args(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    if (i + 1 == argc) {
      std::fprintf(stderr, "soak: %s needs a value\n%s", flag.c_str(), usage);
      std::exit(2);
    }
    const double value = std::atof(argv[i + 1]);
    if (flag == "--seconds")
      s.seconds = static_cast<int>(value);
    else if (flag == "--rate")
      s.rate = value;
    else if (flag == "--objects")
      s.objects = static_cast<int>(value);
    else if (flag == "--sample")
      s.sample = static_cast<int>(value);
    else if (flag == "--writers")
      s.writers = static_cast<int>(value);
    else {
      std::fprintf(stderr, "soak: unknown flag %s\n%s", flag.c_str(), usage);
      std::exit(2);
    }
  }
  if (s.seconds < 1 || s.rate <= 0 || s.objects < 1 || s.sample < 1 || s.writers < 1) {
    std::fprintf(stderr, "soak: every setting must be positive\n");
    std::exit(2);
  }
  return s;
}

double rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return 0;
}

std::string name_of(int i) { return "cm-" + std::to_string(i); }

std::string manifest(int i, long revision) {
  return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name_of(i) + R"(","labels":{"app":"app-)" +
         std::to_string(i % 100) + R"("}},"data":{"rev":")" + std::to_string(revision) +
         R"(","payload":"0123456789abcdef0123456789abcdef"}})";
}

template <class Future>
auto wait(Future f) {
  if (f.wait_for(60s) != std::future_status::ready) {
    std::fprintf(stderr, "soak: a request did not complete within 60 s\n");
    std::exit(1);
  }
  return f.get();
}

// What a handler was told: key -> resourceVersion, as the handler's own view of the world.
class mirror {
public:
  informer::resource_event_handlers handlers() {
    return {.on_add = [this](const informer::object::ptr& o, bool) { put(*o); },
            .on_update = [this](const informer::object::ptr&, const informer::object::ptr& o) { put(*o); },
            .on_delete =
                [this](const informer::deleted_object& d) {
                  informer::lock_guard lock(mutex_);
                  ++events_;
                  const std::string key = d.tombstone()
                                              ? d.tombstone()->key
                                              : std::string(d.obj()->ns()) + "/" + std::string(d.obj()->name());
                  if (view_.erase(key) == 0) ++unknown_deletes_;
                }};
  }
  std::map<std::string, std::string> view() const {
    informer::lock_guard lock(mutex_);
    return view_;
  }
  long events() const {
    informer::lock_guard lock(mutex_);
    return events_;
  }
  long unknown_deletes() const {
    informer::lock_guard lock(mutex_);
    return unknown_deletes_;
  }

private:
  void put(const informer::object& o) {
    informer::lock_guard lock(mutex_);
    ++events_;
    view_[std::string(o.ns()) + "/" + std::string(o.name())] = std::string(o.resource_version());
  }
  mutable informer::mutex mutex_;
  std::map<std::string, std::string> view_ INFORMER_GUARDED_BY(mutex_);
  long events_ INFORMER_GUARDED_BY(mutex_) = 0;
  long unknown_deletes_ INFORMER_GUARDED_BY(mutex_) = 0;
};

std::map<std::string, std::string> versions(const informer::shared_informer& inf) {
  std::map<std::string, std::string> out;
  for (const auto& o : inf.get_store()->list())
    out[std::string(o->ns()) + "/" + std::string(o->name())] = std::string(o->resource_version());
  return out;
}

// Every object of `truth` is in `inf`'s cache with the same resourceVersion and body, and
// nothing else is.
bool same_as(const std::vector<informer::object::ptr>& truth, const informer::shared_informer& inf, const char* what) {
  const auto store = inf.get_store();
  bool ok = store->size() == truth.size();
  if (!ok) std::fprintf(stderr, "  %s: %zu cached, %zu on the server\n", what, store->size(), truth.size());
  for (const auto& o : truth) {
    const auto mine = store->get(*o);
    if (!mine || mine->resource_version() != o->resource_version() || mine->body() != o->body()) {
      if (ok) std::fprintf(stderr, "  %s: %s differs (first difference)\n", what, std::string(o->name()).c_str());
      ok = false;
    }
  }
  return ok;
}

int soak(asio::io_context& io, const settings& s) {
  informer::testing::control_plane cluster;
  auto config = informer::load_kubeconfig({.files = {cluster.kubeconfig_path()}}).value();
  config.qps = 0;
  auto http = informer::http_client::create(io.get_executor(), config).value();
  auto etcd = std::make_shared<informer::etcd::client>(
      informer::etcd::client::connect({.endpoints = {cluster.etcd_endpoint()}}).value());
  const auto configmaps = informer::parse_resource("configmaps").value();
  const informer::rest_client namespaces(http, informer::parse_resource("namespaces").value(), "");
  const informer::rest_client client(http, configmaps, ns);

  std::fprintf(stderr, "soak: %d ConfigMaps, %.0f writes/s for %d s, a sample every %d s\n", s.objects, s.rate,
               s.seconds, s.sample);
  wait(namespaces.async_create(boost::json::parse(R"({"metadata":{"name":"soak"}})"), {}, asio::use_future));
  {
    std::vector<std::future<std::tuple<informer::error, informer::object::ptr>>> pending;
    for (int i = 0; i < s.objects; ++i) {
      pending.push_back(client.async_create(boost::json::parse(manifest(i, 0)), {}, asio::use_future));
      if (pending.size() == 32 || i + 1 == s.objects) {
        for (auto& f : pending) {
          if (auto [e, obj] = wait(std::move(f)); e) {
            std::fprintf(stderr, "soak: creating: %s\n", e.what().c_str());
            return 1;
          }
        }
        pending.clear();
      }
    }
  }

  auto via_api =
      informer::shared_informer::create(informer::apiserver_lister_watcher::create(
                                            http, configmaps, {.ns = ns, .encoding = informer::wire_encoding::protobuf})
                                            .value(),
                                        {.name = "configmaps via apiserver"});
  auto via_etcd = informer::shared_informer::create(
      informer::etcd::make_kubernetes_source(etcd, io.get_executor(), {.resource = configmaps, .ns = ns}),
      {.name = "configmaps via etcd"});
  mirror api_mirror;
  mirror etcd_mirror;
  auto api_reg = via_api->add_event_handler(api_mirror.handlers());
  auto etcd_reg = via_etcd->add_event_handler(etcd_mirror.handlers());

  std::atomic<long> reconciles{0};
  const auto lister = via_api->lister();
  informer::controller ctl({.name = "soak",
                            .workers = 2,
                            .reconcile = [&](const std::string& key) -> informer::result<informer::reconcile_result> {
                              const auto slash = key.find('/');
                              if (lister.get(key.substr(0, slash), key.substr(slash + 1)) == nullptr) {
                                return informer::reconcile_result{};  // deleted meanwhile
                              }
                              ++reconciles;
                              return informer::reconcile_result{};
                            }});
  const auto enqueue = [&](const informer::object& o) {
    ctl.enqueue(std::string(o.ns()) + "/" + std::string(o.name()));
  };
  auto ctl_reg = via_api->add_event_handler(
      {.on_add = [&](const informer::object::ptr& o, bool) { enqueue(*o); },
       .on_update = [&](const informer::object::ptr&, const informer::object::ptr& o) { enqueue(*o); },
       .on_delete =
           [&](const informer::deleted_object& d) {
             if (!d.tombstone()) enqueue(*d.obj());
           }});
  via_api->run();
  via_etcd->run();
  if (!informer::wait_for_cache_sync({via_api, via_etcd}, 120s)) {
    std::fprintf(stderr, "soak: the informers did not sync within 120 s\n");
    return 1;
  }
  if (!ctl.run()) return 1;

  // The writers: one token per write, shared.
  informer::token_bucket bucket({.qps = s.rate, .burst = 1, .now = {}});
  std::atomic<bool> writing{true};
  std::atomic<long> writes{0};
  std::atomic<long> write_errors{0};
  std::atomic<long> next_object{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < s.writers; ++w) {
    writers.emplace_back([&] {
      while (writing.load()) {
        std::this_thread::sleep_for(bucket.reserve());
        if (!writing.load()) break;
        const long n = next_object++;
        const int i = static_cast<int>(n % s.objects);
        informer::error e;
        if (n % 50 == 49) {
          informer::delete_options remove;
          e = std::get<0>(wait(client.async_delete(name_of(i), remove, asio::use_future)));
          if (!e) e = std::get<0>(wait(client.async_create(boost::json::parse(manifest(i, n)), {}, asio::use_future)));
        } else {
          informer::patch_options patch;
          e = std::get<0>(
              wait(client.async_patch(name_of(i), informer::patch_type::merge_patch,
                                      R"({"data":{"rev":")" + std::to_string(n) + R"("}})", patch, asio::use_future)));
        }
        ++(e ? write_errors : writes);
        if (e && write_errors.load() <= 5) std::fprintf(stderr, "soak: a write failed: %s\n", e.what().c_str());
      }
    });
  }

  std::printf(
      "seconds,writes,writes_per_s,rss_mb,api_cache,etcd_cache,api_pending,etcd_pending,queue_depth,reconciles,"
      "api_events,etcd_events\n");
  const auto start = steady::now();
  long last_writes = 0;
  for (int t = s.sample; t <= s.seconds; t += s.sample) {
    std::this_thread::sleep_until(start + std::chrono::seconds(t));
    const long now_writes = writes.load();
    std::printf("%d,%ld,%.0f,%.1f,%zu,%zu,%zu,%zu,%zu,%ld,%ld,%ld\n", t, now_writes,
                static_cast<double>(now_writes - last_writes) / s.sample, rss_mb(), via_api->get_store()->size(),
                via_etcd->get_store()->size(), api_reg.pending(), etcd_reg.pending(), ctl.queue().len(),
                reconciles.load(), api_mirror.events(), etcd_mirror.events());
    std::fflush(stdout);
    last_writes = now_writes;
  }
  writing = false;
  for (auto& t : writers) t.join();
  std::fprintf(stderr, "soak: %ld writes, %ld failed writes\n", writes.load(), write_errors.load());

  // Convergence: the server's state, then the caches and the mirrors must reach it.
  auto [e, truth] = wait(client.async_list({}, asio::use_future));
  if (e) {
    std::fprintf(stderr, "soak: the final list failed: %s\n", e.what().c_str());
    return 1;
  }
  const auto deadline = steady::now() + 60s;
  bool converged = false;
  while (!converged && steady::now() < deadline) {
    converged = versions(*via_api).size() == truth.items.size() && api_mirror.view() == versions(*via_api) &&
                etcd_mirror.view() == versions(*via_etcd) && versions(*via_api) == versions(*via_etcd) &&
                ctl.queue().len() == 0;
    if (!converged) std::this_thread::sleep_for(100ms);
  }
  converged = same_as(truth.items, *via_api, "apiserver informer") & same_as(truth.items, *via_etcd, "etcd informer") &
              (api_mirror.view() == versions(*via_api)) & (etcd_mirror.view() == versions(*via_etcd)) &
              (api_mirror.unknown_deletes() == 0) & (etcd_mirror.unknown_deletes() == 0) & (ctl.queue().len() == 0);
  std::fprintf(
      stderr, "soak: %s\n",
      converged ? "converged: both caches and both handler views equal the server's list" : "DID NOT CONVERGE");
  ctl.stop();
  via_api->stop();
  via_etcd->stop();
  return converged ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const settings s = parse_args(argc, argv);
  if (!informer::testing::control_plane::available()) {
    std::fprintf(stderr, "soak: the control plane is not provisioned (scripts/provision-control-plane.sh)\n");
    return 2;
  }
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&] { io.run(); });
  int code = 1;
  try {
    code = soak(io, s);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "soak: %s\n", ex.what());
  }
  work.reset();
  io.stop();
  for (auto& t : threads) t.join();
  return code;
}
