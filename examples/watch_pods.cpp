// `kubectl get pods -w` on an informer: prints the pods of a namespace, then one line per change,
// in kubectl's columns (NAME READY STATUS RESTARTS AGE), read either through the API server or
// straight from the cluster's etcd (no API server involved).
//
//   watch_pods --kubeconfig KUBECONFIG [-n NAMESPACE | -A] [--max-events N]
//   watch_pods --etcd ENDPOINT [-n NAMESPACE | -A] [--max-events N]
// -n: the namespace (default "default"); -A: every namespace (adds a NAMESPACE column).
// --max-events N: exit after N lines (the initial listing counts), e.g. for a test.
//
// Exit codes: 0 after a signal or N lines, 1 when the source cannot be set up or never syncs, 2 on
// a usage error.
#include <informer/apiserver/lister_watcher.hpp>
#include <informer/client/shared_informer.hpp>
#include <informer/etcd/kubernetes_source.hpp>

#include <boost/json.hpp>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "example_support.hpp"

namespace {

// Seconds since an RFC 3339 UTC timestamp; 0 when it does not parse.
long long seconds_since(std::string_view timestamp) {
  std::tm tm{};
  const std::string text(timestamp);
  if (strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  const long long age = static_cast<long long>(std::time(nullptr) - timegm(&tm));
  return age < 0 ? 0 : age;
}

// kubectl's short human durations: 45s, 3m20s, 42m, 5h.
std::string human_age(long long s) {
  if (s < 120) return std::to_string(s) + "s";
  if (s < 600) return std::to_string(s / 60) + "m" + (s % 60 ? std::to_string(s % 60) + "s" : "");
  if (s < 3 * 3600) return std::to_string(s / 60) + "m";
  if (s < 48 * 3600) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

const boost::json::value* member(const boost::json::value& v, std::string_view name) {
  return v.is_object() ? v.as_object().if_contains(name) : nullptr;
}

// READY, STATUS and RESTARTS as kubectl's pod printer derives them (in outline).
struct pod_columns {
  std::string ready;
  std::string status;
  long long restarts = 0;
};

pod_columns columns_of(const informer::object& pod) {
  pod_columns out;
  const auto containers = pod.field("spec.containers");
  const std::size_t total = containers && containers->is_array() ? containers->as_array().size() : 0;
  std::size_t ready = 0;
  const auto phase = pod.field("status.phase");
  const auto reason = pod.field("status.reason");
  out.status = reason && reason->is_string() ? std::string(reason->as_string())
               : phase && phase->is_string() ? std::string(phase->as_string())
                                             : "Pending";
  if (const auto statuses = pod.field("status.containerStatuses"); statuses && statuses->is_array()) {
    for (const auto& s : statuses->as_array()) {
      if (const auto* n = member(s, "restartCount"); n && n->is_int64()) out.restarts += n->as_int64();
      const auto* state = member(s, "state");
      const auto* waiting = state ? member(*state, "waiting") : nullptr;
      const auto* terminated = state ? member(*state, "terminated") : nullptr;
      if (const auto* r = waiting ? member(*waiting, "reason") : nullptr; r && r->is_string()) {
        out.status = r->as_string();
      } else if (const auto* t = terminated ? member(*terminated, "reason") : nullptr; t && t->is_string()) {
        out.status = t->as_string();
      } else if (const auto* ok = member(s, "ready"); ok && ok->is_bool() && ok->as_bool()) {
        ++ready;
      }
    }
  }
  if (!pod.deletion_timestamp().empty()) out.status = "Terminating";
  out.ready = std::to_string(ready) + "/" + std::to_string(total);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string kubeconfig;
  std::string etcd_endpoint;
  std::string ns = "default";
  long long max_events = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--kubeconfig" && has_value) {
      kubeconfig = argv[++i];
    } else if (arg == "--etcd" && has_value) {
      etcd_endpoint = argv[++i];
    } else if (arg == "-n" && has_value) {
      ns = argv[++i];
    } else if (arg == "-A") {
      ns.clear();
    } else if (arg == "--max-events" && has_value) {
      max_events = std::atoll(argv[++i]);
    } else {
      kubeconfig.clear();
      etcd_endpoint.clear();
      break;
    }
  }
  if (kubeconfig.empty() == etcd_endpoint.empty()) {
    std::fprintf(stderr,
                 "usage: watch_pods --kubeconfig KUBECONFIG [-n NAMESPACE | -A] [--max-events N]\n"
                 "       watch_pods --etcd ENDPOINT [-n NAMESPACE | -A] [--max-events N]\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  example::io_pool io(1);
  const auto pods = informer::parse_resource("pods").value();
  std::shared_ptr<informer::lister_watcher> source;
  if (!kubeconfig.empty()) {
    auto http =
        informer::http_client::create(io.get_executor(), example::load_config(kubeconfig.c_str(), "watch_pods"));
    if (!http) {
      std::fprintf(stderr, "watch_pods: %s\n", http.error().what().c_str());
      return 1;
    }
    auto api = informer::apiserver_lister_watcher::create(*http, pods, {.ns = ns});
    if (!api) {
      std::fprintf(stderr, "watch_pods: %s\n", api.error().what().c_str());
      return 1;
    }
    source = *api;
  } else {
    auto etcd = informer::etcd::client::connect({.endpoints = {etcd_endpoint}});
    if (!etcd) {
      std::fprintf(stderr, "watch_pods: %s\n", etcd.error().what().c_str());
      return 1;
    }
    source = informer::etcd::make_kubernetes_source(std::make_shared<informer::etcd::client>(std::move(*etcd)),
                                                    io.get_executor(), {.resource = pods, .ns = ns});
  }

  const bool all_namespaces = ns.empty();
  std::printf(all_namespaces ? "%-16s %-48s %-6s %-12s %-9s %s\n" : "%s%-48s %-6s %-12s %-9s %s\n",
              all_namespaces ? "NAMESPACE" : "", "NAME", "READY", "STATUS", "RESTARTS", "AGE");
  std::atomic<long long> printed{0};
  const auto print = [&](const informer::object& pod) {
    const auto c = columns_of(pod);
    std::printf(all_namespaces ? "%-16s %-48s %-6s %-12s %-9lld %s\n" : "%s%-48s %-6s %-12s %-9lld %s\n",
                all_namespaces ? std::string(pod.ns()).c_str() : "", std::string(pod.name()).c_str(), c.ready.c_str(),
                c.status.c_str(), c.restarts, human_age(seconds_since(pod.creation_timestamp())).c_str());
    if (++printed == max_events) example::stop_requested = true;
  };
  auto pods_informer = informer::shared_informer::create(source, {.name = "watch_pods"});
  pods_informer->add_event_handler(
      {.on_add = [&](const informer::object::ptr& pod, bool) { print(*pod); },
       .on_update = [&](const informer::object::ptr&, const informer::object::ptr& pod) { print(*pod); },
       .on_delete = [&](const informer::deleted_object& gone) { print(*gone.obj()); }});
  pods_informer->run();
  if (!example::eventually([&] { return pods_informer->has_synced(); }, std::chrono::seconds(60))) {
    std::fprintf(stderr, "watch_pods: the pods did not sync within 60 s\n");
    return 1;
  }
  example::wait_for_stop_signal();
  pods_informer->stop();
  return 0;
}
