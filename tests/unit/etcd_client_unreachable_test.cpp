// The etcd client and its watches without a working server: endpoints that refuse connections or
// accept them and never answer. Watches end with a clear error after trying every endpoint, a
// handle's destructor returns promptly while a stream is still connecting or authenticating (the
// client's thread never waits for a round trip), and destroying the client ends what is pending.
#include "informer/etcd/client.hpp"

#include "informer/etcd/errors.hpp"

#include "loopback_port.hpp"

#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

using namespace std::chrono_literals;
namespace etcd = informer::etcd;

namespace {

// The final update of a watch, once it came.
class final_update {
public:
  etcd::watch_callback callback() {
    return [this](etcd::watch_update u) {
      std::lock_guard lock(mutex_);
      BOOST_TEST(!update_.has_value(), "an update after the final one");
      if (u.is_final()) {
        update_ = std::move(u);
        changed_.notify_all();
      }
    };
  }
  etcd::watch_update wait(std::chrono::seconds patience = 20s) {
    std::unique_lock lock(mutex_);
    BOOST_REQUIRE_MESSAGE(changed_.wait_for(lock, patience, [&] { return update_.has_value(); }), "no final update");
    return *update_;
  }
  bool arrived() {
    std::lock_guard lock(mutex_);
    return update_.has_value();
  }

private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<etcd::watch_update> update_;
};

etcd::client connect(etcd::client_options options) {
  auto c = etcd::client::connect(std::move(options));
  BOOST_REQUIRE_MESSAGE(c, (c ? "" : c.error().what()));
  return std::move(*c);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_watch_fails_as_unavailable_once_every_endpoint_refused) {
  loopback_port a(false);
  loopback_port b(false);
  auto c = connect({.endpoints = {a.endpoint(), b.endpoint()}, .dial_timeout = 500ms});
  final_update done;
  auto handle = c.watch("/a/", {.prefix = true}, done.callback());
  const auto update = done.wait();
  BOOST_TEST((update.kind == etcd::watch_update_kind::failed));
  BOOST_TEST(update.failure.code() == etcd::make_error_code(etcd::errc::unavailable), update.failure.what());
  BOOST_TEST(update.failure.detail().starts_with("watch of prefix '/a/'"));
}

BOOST_AUTO_TEST_CASE(a_silent_endpoint_fails_the_watch_after_the_dial_timeout) {
  loopback_port silent(true);
  auto c = connect({.endpoints = {silent.endpoint()}, .dial_timeout = 300ms});
  final_update done;
  auto handle = c.watch("/a", {}, done.callback());
  const auto update = done.wait();
  BOOST_TEST((update.kind == etcd::watch_update_kind::failed));
  BOOST_TEST(update.failure.code() == etcd::make_error_code(etcd::errc::unavailable), update.failure.what());
}

BOOST_AUTO_TEST_CASE(authenticating_does_not_hold_up_the_clients_thread) {
  // The Authenticate call to a silent endpoint takes the dial timeout to fail; meanwhile the
  // client's thread serves everything else, here the cancel that the handle's destructor waits for.
  loopback_port silent(true);
  auto c = connect({.endpoints = {silent.endpoint()},
                    .username = "root",
                    .password = "secret",
                    .dial_timeout = 8s,
                    .request_timeout = 8s});
  final_update first;
  final_update second;
  {
    auto handle = c.watch("/a", {}, first.callback());
    std::this_thread::sleep_for(200ms);  // the Authenticate call is out
    const auto started = std::chrono::steady_clock::now();
    { auto other = c.watch("/b", {}, second.callback()); }
    BOOST_TEST(second.arrived());
    BOOST_TEST((std::chrono::steady_clock::now() - started < 4s));
  }
  BOOST_TEST((first.wait(0s).kind == etcd::watch_update_kind::canceled));
  BOOST_TEST((second.wait(0s).kind == etcd::watch_update_kind::canceled));
}

BOOST_AUTO_TEST_CASE(a_keep_alive_authenticating_does_not_hold_up_the_clients_thread) {
  // The keep-alive's Authenticate call to a silent endpoint is out for the whole test; the watch
  // handle's destructor below needs the client's thread, and gets it at once.
  loopback_port silent(true);
  auto c = connect({.endpoints = {silent.endpoint()},
                    .username = "root",
                    .password = "secret",
                    .dial_timeout = 8s,
                    .request_timeout = 8s});
  std::promise<informer::error> ended;
  auto keeper = c.keep_alive(42, {.on_end = [&](const informer::error& why) { ended.set_value(why); }});
  std::this_thread::sleep_for(200ms);
  final_update watched;
  const auto started = std::chrono::steady_clock::now();
  { auto handle = c.watch("/b", {}, watched.callback()); }
  BOOST_TEST(watched.arrived());
  keeper.stop();
  auto result = ended.get_future();
  BOOST_REQUIRE(result.wait_for(4s) == std::future_status::ready);
  BOOST_TEST(!result.get(), "stop() ends a keep-alive with no error, even while it authenticates");
  BOOST_TEST((std::chrono::steady_clock::now() - started < 4s));
}

BOOST_AUTO_TEST_CASE(destroying_the_client_ends_pending_watches_promptly) {
  loopback_port silent(true);
  final_update plain;
  final_update authenticated;
  etcd::watch_handle h1;
  etcd::watch_handle h2;
  const auto started = std::chrono::steady_clock::now();
  {
    auto c1 = connect({.endpoints = {silent.endpoint()}, .dial_timeout = 8s});
    auto c2 = connect({.endpoints = {silent.endpoint()}, .username = "u", .password = "p", .dial_timeout = 8s});
    h1 = c1.watch("/a", {}, plain.callback());
    h2 = c2.watch("/a", {}, authenticated.callback());
    std::this_thread::sleep_for(200ms);
  }
  for (auto* f : {&plain, &authenticated}) {
    const auto update = f->wait(0s);
    BOOST_TEST(update.failure.code() == informer::make_error_code(informer::errc::closed), update.failure.what());
  }
  BOOST_TEST((std::chrono::steady_clock::now() - started < 4s));
  h1.cancel();  // the client is gone: nothing happens
}

BOOST_AUTO_TEST_CASE(request_progress_without_a_watch_does_nothing) {
  loopback_port refused(false);
  auto c = connect({.endpoints = {refused.endpoint()}, .dial_timeout = 300ms});
  c.request_progress();
}
