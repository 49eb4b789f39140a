// The promise of the etcd source: an informer that reads a cluster's etcd directly and one that
// goes through kube-apiserver hold the very same objects (names, resourceVersions, labels, bodies)
// for the same resource, through creates, updates and deletes. Checked here for Pods, Deployments,
// ConfigMaps (also label-selected) and a custom resource, against one real control plane.
//
// The control plane runs without kube-controller-manager, so the ServiceAccount admission plugin
// is off and Pods carry no token volume: the one field the server defaults on read but etcd lacks
// (see informer/codec/protobuf.hpp) does not arise, and the objects must be equal field by field.
#include "informer/apiserver/lister_watcher.hpp"
#include "informer/apiserver/rest_client.hpp"
#include "informer/client/shared_informer.hpp"
#include "informer/codec/protobuf.hpp"
#include "informer/etcd/kubernetes_source.hpp"

#include <boost/test/unit_test.hpp>

#include "control_plane.hpp"
#include "io_threads.hpp"
#include "json_diff.hpp"
#include "wait.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using informer::object;
using informer::resource;
using informer::testing::control_plane;

namespace {

constexpr auto converge_timeout = 30s;

using informer::testing::io_threads;

template <class Future>
auto wait(Future f) {
  BOOST_TEST_REQUIRE((f.wait_for(60s) == std::future_status::ready), "request did not complete");
  return f.get();
}

template <class Result>
auto ok(Result r) {
  auto& [e, value] = r;
  BOOST_TEST_REQUIRE(!e, e.what());
  return value;
}

const resource crontabs{.group = "stable.example.com", .version = "v1", .plural = "crontabs", .kind = "CronTab"};

// key -> resourceVersion of everything in an informer's cache.
std::map<std::string, std::string> versions(const informer::shared_informer& inf) {
  std::map<std::string, std::string> out;
  for (const auto& obj : inf.get_store()->list()) {
    out[std::string(obj->ns()) + "/" + std::string(obj->name())] = std::string(obj->resource_version());
  }
  return out;
}

// One resource watched both ways.
struct informer_pair {
  std::string what;
  std::shared_ptr<informer::shared_informer> via_apiserver;
  std::shared_ptr<informer::shared_informer> via_etcd;

  ~informer_pair() {
    if (via_apiserver) via_apiserver->stop();
    if (via_etcd) via_etcd->stop();
  }

  // Waits until both caches hold the same keys at the same resourceVersions, and `expected` (a
  // key -> resourceVersion map read from the server) when given; then compares every body.
  void require_converged(const std::map<std::string, std::string>* expected = nullptr) const {
    std::map<std::string, std::string> a;
    std::map<std::string, std::string> b;
    const bool same = informer::testing::eventually(
        [&] {
          a = versions(*via_apiserver);
          b = versions(*via_etcd);
          return a == b && (expected == nullptr || a == *expected);
        },
        converge_timeout, 20ms);
    BOOST_TEST_REQUIRE(same, what << ": caches did not converge: API server " << a.size() << " objects, etcd "
                                  << b.size() << (expected ? ", server list " + std::to_string(expected->size()) : ""));
    for (const auto& obj : via_apiserver->get_store()->list()) {
      const auto other = via_etcd->get_store()->get(*obj);
      BOOST_TEST_REQUIRE(other != nullptr);
      const auto diff =
          informer::testing::describe_json_differences(obj->body(), other->body(), "the API server's", "etcd's");
      BOOST_TEST(diff.empty(), what << " " << obj->ns() << "/" << obj->name() << " differs:" << diff);
    }
  }
};

class cluster {
public:
  cluster() {
    http_ = std::make_unique<informer::http_client>(
        informer::http_client::create(io_.ctx.get_executor(), {.server = cp_.apiserver_url(),
                                                               .tls = {.ca_file = cp_.ca_file()},
                                                               .bearer_token = cp_.admin_token(),
                                                               .qps = 0})
            .value());
    etcd_ = std::make_shared<informer::etcd::client>(
        informer::etcd::client::connect({.endpoints = {cp_.etcd_endpoint()}}).value());
  }

  informer::rest_client rest(const resource& r, const std::string& ns = "conv") const { return {*http_, r, ns}; }

  // One informer through the API server and one straight from etcd, both running and synced.
  std::unique_ptr<informer_pair> watch_both(const resource& r, const std::string& ns, const std::string& selector,
                                            informer::wire_encoding encoding) {
    auto pair = std::make_unique<informer_pair>();
    pair->what = informer::to_string(r) + (selector.empty() ? "" : " where " + selector);
    auto api = informer::apiserver_lister_watcher::create(*http_, r, {.ns = ns, .encoding = encoding});
    BOOST_TEST_REQUIRE(api.has_value(), api.error().what());
    auto etcd = informer::etcd::make_kubernetes_source(etcd_, io_.ctx.get_executor(), {.resource = r, .ns = ns});
    pair->via_apiserver =
        informer::shared_informer::create(*api, {.name = "apiserver " + pair->what, .label_selector = selector});
    pair->via_etcd =
        informer::shared_informer::create(etcd, {.name = "etcd " + pair->what, .label_selector = selector});
    pair->via_apiserver->run();
    pair->via_etcd->run();
    BOOST_TEST_REQUIRE(informer::wait_for_cache_sync({pair->via_apiserver, pair->via_etcd}, converge_timeout));
    return pair;
  }

  // key -> resourceVersion as the server lists it now.
  std::map<std::string, std::string> server_versions(const resource& r, const std::string& selector = "") {
    informer::list_options options;
    options.label_selector = selector;
    const auto list = ok(wait(rest(r).async_list(options, asio::use_future)));
    std::map<std::string, std::string> out;
    for (const auto& obj : list.items) {
      out[std::string(obj->ns()) + "/" + std::string(obj->name())] = std::string(obj->resource_version());
    }
    return out;
  }

  void create(const resource& r, const std::string& manifest) {
    ok(wait(rest(r).async_create(json::parse(manifest), {}, asio::use_future)));
  }
  void merge_patch(const resource& r, const std::string& name, const std::string& patch) {
    informer::patch_options options;
    ok(wait(rest(r).async_patch(name, informer::patch_type::merge_patch, patch, options, asio::use_future)));
  }
  void remove(const resource& r, const std::string& name) {
    informer::delete_options options;
    ok(wait(rest(r).async_delete(name, options, asio::use_future)));
  }

private:
  control_plane cp_;  // declared first: destroyed after the clients
  io_threads io_;
  std::unique_ptr<informer::http_client> http_;
  std::shared_ptr<informer::etcd::client> etcd_;
};

cluster* the_cluster = nullptr;

struct cluster_fixture {
  cluster_fixture() {
    if (!control_plane::available() || !informer::codec::has_schemas()) return;
    the_cluster = new cluster();
    auto& c = *the_cluster;
    c.create(informer::parse_resource("namespaces").value(), R"({"metadata":{"name":"conv"}})");
    c.create(informer::parse_resource("customresourcedefinitions").value(), R"({
      "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
      "metadata": {"name": "crontabs.stable.example.com"},
      "spec": {"group": "stable.example.com", "scope": "Namespaced",
               "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab"},
               "versions": [{"name": "v1", "served": true, "storage": true,
                             "schema": {"openAPIV3Schema": {"type": "object",
                                                            "x-kubernetes-preserve-unknown-fields": true}}}]}})");
    // The CRD is served once it is established; until then its list is a 404.
    const bool served = informer::testing::eventually(
        [&] {
          informer::list_options options;
          auto [e, list] = wait(c.rest(crontabs).async_list(options, asio::use_future));
          return !e;
        },
        converge_timeout, 100ms);
    BOOST_TEST_REQUIRE(served, "the CronTab resource was never served");
  }
  ~cluster_fixture() { delete the_cluster; }
};

bool cluster_running(boost::unit_test::test_unit_id) { return the_cluster != nullptr; }

std::string config_map(const std::string& name, const std::string& app, const std::string& value) {
  return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name + R"(","labels":{"app":")" + app +
         R"("},"annotations":{"note":"first"}},"data":{"value":")" + value + R"(","multi":"a\nb"}})";
}

std::string pod(const std::string& name, const std::string& app) {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name + R"(","labels":{"app":")" + app +
         R"("}},"spec":{"containers":[{"name":"main","image":"registry.example.com/app:1.0",
           "ports":[{"containerPort":8080}],"resources":{"requests":{"cpu":"100m","memory":"64Mi"}},
           "env":[{"name":"MODE","value":"fast"}]}],"tolerations":[{"key":"k","operator":"Exists"}]}})";
}

std::string deployment(const std::string& name, int replicas) {
  return R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":")" + name + R"(","labels":{"app":")" +
         name + R"("}},"spec":{"replicas":)" + std::to_string(replicas) + R"(,"selector":{"matchLabels":{"app":")" +
         name + R"("}},"template":{"metadata":{"labels":{"app":")" + name +
         R"("}},"spec":{"containers":[{"name":"main","image":"registry.example.com/app:1.0"}]}}}})";
}

std::string cron_tab(const std::string& name, const std::string& schedule) {
  return R"({"apiVersion":"stable.example.com/v1","kind":"CronTab","metadata":{"name":")" + name +
         R"(","labels":{"app":"cron"}},"spec":{"cronSpec":")" + schedule +
         R"(","image":"my-cron","replicas":2,"nested":{"list":[1,2.5,"x",null,true],"empty":{}}}})";
}

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

BOOST_AUTO_TEST_SUITE(etcd_and_apiserver_informers_converge, *boost::unit_test::precondition(cluster_running))

BOOST_AUTO_TEST_CASE(config_maps_all_and_label_selected) {
  auto& c = *the_cluster;
  const auto cms = informer::parse_resource("configmaps").value();
  // Some exist before the informers list, the rest arrive through their watches.
  for (int i = 0; i < 4; ++i) c.create(cms, config_map("before-" + std::to_string(i), i % 2 ? "a" : "b", "v"));
  auto all = c.watch_both(cms, "conv", "", informer::wire_encoding::protobuf);
  auto selected = c.watch_both(cms, "conv", "app=a", informer::wire_encoding::json);
  all->require_converged();
  selected->require_converged();
  BOOST_TEST(selected->via_etcd->get_store()->size() == 2u);

  for (int i = 0; i < 4; ++i) c.create(cms, config_map("after-" + std::to_string(i), i % 2 ? "a" : "b", "v"));
  c.merge_patch(cms, "before-0", R"({"data":{"value":"changed"},"metadata":{"annotations":{"note":null}}})");
  c.merge_patch(cms, "before-1", R"({"metadata":{"labels":{"app":"b"}}})");  // leaves app=a
  c.merge_patch(cms, "after-0", R"({"metadata":{"labels":{"app":"a"}}})");   // joins app=a
  c.remove(cms, "before-2");
  c.remove(cms, "after-3");

  auto expected_all = c.server_versions(cms);
  auto expected_selected = c.server_versions(cms, "app=a");
  all->require_converged(&expected_all);
  selected->require_converged(&expected_selected);
  BOOST_TEST(expected_all.size() == 6u);
  BOOST_TEST(expected_selected.size() == 3u);  // before-3 and after-1 stayed, after-0 joined
}

BOOST_AUTO_TEST_CASE(pods_through_create_update_delete) {
  auto& c = *the_cluster;
  const auto pods = informer::parse_resource("pods").value();
  c.create(pods, pod("web-0", "web"));
  // JSON from the server against protobuf decoded from etcd: the codec is checked too.
  auto both = c.watch_both(pods, "conv", "", informer::wire_encoding::json);
  both->require_converged();

  c.create(pods, pod("web-1", "web"));
  c.create(pods, pod("db-0", "db"));
  c.merge_patch(pods, "web-0", R"({"metadata":{"labels":{"version":"2"},"annotations":{"a":"b"}}})");
  c.remove(pods, "db-0");
  auto expected = c.server_versions(pods);
  both->require_converged(&expected);
  BOOST_TEST(expected.size() == 2u);
}

BOOST_AUTO_TEST_CASE(deployments_through_create_update_delete) {
  auto& c = *the_cluster;
  const auto deployments = informer::parse_resource("deployments").value();
  c.create(deployments, deployment("front", 2));
  auto both = c.watch_both(deployments, "", "", informer::wire_encoding::json);  // every namespace
  both->require_converged();

  c.create(deployments, deployment("back", 1));
  c.merge_patch(deployments, "front", R"({"spec":{"replicas":5,"paused":true}})");
  c.merge_patch(deployments, "back", R"({"spec":{"template":{"spec":{"containers":[{"name":"main",
                                         "image":"registry.example.com/app:2.0"}]}}}})");
  c.remove(deployments, "front");
  c.create(deployments, deployment("front", 3));  // same name, new object
  auto expected = c.server_versions(deployments);
  both->require_converged(&expected);
  BOOST_TEST(expected.size() == 2u);
}

BOOST_AUTO_TEST_CASE(custom_resources_through_create_update_delete) {
  auto& c = *the_cluster;
  c.create(crontabs, cron_tab("nightly", "0 3 * * *"));
  auto both = c.watch_both(crontabs, "conv", "", informer::wire_encoding::json);
  both->require_converged();

  c.create(crontabs, cron_tab("hourly", "0 * * * *"));
  c.create(crontabs, cron_tab("weekly", "0 0 * * 0"));
  c.merge_patch(crontabs, "nightly", R"({"spec":{"cronSpec":"30 3 * * *","extra":{"a":[]}}})");
  c.remove(crontabs, "weekly");
  auto expected = c.server_versions(crontabs);
  both->require_converged(&expected);
  BOOST_TEST(expected.size() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
