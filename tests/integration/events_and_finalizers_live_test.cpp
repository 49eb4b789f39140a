// Events and finalizers against a real kube-apiserver: what an operator writes besides its objects.
#include "informer/apiserver/event_recorder.hpp"
#include "informer/apiserver/finalizers.hpp"

#include <boost/test/unit_test.hpp>

#include "control_plane.hpp"
#include "io_threads.hpp"
#include "shared_control_plane.hpp"
#include "wait.hpp"

#include "informer/apiserver/rest_client.hpp"

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <tuple>

// g++ 12 flags options members left to their defaults in designated initializers.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using informer::event_recorder;
using informer::event_type;
using informer::object;
using informer::rest_client;
using informer::testing::cluster;
using informer::testing::cluster_fixture;
using informer::testing::cluster_running;
using informer::testing::io_threads;

namespace {

constexpr std::string_view finalizer = "example.com/cleanup";

informer::http_client make_http(io_threads& io) {
  auto c = informer::http_client::create(io.ctx.get_executor(), {.server = cluster->apiserver_url(),
                                                                 .tls = {.ca_file = cluster->ca_file()},
                                                                 .bearer_token = cluster->admin_token()});
  BOOST_TEST_REQUIRE(c.has_value(), "http_client::create failed: " << c.error().what());
  return *c;
}

rest_client client(io_threads& io, std::string_view plural) {
  return rest_client(make_http(io), informer::parse_resource(plural).value(), "default");
}

template <class T>
T ok(std::future<std::tuple<informer::error, T>> f) {
  BOOST_TEST_REQUIRE((f.wait_for(60s) == std::future_status::ready), "the operation did not complete");
  auto [e, value] = f.get();
  BOOST_TEST_REQUIRE(!e, e.what());
  return std::move(value);
}

object::ptr create_config_map(const rest_client& config_maps, std::string_view name) {
  const json::value body = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}};
  const informer::write_options options;
  return ok(config_maps.async_create(body, options, asio::use_future));
}

// The Events about object `name` in "default".
std::vector<object::ptr> events_about(const rest_client& events, std::string_view name) {
  const informer::list_options options{.field_selector = "involvedObject.name=" + std::string(name)};
  return ok(events.async_list(options, asio::use_future)).items;
}

bool delivered(event_recorder& r) { return r.flush(std::chrono::steady_clock::now() + 60s); }

std::string str(const std::optional<json::value>& v) {
  return v && v->is_string() ? std::string(v->get_string()) : std::string("<absent>");
}

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

BOOST_AUTO_TEST_SUITE(events, *boost::unit_test::precondition(cluster_running))

BOOST_AUTO_TEST_CASE(an_event_names_the_object_it_is_about) {
  io_threads io;
  const auto config_maps = client(io, "configmaps");
  const auto events = client(io, "events");
  const auto cm = create_config_map(config_maps, "event-target");
  event_recorder recorder(make_http(io), {.component = "integration-test"});
  recorder.record(*cm, event_type::warning, "BackendDown", "the backend did not answer");
  BOOST_TEST_REQUIRE(delivered(recorder));
  BOOST_TEST(recorder.stats().created == 1u);

  const auto found = events_about(events, "event-target");
  BOOST_TEST_REQUIRE(found.size() == 1u);
  const auto& event = *found[0];
  BOOST_TEST(str(event.field("involvedObject.kind")) == "ConfigMap");
  BOOST_TEST(str(event.field("involvedObject.apiVersion")) == "v1");
  BOOST_TEST(str(event.field("involvedObject.namespace")) == "default");
  BOOST_TEST(str(event.field("involvedObject.uid")) == std::string(cm->uid()));
  BOOST_TEST(str(event.field("reason")) == "BackendDown");
  BOOST_TEST(str(event.field("type")) == "Warning");
  BOOST_TEST(str(event.field("message")) == "the backend did not answer");
  BOOST_TEST(str(event.field("source.component")) == "integration-test");
  BOOST_TEST(event.field("count")->as_int64() == 1);
}

BOOST_AUTO_TEST_CASE(five_identical_events_are_one_event_with_count_five) {
  io_threads io;
  const auto config_maps = client(io, "configmaps");
  const auto events = client(io, "events");
  const auto cm = create_config_map(config_maps, "event-repeats");
  event_recorder recorder(make_http(io), {.component = "integration-test"});
  for (int i = 0; i < 5; ++i) recorder.record(*cm, event_type::normal, "Synced", "in sync");
  BOOST_TEST_REQUIRE(recorder.shutdown(std::chrono::steady_clock::now() + 60s));

  const auto found = events_about(events, "event-repeats");
  BOOST_TEST_REQUIRE(found.size() == 1u);
  BOOST_TEST(found[0]->field("count")->as_int64() == 5);
  BOOST_TEST(str(found[0]->field("message")) == "in sync");
  const auto s = recorder.stats();
  BOOST_TEST(s.created == 1u);
  BOOST_TEST(s.patched == 4u);
  BOOST_TEST(s.failed == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(finalizers, *boost::unit_test::precondition(cluster_running))

BOOST_AUTO_TEST_CASE(a_finalizer_holds_a_deleted_object_until_the_reconcile_cleans_up) {
  io_threads io;
  const auto config_maps = client(io, "configmaps");
  const auto cm = create_config_map(config_maps, "finalized");
  const auto with = ok(informer::async_add_finalizer(config_maps, *cm, finalizer, asio::use_future));
  BOOST_TEST_REQUIRE(with != nullptr);
  BOOST_TEST(informer::contains_finalizer(*with, finalizer));

  const informer::delete_options delete_now;
  ok(config_maps.async_delete("finalized", delete_now, asio::use_future));
  const informer::get_options latest;
  const auto deleting = ok(config_maps.async_get("finalized", latest, asio::use_future));
  BOOST_TEST_REQUIRE(!deleting->deletion_timestamp().empty());  // held by the finalizer

  std::atomic<int> cleanups{0};
  const auto cleanup = [&](const object& o, asio::any_completion_handler<void(informer::error)> done) {
    BOOST_TEST(o.name() == "finalized");
    ++cleanups;
    std::move(done)(informer::error{});
  };
  const auto action =
      ok(informer::async_reconcile_finalizer(config_maps, deleting, finalizer, cleanup, asio::use_future));
  BOOST_TEST((action == informer::finalizer_action::finalized));
  BOOST_TEST(cleanups == 1);
  BOOST_TEST(informer::testing::eventually([&] {
    auto [e, gone] = config_maps.async_get("finalized", latest, asio::use_future).get();
    return e == informer::condition::not_found;
  }));
}

BOOST_AUTO_TEST_CASE(a_stale_object_does_not_clobber_a_concurrent_change) {
  io_threads io;
  const auto config_maps = client(io, "configmaps");
  const auto stale = create_config_map(config_maps, "contended");
  // Another writer adds its finalizer after `stale` was read.
  const auto theirs =
      ok(informer::async_add_finalizer(config_maps, *stale, "other.example.com/keep", asio::use_future));
  BOOST_TEST_REQUIRE(theirs != nullptr);

  auto [e, written] = informer::async_add_finalizer(config_maps, *stale, finalizer, asio::use_future).get();
  BOOST_TEST((e == informer::condition::conflict), e.what());
  const informer::get_options latest;
  const auto now = ok(config_maps.async_get("contended", latest, asio::use_future));
  BOOST_TEST(informer::contains_finalizer(*now, "other.example.com/keep"));
  BOOST_TEST(!informer::contains_finalizer(*now, finalizer));

  // Read again, the same write goes through and keeps theirs.
  const auto mine = ok(informer::async_add_finalizer(config_maps, *now, finalizer, asio::use_future));
  BOOST_TEST(informer::contains_finalizer(*mine, finalizer));
  BOOST_TEST(informer::contains_finalizer(*mine, "other.example.com/keep"));
  const auto cleared = ok(informer::async_remove_finalizer(config_maps, *mine, finalizer, asio::use_future));
  ok(informer::async_remove_finalizer(config_maps, *cleared, "other.example.com/keep", asio::use_future));
}

BOOST_AUTO_TEST_SUITE_END()
