// The story this project is built around, played against a real control plane: a Deployment
// becomes a ReplicaSet and Pods, a scheduler binds them, kubelets run them, and every component
// coordinates only through watches on the API server. scripts/demo.sh runs it.
//
// Cast: kube-controller-manager (the deployment, replicaset and garbage collector controllers;
// started by the caller), `mini_scheduler` and three `node_agent`s (examples of this SDK, started
// here as child processes from this program's directory), and this program, which plays the user
// and narrates from its own informers what happens as it happens:
//   1. create the `user-service` Deployment (3 replicas; containers user, mysql, redis:5.0)
//      -> a ReplicaSet -> 3 Pods -> scheduled over the nodes -> Running;
//   2. `-l name=user-service` from the local label index, beside the same query sent to the server
//      and the keys etcd had to read to answer it;
//   3. set image redis=redis:6.0 -> the rolling update, pod by pod;
//   4. delete the Deployment -> the garbage collector removes the ReplicaSets and the pods;
//   5. the same objects through the API server and straight from etcd, checked equal.
// Then it stops the scheduler and the node agents.
//
//   user_service_story KUBECONFIG ETCD_ENDPOINT
//
// Use a scratch cluster running kube-controller-manager (scripts/control-plane.sh start DIR
// --with-controller-manager): the story registers nodes node-1..node-3 and uses the namespace
// "default". Exit code 0 when every step checked out, 1 otherwise, 2 on a usage error.
#include <informer/apiserver/lister_watcher.hpp>
#include <informer/apiserver/rest_client.hpp>
#include <informer/core/label_selector.hpp>
#include <informer/etcd/client.hpp>
#include <informer/etcd/kubernetes_source.hpp>

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "example_support.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
using example::eventually;

namespace {

constexpr const char* ns = "default";
constexpr int node_count = 3;
constexpr int replicas = 3;
constexpr auto step_timeout = std::chrono::seconds(90);

example::checks check;
const auto story_start = example::clock_type::now();

// Narration, timestamped from the start of the story. Handlers run on several strands: one
// printf per line keeps lines whole.
template <class... Args>
void say(const char* format, Args... args) {
  char line[512];
  std::snprintf(line, sizeof line, format, args...);
  std::printf("[%5.1fs] %s\n", example::ms_since(story_start) / 1000, line);
}

template <class Future>
auto wait(Future f) {
  return example::wait(std::move(f), "user_service_story");
}

std::string text_field(const informer::object& obj, std::string_view path) {
  const auto v = obj.field(path);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::int64_t int_field(const informer::object& obj, std::string_view path) {
  const auto v = obj.field(path);
  return v && v->is_int64() ? v->as_int64() : 0;
}

std::string redis_image(const informer::object& obj, std::string_view containers_path) {
  const auto containers = obj.field(containers_path);
  if (!containers || !containers->is_array()) return {};
  for (const auto& c : containers->as_array()) {
    if (c.is_object() && c.as_object().contains("name") && c.at("name") == "redis") {
      return std::string(c.at("image").as_string());
    }
  }
  return {};
}

const char* deployment_manifest = R"({
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "user-service", "labels": {"name": "user-service"}},
  "spec": {
    "replicas": 3,
    "selector": {"matchLabels": {"name": "user-service"}},
    "minReadySeconds": 0, "progressDeadlineSeconds": 60, "revisionHistoryLimit": 2,
    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    "template": {
      "metadata": {"labels": {"name": "user-service"}},
      "spec": {"containers": [
        {"name": "user", "image": "user:latest", "ports": [{"containerPort": 10086}],
         "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
        {"name": "mysql", "image": "mysql-for-user", "ports": [{"containerPort": 3306}],
         "env": [{"name": "MYSQL_ROOT_PASSWORD", "value": "123456"}],
         "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
        {"name": "redis", "image": "redis:5.0", "ports": [{"containerPort": 6379}],
         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}}})";

// The scheduler and node agents, as child processes that die with this one.
class cast {
public:
  explicit cast(std::filesystem::path dir) : dir_(std::move(dir)) {}
  ~cast() { stop(); }
  cast(const cast&) = delete;
  cast& operator=(const cast&) = delete;

  bool spawn(std::vector<std::string> args) {
    const auto program = (dir_ / args.front()).string();
    if (access(program.c_str(), X_OK) != 0) {
      std::fprintf(stderr, "user_service_story: %s is missing: build it beside this program\n", program.c_str());
      return false;
    }
    // Built before fork: the child of a threaded process may only make async-signal-safe calls.
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      execv(program.c_str(), argv.data());
      _exit(127);
    }
    children_.push_back(pid);
    return true;
  }

  // SIGTERM to each child, then waits for them; true when every one exited with 0.
  bool stop() {
    bool clean = true;
    for (const pid_t pid : children_) kill(pid, SIGTERM);
    for (const pid_t pid : children_) {
      int status = 0;
      clean = waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 && clean;
    }
    children_.clear();
    return clean;
  }

private:
  std::filesystem::path dir_;
  std::vector<pid_t> children_;
};

struct informers {
  std::shared_ptr<informer::shared_informer> nodes, leases, deployments, replicasets, pods;
  void run() {
    for (const auto* i : {&nodes, &leases, &deployments, &replicasets, &pods}) (*i)->run();
  }
  void stop() {
    for (const auto* i : {&nodes, &leases, &deployments, &replicasets, &pods}) (*i)->stop();
  }
  bool synced() const {
    for (const auto* i : {&nodes, &leases, &deployments, &replicasets, &pods}) {
      if (!(*i)->has_synced()) return false;
    }
    return true;
  }
};

// The narrator's handlers: one line per change that matters to the story.
void narrate(informers& via_api) {
  via_api.replicasets->add_event_handler(
      {.on_add =
           [](const informer::object::ptr& rs, bool initial) {
             if (!initial) {
               say("replicaset %s created (%s, wants %lld)", std::string(rs->name()).c_str(),
                   redis_image(*rs, "spec.template.spec.containers").c_str(),
                   static_cast<long long>(int_field(*rs, "spec.replicas")));
             }
           },
       .on_update =
           [](const informer::object::ptr& old_rs, const informer::object::ptr& rs) {
             const auto counts = [](const informer::object& r) {
               return std::tuple(int_field(r, "spec.replicas"), int_field(r, "status.readyReplicas"));
             };
             if (counts(*old_rs) == counts(*rs)) return;
             say("replicaset %s: %lld wanted, %lld ready", std::string(rs->name()).c_str(),
                 static_cast<long long>(int_field(*rs, "spec.replicas")),
                 static_cast<long long>(int_field(*rs, "status.readyReplicas")));
           },
       .on_delete =
           [](const informer::deleted_object& rs) {
             if (rs.obj()) say("replicaset %s deleted", std::string(rs.obj()->name()).c_str());
           }});
  via_api.pods->add_event_handler(
      {.on_add =
           [](const informer::object::ptr& pod, bool initial) {
             if (!initial) say("pod %s created, Pending", std::string(pod->name()).c_str());
           },
       .on_update =
           [](const informer::object::ptr& old_pod, const informer::object::ptr& pod) {
             const std::string name(pod->name());
             const std::string node = text_field(*pod, "spec.nodeName");
             if (text_field(*old_pod, "spec.nodeName").empty() && !node.empty()) {
               say("pod %s scheduled on %s", name.c_str(), node.c_str());
             }
             if (!example::condition_true(*old_pod, "Ready") && example::condition_true(*pod, "Ready")) {
               say("pod %s Running and Ready on %s (pod IP %s, %s)", name.c_str(), node.c_str(),
                   text_field(*pod, "status.podIP").c_str(), redis_image(*pod, "spec.containers").c_str());
             }
             if (old_pod->deletion_timestamp().empty() && !pod->deletion_timestamp().empty()) {
               say("pod %s Terminating", name.c_str());
             }
           },
       .on_delete =
           [](const informer::deleted_object& pod) {
             if (pod.obj()) say("pod %s deleted", std::string(pod.obj()->name()).c_str());
           }});
  via_api.deployments->add_event_handler(
      {.on_update = [](const informer::object::ptr& old_d, const informer::object::ptr& d) {
        const auto counts = [](const informer::object& x) {
          return std::tuple(int_field(x, "status.updatedReplicas"), int_field(x, "status.readyReplicas"),
                            int_field(x, "status.availableReplicas"), int_field(x, "status.replicas"));
        };
        if (counts(*old_d) == counts(*d)) return;
        const auto [updated, ready, available, total] = counts(*d);
        say("deployment user-service: %lld pods, %lld up to date, %lld ready, %lld available",
            static_cast<long long>(total), static_cast<long long>(updated), static_cast<long long>(ready),
            static_cast<long long>(available));
      }});
}

// The live (not terminating) user-service pods in the cache.
std::vector<informer::object::ptr> live_pods(const informers& via_api) {
  std::vector<informer::object::ptr> out;
  for (const auto& pod :
       via_api.pods->lister().list(ns, informer::label_selector::parse("name=user-service").value())) {
    if (pod->deletion_timestamp().empty()) out.push_back(pod);
  }
  return out;
}

// The deployment's rollout is complete at `image`: every replica up to date, ready and available,
// and exactly `replicas` live pods, all Running and Ready on a node, all with `image`.
bool rolled_out(const informers& via_api, const std::string& image) {
  const auto d = via_api.deployments->lister().get(ns, "user-service");
  if (!d || int_field(*d, "status.observedGeneration") < d->generation()) return false;
  if (int_field(*d, "status.updatedReplicas") != replicas || int_field(*d, "status.availableReplicas") != replicas ||
      int_field(*d, "status.replicas") != replicas) {
    return false;
  }
  const auto pods = via_api.pods->lister().list(ns, informer::label_selector::parse("name=user-service").value());
  if (pods.size() != static_cast<std::size_t>(replicas)) return false;
  for (const auto& pod : pods) {
    if (!pod->deletion_timestamp().empty() || !example::condition_true(*pod, "Ready") ||
        text_field(*pod, "status.phase") != "Running" || redis_image(*pod, "spec.containers") != image) {
      return false;
    }
  }
  return true;
}

int play(example::io_pool& io, const std::string& kubeconfig, const std::string& etcd_endpoint,
         const std::filesystem::path& bin_dir) {
  const auto config = example::load_config(kubeconfig.c_str(), "user_service_story");
  auto http = informer::http_client::create(io.get_executor(), config).value();
  auto etcd =
      std::make_shared<informer::etcd::client>(informer::etcd::client::connect({.endpoints = {etcd_endpoint}}).value());

  // The same five collections through the API server (protobuf) and straight from etcd.
  const auto make = [&](const char* resource, std::string collection_ns, bool from_etcd) {
    const auto r = informer::parse_resource(resource).value();
    std::shared_ptr<informer::lister_watcher> source;
    if (from_etcd) {
      source = informer::etcd::make_kubernetes_source(etcd, io.get_executor(), {.resource = r, .ns = collection_ns});
    } else {
      source = informer::apiserver_lister_watcher::create(
                   http, r, {.ns = collection_ns, .encoding = informer::wire_encoding::protobuf})
                   .value();
    }
    return informer::shared_informer::create(
        source, {.name = std::string(resource) + (from_etcd ? " via etcd" : " via apiserver")});
  };
  const auto both = [&](bool from_etcd) {
    return informers{make("nodes", "", from_etcd), make("leases", "kube-node-lease", from_etcd),
                     make("deployments", ns, from_etcd), make("replicasets", ns, from_etcd),
                     make("pods", ns, from_etcd)};
  };
  informers via_api = both(false);
  informers via_etcd = both(true);
  narrate(via_api);
  // Every pod change each source delivered (adds and updates as name@resourceVersion; a delete
  // as its name, since a deleted object's resourceVersion is the source's own choice), for step 5.
  informer::mutex history_mutex;
  std::set<std::string> api_history;
  std::set<std::string> etcd_history;
  const auto recorder = [&](std::set<std::string>& history) {
    const auto record = [&history, &history_mutex](const informer::object& pod, const char* what) {
      const informer::lock_guard lock(history_mutex);
      history.insert(std::string(what) + " " + std::string(pod.name()) +
                     (std::string_view(what) == "delete" ? "" : "@" + std::string(pod.resource_version())));
    };
    return informer::resource_event_handlers{
        .on_add = [record](const informer::object::ptr& pod, bool) { record(*pod, "add"); },
        .on_update = [record](const informer::object::ptr&,
                              const informer::object::ptr& pod) { record(*pod, "update"); },
        .on_delete =
            [record](const informer::deleted_object& pod) {
              if (pod.obj()) record(*pod.obj(), "delete");  // null: a tombstone without a last state
            }};
  };
  via_api.pods->add_event_handler(recorder(api_history));
  via_etcd.pods->add_event_handler(recorder(etcd_history));
  // The fewest ready pods seen at any change during the rolling update.
  std::atomic<bool> rolling{false};
  std::atomic<int> fewest_ready{INT_MAX};
  via_api.pods->add_event_handler({.on_update = [&](const informer::object::ptr&, const informer::object::ptr&) {
    if (!rolling) return;
    int ready = 0;
    for (const auto& pod : live_pods(via_api)) ready += example::condition_true(*pod, "Ready") ? 1 : 0;
    int seen = fewest_ready.load();
    while (ready < seen && !fewest_ready.compare_exchange_weak(seen, ready)) {
    }
  }});
  // However main returns, the informers stop before the state their handlers write is destroyed.
  struct stop_on_exit {
    informers& a;
    informers& b;
    ~stop_on_exit() {
      a.stop();
      b.stop();
    }
  } stopper{via_api, via_etcd};
  via_api.run();
  via_etcd.run();
  if (!check(eventually([&] { return via_api.synced() && via_etcd.synced(); }, std::chrono::seconds(60)),
             "ten informers (five through the API server, five from etcd) synced")) {
    return 1;
  }

  std::printf("\n0. the cast: mini_scheduler and a node_agent for each of %d nodes\n", node_count);
  cast actors(bin_dir);
  bool spawned = actors.spawn({"mini_scheduler", kubeconfig});
  for (int i = 1; i <= node_count; ++i) {
    spawned = actors.spawn({"node_agent", kubeconfig, "node-" + std::to_string(i), std::to_string(i)}) && spawned;
  }
  if (!check(spawned, "started the scheduler and the node agents")) return 1;
  const auto ready_nodes = [&] {
    int n = 0;
    for (const auto& node : via_api.nodes->get_store()->list()) n += example::condition_true(*node, "Ready") ? 1 : 0;
    return n;
  };
  check(eventually([&] { return ready_nodes() == node_count && via_api.leases->get_store()->size() == node_count; },
                   step_timeout),
        "3 nodes registered and Ready, each with its heartbeat Lease in kube-node-lease");

  std::printf("\n1. create the user-service Deployment (3 replicas: user, mysql, redis:5.0)\n");
  const informer::rest_client deployments(http, informer::parse_resource("deployments").value(), ns);
  const informer::rest_client pods(http, informer::parse_resource("pods").value(), ns);
  const informer::write_options write;
  if (auto [e, created] = wait(deployments.async_create(json::parse(deployment_manifest), write, asio::use_future));
      e) {
    std::fprintf(stderr, "user_service_story: creating the deployment: %s\n", e.what().c_str());
    return 1;
  }
  say("deployment user-service created");
  check(eventually([&] { return rolled_out(via_api, "redis:5.0"); }, step_timeout),
        "the Deployment's 3 pods are Running and Ready (redis:5.0)");
  {
    std::set<std::string> nodes;
    for (const auto& pod : live_pods(via_api)) nodes.insert(text_field(*pod, "spec.nodeName"));
    check(nodes.size() == static_cast<std::size_t>(node_count), "the scheduler spread them over the 3 nodes");
  }

  std::printf("\n2. -l name=user-service: the local index, the server, and what etcd read for it\n");
  {
    const auto selector = informer::label_selector::parse("name=user-service").value();
    const auto lister = via_api.pods->lister();
    constexpr int local_runs = 1000;
    std::size_t local_hits = 0;
    const auto local_start = example::clock_type::now();
    for (int i = 0; i < local_runs; ++i) local_hits = lister.list(ns, selector).size();
    const double local_us = example::ms_since(local_start) * 1000 / local_runs;
    informer::list_options query;
    query.label_selector = selector.to_string();
    constexpr int server_runs = 10;
    std::size_t server_hits = 0;
    const auto server_start = example::clock_type::now();
    for (int i = 0; i < server_runs; ++i) {
      auto [e, list] = wait(pods.async_list(query, asio::use_future));
      if (e) {
        std::fprintf(stderr, "user_service_story: server-side list: %s\n", e.what().c_str());
        return 1;
      }
      server_hits = list.items.size();
    }
    const double server_us = example::ms_since(server_start) * 1000 / server_runs;
    // A quorum LIST with a label selector makes kube-apiserver read every pod of the namespace
    // from etcd and filter them itself.
    const auto etcd_keys = etcd->range("/registry/pods/default/", "/registry/pods/default0", {.count_only = true});
    std::printf("  local index: %zu pods in %.1f us; server: %zu pods in %.0f us per query (%.0fx)\n", local_hits,
                local_us, server_hits, server_us, server_us / local_us);
    std::printf("  for each server query etcd read %lld keys (every pod under /registry/pods/default/)\n",
                etcd_keys ? static_cast<long long>(etcd_keys->count) : -1LL);
    check(local_hits == replicas && server_hits == local_hits, "the local answer matches the server's");
    check(etcd_keys && etcd_keys->count >= static_cast<std::int64_t>(server_hits),
          "etcd read at least the pods the server returned");
  }

  std::printf("\n3. set image redis=redis:6.0: the rolling update, pod by pod (maxSurge 1, maxUnavailable 0)\n");
  rolling = true;
  {
    const informer::patch_options patch;
    if (auto [e, patched] = wait(deployments.async_patch(
            "user-service", informer::patch_type::strategic_merge_patch,
            R"({"spec":{"template":{"spec":{"containers":[{"name":"redis","image":"redis:6.0"}]}}}})", patch,
            asio::use_future));
        e) {
      std::fprintf(stderr, "user_service_story: updating the deployment: %s\n", e.what().c_str());
      return 1;
    }
  }
  say("deployment user-service: redis image set to redis:6.0");
  check(eventually([&] { return rolled_out(via_api, "redis:6.0"); }, step_timeout),
        "every pod was replaced: 3 pods Running and Ready with redis:6.0");
  rolling = false;
  check(fewest_ready.load() >= replicas, "never fewer than 3 ready pods during the update (fewest seen: " +
                                             std::to_string(fewest_ready.load() == INT_MAX ? -1 : fewest_ready.load()) +
                                             ")");
  {
    int active_sets = 0;
    for (const auto& rs : via_api.replicasets->get_store()->list()) active_sets += int_field(*rs, "spec.replicas") > 0;
    check(active_sets == 1, "one ReplicaSet left with replicas; the old one scaled to 0");
  }

  std::printf("\n4. delete the Deployment: the garbage collector removes its ReplicaSets, then their pods\n");
  {
    const informer::delete_options remove;
    if (auto [e, r] = wait(deployments.async_delete("user-service", remove, asio::use_future)); e) {
      std::fprintf(stderr, "user_service_story: deleting the deployment: %s\n", e.what().c_str());
      return 1;
    }
  }
  say("deployment user-service deleted");
  check(eventually(
            [&] {
              return via_api.deployments->get_store()->size() == 0 && via_api.replicasets->get_store()->size() == 0 &&
                     via_api.pods->get_store()->size() == 0;
            },
            step_timeout),
        "no Deployment, ReplicaSet or pod of user-service left");

  std::printf("\n5. the same objects through the API server and straight from etcd\n");
  const auto compare = [&](const char* what, const std::shared_ptr<informer::shared_informer>& a,
                           const std::shared_ptr<informer::shared_informer>& b) {
    const bool same = eventually([&] { return example::same_objects(*a, *b); });
    check(same, std::string(what) + ": " + std::to_string(a->get_store()->size()) +
                    " objects, same names, resourceVersions and bodies");
  };
  compare("nodes", via_api.nodes, via_etcd.nodes);
  // Kubernetes 1.20 stores Leases as coordination.k8s.io/v1beta1 and serves them as v1: the same
  // leases at the same resourceVersions, whose bodies differ in apiVersion.
  check(eventually([&] { return example::versions(*via_api.leases) == example::versions(*via_etcd.leases); }),
        "node leases: " + std::to_string(via_api.leases->get_store()->size()) +
            " objects, same names and resourceVersions (stored as v1beta1, served as v1)");
  compare("deployments", via_api.deployments, via_etcd.deployments);
  compare("replicasets", via_api.replicasets, via_etcd.replicasets);
  compare("pods", via_api.pods, via_etcd.pods);
  {
    const informer::lock_guard lock(history_mutex);
    check(api_history == etcd_history && !api_history.empty(),
          "both sources delivered the same " + std::to_string(api_history.size()) +
              " pod changes over the story (the etcd side saw " + std::to_string(etcd_history.size()) + ")");
  }

  via_api.stop();
  via_etcd.stop();
  check(actors.stop(), "the scheduler and the node agents stopped cleanly");
  std::printf("\n%s\n", check.failures() == 0 ? "the story checked out" : "the story went wrong somewhere");
  return check.failures() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: user_service_story KUBECONFIG ETCD_ENDPOINT\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const auto bin_dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  example::io_pool io;
  return play(io, argv[1], argv[2], bin_dir);
}
