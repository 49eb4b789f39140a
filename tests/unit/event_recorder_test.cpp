#include "informer/apiserver/event_recorder.hpp"

#include <boost/test/unit_test.hpp>

#include "https_server.hpp"
#include "io_threads.hpp"

#include "informer/core/log.hpp"
#include "informer/core/mutex.hpp"

#include <boost/json.hpp>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

// g++ 12 flags options members left to their defaults in designated initializers.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace http = boost::beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;
using informer::event_recorder;
using informer::event_type;
using informer::object;
using informer::testing::https_server;
using informer::testing::io_threads;

namespace {

constexpr std::string_view events_path = "/api/v1/namespaces/ns1/events";

// The events collection of a scripted server: creates store, patches need the Event stored (else
// 404), and `refuse_creates` answers 403.
class event_store {
public:
  event_store() : server_([this](const https_server::request& req) { return respond(req); }) {}

  https_server& server() { return server_; }

  void forget_all() {
    informer::lock_guard lock(mu_);
    events_.clear();
  }
  void refuse_creates() {
    informer::lock_guard lock(mu_);
    refuse_ = true;
  }

  // "POST ..." / "PATCH ..." of every request, and their bodies parsed.
  std::vector<std::string> requests() const { return server_.requests(); }
  std::vector<json::object> bodies() const {
    std::vector<json::object> out;
    for (const auto& b : server_.bodies()) out.push_back(json::parse(b).as_object());
    return out;
  }

private:
  https_server::response respond(const https_server::request& req) {
    informer::lock_guard lock(mu_);
    const std::string target(req.target());
    if (req.method() == http::verb::post && target == events_path) {
      if (refuse_) {
        return https_server::answer(
            http::status::forbidden,
            R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,"message":"no"})");
      }
      auto event = json::parse(req.body()).as_object();
      const std::string name(event["metadata"].as_object()["name"].as_string());
      event["metadata"].as_object()["resourceVersion"] = "1";
      events_[name] = event;
      return https_server::answer(http::status::created, json::serialize(event));
    }
    if (req.method() == http::verb::patch && target.starts_with(std::string(events_path) + "/")) {
      const auto name = target.substr(events_path.size() + 1);
      const auto it = events_.find(name);
      if (it == events_.end()) {
        return https_server::answer(
            http::status::not_found,
            R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"gone"})");
      }
      const auto patch = json::parse(req.body());
      for (const auto& [k, v] : patch.as_object()) it->second[k] = v;
      return https_server::answer(http::status::ok, json::serialize(it->second));
    }
    return https_server::answer(http::status::bad_request, R"({"kind":"Status","code":400})");
  }

  mutable informer::mutex mu_;
  std::map<std::string, json::object> events_ INFORMER_GUARDED_BY(mu_);
  bool refuse_ INFORMER_GUARDED_BY(mu_) = false;
  https_server server_;  // last: stopped before the store goes
};

object::ptr config_map(std::string_view name = "settings") {
  return object::parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + std::string(name) +
                       R"(","namespace":"ns1","uid":"u-1","resourceVersion":"7"}})")
      .value();
}

informer::http_client client_for(https_server& server, boost::asio::io_context& ctx) {
  return informer::http_client::create(ctx.get_executor(), server.config()).value();
}

bool flushed(event_recorder& r) { return r.flush(std::chrono::steady_clock::now() + 20s); }

std::string str(const json::value& v) { return std::string(v.as_string()); }

}  // namespace

BOOST_AUTO_TEST_CASE(identical_events_create_one_event_then_patch_its_count) {
  event_store store;
  io_threads io;
  event_recorder recorder(client_for(store.server(), io.ctx), {.component = "test-controller", .host = "node-a"});
  const auto cm = config_map();
  for (int i = 0; i < 4; ++i) recorder.record(*cm, event_type::warning, "FailedSync", "the backend refused");
  BOOST_TEST_REQUIRE(flushed(recorder));

  const auto requests = store.requests();
  BOOST_TEST_REQUIRE(requests.size() == 4u);
  BOOST_TEST(requests[0] == "POST " + std::string(events_path));
  const auto bodies = store.bodies();
  auto created = bodies[0];
  const std::string name = str(created["metadata"].as_object()["name"]);
  BOOST_TEST(name.starts_with("settings."));
  BOOST_TEST(name.size() > std::string("settings.").size());
  BOOST_TEST(str(created["metadata"].as_object()["namespace"]) == "ns1");
  auto& involved = created["involvedObject"].as_object();
  BOOST_TEST(str(involved["kind"]) == "ConfigMap");
  BOOST_TEST(str(involved["apiVersion"]) == "v1");
  BOOST_TEST(str(involved["namespace"]) == "ns1");
  BOOST_TEST(str(involved["name"]) == "settings");
  BOOST_TEST(str(involved["uid"]) == "u-1");
  BOOST_TEST(str(involved["resourceVersion"]) == "7");
  BOOST_TEST(str(created["reason"]) == "FailedSync");
  BOOST_TEST(str(created["message"]) == "the backend refused");
  BOOST_TEST(str(created["type"]) == "Warning");
  BOOST_TEST(str(created["source"].as_object()["component"]) == "test-controller");
  BOOST_TEST(str(created["source"].as_object()["host"]) == "node-a");
  BOOST_TEST(str(created["reportingComponent"]) == "test-controller");
  BOOST_TEST(created["count"].as_int64() == 1);
  BOOST_TEST(str(created["firstTimestamp"]).ends_with("Z"));
  BOOST_TEST(created["firstTimestamp"] == created["lastTimestamp"]);
  for (std::size_t i = 1; i < 4; ++i) {
    BOOST_TEST(requests[i] == "PATCH " + std::string(events_path) + "/" + name);
    BOOST_TEST(bodies[i].at("count").as_int64() == static_cast<std::int64_t>(i + 1));
    BOOST_TEST(bodies[i].contains("lastTimestamp"));
  }
  const auto s = recorder.stats();
  BOOST_TEST(s.queued == 4u);
  BOOST_TEST(s.created == 1u);
  BOOST_TEST(s.patched == 3u);
  BOOST_TEST(s.failed == 0u);
}

BOOST_AUTO_TEST_CASE(a_cluster_scoped_object_gets_its_events_in_default) {
  event_store store;
  io_threads io;
  event_recorder recorder(client_for(store.server(), io.ctx), {.component = "c"});
  recorder.record(informer::object_reference{.api_version = "v1", .kind = "Node", .name = "n1"}, event_type::normal,
                  "Ready", "ok");
  BOOST_TEST_REQUIRE(flushed(recorder));
  BOOST_TEST_REQUIRE(store.requests().size() == 1u);
  BOOST_TEST(store.requests()[0] == "POST /api/v1/namespaces/default/events");
  auto body = store.bodies()[0];
  BOOST_TEST(str(body["type"]) == "Normal");
  BOOST_TEST(!body["involvedObject"].as_object().contains("namespace"));
}

BOOST_AUTO_TEST_CASE(the_tenth_distinct_message_starts_one_combined_event) {
  event_store store;
  io_threads io;
  event_recorder recorder(client_for(store.server(), io.ctx), {.component = "c"});
  const auto cm = config_map();
  for (int i = 0; i < 12; ++i) recorder.record(*cm, event_type::normal, "Scaled", "to " + std::to_string(i));
  BOOST_TEST_REQUIRE(flushed(recorder));

  const auto requests = store.requests();
  const auto bodies = store.bodies();
  BOOST_TEST_REQUIRE(requests.size() == 12u);
  for (std::size_t i = 0; i < 9; ++i) {
    BOOST_TEST(requests[i].starts_with("POST "));
    BOOST_TEST(bodies[i].at("message").as_string() == "to " + std::to_string(i));
  }
  BOOST_TEST(requests[9].starts_with("POST "));
  BOOST_TEST(bodies[9].at("message").as_string() == "(combined from similar events): to 9");
  const std::string combined(bodies[9].at("metadata").at("name").as_string());
  for (std::size_t i = 10; i < 12; ++i) {
    BOOST_TEST(requests[i] == "PATCH " + std::string(events_path) + "/" + combined);
    BOOST_TEST(bodies[i].at("message").as_string() == "(combined from similar events): to " + std::to_string(i));
    BOOST_TEST(bodies[i].at("count").as_int64() == static_cast<std::int64_t>(i - 8));
  }
}

BOOST_AUTO_TEST_CASE(similar_messages_are_counted_within_the_window_only) {
  event_store store;
  io_threads io;
  auto now = std::chrono::system_clock::now();
  event_recorder recorder(client_for(store.server(), io.ctx), {.component = "c", .now = [&now] { return now; }});
  const auto cm = config_map();
  for (int i = 0; i < 9; ++i) recorder.record(*cm, event_type::normal, "Scaled", "to " + std::to_string(i));
  now += 11min;  // the nine are forgotten: the tenth is an Event of its own
  recorder.record(*cm, event_type::normal, "Scaled", "to 9");
  BOOST_TEST_REQUIRE(flushed(recorder));
  const auto bodies = store.bodies();
  BOOST_TEST_REQUIRE(bodies.size() == 10u);
  BOOST_TEST(bodies[9].at("message").as_string() == "to 9");
}

BOOST_AUTO_TEST_CASE(the_spam_filter_drops_the_twenty_sixth_event_on_one_object) {
  event_store store;
  io_threads io;
  event_recorder recorder(client_for(store.server(), io.ctx), {.component = "c"});
  const auto cm = config_map();
  const auto other = config_map("other");
  for (int i = 0; i < 26; ++i) recorder.record(*cm, event_type::normal, "Reason" + std::to_string(i), "m");
  recorder.record(*other, event_type::normal, "Reason", "m");  // its own bucket
  BOOST_TEST_REQUIRE(flushed(recorder));
  const auto s = recorder.stats();
  BOOST_TEST(s.dropped_rate_limited == 1u);
  BOOST_TEST(s.queued == 26u);
  BOOST_TEST(s.created == 26u);
  for (const auto& body : store.bodies()) BOOST_TEST(body.at("reason").as_string() != "Reason25");
}

BOOST_AUTO_TEST_CASE(a_full_queue_drops_and_counts) {
  event_store store;
  boost::asio::io_context ctx;  // not run yet: nothing is written while the queue fills
  event_recorder recorder(client_for(store.server(), ctx), {.component = "c", .queue_capacity = 3});
  for (int i = 0; i < 5; ++i) recorder.record(*config_map("cm" + std::to_string(i)), event_type::normal, "R", "m");
  auto s = recorder.stats();
  BOOST_TEST(s.queued == 3u);
  BOOST_TEST(s.dropped_queue_full == 2u);
  std::thread runner([&ctx] { ctx.run(); });
  const bool done = flushed(recorder);
  ctx.stop();
  runner.join();
  BOOST_TEST_REQUIRE(done);
  BOOST_TEST(store.requests().size() == 3u);
  BOOST_TEST(recorder.stats().created == 3u);
}

BOOST_AUTO_TEST_CASE(a_patch_of_an_event_that_is_gone_creates_it_again) {
  event_store store;
  io_threads io;
  event_recorder recorder(client_for(store.server(), io.ctx), {.component = "c"});
  const auto cm = config_map();
  recorder.record(*cm, event_type::normal, "Synced", "ok");
  BOOST_TEST_REQUIRE(flushed(recorder));
  store.forget_all();  // the Event expired (the server's event TTL is an hour)
  recorder.record(*cm, event_type::normal, "Synced", "ok");
  BOOST_TEST_REQUIRE(flushed(recorder));
  const auto requests = store.requests();
  BOOST_TEST_REQUIRE(requests.size() == 3u);
  BOOST_TEST(requests[1].starts_with("PATCH "));
  BOOST_TEST(requests[2] == "POST " + std::string(events_path));
  const auto bodies = store.bodies();
  BOOST_TEST(bodies[2].at("count").as_int64() == 2);
  BOOST_TEST(bodies[2].at("metadata").at("name") == bodies[0].at("metadata").at("name"));
  BOOST_TEST(recorder.stats().created == 2u);
  BOOST_TEST(recorder.stats().failed == 0u);
}

BOOST_AUTO_TEST_CASE(a_refused_write_is_counted_and_logged_once) {
  event_store store;
  store.refuse_creates();
  informer::mutex mu;
  std::vector<std::string> logged;
  const auto previous = informer::set_log_sink([&](const informer::log_record& r) {
    if (r.component != "event_recorder") return;
    informer::lock_guard lock(mu);
    logged.emplace_back(r.message);
  });
  {
    io_threads io;
    event_recorder recorder(client_for(store.server(), io.ctx), {.component = "c"});
    recorder.record(*config_map(), event_type::normal, "Synced", "ok");
    BOOST_TEST_REQUIRE(flushed(recorder));
    BOOST_TEST(recorder.stats().failed == 1u);
    BOOST_TEST(store.requests().size() == 1u);  // a refusal is not retried
  }
  informer::set_log_sink(previous);
  informer::lock_guard lock(mu);
  BOOST_TEST_REQUIRE(logged.size() == 1u);
  BOOST_TEST(logged[0].find("403") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(after_shutdown_events_are_ignored) {
  event_store store;
  io_threads io;
  event_recorder recorder(client_for(store.server(), io.ctx), {.component = "c"});
  recorder.record(*config_map(), event_type::normal, "Synced", "ok");
  BOOST_TEST(recorder.shutdown(std::chrono::steady_clock::now() + 20s));
  recorder.record(*config_map(), event_type::normal, "Synced", "again");
  BOOST_TEST(flushed(recorder));
  BOOST_TEST(store.requests().size() == 1u);
  BOOST_TEST(recorder.stats().queued == 1u);
}

BOOST_AUTO_TEST_CASE(bad_options_are_refused) {
  boost::asio::io_context ctx;
  https_server server([](const https_server::request&) { return https_server::answer(http::status::ok, "{}"); });
  BOOST_CHECK_THROW(event_recorder(client_for(server, ctx), {}), std::invalid_argument);
  BOOST_CHECK_THROW(event_recorder(client_for(server, ctx), {.component = "c", .queue_capacity = 0}),
                    std::invalid_argument);
  BOOST_CHECK_THROW(event_recorder(client_for(server, ctx), {.component = "c", .spam_burst = 0}),
                    std::invalid_argument);
}
