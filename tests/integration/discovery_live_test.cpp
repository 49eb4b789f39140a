#include "informer/apiserver/discovery.hpp"

#include <boost/test/unit_test.hpp>

#include "control_plane.hpp"
#include "shared_control_plane.hpp"
#include "io_threads.hpp"
#include "informer/apiserver/rest_client.hpp"
#include "informer/apiserver/rest_mapper.hpp"

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <tuple>

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using informer::discovery_client;
using informer::errc;
using informer::rest_client;
using informer::rest_mapper;
using informer::testing::cluster;
using informer::testing::cluster_fixture;
using informer::testing::cluster_running;
using informer::testing::control_plane;
using informer::testing::io_threads;

namespace {

informer::http_client make_http(io_threads& io) {
  auto c =
      informer::http_client::create(io.ctx.get_executor(), informer::rest_config{.server = cluster->apiserver_url(),
                                                                                 .tls = {.ca_file = cluster->ca_file()},
                                                                                 .bearer_token = cluster->admin_token(),
                                                                                 .qps = 0});
  BOOST_TEST_REQUIRE(c.has_value(), c.error().what());
  return *c;
}

template <class T>
T wait(std::future<T> f) {
  BOOST_TEST_REQUIRE((f.wait_for(60s) == std::future_status::ready), "the operation did not complete");
  return f.get();
}

template <class T>
T ok(std::tuple<informer::error, T> r) {
  auto& [e, value] = r;
  BOOST_TEST_REQUIRE(!e, e.what());
  return std::move(value);
}

std::string resolved(const rest_mapper& mapper, std::string_view text) {
  auto [e, r] = wait(mapper.async_resolve(text, asio::use_future));
  if (e) return "error: " + e.what();
  return r.res.api_version() + " " + r.res.plural + " " + r.res.kind + (r.res.namespaced ? " namespaced" : "");
}

json::value crontab_definition() {
  return json::parse(R"({
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.stable.example.com"},
    "spec": {
      "group": "stable.example.com",
      "scope": "Namespaced",
      "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
      "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
    }
  })");
}

bool established(const informer::object& crd) {
  const auto body = crd.body();
  const auto* st = body.as_object().if_contains("status");
  const auto* conditions = st && st->is_object() ? st->get_object().if_contains("conditions") : nullptr;
  if (!conditions || !conditions->is_array()) return false;
  for (const auto& c : conditions->get_array()) {
    if (c.at("type").as_string() == "Established" && c.at("status").as_string() == "True") return true;
  }
  return false;
}

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

BOOST_AUTO_TEST_SUITE(discovery_live, *boost::unit_test::precondition(cluster_running))

BOOST_AUTO_TEST_CASE(names_resolve_to_what_1_20_serves) {
  io_threads io;
  discovery_client discovery(make_http(io));
  rest_mapper mapper(discovery);
  BOOST_TEST(resolved(mapper, "deploy") == "apps/v1 deployments Deployment namespaced");
  BOOST_TEST(resolved(mapper, "po") == "v1 pods Pod namespaced");
  BOOST_TEST(resolved(mapper, "pods") == "v1 pods Pod namespaced");
  BOOST_TEST(resolved(mapper, "Deployment") == "apps/v1 deployments Deployment namespaced");
  BOOST_TEST(resolved(mapper, "deployments.apps") == "apps/v1 deployments Deployment namespaced");
  BOOST_TEST(resolved(mapper, "cronjobs") == "batch/v1beta1 cronjobs CronJob namespaced");  // 1.20: no batch/v1
  BOOST_TEST(resolved(mapper, "cj") == "batch/v1beta1 cronjobs CronJob namespaced");
  BOOST_TEST(resolved(mapper, "ns") == "v1 namespaces Namespace");
  BOOST_TEST(resolved(mapper, "events") == "v1 events Event namespaced");  // core before events.k8s.io
  BOOST_TEST(resolved(mapper, "ingresses.networking.k8s.io") == "networking.k8s.io/v1 ingresses Ingress namespaced");
  BOOST_TEST(resolved(mapper, "ingresses.v1beta1.extensions") == "extensions/v1beta1 ingresses Ingress namespaced");
  BOOST_TEST(mapper.fallbacks() == 0u);

  const auto snap = discovery.cached();
  BOOST_TEST_REQUIRE(snap != nullptr);
  BOOST_TEST(snap->failures.empty());
  BOOST_TEST(snap->groups.front().name == "");
  BOOST_TEST(snap->group("batch")->preferred_version == "v1");
  // What 1.20 says of the eviction subresource, and so what rest_client posts.
  const auto* eviction = snap->find("", "v1", "pods")->subresource("eviction");
  BOOST_TEST_REQUIRE(eviction != nullptr);
  BOOST_TEST(eviction->group == "policy");
  BOOST_TEST(eviction->version == "v1beta1");
  BOOST_TEST(eviction->kind == "Eviction");
  BOOST_TEST(snap->eviction_api_version() == "policy/v1beta1");
}

BOOST_AUTO_TEST_CASE(eviction_with_the_discovered_version) {
  io_threads io;
  auto http = make_http(io);
  discovery_client discovery(http);
  const auto snap = ok(wait(discovery.async_get(asio::use_future)));
  rest_client pods(http, snap->find("", "v1", "pods")->res, "default",
                   {.eviction_api_version = snap->eviction_api_version()});
  ok(wait(pods.async_create(json::value{{"apiVersion", "v1"},
                                        {"kind", "Pod"},
                                        {"metadata", {{"name", "evict-me"}}},
                                        {"spec", {{"containers", json::array{{{"name", "c"}, {"image", "busybox"}}}}}}},
                            {}, asio::use_future)));
  const auto st = ok(wait(pods.async_evict("evict-me", {.grace_period_seconds = 0}, asio::use_future)));
  BOOST_TEST(st.code == 201);
}

BOOST_AUTO_TEST_CASE(custom_resource_found_after_a_miss) {
  io_threads io;
  auto http = make_http(io);
  discovery_client discovery(http, {.min_refresh_interval = 0s});
  rest_mapper mapper(discovery);
  BOOST_TEST(resolved(mapper, "pods") == "v1 pods Pod namespaced");  // cached before the CRD exists
  const auto before = discovery.stats().fetches;

  rest_client crds(
      http, ok(wait(mapper.async_resolve("customresourcedefinitions.apiextensions.k8s.io", asio::use_future))).res);
  BOOST_TEST(crds.get_resource().version == "v1");
  ok(wait(crds.async_create(crontab_definition(), {}, asio::use_future)));
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    auto crd = ok(wait(crds.async_get("crontabs.stable.example.com", {}, asio::use_future)));
    if (established(*crd)) break;
    BOOST_TEST_REQUIRE((std::chrono::steady_clock::now() < deadline), "the CRD was not established in 30 s");
    std::this_thread::sleep_for(100ms);
  }

  // The first lookup misses the cached snapshot and refreshes it. Discovery may lag the
  // Established condition by a moment: then a later miss refreshes again.
  std::string found;
  for (;;) {
    found = resolved(mapper, "crontabs");
    if (found.starts_with("stable.example.com/")) break;
    BOOST_TEST_REQUIRE((std::chrono::steady_clock::now() < deadline), "not found: " << found);
    std::this_thread::sleep_for(100ms);
  }
  BOOST_TEST(found == "stable.example.com/v1 crontabs CronTab namespaced");
  BOOST_TEST(discovery.stats().fetches > before);
  const auto after = discovery.stats().fetches;
  BOOST_TEST(resolved(mapper, "CronTab") == "stable.example.com/v1 crontabs CronTab namespaced");
  BOOST_TEST(resolved(mapper, "ct") == "stable.example.com/v1 crontabs CronTab namespaced");
  BOOST_TEST(resolved(mapper, "crontab.stable.example.com") == "stable.example.com/v1 crontabs CronTab namespaced");
  BOOST_TEST(discovery.stats().fetches == after);  // found in the cache
  const auto* crontabs = discovery.cached()->find("stable.example.com", "v1", "crontabs");
  BOOST_TEST_REQUIRE(crontabs != nullptr);
  BOOST_TEST(crontabs->singular == "crontab");
}

BOOST_AUTO_TEST_CASE(an_unavailable_aggregated_api_is_reported) {
  io_threads io;
  auto http = make_http(io);
  discovery_client discovery(http);
  rest_mapper mapper(discovery);
  // An APIService whose backing service does not exist: its group-version answers 503.
  rest_client api_services(http, ok(wait(mapper.async_resolve("apiservices", asio::use_future))).res);
  ok(wait(api_services.async_create(json::parse(R"({
    "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
    "metadata": {"name": "v1beta1.metrics.example.com"},
    "spec": {"group": "metrics.example.com", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
             "insecureSkipTLSVerify": true, "service": {"namespace": "default", "name": "nowhere", "port": 443}}
  })"),
                                    {}, asio::use_future)));
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  discovery_client::snapshot_ptr snap;
  for (;;) {
    snap = ok(wait(discovery.async_refresh(asio::use_future)));
    // The aggregator lists the APIService a moment before it proxies to it (404 meanwhile).
    if (!snap->failures.empty() && snap->failures[0].error.code() != make_error_code(errc::not_found)) break;
    BOOST_TEST_REQUIRE((std::chrono::steady_clock::now() < deadline), "no group-version failed");
    std::this_thread::sleep_for(200ms);
  }
  BOOST_TEST_REQUIRE(snap->failures.size() == 1u);
  BOOST_TEST_MESSAGE("failed group-version: " << snap->failures[0].error.what());
  BOOST_TEST(snap->failures[0].group_version == "metrics.example.com/v1beta1");
  BOOST_TEST(snap->failures[0].error.code() == make_error_code(errc::server_error), snap->failures[0].error.what());
  BOOST_TEST(resolved(mapper, "deploy") == "apps/v1 deployments Deployment namespaced");
  BOOST_TEST(resolved(mapper, "po") == "v1 pods Pod namespaced");
}

BOOST_AUTO_TEST_SUITE_END()
