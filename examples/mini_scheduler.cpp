// A scheduler in a page, on informers: the role kube-scheduler plays in the story.
//
// Three informers through the API server feed it: unbound pods (field selector `spec.nodeName=`),
// bound pods that still hold resources (`spec.nodeName!=`, not Succeeded or Failed; indexed by
// node) and nodes. Each unbound pod's key goes to a rate-limited work queue; a worker takes it and
//   - filters out nodes that are unschedulable, not Ready, or whose allocatable CPU, memory or
//     pod count cannot fit the pod's requests beside the pods already bound there (summed from
//     the local cache, plus the pods this scheduler bound that the cache does not show yet);
//   - spreads a controller's pods: nodes holding the fewest pods of the same controller owner
//     (e.g. one ReplicaSet) first, then the least loaded, then by name;
//   - binds the pod through the `binding` subresource, and records a `Scheduled` Event on it
//     (`FailedScheduling` when no node fits), as `kubectl describe pod` shows kube-scheduler's.
// A pod that fits nowhere, or whose binding fails, is retried through the queue's rate limiter; a
// new node or a freed pod slot wakes every waiting pod again.
//
//   mini_scheduler KUBECONFIG        (runs until SIGINT or SIGTERM)
//
// Exit codes: 0 after a signal, 1 when the kubeconfig cannot be used or the caches never sync,
// 2 on a usage error.
#include <informer/apiserver/lister_watcher.hpp>
#include <informer/apiserver/event_recorder.hpp>
#include <informer/apiserver/rest_client.hpp>
#include <informer/client/informer_factory.hpp>
#include <informer/controller/workqueue.hpp>
#include <informer/core/key.hpp>

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "example_support.hpp"

namespace {

// A Kubernetes quantity ("100m", "1.5", "64Mi", "2G") in thousandths of its unit: millicores for
// CPU, thousandths of a byte for memory (so that one function serves both). 0 when it does not
// parse: the scheduler then treats the request as absent, as a sketch may.
std::int64_t milli_quantity(const boost::json::value* v) {
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->as_int64() * 1000;
  if (!v->is_string()) return 0;
  const std::string text(v->as_string());
  std::size_t used = 0;
  double number = 0;
  try {
    number = std::stod(text, &used);
  } catch (const std::exception&) {
    return 0;
  }
  static const std::map<std::string, double, std::less<>> suffixes = {
      {"", 1},     {"m", 1e-3},    {"k", 1e3},        {"M", 1e6},           {"G", 1e9},
      {"T", 1e12}, {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0}};
  const auto suffix = suffixes.find(std::string_view(text).substr(used));
  if (suffix == suffixes.end()) return 0;
  return static_cast<std::int64_t>(std::llround(number * suffix->second * 1000));
}

struct resources {
  std::int64_t cpu = 0;     // millicores
  std::int64_t memory = 0;  // thousandths of a byte
  std::int64_t pods = 0;

  resources& operator+=(const resources& r) {
    cpu += r.cpu;
    memory += r.memory;
    pods += r.pods;
    return *this;
  }
};

// The sum of the containers' requests (init containers and overhead are left out of this sketch).
resources requests_of(const informer::object& pod) {
  resources r{.pods = 1};
  const auto containers = pod.field("spec.containers");
  if (!containers || !containers->is_array()) return r;
  for (const auto& c : containers->as_array()) {
    const auto* requests = c.is_object() ? c.as_object().if_contains("resources") : nullptr;
    requests = requests && requests->is_object() ? requests->as_object().if_contains("requests") : nullptr;
    if (requests == nullptr || !requests->is_object()) continue;
    r.cpu += milli_quantity(requests->as_object().if_contains("cpu"));
    r.memory += milli_quantity(requests->as_object().if_contains("memory"));
  }
  return r;
}

resources allocatable_of(const informer::object& node) {
  const auto a = node.field("status.allocatable");
  if (!a || !a->is_object()) return {};
  return {.cpu = milli_quantity(a->as_object().if_contains("cpu")),
          .memory = milli_quantity(a->as_object().if_contains("memory")),
          .pods = milli_quantity(a->as_object().if_contains("pods")) / 1000};
}

bool node_ready(const informer::object& node) {
  if (const auto u = node.field("spec.unschedulable"); u && u->is_bool() && u->as_bool()) return false;
  return example::condition_true(node, "Ready");
}

std::string controller_uid(const informer::object& pod) {
  for (const auto& ref : pod.owner_references()) {
    if (ref.controller) return std::string(ref.uid);
  }
  return {};
}

std::string node_name_of(const informer::object& pod) {
  const auto n = pod.field("spec.nodeName");
  return n && n->is_string() ? std::string(n->as_string()) : std::string();
}

constexpr const char* by_node = "node";

// A pod this scheduler bound, until the bound-pod cache shows it.
struct assumed_pod {
  std::string node;
  resources requests;
  std::string owner;
  example::clock_type::time_point at;
};

class scheduler {
public:
  scheduler(informer::informer_factory& factory, informer::http_client http)
      : http_(http),
        events_(http, {.component = "mini-scheduler"}),
        queue_({.executor = factory.get_executor()}),
        pods_resource_(informer::parse_resource("pods").value()) {
    const auto source = informer::apiserver_source_maker(http);
    nodes_ = factory.for_resource({.resource = "nodes"}, source);
    pending_ = factory.for_resource({.resource = "pods", .field_selector = "spec.nodeName="}, source);
    bound_ = factory.for_resource(
        {.resource = "pods", .field_selector = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"}, source,
        {.indexer = {.indexers = {{by_node, [](const informer::object& pod) {
                                     return std::vector<std::string>{node_name_of(pod)};
                                   }}}}});
    const auto enqueue = [this](const informer::object::ptr& pod) {
      if (pod->deletion_timestamp().empty()) queue_.add(informer::object_key(*pod));
    };
    pending_->add_event_handler(
        {.on_add = [enqueue](const informer::object::ptr& pod, bool) { enqueue(pod); },
         .on_update = [enqueue](const informer::object::ptr&, const informer::object::ptr& pod) { enqueue(pod); }});
    // Room may have appeared: a node came or changed, or a bound pod left.
    nodes_->add_event_handler({.on_add = [this](const informer::object::ptr&, bool) { retry_all(); },
                               .on_update =
                                   [this](const informer::object::ptr& old_node, const informer::object::ptr& node) {
                                     if (node_ready(*old_node) != node_ready(*node)) retry_all();
                                   }});
    bound_->add_event_handler({.on_delete = [this](const informer::deleted_object&) { retry_all(); }});
  }

  // One worker: scheduling decisions are made one at a time, each seeing the bindings before it.
  void run_worker() {
    while (auto key = queue_.get()) {
      if (schedule(*key)) {
        queue_.forget(*key);
      } else {
        queue_.add_rate_limited(*key);
      }
      queue_.done(*key);
    }
  }

  void shut_down() { queue_.shut_down(); }
  // After the worker stopped: the Events still queued get up to 5 s.
  void flush_events() { events_.shutdown(std::chrono::steady_clock::now() + std::chrono::seconds(5)); }

private:
  void retry_all() {
    for (const auto& pod : pending_->get_store()->list()) queue_.add(informer::object_key(*pod));
  }

  // True when the key needs no retry (bound, or gone).
  bool schedule(const std::string& key) {
    const auto pod = pending_->get_store()->get_by_key(key);
    if (!pod || !pod->deletion_timestamp().empty()) return true;
    if (assumed_.contains(key) && !bound_->get_store()->get_by_key(key)) return true;  // bound, cache behind
    forget_seen_assumptions();

    const auto wanted = requests_of(*pod);
    const auto owner = controller_uid(*pod);
    struct candidate {
      std::string name;
      int siblings = 0;
      double load = 0;  // the fuller of CPU and memory, after placing the pod
      resources used;
      resources allocatable;
    };
    std::vector<candidate> fitting;
    std::string refusals;
    for (const auto& node : nodes_->get_store()->list()) {
      const std::string name(node->name());
      if (!node_ready(*node)) {
        refusals += " " + name + ": not ready;";
        continue;
      }
      candidate c{.name = name, .allocatable = allocatable_of(*node)};
      for (const auto& other : bound_->get_indexer()->by_index(by_node, name).value()) {
        c.used += requests_of(*other);
        if (!owner.empty() && controller_uid(*other) == owner) ++c.siblings;
      }
      for (const auto& [assumed_key, a] : assumed_) {
        if (a.node != name) continue;
        c.used += a.requests;
        if (!owner.empty() && a.owner == owner) ++c.siblings;
      }
      const resources after{c.used.cpu + wanted.cpu, c.used.memory + wanted.memory, c.used.pods + 1};
      if (after.cpu > c.allocatable.cpu || after.memory > c.allocatable.memory || after.pods > c.allocatable.pods) {
        refusals += " " + name + ": insufficient " +
                    (after.cpu > c.allocatable.cpu         ? "cpu"
                     : after.memory > c.allocatable.memory ? "memory"
                                                           : "pod slots") +
                    ";";
        continue;
      }
      c.load = std::max(static_cast<double>(after.cpu) / std::max<std::int64_t>(c.allocatable.cpu, 1),
                        static_cast<double>(after.memory) / std::max<std::int64_t>(c.allocatable.memory, 1));
      fitting.push_back(std::move(c));
    }
    if (fitting.empty()) {
      std::printf("[scheduler] %s fits no node:%s retrying later\n", key.c_str(),
                  refusals.empty() ? " no nodes;" : refusals.c_str());
      events_.record(*pod, informer::event_type::warning, "FailedScheduling",
                     "no node fits the pod:" + (refusals.empty() ? std::string(" no nodes") : refusals));
      return false;
    }
    const auto best = std::min_element(fitting.begin(), fitting.end(), [](const candidate& a, const candidate& b) {
      return std::tie(a.siblings, a.load, a.name) < std::tie(b.siblings, b.load, b.name);
    });

    const informer::rest_client pods(http_, pods_resource_, std::string(pod->ns()));
    const informer::write_options options;
    auto [e, status] =
        example::wait(pods.async_bind(pod->name(), best->name, options, boost::asio::use_future), "mini_scheduler");
    if (e == informer::condition::conflict || e == informer::condition::not_found) return true;  // bound or gone
    if (e) {
      std::printf("[scheduler] binding %s to %s failed: %s; retrying later\n", key.c_str(), best->name.c_str(),
                  e.what().c_str());
      return false;
    }
    assumed_[key] = {best->name, wanted, owner, example::clock_type::now()};
    events_.record(*pod, informer::event_type::normal, "Scheduled",
                   "Successfully assigned " + key + " to " + best->name);
    std::printf("[scheduler] bound %s to %s (%d of its controller's pods there before; node load %.0f%%)\n",
                key.c_str(), best->name.c_str(), best->siblings, best->load * 100);
    return true;
  }

  // Drops assumptions the bound-pod cache has caught up with, and old ones (a pod deleted before
  // the cache saw it bound).
  void forget_seen_assumptions() {
    const auto now = example::clock_type::now();
    std::erase_if(assumed_, [&](const auto& entry) {
      return bound_->get_store()->get_by_key(entry.first) || now - entry.second.at > std::chrono::seconds(30);
    });
  }

  informer::http_client http_;
  informer::event_recorder events_;
  informer::workqueue queue_;
  informer::resource pods_resource_;
  std::shared_ptr<informer::shared_informer> nodes_;
  std::shared_ptr<informer::shared_informer> pending_;
  std::shared_ptr<informer::shared_informer> bound_;
  std::map<std::string, assumed_pod> assumed_;  // only the worker thread touches it
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: mini_scheduler KUBECONFIG\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const auto config = example::load_config(argv[1], "mini_scheduler");
  informer::informer_factory factory;
  auto http = informer::http_client::create(factory.get_executor(), config);
  if (!http) {
    std::fprintf(stderr, "mini_scheduler: %s\n", http.error().what().c_str());
    return 1;
  }
  scheduler s(factory, *http);
  factory.start();
  if (!factory.wait_for_cache_sync(std::chrono::seconds(60))) {
    std::fprintf(stderr, "mini_scheduler: the caches did not sync within 60 s\n");
    factory.shutdown();  // before `s`, whose queue the running handlers feed, is destroyed
    return 1;
  }
  std::printf("[scheduler] watching unbound pods and nodes\n");
  std::thread worker([&] { s.run_worker(); });
  example::wait_for_stop_signal();
  s.shut_down();
  worker.join();
  s.flush_events();
  factory.shutdown();
  return 0;
}
