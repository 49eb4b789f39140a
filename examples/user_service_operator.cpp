// A small operator built with the controller builder, leader election and the metrics/health
// endpoint: each ConfigMap labelled app.informer.dev/user-service=true declares a user service,
//
//   data: {image: "nginx:1.25", replicas: "2"}
//
// and the operator keeps one Deployment of that name, owned by the ConfigMap (ownerReference with
// controller: true): it creates it when missing (also after someone deletes it: the `owns` watch
// sees the delete), puts its replicas and image back when they differ from the ConfigMap's, and
// writes what it did into the ConfigMap's annotation app.informer.dev/status.
//
//   user_service_operator KUBECONFIG NAMESPACE [--metrics-addr HOST:PORT] [--leader-elect]
//                         [--identity ID] [--lease-duration S] [--renew-deadline S] [--retry-period S]
//
// --metrics-addr   serve /metrics, /healthz and /readyz (ready once the caches have synced and,
//                  with --leader-elect, this replica leads); default 127.0.0.1:8080, port 0: any
// --leader-elect   run as one of several replicas: only the holder of the Lease
//                  user-service-operator in NAMESPACE reconciles (defaults 15 s / 10 s / 2 s)
// Stops cleanly (releasing the Lease) on SIGTERM or SIGINT; exits with 1 when it loses the Lease,
// as controller-runtime managers do, so that a fresh process rejoins the election.
#include <informer/apiserver/kubeconfig.hpp>
#include <informer/apiserver/lease_lock.hpp>
#include <informer/apiserver/lister_watcher.hpp>
#include <informer/apiserver/rest_client.hpp>
#include <informer/client/informer_factory.hpp>
#include <informer/controller/builder.hpp>
#include <informer/core/key.hpp>
#include <informer/leaderelection/leader_elector.hpp>
#include <informer/metrics/adapters.hpp>
#include <informer/metrics/endpoint.hpp>
#include <informer/metrics/registry.hpp>

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <future>
#include <memory>
#include <string>
#include <unistd.h>

namespace asio = boost::asio;
namespace json = boost::json;
using informer::reconcile_result;
using informer::result;

namespace {

constexpr const char* service_label = "app.informer.dev/user-service";
constexpr const char* status_annotation = "app.informer.dev/status";

struct settings {
  std::string kubeconfig, ns, identity;
  std::string metrics_address = "127.0.0.1";
  std::uint16_t metrics_port = 8080;
  bool leader_elect = false;
  std::chrono::seconds lease_duration{15}, renew_deadline{10}, retry_period{2};
};

// What a ConfigMap asks for; an empty `problem` when it can be deployed.
struct user_service {
  std::string image;
  std::int64_t replicas = 1;
  std::string problem;
};

std::string text_field(const informer::object& obj, const char* path) {
  auto v = obj.field(path);
  return v && v->is_string() ? std::string(v->as_string()) : std::string{};
}

user_service desired_state(const informer::object& config_map) {
  user_service s{.image = text_field(config_map, "data.image")};
  if (s.image.empty()) s.problem = "data.image is missing";
  if (const auto replicas = text_field(config_map, "data.replicas"); !replicas.empty()) {
    char* end = nullptr;
    s.replicas = std::strtoll(replicas.c_str(), &end, 10);
    if (*end != '\0' || s.replicas < 0) s.problem = "data.replicas is not a count: " + replicas;
  }
  return s;
}

json::value deployment_for(const informer::object& cm, const user_service& s) {
  const json::object labels{{"app.informer.dev/name", cm.name()}};
  return json::object{{"apiVersion", "apps/v1"},
                      {"kind", "Deployment"},
                      {"metadata",
                       {{"name", cm.name()},
                        {"namespace", cm.ns()},
                        {"labels", labels},
                        {"ownerReferences", json::array{{{"apiVersion", "v1"},
                                                         {"kind", "ConfigMap"},
                                                         {"name", cm.name()},
                                                         {"uid", cm.uid()},
                                                         {"controller", true},
                                                         {"blockOwnerDeletion", true}}}}}},
                      {"spec",
                       {{"replicas", s.replicas},
                        {"selector", {{"matchLabels", labels}}},
                        {"template",
                         {{"metadata", {{"labels", labels}}},
                          {"spec", {{"containers", json::array{{{"name", "app"}, {"image", s.image}}}}}}}}}}};
}

template <class Future>
auto wait(Future f) {
  if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    using value = decltype(f.get());
    return value{informer::error(informer::errc::server_timeout, "no answer within 30 s"), {}};
  }
  return f.get();
}

// The reconcile: reads the caches, writes through the REST clients, reports in the ConfigMap.
class user_service_reconciler {
public:
  user_service_reconciler(informer::http_client http, std::string ns)
      : config_maps_(http, informer::parse_resource("configmaps").value(), ns),
        deployments_(http, informer::parse_resource("apps/v1/deployments").value(), ns) {}

  void set_caches(informer::lister config_maps, informer::lister deployments) {
    config_map_cache_.emplace(std::move(config_maps));
    deployment_cache_.emplace(std::move(deployments));
  }

  result<reconcile_result> operator()(const std::string& key) const {
    const auto parts = informer::split_key(key).value();
    const auto cm = config_map_cache_->get(parts.ns, parts.name);
    if (!cm) return reconcile_result{};  // gone: the garbage collector deletes what it owned
    const auto wanted = desired_state(*cm);
    if (!wanted.problem.empty()) return report(*cm, "invalid: " + wanted.problem);

    const auto current = deployment_cache_->get(parts.ns, parts.name);
    if (!current) {
      auto [e, created] = wait(deployments_.async_create(deployment_for(*cm, wanted), {}, asio::use_future));
      if (e == informer::condition::conflict) return reconcile_result{.requeue = true};  // the cache lags
      if (e) return e.code();
      std::printf("%s: created deployment %s\n", key.c_str(), key.c_str());
    } else if (!owned_by(*current, *cm)) {
      return report(*cm, "conflict: a deployment of this name exists and is not owned by this ConfigMap");
    } else if (current->field("spec.replicas") != json::value(wanted.replicas) ||
               text_field(*current, "spec.template.spec.containers.0.image") != wanted.image) {
      const json::value patch = {
          {"spec",
           {{"replicas", wanted.replicas},
            {"template", {{"spec", {{"containers", json::array{{{"name", "app"}, {"image", wanted.image}}}}}}}}}}};
      auto [e, patched] = wait(deployments_.async_patch(parts.name, informer::patch_type::strategic_merge_patch,
                                                        json::serialize(patch), {}, asio::use_future));
      if (e) return e.code();
      std::printf("%s: updated deployment %s\n", key.c_str(), key.c_str());
    }
    return report(*cm, "deployed: " + wanted.image + " x" + std::to_string(wanted.replicas));
  }

private:
  static bool owned_by(const informer::object& deployment, const informer::object& cm) {
    for (const auto& ref : deployment.owner_references())
      if (ref.controller && ref.uid == cm.uid()) return true;
    return false;
  }

  // Writes `status` into the ConfigMap's annotation unless it says so already.
  result<reconcile_result> report(const informer::object& cm, const std::string& status) const {
    if (cm.annotations().get(status_annotation) == status) return reconcile_result{};
    const json::value patch = {{"metadata", {{"annotations", {{status_annotation, status}}}}}};
    auto [e, patched] = wait(config_maps_.async_patch(cm.name(), informer::patch_type::merge_patch,
                                                      json::serialize(patch), {}, asio::use_future));
    if (e && e != informer::condition::not_found) return e.code();
    return reconcile_result{};
  }

  informer::rest_client config_maps_;
  informer::rest_client deployments_;
  std::optional<informer::lister> config_map_cache_;
  std::optional<informer::lister> deployment_cache_;
};

// The controller: ConfigMaps of user services, the Deployments they own.
std::unique_ptr<informer::managed_controller> make_controller(informer::informer_factory& factory,
                                                              const informer::http_client& http, const std::string& ns,
                                                              informer::metrics::registry& metrics,
                                                              std::shared_ptr<user_service_reconciler> reconciler) {
  const informer::informer_key services{
      .resource = "v1/configmaps", .ns = ns, .label_selector = std::string(service_label) + "=true"};
  const informer::informer_key deployments{.resource = "apps/v1/deployments", .ns = ns};
  auto controller = informer::controller_builder(factory, informer::apiserver_source_maker(http))
                        .named("user-services")
                        .for_resource(services)
                        // Deployment status writes do not change its generation: only spec edits and deletes count.
                        .owns(deployments, {informer::predicates::generation_changed()})
                        .workers(2)
                        .with_metrics(metrics)
                        .build([reconciler](const std::string& key) { return (*reconciler)(key); });
  const auto informers = controller->informers();
  reconciler->set_caches(informers[0]->lister(), informers[1]->lister());
  return controller;
}

bool parse_args(int argc, char** argv, settings& s) {
  if (argc < 3) return false;
  s.kubeconfig = argv[1];
  s.ns = argv[2];
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--leader-elect") {
      s.leader_elect = true;
    } else if (arg == "--metrics-addr") {
      const auto v = value();
      const auto colon = v.rfind(':');
      if (colon == std::string::npos) return false;
      s.metrics_address = v.substr(0, colon);
      s.metrics_port = static_cast<std::uint16_t>(std::atoi(v.c_str() + colon + 1));
    } else if (arg == "--identity") {
      s.identity = value();
    } else if (arg == "--lease-duration") {
      s.lease_duration = std::chrono::seconds(std::atoi(value().c_str()));
    } else if (arg == "--renew-deadline") {
      s.renew_deadline = std::chrono::seconds(std::atoi(value().c_str()));
    } else if (arg == "--retry-period") {
      s.retry_period = std::chrono::seconds(std::atoi(value().c_str()));
    } else {
      return false;
    }
  }
  if (s.identity.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    s.identity = std::string(host) + "-" + std::to_string(::getpid());
  }
  return true;
}

int run(const settings& s) {
  auto config = informer::load_kubeconfig({.files = {s.kubeconfig}});
  if (!config) {
    std::fprintf(stderr, "user_service_operator: %s\n", config.error().what().c_str());
    return 1;
  }
  // SIGTERM and SIGINT are taken by sigwait below, in no other thread: block them before any starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  informer::metrics::registry metrics;
  informer::informer_factory factory;
  auto http = informer::http_client::create(factory.get_executor(), *config).value();
  auto reconciler = std::make_shared<user_service_reconciler>(http, s.ns);
  auto controller = make_controller(factory, http, s.ns, metrics, reconciler);
  for (const auto& inf : controller->informers()) informer::metrics::register_informer_metrics(metrics, inf);

  auto endpoint = informer::metrics::endpoint::create(factory.get_executor(), metrics,
                                                      {.address = s.metrics_address, .port = s.metrics_port});
  std::printf("serving /metrics, /healthz and /readyz on %s:%u\n", s.metrics_address.c_str(), endpoint->port());
  for (const auto& inf : controller->informers())
    endpoint->add_readiness_check("informer " + inf->name(), informer::metrics::informer_synced_check(inf));
  // The caches fill while this replica waits to lead, so that a new leader starts at once.
  factory.start();

  std::atomic<bool> leading{!s.leader_elect};
  std::optional<informer::leader_elector> elector;
  if (s.leader_elect) {
    auto lock = std::make_shared<informer::lease_lock>(http, s.ns, "user-service-operator");
    elector.emplace(
        informer::leader_elector::create(
            lock, {.identity = s.identity,
                   .lease_duration = s.lease_duration,
                   .renew_deadline = s.renew_deadline,
                   .retry_period = s.retry_period,
                   .release_on_cancel = true,
                   .callbacks = {.on_started_leading = [&leading] { leading = true; },
                                 .on_stopped_leading = [&leading] { leading = false; },
                                 .on_new_leader =
                                     [](const std::string& who) { std::printf("the leader is %s\n", who.c_str()); }}})
            .value());
    auto is_leader = [&elector] { return elector->is_leader(); };
    endpoint->add_readiness_check("leader", is_leader);
    metrics.gauge("leader_election_master_status", "1 while this replica leads", {"name"})
        .set_callback({"user-service-operator"},
                      [is_leader]() -> std::optional<double> { return is_leader() ? 1 : 0; });
    elector->start();
  }

  int exit_code = 0;
  bool started = false;
  const timespec tick{0, 100'000'000};
  while (sigtimedwait(&signals, nullptr, &tick) < 0) {
    if (leading && !started) {
      if (auto r = controller->run(); !r) {
        std::fprintf(stderr, "user_service_operator: %s\n", r.error().message().c_str());
        exit_code = 1;
        break;
      }
      started = true;
      std::printf("%s reconciling user services in %s\n", s.identity.c_str(), s.ns.c_str());
    } else if (started && !leading) {
      std::fprintf(stderr, "user_service_operator: lost the lease\n");
      exit_code = 1;
      break;
    }
  }
  controller->stop();
  if (elector) elector->stop();  // releases the Lease: a successor takes over at its next try
  endpoint->stop();
  factory.shutdown();
  std::printf("stopped\n");
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line at a time, also into a file
  settings s;
  if (!parse_args(argc, argv, s)) {
    std::fprintf(stderr,
                 "usage: user_service_operator KUBECONFIG NAMESPACE [--metrics-addr HOST:PORT] [--leader-elect]\n"
                 "                             [--identity ID] [--lease-duration S] [--renew-deadline S] "
                 "[--retry-period S]\n");
    return 2;
  }
  return run(s);
}
