#include "informer/apiserver/finalizers.hpp"

#include <boost/test/unit_test.hpp>

#include "https_server.hpp"
#include "io_threads.hpp"

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <tuple>

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;
using informer::finalizer_action;
using informer::object;
using informer::testing::https_server;
using informer::testing::io_threads;

namespace {

constexpr std::string_view finalizer = "example.com/cleanup";

// Answers every PATCH with `answer_code` and the object the test set as the answer.
struct scripted {
  std::atomic<int> code{200};
  https_server server{[this](const https_server::request&) {
    if (code != 200) {
      return https_server::answer(
          static_cast<http::status>(code.load()),
          R"({"kind":"Status","apiVersion":"v1","status":"Failure","code":)" + std::to_string(code.load()) + "}");
    }
    // The patched object: enough of one for the client to parse.
    return https_server::answer(http::status::ok, R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"}})");
  }};
};

object::ptr config_map(std::string_view finalizers, bool deleting = false) {
  return object::parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","namespace":"ns1",)"
                       R"("resourceVersion":"42",)" +
                       std::string(deleting ? R"("deletionTimestamp":"2026-11-30T10:00:00Z",)" : "") +
                       R"("finalizers":)" + std::string(finalizers) + "}}")
      .value();
}

informer::rest_client client_for(https_server& server, io_threads& io) {
  auto http = informer::http_client::create(io.ctx.get_executor(), server.config()).value();
  // A client for all namespaces: the helpers write in the object's own.
  return informer::rest_client(http, informer::parse_resource("configmaps").value(), "");
}

template <class T>
T wait(std::future<T> f) {
  BOOST_TEST_REQUIRE((f.wait_for(20s) == std::future_status::ready), "the operation did not complete");
  return f.get();
}

json::value patch_sent(const https_server& server, std::size_t i = 0) { return json::parse(server.bodies().at(i)); }

}  // namespace

BOOST_AUTO_TEST_CASE(contains_finalizer_reads_the_list) {
  const auto cm = config_map(R"(["a","example.com/cleanup"])");
  BOOST_TEST(informer::contains_finalizer(*cm, finalizer));
  BOOST_TEST(!informer::contains_finalizer(*cm, "b"));
}

BOOST_AUTO_TEST_CASE(add_patches_the_whole_list_conditionally_on_the_version_read) {
  scripted s;
  io_threads io;
  const auto client = client_for(s.server, io);
  auto [e, written] = wait(informer::async_add_finalizer(client, *config_map(R"(["a"])"), finalizer, asio::use_future));
  BOOST_TEST_REQUIRE(!e, e.what());
  BOOST_TEST(written != nullptr);
  BOOST_TEST_REQUIRE(s.server.requests().size() == 1u);
  BOOST_TEST(s.server.requests()[0] == "PATCH /api/v1/namespaces/ns1/configmaps/cm");
  BOOST_TEST(patch_sent(s.server) ==
             json::parse(R"({"metadata":{"resourceVersion":"42","finalizers":["a","example.com/cleanup"]}})"));
}

BOOST_AUTO_TEST_CASE(add_and_remove_send_nothing_when_there_is_nothing_to_change) {
  scripted s;
  io_threads io;
  const auto client = client_for(s.server, io);
  auto [ae, added] = wait(
      informer::async_add_finalizer(client, *config_map(R"(["example.com/cleanup"])"), finalizer, asio::use_future));
  BOOST_TEST(!ae);
  BOOST_TEST(added == nullptr);
  auto [re, removed] = wait(informer::async_remove_finalizer(client, *config_map("[]"), finalizer, asio::use_future));
  BOOST_TEST(!re);
  BOOST_TEST(removed == nullptr);
  BOOST_TEST(s.server.requests().empty());
}

BOOST_AUTO_TEST_CASE(removing_the_last_finalizer_deletes_the_list) {
  scripted s;
  io_threads io;
  const auto client = client_for(s.server, io);
  auto [e, written] = wait(
      informer::async_remove_finalizer(client, *config_map(R"(["example.com/cleanup"])"), finalizer, asio::use_future));
  BOOST_TEST_REQUIRE(!e, e.what());
  BOOST_TEST(patch_sent(s.server) == json::parse(R"({"metadata":{"resourceVersion":"42","finalizers":null}})"));
}

BOOST_AUTO_TEST_CASE(a_stale_object_completes_with_a_conflict) {
  scripted s;
  s.code = 409;
  io_threads io;
  const auto client = client_for(s.server, io);
  auto [e, written] = wait(informer::async_add_finalizer(client, *config_map("[]"), finalizer, asio::use_future));
  BOOST_TEST((e == informer::condition::conflict));
  BOOST_TEST(written == nullptr);
}

BOOST_AUTO_TEST_CASE(reconcile_adds_the_finalizer_to_a_live_object_and_runs_no_cleanup) {
  scripted s;
  io_threads io;
  const auto client = client_for(s.server, io);
  int cleanups = 0;
  const auto cleanup = [&](const object&, asio::any_completion_handler<void(informer::error)> done) {
    ++cleanups;
    std::move(done)(informer::error{});
  };
  auto [e, action] =
      wait(informer::async_reconcile_finalizer(client, config_map("[]"), finalizer, cleanup, asio::use_future));
  BOOST_TEST_REQUIRE(!e, e.what());
  BOOST_TEST((action == finalizer_action::added));
  auto [e2, again] = wait(informer::async_reconcile_finalizer(client, config_map(R"(["example.com/cleanup"])"),
                                                              finalizer, cleanup, asio::use_future));
  BOOST_TEST((again == finalizer_action::none));
  BOOST_TEST(cleanups == 0);
  BOOST_TEST(s.server.requests().size() == 1u);
}

BOOST_AUTO_TEST_CASE(reconcile_of_a_deleted_object_cleans_up_then_removes_the_finalizer) {
  scripted s;
  io_threads io;
  const auto client = client_for(s.server, io);
  int cleanups = 0;
  auto [e, action] = wait(informer::async_reconcile_finalizer(
      client, config_map(R"(["example.com/cleanup","other"])", true), finalizer,
      [&](const object& o, asio::any_completion_handler<void(informer::error)> done) {
        ++cleanups;
        BOOST_TEST(o.name() == "cm");
        BOOST_TEST(s.server.requests().empty());  // cleanup first, then the write
        std::move(done)(informer::error{});
      },
      asio::use_future));
  BOOST_TEST_REQUIRE(!e, e.what());
  BOOST_TEST((action == finalizer_action::finalized));
  BOOST_TEST(cleanups == 1);
  BOOST_TEST(patch_sent(s.server) == json::parse(R"({"metadata":{"resourceVersion":"42","finalizers":["other"]}})"));
}

BOOST_AUTO_TEST_CASE(a_failed_cleanup_keeps_the_finalizer) {
  scripted s;
  io_threads io;
  const auto client = client_for(s.server, io);
  auto [e, action] = wait(informer::async_reconcile_finalizer(
      client, config_map(R"(["example.com/cleanup"])", true), finalizer,
      [](const object&, asio::any_completion_handler<void(informer::error)> done) {
        std::move(done)(informer::error{informer::errc::server_error, "the backend is down"});
      },
      asio::use_future));
  BOOST_TEST(e.detail() == "the backend is down");
  BOOST_TEST((action == finalizer_action::none));
  BOOST_TEST(s.server.requests().empty());
}
