// A simulated kubelet on informers: the role the node agent plays in the story. No container
// runs; the agent does the kubelet's talking to the API server:
//   - registers its Node (allocatable CPU, memory and pod slots) unless it exists, then reports
//     the Node's Ready condition (a status heartbeat) and renews its heartbeat Lease in
//     `kube-node-lease`, as a kubelet does, so that kube-controller-manager's node lifecycle
//     controller keeps the node Ready and untainted;
//   - watches the pods bound to its node (field selector `spec.nodeName=<node>`) and reports each
//     one Running and Ready through the `status` subresource: phase, conditions, container
//     statuses with a started state, pod and host IPs, start time;
//   - confirms the termination of pods being deleted (deletionTimestamp set) by deleting them with
//     grace period 0, as a kubelet does once the containers stopped.
//
//   node_agent KUBECONFIG NODE [INDEX]     (runs until SIGINT or SIGTERM)
// INDEX (1-254, default 1) picks the node's addresses: host 10.0.100.INDEX, pods 10.244.INDEX.x.
//
// Exit codes: 0 after a signal, 1 when the node cannot be registered or the cache never syncs,
// 2 on a usage error.
#include <informer/apiserver/lister_watcher.hpp>
#include <informer/apiserver/rest_client.hpp>
#include <informer/client/informer_factory.hpp>
#include <informer/controller/workqueue.hpp>
#include <informer/core/key.hpp>

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>
#include <thread>

#include "example_support.hpp"

namespace {

namespace json = boost::json;
namespace asio = boost::asio;

// RFC 3339 in UTC, seconds; `micro` adds microseconds (a Lease's MicroTime).
std::string now_rfc3339(bool micro = false) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = text;
  if (micro) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>(us));
    out += frac;
  }
  return out + "Z";
}

constexpr int lease_seconds = 40;                            // a kubelet's default
constexpr auto heartbeat_period = std::chrono::seconds(10);  // a kubelet's lease renewal

class agent {
public:
  agent(informer::informer_factory& factory, informer::http_client http, std::string node, int index)
      : http_(http),
        node_(std::move(node)),
        host_ip_("10.0.100." + std::to_string(index)),
        pod_prefix_("10.244." + std::to_string(index) + "."),
        queue_({.executor = factory.get_executor()}),
        nodes_(http, informer::parse_resource("nodes").value()),
        leases_(http, informer::parse_resource("leases").value(), "kube-node-lease") {
    pods_ = factory.for_resource({.resource = "pods", .field_selector = "spec.nodeName=" + node_},
                                 informer::apiserver_source_maker(http));
    const auto enqueue = [this](const informer::object::ptr& pod) { queue_.add(informer::object_key(*pod)); };
    pods_->add_event_handler(
        {.on_add = [enqueue](const informer::object::ptr& pod, bool) { enqueue(pod); },
         .on_update = [enqueue](const informer::object::ptr&, const informer::object::ptr& pod) { enqueue(pod); }});
  }

  // Creates the Node unless it exists (a kubelet's self-registration). False on failure.
  bool register_node() {
    const json::value node = {
        {"apiVersion", "v1"},
        {"kind", "Node"},
        {"metadata",
         {{"name", node_},
          {"labels",
           {{"kubernetes.io/hostname", node_}, {"kubernetes.io/os", "linux"}, {"story/simulated", "true"}}}}}};
    const informer::write_options options;
    auto [e, created] = example::wait(nodes_.async_create(node, options, asio::use_future), "node_agent");
    if (e && !(e == informer::condition::conflict)) {  // 409 AlreadyExists: registered before
      std::fprintf(stderr, "node_agent: registering node %s: %s\n", node_.c_str(), e.what().c_str());
      return false;
    }
    std::printf("[%s] registered (cpu 4, memory 8Gi, 110 pods)\n", node_.c_str());
    return true;
  }

  // Reports the Node Ready and renews the Lease, every heartbeat_period until shutdown.
  void run_heartbeats() {
    bool first = true;
    while (!example::stop_requested) {
      heartbeat(first);
      first = false;
      for (auto slept = std::chrono::milliseconds(0); slept < heartbeat_period && !example::stop_requested;
           slept += std::chrono::milliseconds(50)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }

  void run_worker() {
    while (auto key = queue_.get()) {
      if (sync_pod(*key)) {
        queue_.forget(*key);
      } else {
        queue_.add_rate_limited(*key);
      }
      queue_.done(*key);
    }
  }

  void shut_down() { queue_.shut_down(); }

private:
  void heartbeat(bool first) {
    const std::string now = now_rfc3339();
    const json::value condition = {{"type", "Ready"},          {"status", "True"},
                                   {"reason", "KubeletReady"}, {"message", "simulated kubelet is posting ready status"},
                                   {"lastHeartbeatTime", now}, {"lastTransitionTime", first ? now : transition_time_}};
    if (first) transition_time_ = now;
    // The whole status each time, as a kubelet's node status update: capacity and addresses too.
    const json::value status = {{"capacity", {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}}},
                                {"allocatable", {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}}},
                                {"addresses", json::array{{{"type", "InternalIP"}, {"address", host_ip_}},
                                                          {{"type", "Hostname"}, {"address", node_}}}},
                                {"nodeInfo",
                                 {{"kubeletVersion", "v1.20.2"},
                                  {"operatingSystem", "linux"},
                                  {"architecture", "amd64"},
                                  {"containerRuntimeVersion", "simulated://1.0"}}},
                                {"conditions", json::array{condition}}};
    const informer::patch_options options;
    auto [e, n] = example::wait(
        nodes_.async_patch_status(node_, informer::patch_type::strategic_merge_patch,
                                  json::serialize(json::value{{"status", status}}), options, asio::use_future),
        "node_agent");
    if (e) std::fprintf(stderr, "node_agent: %s: status heartbeat: %s\n", node_.c_str(), e.what().c_str());
    if (first && !e) std::printf("[%s] Ready\n", node_.c_str());
    renew_lease();
  }

  void renew_lease() {
    const std::string now = now_rfc3339(true);
    const informer::patch_options options;
    auto [e, lease] = example::wait(
        leases_.async_patch(node_, informer::patch_type::merge_patch,
                            json::serialize(json::value{{"spec", {{"renewTime", now}}}}), options, asio::use_future),
        "node_agent");
    if (!(e == informer::condition::not_found)) {
      if (e) std::fprintf(stderr, "node_agent: %s: renewing the lease: %s\n", node_.c_str(), e.what().c_str());
      return;
    }
    json::value body = {
        {"apiVersion", "coordination.k8s.io/v1"},
        {"kind", "Lease"},
        {"metadata", {{"name", node_}, {"namespace", "kube-node-lease"}}},
        {"spec", {{"holderIdentity", node_}, {"leaseDurationSeconds", lease_seconds}, {"renewTime", now}}}};
    const informer::write_options write;
    auto [ce, created] = example::wait(leases_.async_create(body, write, asio::use_future), "node_agent");
    if (ce) std::fprintf(stderr, "node_agent: %s: creating the lease: %s\n", node_.c_str(), ce.what().c_str());
  }

  // True when the key needs no retry.
  bool sync_pod(const std::string& key) {
    const auto pod = pods_->get_store()->get_by_key(key);
    if (!pod) {
      pod_ips_.erase(key);
      return true;
    }
    const informer::rest_client pods(http_, informer::parse_resource("pods").value(), std::string(pod->ns()));
    if (!pod->deletion_timestamp().empty()) {
      informer::delete_options options;
      options.grace_period_seconds = 0;
      options.uid = std::string(pod->uid());
      auto [e, r] = example::wait(pods.async_delete(pod->name(), options, asio::use_future), "node_agent");
      if (e && !(e == informer::condition::not_found) && !(e == informer::condition::conflict)) {
        std::fprintf(stderr, "node_agent: %s: deleting %s: %s\n", node_.c_str(), key.c_str(), e.what().c_str());
        return false;
      }
      if (!e) std::printf("[%s] %s terminated\n", node_.c_str(), key.c_str());
      pod_ips_.erase(key);
      return true;
    }
    // Reported already, unless something (the node lifecycle controller, for a node it saw go
    // silent) marked it not ready since.
    if (const auto phase = pod->field("status.phase");
        phase && *phase == "Running" && example::condition_true(*pod, "Ready")) {
      return true;
    }

    const std::string now = now_rfc3339();
    // Addresses .2 to .251 of the node's /24, handed out in turn (a simulation: reuse after 250 pods).
    const auto ip = pod_ips_.try_emplace(key, pod_prefix_ + std::to_string(2 + next_ip_++ % 250)).first->second;
    json::array statuses;
    if (const auto containers = pod->field("spec.containers"); containers && containers->is_array()) {
      for (const auto& c : containers->as_array()) {
        statuses.push_back(
            {{"name", c.at("name")},
             {"image", c.at("image")},
             {"imageID", "simulated://" + std::string(c.at("image").as_string())},
             {"containerID", "simulated://" + std::string(pod->uid()) + "/" + std::string(c.at("name").as_string())},
             {"ready", true},
             {"started", true},
             {"restartCount", 0},
             {"state", {{"running", {{"startedAt", now}}}}}});
      }
    }
    json::array conditions;
    for (const char* type : {"Initialized", "Ready", "ContainersReady", "PodScheduled"}) {
      conditions.push_back({{"type", type}, {"status", "True"}, {"lastTransitionTime", now}});
    }
    const json::value patch = {{"status",
                                {{"phase", "Running"},
                                 {"conditions", std::move(conditions)},
                                 {"containerStatuses", std::move(statuses)},
                                 {"hostIP", host_ip_},
                                 {"podIP", ip},
                                 {"podIPs", json::array{{{"ip", ip}}}},
                                 {"startTime", now}}}};
    const informer::patch_options options;
    auto [e, updated] = example::wait(pods.async_patch_status(pod->name(), informer::patch_type::strategic_merge_patch,
                                                              json::serialize(patch), options, asio::use_future),
                                      "node_agent");
    if (e == informer::condition::not_found) return true;
    if (e) {
      std::fprintf(stderr, "node_agent: %s: reporting %s: %s\n", node_.c_str(), key.c_str(), e.what().c_str());
      return false;
    }
    std::printf("[%s] %s Running and Ready (pod IP %s)\n", node_.c_str(), key.c_str(), ip.c_str());
    return true;
  }

  informer::http_client http_;
  const std::string node_;
  const std::string host_ip_;
  const std::string pod_prefix_;
  informer::workqueue queue_;
  const informer::rest_client nodes_;
  const informer::rest_client leases_;
  std::shared_ptr<informer::shared_informer> pods_;
  std::string transition_time_;                 // the heartbeat thread's
  std::map<std::string, std::string> pod_ips_;  // the worker's
  unsigned next_ip_ = 0;                        // the worker's
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: node_agent KUBECONFIG NODE [INDEX]\n");
    return 2;
  }
  const int index = argc == 4 ? std::atoi(argv[3]) : 1;
  if (index < 1 || index > 254) {
    std::fprintf(stderr, "node_agent: INDEX must be 1-254\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const auto config = example::load_config(argv[1], "node_agent");
  informer::informer_factory factory;
  auto http = informer::http_client::create(factory.get_executor(), config);
  if (!http) {
    std::fprintf(stderr, "node_agent: %s\n", http.error().what().c_str());
    return 1;
  }
  agent a(factory, *http, argv[2], index);
  if (!a.register_node()) return 1;
  std::signal(SIGINT, [](int) { example::stop_requested = true; });
  std::signal(SIGTERM, [](int) { example::stop_requested = true; });
  std::thread heartbeats([&] { a.run_heartbeats(); });
  factory.start();
  if (!factory.wait_for_cache_sync(std::chrono::seconds(60))) {
    std::fprintf(stderr, "node_agent: the pod cache did not sync within 60 s\n");
    example::stop_requested = true;
    heartbeats.join();
    factory.shutdown();  // before `a`, whose queue the running handlers feed, is destroyed
    return 1;
  }
  std::thread worker([&] { a.run_worker(); });
  example::wait_for_stop_signal();
  a.shut_down();
  worker.join();
  heartbeats.join();
  factory.shutdown();
  return 0;
}
