#include "informer/apiserver/rest_client.hpp"

#include <boost/test/unit_test.hpp>

#include "control_plane.hpp"
#include "shared_control_plane.hpp"
#include "io_threads.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using informer::errc;
using informer::object;
using informer::patch_type;
using informer::rest_client;
using informer::rest_config;
using informer::testing::cluster;
using informer::testing::cluster_fixture;
using informer::testing::cluster_running;
using informer::testing::control_plane;

namespace {

// An io_context run by two threads, so that concurrent operations really overlap.
using informer::testing::io_threads;

rest_config config_with_token(std::string token) {
  return rest_config{.server = cluster->apiserver_url(),
                     .tls = {.ca_file = cluster->ca_file()},
                     .bearer_token = std::move(token),
                     .qps = 0};
}

informer::http_client make_http(io_threads& io, std::string token = cluster->admin_token()) {
  auto c = informer::http_client::create(io.ctx.get_executor(), config_with_token(std::move(token)));
  BOOST_TEST_REQUIRE(c.has_value(), "http_client::create failed: " << c.error().what());
  return *c;
}

informer::resource res(std::string_view name) { return informer::parse_resource(name).value(); }

// Waits for a use_future operation and returns its (error, value) tuple.
template <class T>
T wait(std::future<T> f) {
  BOOST_TEST_REQUIRE((f.wait_for(60s) == std::future_status::ready), "the operation did not complete");
  return f.get();
}

// Fails the test with the error's text unless the operation succeeded; returns the value.
template <class T>
T ok(std::tuple<informer::error, T> r) {
  auto& [e, value] = r;
  BOOST_TEST_REQUIRE(!e, e.what());
  return std::move(value);
}

errc code_of(const informer::error& e) { return static_cast<errc>(e.code().value()); }

std::string str(const std::optional<json::value>& v) {
  return v && v->is_string() ? std::string{v->get_string()} : std::string{"<absent>"};
}

std::int64_t num(const std::optional<json::value>& v) { return v && v->is_int64() ? v->get_int64() : -1; }

bool has_finalizer(const object& o, std::string_view f) {
  return std::ranges::find(o.finalizers(), f) != o.finalizers().end();
}

// A fresh namespace per test case keeps names and lists apart.
std::string fresh_namespace(informer::http_client& http) {
  static std::atomic<int> n{0};
  const std::string name = "rest-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  rest_client namespaces(http, res("namespaces"));
  ok(wait(namespaces.async_create(
      json::value{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}}, {}, asio::use_future)));
  return name;
}

json::value config_map(std::string_view name, json::object data, json::object labels = {}) {
  return json::value{{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", {{"name", name}, {"labels", std::move(labels)}}},
                     {"data", std::move(data)}};
}

json::value container(std::string_view name, std::string_view image) { return {{"name", name}, {"image", image}}; }

json::value deployment(std::string_view name, std::int64_t replicas, json::array containers) {
  return json::value{
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata", {{"name", name}}},
      {"spec",
       {{"replicas", replicas},
        {"selector", {{"matchLabels", {{"app", name}}}}},
        {"template",
         {{"metadata", {{"labels", {{"app", name}}}}}, {"spec", {{"containers", std::move(containers)}}}}}}}};
}

json::value pod(std::string_view name, json::object labels = {}) {
  return json::value{{"apiVersion", "v1"},
                     {"kind", "Pod"},
                     {"metadata", {{"name", name}, {"labels", std::move(labels)}}},
                     {"spec", {{"containers", json::array{container("main", "busybox")}}}}};
}

// Sets the member at `path` (objects created as needed).
void set(json::value& body, std::initializer_list<std::string_view> path, json::value v) {
  json::value* at = &body;
  for (const auto key : path) {
    if (!at->is_object()) at->emplace_object();
    at = &at->get_object()[key];
  }
  *at = std::move(v);
}

// The body of `o` with one member set.
json::value edited(const object& o, std::initializer_list<std::string_view> path, json::value v) {
  auto body = o.body();
  set(body, path, std::move(v));
  return body;
}

std::vector<std::string> names_of(const informer::object_list& list) {
  std::vector<std::string> names;
  for (const auto& item : list.items) names.emplace_back(item->name());
  std::ranges::sort(names);
  return names;
}

}  // namespace

// No controller manager and no scheduler run: nothing but this file's requests changes the objects.
BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

BOOST_AUTO_TEST_SUITE(rest_client_suite, *boost::unit_test::precondition(cluster_running))

BOOST_AUTO_TEST_CASE(config_map_create_get_list_update_delete) {
  io_threads io;
  auto http = make_http(io);
  rest_client cms(http, res("configmaps"), fresh_namespace(http));

  auto created = ok(wait(cms.async_create(config_map("one", {{"a", "1"}}, {{"tier", "x"}}), {}, asio::use_future)));
  BOOST_TEST(created->name() == "one");
  BOOST_TEST(created->ns() == cms.ns());
  BOOST_TEST(!created->uid().empty());
  BOOST_TEST(str(created->field("data.a")) == "1");

  auto [dup, none] = wait(cms.async_create(config_map("one", {}), {}, asio::use_future));
  BOOST_TEST((code_of(dup) == errc::conflict), dup.what());
  BOOST_TEST(dup.detail().find("AlreadyExists") != std::string::npos, dup.detail());

  auto got = ok(wait(cms.async_get("one", {}, asio::use_future)));
  BOOST_TEST(got->uid() == created->uid());
  BOOST_TEST(got->resource_version() == created->resource_version());

  // Labels select; a page of one carries a continue token that leads to the rest.
  ok(wait(cms.async_create(config_map("two", {{"b", "2"}}, {{"tier", "x"}}), {}, asio::use_future)));
  ok(wait(cms.async_create(config_map("three", {{"c", "3"}}, {{"tier", "y"}}), {}, asio::use_future)));
  auto selected = ok(wait(cms.async_list({.label_selector = "tier=x"}, asio::use_future)));
  BOOST_TEST(names_of(selected) == (std::vector<std::string>{"one", "two"}), boost::test_tools::per_element());
  BOOST_TEST(!selected.resource_version.empty());
  for (const auto& item : selected.items) {
    BOOST_TEST(item->kind() == "ConfigMap");
    BOOST_TEST(item->api_version() == "v1");
  }
  auto first = ok(wait(cms.async_list({.limit = 2}, asio::use_future)));
  BOOST_TEST(first.items.size() == 2u);
  BOOST_TEST(!first.continue_token.empty());
  auto rest = ok(wait(cms.async_list({.limit = 2, .continue_token = first.continue_token}, asio::use_future)));
  BOOST_TEST(rest.continue_token.empty());
  first.items.insert(first.items.end(), rest.items.begin(), rest.items.end());
  BOOST_TEST(names_of(first) == (std::vector<std::string>{"one", "three", "two"}), boost::test_tools::per_element());

  // An update moves the version on; the old version is then stale and refused.
  auto updated = ok(wait(cms.async_update(edited(*got, {"data", "a"}, "10"), {}, asio::use_future)));
  BOOST_TEST(str(updated->field("data.a")) == "10");
  BOOST_TEST(updated->resource_version() != got->resource_version());
  auto [stale, nothing] = wait(cms.async_update(edited(*got, {"data", "a"}, "stale"), {}, asio::use_future));
  BOOST_TEST((code_of(stale) == errc::conflict), stale.what());
  BOOST_TEST(str(ok(wait(cms.async_get("one", {}, asio::use_future)))->field("data.a")) == "10");

  // A dry-run write is answered but not stored.
  auto dry = ok(wait(cms.async_update(edited(*updated, {"data", "a"}, "dry"), {.dry_run = true}, asio::use_future)));
  BOOST_TEST(str(dry->field("data.a")) == "dry");
  BOOST_TEST(str(ok(wait(cms.async_get("one", {}, asio::use_future)))->field("data.a")) == "10");

  // ConfigMaps answer a delete with a Status.
  auto deleted = ok(wait(cms.async_delete("one", {}, asio::use_future)));
  BOOST_TEST(!deleted.object);
  BOOST_TEST(deleted.status.code == 200);
  BOOST_TEST(deleted.status.details.as_object().at("uid").as_string() == created->uid());
  auto [gone, missing] = wait(cms.async_get("one", {}, asio::use_future));
  BOOST_TEST((code_of(gone) == errc::not_found), gone.what());
  BOOST_TEST(!missing);
  auto [again, nothing2] = wait(cms.async_delete("one", {}, asio::use_future));
  BOOST_TEST((code_of(again) == errc::not_found), again.what());
}

BOOST_AUTO_TEST_CASE(deployment_update_and_status_subresource) {
  io_threads io;
  auto http = make_http(io);
  rest_client deploys(http, res("deployments"), fresh_namespace(http));

  auto created = ok(wait(deploys.async_create(deployment("web", 1, {container("web", "nginx:1")}),
                                              {.field_manager = "tests"}, asio::use_future)));
  BOOST_TEST(created->kind() == "Deployment");
  BOOST_TEST(created->generation() == 1);
  BOOST_TEST(created->to_json().find("\"manager\":\"tests\"") != std::string::npos);
  auto listed = ok(wait(deploys.async_list({}, asio::use_future)));
  BOOST_TEST_REQUIRE(listed.items.size() == 1u);
  BOOST_TEST(listed.items[0]->api_version() == "apps/v1");
  BOOST_TEST(listed.items[0]->kind() == "Deployment");
  BOOST_TEST(listed.items[0]->uid() == created->uid());

  // A spec change bumps the generation; a status change through the main resource is dropped.
  auto body = edited(*created, {"spec", "replicas"}, 2);
  set(body, {"status", "replicas"}, 5);
  auto updated = ok(wait(deploys.async_update(body, {}, asio::use_future)));
  BOOST_TEST(updated->generation() == 2);
  BOOST_TEST(num(updated->field("spec.replicas")) == 2);
  BOOST_TEST(num(updated->field("status.replicas")) == -1);

  // Through the status subresource it is the other way round.
  auto status_body = edited(*updated, {"spec", "replicas"}, 9);
  set(status_body, {"status", "replicas"}, 7);
  auto with_status = ok(wait(deploys.async_update_status(status_body, {}, asio::use_future)));
  BOOST_TEST(num(with_status->field("status.replicas")) == 7);
  BOOST_TEST(num(with_status->field("spec.replicas")) == 2);
  BOOST_TEST(with_status->generation() == 2);
  auto stored = ok(wait(deploys.async_get("web", {}, asio::use_future)));
  BOOST_TEST(num(stored->field("status.replicas")) == 7);
  BOOST_TEST(num(stored->field("spec.replicas")) == 2);

  // Status updates are optimistic too.
  auto [stale, none] =
      wait(deploys.async_update_status(edited(*updated, {"status", "replicas"}, 1), {}, asio::use_future));
  BOOST_TEST((code_of(stale) == errc::conflict), stale.what());

  // patch_status: a merge patch of status leaves the spec alone.
  auto patched = ok(wait(deploys.async_patch_status("web", patch_type::merge_patch,
                                                    R"({"spec":{"replicas":4},"status":{"readyReplicas":3}})", {},
                                                    asio::use_future)));
  BOOST_TEST(num(patched->field("status.readyReplicas")) == 3);
  BOOST_TEST(num(patched->field("spec.replicas")) == 2);
}

BOOST_AUTO_TEST_CASE(pod_status_update_leaves_spec) {
  io_threads io;
  auto http = make_http(io);
  rest_client pods(http, res("pods"), fresh_namespace(http));
  auto created = ok(wait(pods.async_create(pod("p"), {}, asio::use_future)));
  BOOST_TEST(str(created->field("status.phase")) == "Pending");

  auto body = edited(*created, {"status", "phase"}, "Running");
  set(body, {"spec", "activeDeadlineSeconds"}, 30);
  auto running = ok(wait(pods.async_update_status(body, {}, asio::use_future)));
  BOOST_TEST(str(running->field("status.phase")) == "Running");
  BOOST_TEST(!running->field("spec.activeDeadlineSeconds").has_value());
}

BOOST_AUTO_TEST_CASE(the_four_patch_kinds) {
  io_threads io;
  auto http = make_http(io);
  const auto ns = fresh_namespace(http);
  rest_client cms(http, res("configmaps"), ns);
  rest_client deploys(http, res("deployments"), ns);
  ok(wait(cms.async_create(config_map("cm", {{"a", "1"}, {"b", "2"}}), {}, asio::use_future)));

  // JSON merge patch: null removes a key, others are set.
  auto merged =
      ok(wait(cms.async_patch("cm", patch_type::merge_patch, R"({"data":{"a":null,"c":"3"}})", {}, asio::use_future)));
  BOOST_TEST(str(merged->field("data.a")) == "<absent>");
  BOOST_TEST(str(merged->field("data.b")) == "2");
  BOOST_TEST(str(merged->field("data.c")) == "3");

  // JSON patch: operations in order; a failing test operation rejects the whole patch.
  auto json_patched = ok(wait(
      cms.async_patch("cm", patch_type::json_patch,
                      R"([{"op":"test","path":"/data/b","value":"2"},{"op":"replace","path":"/data/b","value":"20"},)"
                      R"({"op":"add","path":"/data/d","value":"4"}])",
                      {}, asio::use_future)));
  BOOST_TEST(str(json_patched->field("data.b")) == "20");
  BOOST_TEST(str(json_patched->field("data.d")) == "4");
  auto [failed, none] = wait(
      cms.async_patch("cm", patch_type::json_patch,
                      R"([{"op":"replace","path":"/data/c","value":"x"},{"op":"test","path":"/data/b","value":"2"}])",
                      {}, asio::use_future));
  BOOST_TEST((code_of(failed) == errc::invalid), failed.what());
  BOOST_TEST(str(ok(wait(cms.async_get("cm", {}, asio::use_future)))->field("data.c")) == "3");

  // Strategic merge patch merges the containers list by name; a merge patch replaces the list.
  const json::array two{container("web", "nginx:1"), container("sidecar", "envoy:1")};
  ok(wait(deploys.async_create(deployment("smp", 1, two), {}, asio::use_future)));
  ok(wait(deploys.async_create(deployment("mp", 1, two), {}, asio::use_future)));
  const std::string new_web = R"({"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:2"}]}}}})";
  auto smp = ok(wait(deploys.async_patch("smp", patch_type::strategic_merge_patch, new_web, {}, asio::use_future)));
  auto mp = ok(wait(deploys.async_patch("mp", patch_type::merge_patch, new_web, {}, asio::use_future)));
  BOOST_TEST(str(smp->field("spec.template.spec.containers.0.image")) == "nginx:2");
  BOOST_TEST(str(smp->field("spec.template.spec.containers.1.name")) == "sidecar");
  BOOST_TEST(str(mp->field("spec.template.spec.containers.0.image")) == "nginx:2");
  BOOST_TEST(!mp->field("spec.template.spec.containers.1").has_value());

  // Server-side apply: creates, then refuses to take over another manager's field unless forced.
  const auto applied_by = [](std::string_view value) {
    return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"applied"},"data":{"x":")" + std::string{value} +
           R"("}})";
  };
  auto applied = ok(wait(
      cms.async_patch("applied", patch_type::apply, applied_by("1"), {.field_manager = "alice"}, asio::use_future)));
  BOOST_TEST(str(applied->field("data.x")) == "1");
  auto [clash, nothing] =
      wait(cms.async_patch("applied", patch_type::apply, applied_by("2"), {.field_manager = "bob"}, asio::use_future));
  BOOST_TEST((code_of(clash) == errc::conflict), clash.what());
  BOOST_TEST(clash.detail().find("alice") != std::string::npos, clash.detail());
  auto forced = ok(wait(cms.async_patch("applied", patch_type::apply, applied_by("2"),
                                        {.field_manager = "bob", .force = true}, asio::use_future)));
  BOOST_TEST(str(forced->field("data.x")) == "2");
  // The same value again is no conflict: alice lost ownership of data.x to bob.
  auto [second_clash, nothing2] = wait(
      cms.async_patch("applied", patch_type::apply, applied_by("3"), {.field_manager = "alice"}, asio::use_future));
  BOOST_TEST((code_of(second_clash) == errc::conflict), second_clash.what());
  BOOST_TEST(second_clash.detail().find("bob") != std::string::npos, second_clash.detail());

  // Apply needs a field manager; force is for apply only.
  auto [no_manager, n1] = wait(cms.async_patch("applied", patch_type::apply, applied_by("4"), {}, asio::use_future));
  BOOST_TEST((code_of(no_manager) == errc::invalid), no_manager.what());
  auto [bad_force, n2] =
      wait(cms.async_patch("cm", patch_type::merge_patch, R"({"data":{"e":"5"}})", {.force = true}, asio::use_future));
  BOOST_TEST((code_of(bad_force) == errc::invalid), bad_force.what());

  // A dry-run patch is answered, not stored.
  auto dry = ok(wait(
      cms.async_patch("cm", patch_type::merge_patch, R"({"data":{"b":"dry"}})", {.dry_run = true}, asio::use_future)));
  BOOST_TEST(str(dry->field("data.b")) == "dry");
  BOOST_TEST(str(ok(wait(cms.async_get("cm", {}, asio::use_future)))->field("data.b")) == "20");
}

BOOST_AUTO_TEST_CASE(delete_preconditions_and_propagation) {
  io_threads io;
  auto http = make_http(io);
  const auto ns = fresh_namespace(http);
  rest_client cms(http, res("configmaps"), ns);
  rest_client deploys(http, res("deployments"), ns);

  auto cm = ok(wait(cms.async_create(config_map("cm", {{"a", "1"}}), {}, asio::use_future)));
  auto [wrong_uid, n1] =
      wait(cms.async_delete("cm", {.uid = "00000000-0000-0000-0000-000000000000"}, asio::use_future));
  BOOST_TEST((code_of(wrong_uid) == errc::conflict), wrong_uid.what());
  auto [wrong_rv, n2] = wait(cms.async_delete("cm", {.resource_version = "1"}, asio::use_future));
  BOOST_TEST((code_of(wrong_rv) == errc::conflict), wrong_rv.what());
  auto [dry_e, dry] = wait(cms.async_delete("cm", {.dry_run = true}, asio::use_future));
  BOOST_TEST(!dry_e, dry_e.what());
  BOOST_TEST(ok(wait(cms.async_get("cm", {}, asio::use_future)))->uid() == cm->uid());
  auto deleted = ok(wait(
      cms.async_delete("cm", {.uid = std::string{cm->uid()}, .resource_version = std::string{cm->resource_version()}},
                       asio::use_future)));
  BOOST_TEST(deleted.status.reason.empty());
  BOOST_TEST(deleted.status.code == 200);

  // No garbage collector runs here, so the finalizers that foreground and orphan deletion add
  // stay, and the object with them: the delete answers with the object, marked for deletion.
  for (const auto& [name, policy, finalizer] :
       {std::tuple{"fg", informer::propagation_policy::foreground, "foregroundDeletion"},
        std::tuple{"orphan", informer::propagation_policy::orphan, "orphan"}}) {
    ok(wait(deploys.async_create(deployment(name, 1, {container("c", "nginx")}), {}, asio::use_future)));
    auto marked = ok(wait(deploys.async_delete(name, {.propagation = policy}, asio::use_future)));
    BOOST_TEST_REQUIRE(marked.object);
    BOOST_TEST(!marked.object->deletion_timestamp().empty());
    BOOST_TEST(has_finalizer(*marked.object, finalizer), name);
    auto still = ok(wait(deploys.async_get(name, {}, asio::use_future)));
    BOOST_TEST(has_finalizer(*still, finalizer));
  }
  ok(wait(deploys.async_create(deployment("bg", 1, {container("c", "nginx")}), {}, asio::use_future)));
  auto bg =
      ok(wait(deploys.async_delete("bg", {.propagation = informer::propagation_policy::background}, asio::use_future)));
  BOOST_TEST(!bg.object);
  auto [gone, none] = wait(deploys.async_get("bg", {}, asio::use_future));
  BOOST_TEST((code_of(gone) == errc::not_found), gone.what());
}

BOOST_AUTO_TEST_CASE(binding_assigns_a_pod_to_a_node_and_grace_period_applies) {
  io_threads io;
  auto http = make_http(io);
  rest_client pods(http, res("pods"), fresh_namespace(http));
  rest_client nodes(http, res("nodes"));
  const std::string node = "node-" + pods.ns();
  ok(wait(nodes.async_create(json::value{{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", node}}}}, {},
                             asio::use_future)));
  ok(wait(pods.async_create(pod("p"), {}, asio::use_future)));

  auto dry = ok(wait(pods.async_bind("p", node, {.dry_run = true}, asio::use_future)));
  BOOST_TEST(dry.code == 201);
  BOOST_TEST(str(ok(wait(pods.async_get("p", {}, asio::use_future)))->field("spec.nodeName")) == "<absent>");

  auto bound = ok(wait(pods.async_bind("p", node, {}, asio::use_future)));
  BOOST_TEST(bound.code == 201);
  auto p = ok(wait(pods.async_get("p", {}, asio::use_future)));
  BOOST_TEST(str(p->field("spec.nodeName")) == node);
  auto [rebind, none] = wait(pods.async_bind("p", "elsewhere", {}, asio::use_future));
  BOOST_TEST((code_of(rebind) == errc::conflict), rebind.what());

  // A bound pod waits for its kubelet (there is none) through the grace period; 0 deletes at once.
  auto graceful = ok(wait(pods.async_delete("p", {}, asio::use_future)));
  BOOST_TEST_REQUIRE(graceful.object);
  BOOST_TEST(!graceful.object->deletion_timestamp().empty());
  BOOST_TEST(ok(wait(pods.async_get("p", {}, asio::use_future)))->uid() == p->uid());
  auto now = ok(wait(pods.async_delete("p", {.grace_period_seconds = 0}, asio::use_future)));
  BOOST_TEST_REQUIRE(now.object);  // pods answer a delete with the pod
  auto [gone, missing] = wait(pods.async_get("p", {}, asio::use_future));
  BOOST_TEST((code_of(gone) == errc::not_found), gone.what());
}

BOOST_AUTO_TEST_CASE(eviction_and_disruption_budget) {
  io_threads io;
  auto http = make_http(io);
  const auto ns = fresh_namespace(http);
  rest_client pods(http, res("pods"), ns);
  rest_client budgets(http, res("poddisruptionbudgets"), ns);

  // Without a budget the pod is evicted (deleted).
  ok(wait(pods.async_create(pod("free", {{"app", "free"}}), {}, asio::use_future)));
  auto evicted = ok(wait(pods.async_evict("free", {}, asio::use_future)));
  BOOST_TEST(evicted.code == 201);
  auto [gone, none] = wait(pods.async_get("free", {}, asio::use_future));
  BOOST_TEST((code_of(gone) == errc::not_found), gone.what());

  // A running, ready pod under a budget that allows no disruption (minAvailable 1 of 1) stays. The budget
  // gets the status its controller would compute, since none runs here.
  auto guarded = ok(wait(pods.async_create(pod("guarded", {{"app", "guarded"}}), {}, asio::use_future)));
  auto ready = edited(*guarded, {"status", "phase"}, "Running");
  set(ready, {"status", "conditions"}, json::array{{{"type", "Ready"}, {"status", "True"}}});
  ok(wait(pods.async_update_status(ready, {}, asio::use_future)));
  auto pdb = ok(wait(budgets.async_create(
      json::value{{"apiVersion", "policy/v1beta1"},
                  {"kind", "PodDisruptionBudget"},
                  {"metadata", {{"name", "keep-one"}}},
                  {"spec", {{"minAvailable", 1}, {"selector", {{"matchLabels", {{"app", "guarded"}}}}}}}},
      {}, asio::use_future)));
  ok(wait(budgets.async_patch_status(
      "keep-one", patch_type::merge_patch,
      R"({"status":{"observedGeneration":)" + std::to_string(pdb->generation()) +
          R"(,"disruptionsAllowed":0,"currentHealthy":1,"desiredHealthy":1,"expectedPods":1}})",
      {}, asio::use_future)));

  const auto before = http.stats();
  const auto started = std::chrono::steady_clock::now();
  auto [refused, nothing] = wait(pods.async_evict("guarded", {}, asio::use_future));
  BOOST_TEST((code_of(refused) == errc::too_many_requests), refused.what());
  BOOST_TEST(refused.detail().find("disruption budget") != std::string::npos, refused.detail());
  // Answered at once: a budget's 429 is not throttling to wait out.
  BOOST_TEST(http.stats().retries_after_429 == before.retries_after_429);
  BOOST_TEST((std::chrono::steady_clock::now() - started < 5s));
  BOOST_TEST(ok(wait(pods.async_get("guarded", {}, asio::use_future)))->uid() == guarded->uid());

  // Once the budget allows a disruption, a dry run passes and leaves the pod; the real one evicts.
  ok(wait(budgets.async_patch_status("keep-one", patch_type::merge_patch, R"({"status":{"disruptionsAllowed":1}})", {},
                                     asio::use_future)));
  ok(wait(pods.async_evict("guarded", {.dry_run = true}, asio::use_future)));
  BOOST_TEST(ok(wait(pods.async_get("guarded", {}, asio::use_future)))->uid() == guarded->uid());
  ok(wait(pods.async_evict("guarded", {.grace_period_seconds = 0}, asio::use_future)));
  auto [evicted_e, missing] = wait(pods.async_get("guarded", {}, asio::use_future));
  BOOST_TEST((code_of(evicted_e) == errc::not_found), evicted_e.what());
}

asio::awaitable<std::tuple<informer::error, object::ptr>> increment(rest_client cms, int steps,
                                                                    std::atomic<int>& mutations) {
  const informer::conflict_retry_options retry{.steps = steps};
  co_return co_await cms.async_retry_on_conflict(
      "counter",
      [&mutations](const object& current) -> informer::detailed_result<json::value> {
        ++mutations;
        auto body = current.body();
        const auto n = std::stoi(std::string{body.at("data").at("n").as_string()});
        body.at("data").as_object()["n"] = std::to_string(n + 1);
        return body;
      },
      retry, asio::use_awaitable);
}

BOOST_AUTO_TEST_CASE(retry_on_conflict_lands_every_concurrent_increment) {
  io_threads io;
  auto http = make_http(io);
  rest_client cms(http, res("configmaps"), fresh_namespace(http));
  ok(wait(cms.async_create(config_map("counter", {{"n", "0"}}), {}, asio::use_future)));

  // Each conflict a writer meets is another writer's success, so N attempts always suffice for N
  // writers.
  constexpr int writers = 12;
  std::atomic<int> mutations{0};
  std::vector<std::future<std::tuple<informer::error, object::ptr>>> results;
  for (int i = 0; i < writers; ++i) {
    results.push_back(asio::co_spawn(io.ctx, increment(cms, writers, mutations), asio::use_future));
  }
  for (auto& r : results) ok(wait(std::move(r)));
  auto final = ok(wait(cms.async_get("counter", {}, asio::use_future)));
  BOOST_TEST(str(final->field("data.n")) == std::to_string(writers));
  BOOST_TEST(mutations.load() >= writers);
  BOOST_TEST_MESSAGE("retry_on_conflict: " << mutations.load() << " mutations for " << writers << " increments");
}

BOOST_AUTO_TEST_CASE(retry_on_conflict_rereads_after_a_concurrent_write) {
  io_threads io;
  io_threads other_io;  // the concurrent writer blocks on its own threads
  auto http = make_http(io);
  rest_client cms(http, res("configmaps"), fresh_namespace(http));
  rest_client other(make_http(other_io), res("configmaps"), cms.ns());
  ok(wait(cms.async_create(config_map("cm", {{"mine", "0"}, {"theirs", "0"}}), {}, asio::use_future)));

  // The first mutation lets another writer in between its read and its update.
  int calls = 0;
  const auto mutate = [&](const object& current) -> informer::detailed_result<json::value> {
    if (++calls == 1) {
      ok(wait(other.async_patch("cm", patch_type::merge_patch, R"({"data":{"theirs":"1"}})", {}, asio::use_future)));
    }
    auto body = current.body();
    body.at("data").as_object()["mine"] = "1";
    return body;
  };
  auto result = ok(wait(cms.async_retry_on_conflict("cm", mutate, {}, asio::use_future)));
  BOOST_TEST(calls == 2);
  BOOST_TEST(str(result->field("data.mine")) == "1");
  BOOST_TEST(str(result->field("data.theirs")) == "1");

  // With one step the conflict is the result, and nothing of this writer is stored.
  calls = 0;
  ok(wait(
      other.async_patch("cm", patch_type::merge_patch, R"({"data":{"mine":"0","theirs":"0"}})", {}, asio::use_future)));
  auto [conflict, none] = wait(cms.async_retry_on_conflict("cm", mutate, {.steps = 1}, asio::use_future));
  BOOST_TEST((code_of(conflict) == errc::conflict), conflict.what());
  BOOST_TEST(calls == 1);
  auto stored = ok(wait(cms.async_get("cm", {}, asio::use_future)));
  BOOST_TEST(str(stored->field("data.mine")) == "0");
  BOOST_TEST(str(stored->field("data.theirs")) == "1");

  // The mutation's error ends the loop without a write; so does a missing object.
  auto [refused, n1] = wait(cms.async_retry_on_conflict(
      "cm",
      [](const object&) -> informer::detailed_result<json::value> {
        return informer::error{errc::invalid, "no"};
      },
      {}, asio::use_future));
  BOOST_TEST((code_of(refused) == errc::invalid));
  BOOST_TEST(ok(wait(cms.async_get("cm", {}, asio::use_future)))->resource_version() == stored->resource_version());
  auto [missing, n2] = wait(cms.async_retry_on_conflict("absent", mutate, {}, asio::use_future));
  BOOST_TEST((code_of(missing) == errc::not_found), missing.what());

  // Through the status subresource (a pod's phase).
  rest_client pods(http, res("pods"), cms.ns());
  ok(wait(pods.async_create(pod("p"), {}, asio::use_future)));
  auto running = ok(wait(pods.async_retry_on_conflict(
      "p",
      [](const object& current) -> informer::detailed_result<json::value> {
        auto body = current.body();
        set(body, {"status", "phase"}, "Running");
        return body;
      },
      {.status_subresource = true}, asio::use_future)));
  BOOST_TEST(str(running->field("status.phase")) == "Running");
}

// Create, patch, list, delete in one coroutine; returns the patched value or what failed.
// g++ 12 reports the frame's own operator delete as mismatched here (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
asio::awaitable<std::string> crud_flow(rest_client c, json::value body) {
  const informer::write_options write;
  auto [ce, created] = co_await c.async_create(body, write, asio::use_awaitable);
  if (ce) co_return "create: " + ce.what();
  const informer::patch_options patch;
  auto [pe, patched] =
      co_await c.async_patch("co", patch_type::merge_patch, R"({"data":{"k":"w"}})", patch, asio::use_awaitable);
  if (pe) co_return "patch: " + pe.what();
  const informer::list_options all;
  auto [le, list] = co_await c.async_list(all, asio::use_awaitable);
  if (le) co_return "list: " + le.what();
  const informer::delete_options now;
  auto [de, deleted] = co_await c.async_delete("co", now, asio::use_awaitable);
  if (de) co_return "delete: " + de.what();
  co_return list.items.size() == 1 ? str(list.items[0]->field("data.k"))
                                   : "listed " + std::to_string(list.items.size());
}
#pragma GCC diagnostic pop

BOOST_AUTO_TEST_CASE(coroutines_and_callbacks) {
  io_threads io;
  auto http = make_http(io);
  rest_client cms(http, res("configmaps"), fresh_namespace(http));

  auto outcome = asio::co_spawn(io.ctx, crud_flow(cms, config_map("co", {{"k", "v"}})), asio::use_future);
  BOOST_TEST_REQUIRE((outcome.wait_for(60s) == std::future_status::ready));
  BOOST_TEST(outcome.get() == "w");

  // A plain callback runs on the client's executor, not inside the initiating call.
  std::promise<std::string> seen;
  const auto caller = std::this_thread::get_id();
  cms.async_get("absent", {}, [&](informer::error e, object::ptr o) {
    const bool on_io = std::this_thread::get_id() != caller && io.ctx.get_executor().running_in_this_thread();
    seen.set_value(std::string{on_io ? "" : "wrong thread: "} + (o ? "object" : e.code().message()));
  });
  auto f = seen.get_future();
  BOOST_TEST_REQUIRE((f.wait_for(60s) == std::future_status::ready));
  BOOST_TEST(f.get() == informer::make_error_code(errc::not_found).message());
}

BOOST_AUTO_TEST_CASE(authentication_and_authorization_errors) {
  io_threads io;
  auto admin = make_http(io);
  const auto ns = fresh_namespace(admin);
  rest_client wrong(make_http(io, "not-a-token"), res("configmaps"), ns);
  rest_client user(make_http(io, cluster->user_token()), res("configmaps"), ns);

  auto [unauthorized, n1] = wait(wrong.async_get("x", {}, asio::use_future));
  BOOST_TEST((code_of(unauthorized) == errc::unauthorized), unauthorized.what());
  auto [forbidden_list, n2] = wait(user.async_list({}, asio::use_future));
  BOOST_TEST((code_of(forbidden_list) == errc::forbidden), forbidden_list.what());
  auto [forbidden_create, n3] = wait(user.async_create(config_map("x", {}), {}, asio::use_future));
  BOOST_TEST((code_of(forbidden_create) == errc::forbidden), forbidden_create.what());
  BOOST_TEST(forbidden_create.detail().find("configmaps") != std::string::npos, forbidden_create.detail());
  auto [forbidden_evict, n4] =
      wait(rest_client(make_http(io, cluster->user_token()), res("pods"), ns).async_evict("x", {}, asio::use_future));
  BOOST_TEST((code_of(forbidden_evict) == errc::forbidden), forbidden_evict.what());
}

BOOST_AUTO_TEST_CASE(requests_that_cannot_be_addressed_fail_before_sending) {
  io_threads io;
  auto http = make_http(io);
  const auto sent = http.stats().requests_sent;
  rest_client no_ns(http, res("configmaps"));
  auto [get_e, g] = wait(no_ns.async_get("x", {}, asio::use_future));
  BOOST_TEST((code_of(get_e) == errc::invalid_argument), get_e.what());
  auto [create_e, c] = wait(no_ns.async_create(config_map("x", {}), {}, asio::use_future));
  BOOST_TEST((code_of(create_e) == errc::invalid_argument), create_e.what());
  rest_client cms(http, res("configmaps"), "default");
  auto [name_e, n] = wait(cms.async_update(json::value{{"data", json::object{}}}, {}, asio::use_future));
  BOOST_TEST((code_of(name_e) == errc::missing_name), name_e.what());
  auto [empty_e, e] = wait(cms.async_delete("", {}, asio::use_future));
  BOOST_TEST((code_of(empty_e) == errc::invalid_argument), empty_e.what());
  auto [bind_e, b] = wait(cms.async_bind("x", "node", {}, asio::use_future));
  BOOST_TEST((code_of(bind_e) == errc::invalid_argument), bind_e.what());
  auto [evict_e, v] = wait(cms.async_evict("x", {}, asio::use_future));
  BOOST_TEST((code_of(evict_e) == errc::invalid_argument), evict_e.what());
  BOOST_TEST(http.stats().requests_sent == sent);

  // Cluster-scoped resources ignore the namespace.
  rest_client namespaces(http, res("namespaces"), "ignored");
  BOOST_TEST(ok(wait(namespaces.async_get("default", {}, asio::use_future)))->name() == "default");
}

BOOST_AUTO_TEST_SUITE_END()
