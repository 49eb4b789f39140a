// examples/user_service_operator against a real kube-apiserver: two replicas with leader
// election, the Deployments they own, their /readyz and /metrics. The example's path comes from
// CMake (USER_SERVICE_OPERATOR); without it (examples not built) the suite is skipped.
#include "informer/apiserver/kubeconfig.hpp"
#include "informer/apiserver/rest_client.hpp"

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include "io_threads.hpp"
#include "loopback_port.hpp"
#include "metrics_scrape.hpp"
#include "shared_control_plane.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace asio = boost::asio;
using namespace std::chrono_literals;
using informer::testing::cluster;
using informer::testing::cluster_fixture;
using informer::testing::cluster_running;
using informer::testing::fetch;
using informer::testing::io_threads;
using informer::testing::samples;

namespace {

#ifdef USER_SERVICE_OPERATOR
constexpr const char* operator_path = USER_SERVICE_OPERATOR;
#else
constexpr const char* operator_path = "";
#endif

constexpr const char* ns = "user-services";
const std::string success_series = R"(controller_runtime_reconcile_total{controller="user-services",result="success"})";

bool operator_built(boost::unit_test::test_unit_id) { return *operator_path != '\0'; }

bool eventually(const std::function<bool()>& condition, std::chrono::seconds limit = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// One replica of the operator, its output in a file; killed if the test ends without stopping it.
class replica {
public:
  explicit replica(const std::string& identity) : port_(static_cast<std::uint16_t>(unused_loopback_port())) {
    log_ = std::filesystem::temp_directory_path() /
           ("user-service-operator-" + identity + "-" + std::to_string(::getpid()) + ".log");
    const std::vector<std::string> args{operator_path,
                                        cluster->kubeconfig_path(),
                                        ns,
                                        "--metrics-addr",
                                        "127.0.0.1:" + std::to_string(port_),
                                        "--leader-elect",
                                        "--identity",
                                        identity,
                                        "--lease-duration",
                                        "15",
                                        "--renew-deadline",
                                        "10",
                                        "--retry-period",
                                        "1"};
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&files, 1, 2);
    const int rc = posix_spawn(&pid_, operator_path, &files, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    BOOST_REQUIRE_MESSAGE(rc == 0, "cannot start " << operator_path);
  }
  ~replica() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove(log_);
  }
  replica(const replica&) = delete;
  replica& operator=(const replica&) = delete;

  // SIGTERM, then its exit status (-1 when it did not exit within 15 s).
  int terminate() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 300; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }

  // The HTTP status of `target`, 0 when nothing answers.
  unsigned status(const std::string& target) const {
    try {
      return fetch(port_, target).status;
    } catch (const std::exception&) {
      return 0;
    }
  }
  double reconciles() const {
    auto all = samples(fetch(port_, "/metrics").body);
    return all.count(success_series) ? all[success_series] : -1;
  }
  std::string output() const {
    std::ifstream in(log_);
    return {std::istreambuf_iterator<char>(in), {}};
  }

private:
  std::uint16_t port_;
  std::filesystem::path log_;
  pid_t pid_ = -1;
};

template <class Future>
auto wait(Future f) {
  BOOST_REQUIRE(f.wait_for(30s) == std::future_status::ready);
  return f.get();
}

struct clients {
  io_threads io;
  informer::http_client http =
      informer::http_client::create(io.ctx.get_executor(),
                                    informer::load_kubeconfig({.files = {cluster->kubeconfig_path()}}).value())
          .value();
  informer::rest_client namespaces{http, informer::parse_resource("namespaces").value()};
  informer::rest_client config_maps{http, informer::parse_resource("configmaps").value(), ns};
  informer::rest_client deployments{http, informer::parse_resource("apps/v1/deployments").value(), ns};

  informer::object::ptr deployment(const std::string& name) {
    auto [e, d] = wait(deployments.async_get(name, {}, asio::use_future));
    return e ? nullptr : d;
  }
  void patch_config_map(const std::string& name, const std::string& patch) {
    auto [e, cm] = wait(config_maps.async_patch(name, informer::patch_type::merge_patch, patch, {}, asio::use_future));
    BOOST_REQUIRE_MESSAGE(!e, e.what());
  }
};

std::string image_of(const informer::object& d) {
  auto v = d.field("spec.template.spec.containers.0.image");
  return v && v->is_string() ? std::string(v->as_string()) : "";
}

std::int64_t replicas_of(const informer::object& d) {
  auto v = d.field("spec.replicas");
  return v && v->is_int64() ? v->as_int64() : -1;
}

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

BOOST_AUTO_TEST_SUITE(user_service_operator,
                      *boost::unit_test::precondition(cluster_running) * boost::unit_test::precondition(operator_built))

BOOST_AUTO_TEST_CASE(two_replicas_one_leader_keep_the_deployments) {
  clients c;
  {
    auto [e, created] = wait(c.namespaces.async_create(
        boost::json::parse(std::string(R"({"metadata":{"name":")") + ns + R"("}})"), {}, asio::use_future));
    BOOST_REQUIRE_MESSAGE(!e, e.what());
  }
  replica a("a");
  BOOST_REQUIRE_MESSAGE(eventually([&] { return a.status("/readyz") == 200; }), a.output());
  replica b("b");
  BOOST_REQUIRE_MESSAGE(eventually([&] { return b.status("/healthz") == 200; }), b.output());
  // b's caches sync, but it does not lead: not ready, and it never reconciles.
  std::this_thread::sleep_for(1s);
  BOOST_TEST(b.status("/readyz") == 503u);

  // A user service: the Deployment appears, owned by the ConfigMap, with its spec.
  auto [ce, cm] = wait(c.config_maps.async_create(boost::json::parse(R"({"metadata":{"name":"web","labels":{
      "app.informer.dev/user-service":"true"}},"data":{"image":"nginx:1.19","replicas":"2"}})"),
                                                  {}, asio::use_future));
  BOOST_REQUIRE_MESSAGE(!ce, ce.what());
  informer::object::ptr d;
  BOOST_REQUIRE_MESSAGE(eventually([&] { return (d = c.deployment("web")) != nullptr; }), a.output());
  BOOST_REQUIRE(d->owner_references().size() == 1u);
  const auto& owner = d->owner_references()[0];
  BOOST_TEST(owner.controller);
  BOOST_TEST(owner.kind == "ConfigMap");
  BOOST_TEST(owner.name == "web");
  BOOST_TEST(owner.uid == cm->uid());
  BOOST_TEST(replicas_of(*d) == 2);
  BOOST_TEST(image_of(*d) == "nginx:1.19");

  // A changed spec updates it.
  c.patch_config_map("web", R"({"data":{"image":"nginx:1.20","replicas":"3"}})");
  BOOST_TEST(eventually([&] {
    d = c.deployment("web");
    return d && replicas_of(*d) == 3 && image_of(*d) == "nginx:1.20";
  }));
  // An edit by someone else is put back (the owns watch sees the new generation).
  {
    auto [e, edited] = wait(c.deployments.async_patch("web", informer::patch_type::merge_patch,
                                                      R"({"spec":{"replicas":7}})", {}, asio::use_future));
    BOOST_REQUIRE(!e);
    BOOST_TEST(replicas_of(*edited) == 7);
  }
  BOOST_TEST(eventually([&] {
    d = c.deployment("web");
    return d && replicas_of(*d) == 3;
  }));
  // A deleted Deployment comes back.
  const std::string first_uid(d->uid());
  {
    auto [e, gone] = wait(c.deployments.async_delete("web", {}, asio::use_future));
    BOOST_REQUIRE(!e);
  }
  BOOST_TEST(eventually([&] {
    d = c.deployment("web");
    return d && d->uid() != first_uid && replicas_of(*d) == 3;
  }));
  // The status written back into the ConfigMap.
  BOOST_TEST(eventually([&] {
    auto [e, now] = wait(c.config_maps.async_get("web", {}, asio::use_future));
    return !e && now->annotations().get("app.informer.dev/status") == "deployed: nginx:1.20 x3";
  }));

  // Only the leader reconciled.
  BOOST_TEST(a.reconciles() > 0);
  BOOST_TEST(b.reconciles() == 0);
  BOOST_TEST(b.status("/readyz") == 503u);

  // The leader stops cleanly and releases the Lease: b takes over and keeps the Deployment.
  BOOST_TEST(a.terminate() == 0);
  BOOST_REQUIRE_MESSAGE(eventually([&] { return b.status("/readyz") == 200; }, 10s), b.output());
  {
    auto [e, gone] = wait(c.deployments.async_delete("web", {}, asio::use_future));
    BOOST_REQUIRE(!e);
  }
  BOOST_TEST(eventually([&] {
    d = c.deployment("web");
    return d != nullptr;
  }));
  // The counter moves once the reconcile returns, a moment after its create.
  BOOST_TEST(eventually([&] { return b.reconciles() > 0; }));
  BOOST_TEST(b.terminate() == 0);
}

BOOST_AUTO_TEST_SUITE_END()
