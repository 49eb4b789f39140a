#include "informer/apiserver/discovery.hpp"

#include <boost/test/unit_test.hpp>

#include "https_server.hpp"
#include "io_threads.hpp"
#include "loopback_port.hpp"
#include "informer/apiserver/rest_client.hpp"
#include "informer/apiserver/rest_mapper.hpp"

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;
using informer::discovery_client;
using informer::errc;
using informer::rest_mapper;
using informer::testing::https_server;
using informer::testing::io_threads;

namespace {

json::object group(std::string_view name, std::vector<std::string_view> versions, std::string_view preferred) {
  json::array vs;
  for (const auto v : versions) {
    vs.push_back({{"groupVersion", std::string{name} + "/" + std::string{v}}, {"version", v}});
  }
  return {{"name", name},
          {"versions", std::move(vs)},
          {"preferredVersion",
           {{"groupVersion", std::string{name} + "/" + std::string{preferred}}, {"version", preferred}}}};
}

json::object res(std::string_view name, std::string_view kind, bool namespaced, json::array short_names = {}) {
  json::object o{{"name", name},
                 {"singularName", ""},
                 {"namespaced", namespaced},
                 {"kind", kind},
                 {"verbs", json::array{"create", "delete", "get", "list", "watch"}}};
  if (!short_names.empty()) o["shortNames"] = std::move(short_names);
  return o;
}

std::string resource_list(std::string_view group_version, json::array resources) {
  return json::serialize(json::object{{"kind", "APIResourceList"},
                                      {"apiVersion", "v1"},
                                      {"groupVersion", group_version},
                                      {"resources", std::move(resources)}});
}

// What a recent server (1.21+) announces: batch/v1 CronJobs next to batch/v1beta1 ones,
// policy/v1 evictions; plus an aggregated API that is down and a custom group whose two resources
// share a short name. `with_crontabs` adds a custom resource, as a CRD created later would.
class scripted_cluster {
public:
  scripted_cluster()
      : server_([this](const https_server::request& req) { return respond(std::string{req.target()}); }) {}

  https_server& server() { return server_; }
  void add_crontabs() { with_crontabs_ = true; }
  int count(std::string_view request) const {
    const auto seen = server_.requests();
    return static_cast<int>(std::count(seen.begin(), seen.end(), request));
  }

private:
  https_server::response respond(const std::string& target) {
    auto ok = [](std::string body) { return https_server::answer(http::status::ok, std::move(body)); };
    if (target == "/api") return ok(R"({"kind":"APIVersions","versions":["v1"]})");
    if (target == "/apis") {
      json::array groups{group("apps", {"v1"}, "v1"),
                         group("events.k8s.io", {"v1", "v1beta1"}, "v1"),
                         group("batch", {"v1beta1", "v1"}, "v1"),  // listed second, yet preferred
                         group("policy", {"v1", "v1beta1"}, "v1"),
                         group("metrics.k8s.io", {"v1beta1"}, "v1beta1"),
                         group("example.com", {"v1"}, "v1")};
      if (with_crontabs_) groups.push_back(group("stable.example.com", {"v1"}, "v1"));
      return ok(json::serialize(json::object{{"kind", "APIGroupList"}, {"groups", std::move(groups)}}));
    }
    static const std::map<std::string, std::string> lists{
        {"/api/v1", resource_list("v1", {res("pods", "Pod", true, {"po"}),
                                         {{"name", "pods/eviction"},
                                          {"singularName", ""},
                                          {"namespaced", true},
                                          {"group", "policy"},
                                          {"version", "v1"},
                                          {"kind", "Eviction"},
                                          {"verbs", json::array{"create"}}},
                                         res("pods/status", "Pod", true),
                                         res("events", "Event", true, {"ev"}),
                                         res("namespaces", "Namespace", false, {"ns"})})},
        {"/apis/apps/v1", resource_list("apps/v1", {res("deployments", "Deployment", true, {"deploy"}),
                                                    res("deployments/scale", "Scale", true)})},
        {"/apis/events.k8s.io/v1", resource_list("events.k8s.io/v1", {res("events", "Event", true, {"ev"})})},
        {"/apis/events.k8s.io/v1beta1", resource_list("events.k8s.io/v1beta1", {res("events", "Event", true, {"ev"})})},
        {"/apis/batch/v1",
         resource_list("batch/v1", {res("jobs", "Job", true), res("cronjobs", "CronJob", true, {"cj"})})},
        {"/apis/batch/v1beta1", resource_list("batch/v1beta1", {res("cronjobs", "CronJob", true, {"cj"})})},
        {"/apis/policy/v1",
         resource_list("policy/v1", {res("poddisruptionbudgets", "PodDisruptionBudget", true, {"pdb"})})},
        {"/apis/policy/v1beta1",
         resource_list("policy/v1beta1", {res("poddisruptionbudgets", "PodDisruptionBudget", true, {"pdb"}),
                                          res("podsecuritypolicies", "PodSecurityPolicy", false, {"psp"})})},
        {"/apis/example.com/v1", resource_list("example.com/v1", {res("widgets", "Widget", true, {"w"}),
                                                                  res("gadgets", "Gadget", true, {"w"})})},
        {"/apis/stable.example.com/v1",
         resource_list("stable.example.com/v1", {res("crontabs", "CronTab", true, {"ct"})})},
    };
    if (target == "/apis/metrics.k8s.io/v1beta1") {
      return https_server::answer(
          http::status::service_unavailable,
          R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"service unavailable","reason":"ServiceUnavailable","code":503})");
    }
    if (const auto it = lists.find(target); it != lists.end()) return ok(it->second);
    if (target.ends_with("/eviction")) {
      return https_server::answer(http::status::created,
                                  R"({"kind":"Status","apiVersion":"v1","status":"Success","code":201})");
    }
    return https_server::answer(
        http::status::not_found,
        R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404})");
  }

  std::atomic<bool> with_crontabs_{false};
  https_server server_;
};

informer::http_client make_http(io_threads& io, const informer::rest_config& config) {
  auto c = informer::http_client::create(io.ctx.get_executor(), config);
  BOOST_TEST_REQUIRE(c.has_value(), c.error().what());
  return *c;
}

template <class T>
T wait(std::future<T> f) {
  BOOST_TEST_REQUIRE((f.wait_for(30s) == std::future_status::ready), "the operation did not complete");
  return f.get();
}

discovery_client::snapshot_ptr get(const discovery_client& d) {
  auto [e, snap] = wait(d.async_get(asio::use_future));
  BOOST_TEST_REQUIRE(!e, e.what());
  BOOST_TEST_REQUIRE(snap != nullptr);
  return snap;
}

// "group/version plural" of what `text` resolves to, or the error's text.
std::string resolved(const rest_mapper& mapper, std::string_view text) {
  auto [e, r] = wait(mapper.async_resolve(text, asio::use_future));
  if (e) return "error: " + e.what();
  return r.res.api_version() + " " + r.res.plural;
}

std::string resolved(const informer::discovery_snapshot& snap, std::string_view text) {
  auto r = informer::resolve_resource(snap, text);
  if (!r) return "error: " + r.error().what();
  return r->res.api_version() + " " + r->res.plural;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

}  // namespace

BOOST_AUTO_TEST_SUITE(discovery)

BOOST_AUTO_TEST_CASE(snapshot_keeps_what_the_server_announces) {
  scripted_cluster cluster;
  io_threads io;
  discovery_client d(make_http(io, cluster.server().config()));
  const auto snap = get(d);

  std::vector<std::string> groups;
  for (const auto& g : snap->groups) groups.push_back(g.name + "@" + g.preferred_version);
  const std::vector<std::string> expected_groups{
      "@v1", "apps@v1", "events.k8s.io@v1", "batch@v1", "policy@v1", "metrics.k8s.io@v1beta1", "example.com@v1"};
  BOOST_TEST(groups == expected_groups, boost::test_tools::per_element());

  const auto* pods = snap->find("", "v1", "pods");
  BOOST_TEST_REQUIRE(pods != nullptr);
  BOOST_TEST(pods->res.kind == "Pod");
  BOOST_TEST(pods->res.namespaced);
  BOOST_TEST(pods->singular == "pod");  // guessed from the kind: the server left it empty
  BOOST_TEST(pods->short_names == std::vector<std::string>{"po"}, boost::test_tools::per_element());
  const auto* eviction = pods->subresource("eviction");
  BOOST_TEST_REQUIRE(eviction != nullptr);
  BOOST_TEST(eviction->group == "policy");
  BOOST_TEST(eviction->version == "v1");
  BOOST_TEST(eviction->kind == "Eviction");
  const auto* status = pods->subresource("status");
  BOOST_TEST_REQUIRE(status != nullptr);
  BOOST_TEST(status->version == "v1");  // the parent's group-version: the server named none
  BOOST_TEST(snap->eviction_api_version() == "policy/v1");
  BOOST_TEST(!snap->find("", "v1", "namespaces")->res.namespaced);
  BOOST_TEST(snap->find("batch", "v1", "cronjobs") != nullptr);
  BOOST_TEST(snap->find("batch", "v1beta1", "cronjobs") != nullptr);

  // The aggregated API that answers 503 is reported; every other group-version is there.
  BOOST_TEST_REQUIRE(snap->failures.size() == 1u);
  BOOST_TEST(snap->failures[0].group_version == "metrics.k8s.io/v1beta1");
  BOOST_TEST(snap->failures[0].error.code() == make_error_code(errc::server_error), snap->failures[0].error.what());
  BOOST_TEST(snap->find("example.com", "v1", "widgets") != nullptr);

  // Cached: a second get sends nothing.
  BOOST_TEST(get(d) == snap);
  BOOST_TEST(d.stats().fetches == 1u);
  BOOST_TEST(cluster.count("GET /api") == 1);
}

BOOST_AUTO_TEST_CASE(mapper_resolves_to_what_the_server_prefers) {
  scripted_cluster cluster;
  io_threads io;
  rest_mapper mapper(discovery_client(make_http(io, cluster.server().config())));
  BOOST_TEST(resolved(mapper, "cronjobs") == "batch/v1 cronjobs");  // not the built-in table's v1beta1
  BOOST_TEST(resolved(mapper, "cj") == "batch/v1 cronjobs");
  BOOST_TEST(resolved(mapper, "CronJob") == "batch/v1 cronjobs");
  BOOST_TEST(resolved(mapper, "cronjob") == "batch/v1 cronjobs");
  BOOST_TEST(resolved(mapper, "cronjobs.batch") == "batch/v1 cronjobs");
  BOOST_TEST(resolved(mapper, "cronjobs.v1beta1.batch") == "batch/v1beta1 cronjobs");
  BOOST_TEST(resolved(mapper, "batch/v1beta1/cronjobs") == "batch/v1beta1 cronjobs");
  BOOST_TEST(resolved(mapper, "pdb") == "policy/v1 poddisruptionbudgets");
  BOOST_TEST(resolved(mapper, "psp") == "policy/v1beta1 podsecuritypolicies");  // only in the other version
  BOOST_TEST(resolved(mapper, "po") == "v1 pods");
  BOOST_TEST(resolved(mapper, "Pods") == "v1 pods");
  BOOST_TEST(resolved(mapper, "v1/pods") == "v1 pods");
  BOOST_TEST(resolved(mapper, "deploy") == "apps/v1 deployments");
  BOOST_TEST(resolved(mapper, "DEPLOYMENTS.apps") == "apps/v1 deployments");
  BOOST_TEST(resolved(mapper, "deployments.v1.apps") == "apps/v1 deployments");
  // Core before any group, as kubectl: events and Event are core/v1 unless qualified.
  BOOST_TEST(resolved(mapper, "events") == "v1 events");
  BOOST_TEST(resolved(mapper, "ev") == "v1 events");
  BOOST_TEST(resolved(mapper, "Event.events.k8s.io") == "events.k8s.io/v1 events");
  BOOST_TEST(resolved(mapper, "events.v1beta1.events.k8s.io") == "events.k8s.io/v1beta1 events");
  BOOST_TEST(resolved(mapper, "widgets") == "example.com/v1 widgets");

  auto [ae, a] = wait(mapper.async_resolve("w", asio::use_future));
  BOOST_TEST_MESSAGE("ambiguous: " << ae.what());
  BOOST_TEST(ae.code() == make_error_code(errc::invalid_argument));
  BOOST_TEST(contains(ae.detail(), "\"w\" is ambiguous"), ae.detail());
  BOOST_TEST(contains(ae.detail(), "example.com/v1 widgets (Widget)"), ae.detail());
  BOOST_TEST(contains(ae.detail(), "example.com/v1 gadgets (Gadget)"), ae.detail());

  auto [ne, n] = wait(mapper.async_resolve("flying-saucers", asio::use_future));
  BOOST_TEST(ne.code() == make_error_code(errc::not_found));
  BOOST_TEST(contains(ne.detail(), "\"flying-saucers\""), ne.detail());
  BOOST_TEST(contains(resolved(mapper, "cronjobs.v2.batch"), "not served"));
  for (const auto* bad : {"", "a/b/c/d", "apps//deployments", ".apps", "deployments."}) {
    auto [be, b] = wait(mapper.async_resolve(bad, asio::use_future));
    BOOST_TEST(be.code() == make_error_code(errc::invalid_argument), "\"" << bad << "\": " << be.what());
  }
  BOOST_TEST(mapper.fallbacks() == 0u);
}

BOOST_AUTO_TEST_CASE(eviction_uses_the_version_the_server_offers) {
  scripted_cluster cluster;
  io_threads io;
  auto http = make_http(io, cluster.server().config());
  const auto snap = get(discovery_client(http));
  const auto pods = snap->find("", "v1", "pods")->res;

  informer::rest_client told(http, pods, "default", {.eviction_api_version = snap->eviction_api_version()});
  auto [e, st] = wait(told.async_evict("web-1", {}, asio::use_future));
  BOOST_TEST_REQUIRE(!e, e.what());
  informer::rest_client untold(http, pods, "default");
  auto [e2, st2] = wait(untold.async_evict("web-2", {}, asio::use_future));
  BOOST_TEST_REQUIRE(!e2, e2.what());

  const auto bodies = cluster.server().bodies();
  const auto requests = cluster.server().requests();
  BOOST_TEST_REQUIRE(bodies.size() >= 2u);
  BOOST_TEST(requests[requests.size() - 2] == "POST /api/v1/namespaces/default/pods/web-1/eviction");
  const auto first = json::parse(bodies[bodies.size() - 2]);
  BOOST_TEST(first.at("apiVersion").as_string() == "policy/v1");
  BOOST_TEST(first.at("kind").as_string() == "Eviction");
  BOOST_TEST(first.at("metadata").at("name").as_string() == "web-1");
  BOOST_TEST(json::parse(bodies.back()).at("apiVersion").as_string() == "policy/v1beta1");  // today's default
}

BOOST_AUTO_TEST_CASE(a_miss_refreshes_once_per_interval) {
  scripted_cluster cluster;
  io_threads io;
  discovery_client discovery(make_http(io, cluster.server().config()), {.min_refresh_interval = 1s});
  rest_mapper mapper(discovery);
  const auto started = std::chrono::steady_clock::now();
  BOOST_TEST(contains(resolved(mapper, "crontabs"), "not served"));
  BOOST_TEST(discovery.stats().fetches == 1u);  // the first fetch; the miss right after it is not repeated

  cluster.add_crontabs();  // a CRD established meanwhile
  BOOST_TEST(contains(resolved(mapper, "ct"), "not served"));
  if (std::chrono::steady_clock::now() - started < 900ms) {
    BOOST_TEST(discovery.stats().fetches == 1u);  // rate-limited
  }
  std::this_thread::sleep_until(started + 1100ms);
  BOOST_TEST(resolved(mapper, "ct") == "stable.example.com/v1 crontabs");  // the miss refreshed
  BOOST_TEST(discovery.stats().fetches == 2u);
  BOOST_TEST(resolved(mapper, "CronTab") == "stable.example.com/v1 crontabs");
  BOOST_TEST(resolved(mapper, "crontabs") == "stable.example.com/v1 crontabs");
  BOOST_TEST(discovery.stats().fetches == 2u);  // hits send nothing

  // On demand: invalidate drops the cache, refresh fetches at once.
  discovery.invalidate();
  BOOST_TEST(discovery.cached() == nullptr);
  BOOST_TEST(resolved(mapper, "pods") == "v1 pods");
  BOOST_TEST(discovery.stats().fetches == 3u);
  auto [re, fresh] = wait(discovery.async_refresh(asio::use_future));
  BOOST_TEST(!re, re.what());
  BOOST_TEST(fresh == discovery.cached());
  BOOST_TEST(discovery.stats().fetches == 4u);
}

BOOST_AUTO_TEST_CASE(concurrent_callers_share_one_fetch) {
  scripted_cluster cluster;
  io_threads io;
  discovery_client discovery(make_http(io, cluster.server().config()));
  std::vector<std::future<std::tuple<informer::error, discovery_client::snapshot_ptr>>> pending;
  for (int i = 0; i < 4; ++i) pending.push_back(discovery.async_get(asio::use_future));
  discovery_client::snapshot_ptr first;
  for (auto& f : pending) {
    auto [e, snap] = wait(std::move(f));
    BOOST_TEST_REQUIRE(!e, e.what());
    if (!first) first = snap;
    BOOST_TEST(snap == first);
  }
  BOOST_TEST(discovery.stats().fetches == 1u);
  BOOST_TEST(cluster.count("GET /apis/apps/v1") == 1);
}

BOOST_AUTO_TEST_CASE(offline_falls_back_to_the_builtin_table) {
  loopback_port refused(false);
  io_threads io;
  auto http = make_http(io, informer::rest_config{.server = "https://" + refused.endpoint().substr(7),
                                                  .tls = {.insecure_skip_tls_verify = true},
                                                  .qps = 0});
  rest_mapper mapper{discovery_client(http)};
  BOOST_TEST(resolved(mapper, "deployments.apps") == "apps/v1 deployments");
  BOOST_TEST(resolved(mapper, "cronjobs") == "batch/v1beta1 cronjobs");  // 1.20's, as parse_resource
  BOOST_TEST(resolved(mapper, "Pod") == "v1 pods");
  BOOST_TEST(mapper.fallbacks() == 3u);
  auto [e, r] = wait(mapper.async_resolve("deploy", asio::use_future));  // no short names offline
  BOOST_TEST_MESSAGE("offline, unknown: " << e.what());
  BOOST_TEST(e.code() == make_error_code(asio::error::connection_refused), e.what());
  BOOST_TEST(contains(e.detail(), "built-in table does not resolve it"), e.detail());

  rest_mapper strict{discovery_client(http), {.builtin_fallback = false}};
  auto [se, sr] = wait(strict.async_resolve("pods", asio::use_future));
  BOOST_TEST(se.code() == make_error_code(asio::error::connection_refused), se.what());
}

BOOST_AUTO_TEST_CASE(builtin_snapshot_mirrors_parse_resource) {
  const auto builtin = informer::builtin_discovery_snapshot();
  for (const auto& r : informer::builtin_resources()) {
    auto found = informer::resolve_resource(*builtin, r.group.empty() ? r.plural : r.plural + "." + r.group);
    BOOST_TEST_REQUIRE(found.has_value(), r.plural << ": " << found.error().what());
    BOOST_TEST((found->res == r), r.plural);
    BOOST_TEST((found->res == informer::parse_resource(r.plural).value()), r.plural);
  }
  BOOST_TEST(resolved(*builtin, "events") == "v1 events");
  BOOST_TEST(resolved(*builtin, "Deployment") == "apps/v1 deployments");
  BOOST_TEST(builtin->eviction_api_version() == "policy/v1beta1");
}

BOOST_AUTO_TEST_SUITE_END()
