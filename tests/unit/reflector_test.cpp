#include "informer/client/reflector.hpp"

#include "informer/cache/delta_fifo.hpp"
#include "informer/cache/indexer.hpp"
#include "informer/core/condition.hpp"
#include "informer/core/key.hpp"
#include "informer/etcd/errors.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/test/unit_test.hpp>

#include "scripted_source.hpp"
#include "wait.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

using namespace informer;
using namespace std::chrono_literals;
using informer::testing::eventually;
using informer::testing::scripted_source;

namespace {

// Records what the reflector writes; Boost.Test is not thread-safe, so tests assert on copies.
class recording_store final : public reflector_store {
public:
  struct call {
    std::string op;
    std::string key;
    std::string rv;
    std::size_t count = 0;  // replace: number of objects
  };

  void add(object::ptr obj) override { record({"add", object_key(*obj), std::string(obj->resource_version())}); }
  void update(object::ptr obj) override { record({"update", object_key(*obj), std::string(obj->resource_version())}); }
  void remove(object::ptr obj) override { record({"delete", object_key(*obj), std::string(obj->resource_version())}); }
  void replace(std::vector<object::ptr> objects, std::string rv) override {
    record({"replace", "", rv, objects.size()});
  }
  void resync() override { record({"resync", "", ""}); }

  std::vector<call> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  bool wait_for(std::size_t n, std::chrono::nanoseconds timeout = 10s) const {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return calls_.size() >= n; });
  }
  std::size_t count(std::string_view op) const {
    std::lock_guard lock(mutex_);
    return std::count_if(calls_.begin(), calls_.end(), [&](const call& c) { return c.op == op; });
  }

private:
  void record(call c) {
    std::lock_guard lock(mutex_);
    calls_.push_back(std::move(c));
    cv_.notify_all();
  }
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::vector<call> calls_;
};

// Feeds a real DeltaFIFO whose known objects are an indexer, as an informer does.
class fifo_store final : public reflector_store {
public:
  fifo_store(delta_fifo& fifo) : fifo_(fifo) {}
  void add(object::ptr obj) override { fifo_.add(std::move(obj)); }
  void update(object::ptr obj) override { fifo_.update(std::move(obj)); }
  void remove(object::ptr obj) override { fifo_.delete_object(std::move(obj)); }
  void replace(std::vector<object::ptr> objects, std::string rv) override { fifo_.replace(std::move(objects), rv); }
  bool replace_keeping(std::vector<object::ptr>& objects, const std::string& rv,
                       const std::vector<std::string>& kept) override {
    fifo_.replace(std::move(objects), rv, kept);
    return true;
  }
  void resync() override { fifo_.resync(); }

private:
  delta_fifo& fifo_;
};

std::string pod(std::string_view name, std::string_view app = "web") {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + std::string(name) +
         R"(","namespace":"default","labels":{"app":")" + std::string(app) + R"("}}})";
}

struct io_fixture {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{io.get_executor()};
  std::thread runner{[this] { io.run(); }};
  std::shared_ptr<scripted_source> source = std::make_shared<scripted_source>(io.get_executor());

  ~io_fixture() {
    guard.reset();
    io.stop();
    runner.join();
  }

  reflector_options fast(reflector_options o = {}) {
    o.backoff = {.initial = 5ms, .max = 40ms, .factor = 2.0, .jitter = 0.0, .reset_after = 10s};
    return o;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(lists_then_applies_watch_events_in_order, io_fixture) {
  source->create(pod("a"));
  source->create(pod("b"));
  recording_store store;
  auto r = reflector::create(source, store, fast());
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  source->create(pod("c"));
  source->update(pod("a", "db"));
  source->remove("default/b");
  BOOST_REQUIRE(store.wait_for(4));
  r->stop();
  r->join();

  const auto calls = store.calls();
  BOOST_REQUIRE(calls.size() == 4u);
  BOOST_TEST(calls[0].op == "replace");
  BOOST_TEST(calls[0].count == 2u);
  BOOST_TEST(calls[0].rv == "3");
  BOOST_TEST((calls[1].op == "add" && calls[1].key == "default/c" && calls[1].rv == "4"));
  BOOST_TEST((calls[2].op == "update" && calls[2].key == "default/a" && calls[2].rv == "5"));
  BOOST_TEST((calls[3].op == "delete" && calls[3].key == "default/b" && calls[3].rv == "6"));
  BOOST_TEST(r->last_sync_resource_version() == "6");

  // The first list asks the server's cache ("0"); the watch starts at the list's version.
  const auto lists = source->list_requests();
  BOOST_TEST(lists.at(0).resource_version == "0");
  BOOST_TEST(source->watch_requests().at(0).resource_version == "3");
  BOOST_TEST(source->watch_requests().at(0).allow_bookmarks);
  const auto timeout = source->watch_requests().at(0).timeout;
  BOOST_TEST((timeout >= 300s && timeout < 600s));  // the client's randomised 5-10 minutes
}

BOOST_FIXTURE_TEST_CASE(pages_a_list_with_continue_tokens, io_fixture) {
  for (int i = 0; i < 7; ++i) source->create(pod("p" + std::to_string(i)));
  recording_store store;
  auto r = reflector::create(source, store, fast({.page_size = 3, .initial_list_from_cache = false}));
  r->start();
  BOOST_REQUIRE(store.wait_for(1));
  r->stop();
  r->join();
  const auto lists = source->list_requests();
  BOOST_REQUIRE(lists.size() == 3u);
  BOOST_TEST(lists[0].limit == 3);
  BOOST_TEST(lists[0].continue_token.empty());
  BOOST_TEST(!lists[1].continue_token.empty());
  BOOST_TEST(!lists[2].continue_token.empty());
  BOOST_TEST(store.calls().at(0).count == 7u);
}

BOOST_FIXTURE_TEST_CASE(expired_continue_token_falls_back_to_a_full_list, io_fixture) {
  for (int i = 0; i < 5; ++i) source->create(pod("p" + std::to_string(i)));
  source->expire_continue_tokens();
  source->fail_next_list(status{.code = 410, .reason = "Expired", .message = "continue token expired"});
  recording_store store;
  // The first page fails with 410; a first page has no continue token, so this is a plain
  // failure: it backs off and lists again. Make the second attempt's continue token expire.
  auto r = reflector::create(source, store, fast({.page_size = 2, .initial_list_from_cache = false}));
  r->start();
  BOOST_REQUIRE(source->wait_for_list_calls(2, 10s));
  source->expire_continue_tokens();
  BOOST_REQUIRE(store.wait_for(1));
  r->stop();
  r->join();
  BOOST_TEST(store.calls().at(0).count == 5u);
}

BOOST_FIXTURE_TEST_CASE(reopens_a_normally_ended_watch_from_the_last_version_without_relisting, io_fixture) {
  source->create(pod("a"));
  recording_store store;
  auto r = reflector::create(source, store, fast());
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  source->create(pod("b"));
  BOOST_REQUIRE(store.wait_for(2));
  std::this_thread::sleep_for(1100ms);  // a watch that ends within a second without events is suspect
  source->end_watches();
  BOOST_REQUIRE(source->wait_for_watch_calls(2, 10s));
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  source->bookmark();  // moves the version without an object
  const auto bookmark_rv = std::to_string(source->current_revision());
  BOOST_REQUIRE(eventually([&] { return r->last_sync_resource_version() == bookmark_rv; }));
  source->create(pod("c"));
  BOOST_REQUIRE(store.wait_for(3));
  r->stop();
  r->join();
  BOOST_TEST(source->list_calls() == 1u);
  BOOST_TEST(source->watch_requests().at(1).resource_version == "3");  // after "b"
  BOOST_TEST(store.calls().at(2).key == "default/c");
}

// Each source passes its transport's own code up; the reflector knows them as cuts by condition.
BOOST_FIXTURE_TEST_CASE(a_watch_cut_by_any_transport_is_reopened_without_relisting, io_fixture) {
  const std::vector<informer::error> cuts = {
      {boost::asio::error::eof, "eof"},
      {boost::asio::error::connection_reset, "reset"},
      {boost::beast::http::error::partial_message, "the server went away mid-body"},
      {boost::asio::ssl::error::stream_truncated, "TLS stream truncated"},
      {informer::etcd::errc::unavailable, "the etcd watch stream broke"},
  };
  source->create(pod("a"));
  recording_store store;
  auto r = reflector::create(source, store, fast());
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  for (std::size_t i = 0; i < cuts.size(); ++i) {
    source->create(pod("p" + std::to_string(i)));  // an event: a watch without any is suspect
    BOOST_REQUIRE(store.wait_for(i + 2));
    source->end_watches(cuts[i]);
    BOOST_REQUIRE(source->wait_for_watch_calls(i + 2, 10s));
    BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  }
  r->stop();
  r->join();
  BOOST_TEST(source->list_calls() == 1u);
  BOOST_TEST(store.count("replace") == 1u);
}

BOOST_FIXTURE_TEST_CASE(a_silent_watch_is_reopened_from_the_last_version_after_the_liveness_timeout, io_fixture) {
  source->create(pod("a"));
  recording_store store;
  auto options = fast();
  options.watch_liveness_timeout = 300ms;
  auto r = reflector::create(source, store, options);
  std::mutex errors_mutex;
  std::vector<informer::error> errors;
  r->set_watch_error_handler([&](const informer::error& e) {
    std::lock_guard lock(errors_mutex);
    errors.push_back(e);
  });
  const auto started = std::chrono::steady_clock::now();
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  source->create(pod("b"));
  BOOST_REQUIRE(store.wait_for(2));
  // From here the source sends nothing; the stream stays open on its side.
  BOOST_REQUIRE(source->wait_for_watch_calls(2, 10s));
  BOOST_TEST((std::chrono::steady_clock::now() - started >= 300ms));
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  source->create(pod("c"));
  BOOST_REQUIRE(store.wait_for(3));
  r->stop();
  r->join();
  BOOST_TEST(source->list_calls() == 1u);
  BOOST_TEST(store.count("replace") == 1u);
  BOOST_TEST(source->watch_requests().at(1).resource_version == "3");  // after "b"
  BOOST_TEST(store.calls().at(2).key == "default/c");
  std::lock_guard lock(errors_mutex);
  BOOST_REQUIRE(!errors.empty());
  BOOST_TEST((errors.front().code() == boost::asio::error::timed_out));
  BOOST_TEST((errors.front() == condition::stream_cut));
}

BOOST_FIXTURE_TEST_CASE(a_watch_that_hears_bookmarks_is_not_reopened_by_the_liveness_check, io_fixture) {
  source->create(pod("a"));
  recording_store store;
  auto options = fast();
  options.watch_liveness_timeout = 400ms;
  auto r = reflector::create(source, store, options);
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  for (int i = 0; i < 15; ++i) {  // 1.5 s: several liveness periods, one bookmark every 100 ms
    std::this_thread::sleep_for(100ms);
    source->bookmark();
  }
  r->stop();
  r->join();
  BOOST_TEST(source->watch_calls() == 1u);
  BOOST_TEST(source->list_calls() == 1u);
}

BOOST_FIXTURE_TEST_CASE(a_silent_watch_stays_open_with_the_liveness_check_off, io_fixture) {
  recording_store store;
  auto options = fast();
  options.watch_liveness_timeout = 0s;
  auto r = reflector::create(source, store, options);
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  std::this_thread::sleep_for(500ms);
  r->stop();
  r->join();
  BOOST_TEST(source->watch_calls() == 1u);
}

BOOST_FIXTURE_TEST_CASE(expired_at_watch_open_forces_a_relist, io_fixture) {
  source->create(pod("a"));
  source->fail_next_watch(status{.code = 410, .reason = "Expired", .message = "too old resource version"});
  recording_store store;
  std::mutex m;
  std::vector<informer::error> errors;
  auto r = reflector::create(source, store, fast());
  r->set_watch_error_handler([&](const informer::error& e) {
    std::lock_guard lock(m);
    errors.push_back(e);
  });
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  r->stop();
  r->join();
  BOOST_TEST(source->list_calls() == 2u);
  BOOST_TEST(store.count("replace") == 2u);
  std::lock_guard lock(m);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].code() == make_error_code(errc::expired));
}

// client-go's rule: a throttled server gets a backoff and the same watch again, never a full list.
BOOST_FIXTURE_TEST_CASE(too_many_requests_at_watch_open_backs_off_and_watches_again_without_relisting, io_fixture) {
  source->create(pod("a"));
  source->fail_next_watch(status{.code = 429, .reason = "TooManyRequests", .message = "slow down"}, 2);
  recording_store store;
  std::mutex m;
  std::vector<informer::error> errors;
  std::atomic<int> backoffs{0};
  auto opts = fast();
  opts.metrics.on_backoff = [&](std::chrono::nanoseconds) { ++backoffs; };
  auto r = reflector::create(source, store, opts);
  r->set_watch_error_handler([&](const informer::error& e) {
    std::lock_guard lock(m);
    errors.push_back(e);
  });
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  r->stop();
  r->join();
  BOOST_TEST(source->list_calls() == 1u);
  BOOST_TEST(store.count("replace") == 1u);
  BOOST_TEST(backoffs.load() == 2);
  const auto watches = source->watch_requests();
  BOOST_REQUIRE(watches.size() == 3u);
  for (const auto& w : watches) BOOST_TEST(w.resource_version == store.calls().at(0).rv);  // the list's
  std::lock_guard lock(m);
  BOOST_REQUIRE(errors.size() == 2u);
  BOOST_TEST(errors[0].code() == make_error_code(errc::too_many_requests));
}

BOOST_FIXTURE_TEST_CASE(expired_error_event_relists_and_the_fifo_tombstones_what_vanished, io_fixture) {
  source->create(pod("keep"));
  source->create(pod("gone"));
  indexer known;
  delta_fifo fifo({.known = &known});
  fifo_store store(fifo);
  auto r = reflector::create(source, store, fast());
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  // The consumer applies the initial list.
  for (int i = 0; i < 2; ++i) {
    fifo.pop([&](const std::string&, const delta_list& deltas, bool) {
      known.add(deltas.back().obj());
      return process_result{};
    });
  }
  BOOST_REQUIRE(known.size() == 2u);
  // While "disconnected": gone is deleted, the history compacted, and the watch told 410.
  source->remove("default/gone");
  source->compact(source->current_revision());
  source->send_error(status{.code = 410, .reason = "Expired", .message = "too old resource version"});
  BOOST_REQUIRE(source->wait_for_list_calls(2, 10s));
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  r->stop();
  r->join();

  // The DELETED event reached the fifo before the ERROR; either way the key ends deleted.
  bool saw_delete_of_gone = false;
  while (fifo.size() > 0) {
    fifo.pop([&](const std::string& key, const delta_list& deltas, bool) {
      if (key == "default/gone" && deltas.back().type == delta_type::deleted) saw_delete_of_gone = true;
      return process_result{};
    });
  }
  BOOST_TEST(saw_delete_of_gone);
  // The relist after 410 asked for the most recent state, not the expired version.
  const auto lists = source->list_requests();
  BOOST_TEST(lists.at(1).resource_version != "0");
}

BOOST_FIXTURE_TEST_CASE(deletions_missed_while_disconnected_become_tombstones, io_fixture) {
  source->create(pod("keep"));
  source->create(pod("gone"));
  indexer known;
  delta_fifo fifo({.known = &known});
  fifo_store store(fifo);
  auto opts = fast();
  opts.backoff.initial = 300ms;  // the window in which the deletion happens unobserved
  auto r = reflector::create(source, store, opts);
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  for (int i = 0; i < 2; ++i) {
    fifo.pop([&](const std::string&, const delta_list& deltas, bool) {
      known.add(deltas.back().obj());
      return process_result{};
    });
  }
  // The watch drops; reopening it fails with 410 (the version was compacted meanwhile), so the
  // reflector backs off and relists. The deletion happens while no watch is open.
  std::this_thread::sleep_for(1100ms);
  source->fail_next_watch(status{.code = 410, .reason = "Expired", .message = "too old resource version"});
  source->end_watches();
  source->remove("default/gone");
  source->compact(source->current_revision());  // the deletion cannot be replayed
  BOOST_REQUIRE(source->wait_for_list_calls(2, 10s));
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  r->stop();
  r->join();
  bool tombstone = false;
  bool keep_replaced = false;
  while (fifo.size() > 0) {
    fifo.pop([&](const std::string& key, const delta_list& deltas, bool) {
      for (const auto& d : deltas) {
        if (key == "default/gone" && d.type == delta_type::deleted && d.final_state_unknown()) {
          tombstone = true;
          BOOST_TEST(d.obj()->name() == "gone");  // the last state the consumer knew
        }
        if (key == "default/keep" && d.type == delta_type::replaced) keep_replaced = true;
      }
      return process_result{};
    });
  }
  BOOST_TEST(tombstone);
  BOOST_TEST(keep_replaced);
  // The relist asks for "not older than" the last version, unpaged: the server's cache answers.
  const auto lists = source->list_requests();
  BOOST_TEST(lists.at(1).resource_version == "3");
  BOOST_TEST(lists.at(1).limit == 0);
}

BOOST_FIXTURE_TEST_CASE(a_relisted_item_that_cannot_be_decoded_keeps_its_cached_state_and_is_reported, io_fixture) {
  source->create(pod("keep"));
  source->create(pod("bad"));
  source->create(pod("gone"));
  indexer known;
  delta_fifo fifo({.known = &known});
  fifo_store store(fifo);
  std::mutex reports_mutex;
  std::vector<std::string> reports;
  auto r = reflector::create(source, store, fast());
  r->set_watch_error_handler([&](const informer::error& e) {
    std::lock_guard lock(reports_mutex);
    reports.push_back(e.what());
  });
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  for (int i = 0; i < 3; ++i) {
    fifo.pop([&](const std::string&, const delta_list& deltas, bool) {
      known.add(deltas.back().obj());
      return process_result{};
    });
  }
  // "bad" turns undecodable for lists; a relist follows a 410 while "gone" is deleted unseen.
  source->set_undecodable("default/bad");
  source->remove("default/gone");
  source->compact(source->current_revision());
  source->send_error(status{.code = 410, .reason = "Expired", .message = "too old resource version"});
  BOOST_REQUIRE(source->wait_for_list_calls(2, 10s));
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  r->stop();
  r->join();

  std::map<std::string, std::vector<delta_type>> seen;
  while (fifo.size() > 0) {
    fifo.pop([&](const std::string& key, const delta_list& deltas, bool) {
      for (const auto& d : deltas) seen[key].push_back(d.type);
      return process_result{};
    });
  }
  BOOST_TEST(!seen.contains("default/bad"));  // neither deleted nor replaced: the cache keeps it
  BOOST_TEST((seen["default/keep"].back() == delta_type::replaced));
  BOOST_TEST((seen["default/gone"].back() == delta_type::deleted));
  BOOST_TEST(source->list_calls() == 2u);  // the relist succeeded at once
  std::lock_guard lock(reports_mutex);
  BOOST_TEST(std::count_if(reports.begin(), reports.end(), [](const std::string& m) {
               return m.find("default/bad is undecodable") != std::string::npos &&
                      m.find("cached state") != std::string::npos;
             }) == 1);
}

BOOST_FIXTURE_TEST_CASE(a_store_that_cannot_keep_undecodable_items_fails_the_list_as_before, io_fixture) {
  source->create(pod("a"));
  source->create(pod("bad"));
  source->set_undecodable("default/bad");
  recording_store store;
  auto r = reflector::create(source, store, fast());
  r->start();
  BOOST_REQUIRE(source->wait_for_list_calls(3, 10s));  // failed, retried after backoff
  BOOST_TEST(store.count("replace") == 0u);
  source->set_undecodable("default/bad", false);
  BOOST_REQUIRE(store.wait_for(1));
  r->stop();
  r->join();
  BOOST_TEST(store.calls().at(0).op == "replace");
  BOOST_TEST(store.calls().at(0).count == 2u);
}

BOOST_FIXTURE_TEST_CASE(a_list_whose_version_is_gone_retries_at_once_from_scratch, io_fixture) {
  source->create(pod("a"));
  source->fail_next_list(status{.code = 410, .reason = "Expired", .message = "too old resource version"});
  recording_store store;
  auto opts = fast();
  opts.backoff.initial = 5s;  // a backoff in between would take this long
  auto r = reflector::create(source, store, opts);
  const auto started = std::chrono::steady_clock::now();
  r->start();
  BOOST_REQUIRE(store.wait_for(1));
  const auto took = std::chrono::steady_clock::now() - started;
  r->stop();
  r->join();
  BOOST_TEST((took < 4s));
  const auto lists = source->list_requests();
  BOOST_REQUIRE(lists.size() == 2u);
  BOOST_TEST(lists[0].resource_version == "0");
  BOOST_TEST(lists[1].resource_version == "");
}

BOOST_FIXTURE_TEST_CASE(too_large_resource_version_relists_from_scratch, io_fixture) {
  source->create(pod("a"));
  recording_store store;
  auto r = reflector::create(source, store, fast());
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  source->send_error(status{.code = 504, .reason = "Timeout", .message = "Too large resource version: 99, current: 2"});
  BOOST_REQUIRE(source->wait_for_list_calls(2, 10s));
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  r->stop();
  r->join();
  BOOST_TEST(store.count("replace") == 2u);
}

BOOST_FIXTURE_TEST_CASE(backoff_grows_while_failing_and_resets_after_health, io_fixture) {
  source->fail_next_list(status{.code = 500, .reason = "InternalError", .message = "boom"}, 4);
  recording_store store;
  std::mutex m;
  std::vector<std::chrono::nanoseconds> delays;
  auto opts = fast();
  opts.backoff.reset_after = 300ms;
  opts.metrics.on_backoff = [&](std::chrono::nanoseconds d) {
    std::lock_guard lock(m);
    delays.push_back(d);
  };
  auto r = reflector::create(source, store, opts);
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  {
    std::lock_guard lock(m);
    BOOST_REQUIRE(delays.size() == 4u);
    BOOST_TEST(delays[0] == std::chrono::nanoseconds(5ms));
    BOOST_TEST(delays[1] == std::chrono::nanoseconds(10ms));
    BOOST_TEST(delays[2] == std::chrono::nanoseconds(20ms));
    BOOST_TEST(delays[3] == std::chrono::nanoseconds(40ms));
  }
  // Healthy for longer than reset_after: the next failure starts from the initial delay again.
  std::this_thread::sleep_for(400ms);
  source->send_error(status{.code = 500, .reason = "InternalError", .message = "boom"});
  BOOST_REQUIRE(source->wait_for_list_calls(6, 10s));
  r->stop();
  r->join();
  std::lock_guard lock(m);
  BOOST_REQUIRE(delays.size() >= 5u);
  BOOST_TEST(delays[4] == std::chrono::nanoseconds(5ms));
}

BOOST_FIXTURE_TEST_CASE(unauthorized_is_reported_and_not_retried_in_a_tight_loop, io_fixture) {
  source->fail_next_list(status{.code = 401, .reason = "Unauthorized", .message = "bad token"}, 1000);
  recording_store store;
  std::atomic<int> reported{0};
  auto opts = fast();
  opts.backoff = {.initial = 50ms, .max = 200ms, .factor = 2.0, .jitter = 0.0, .reset_after = 10s};
  auto r = reflector::create(source, store, opts);
  r->set_watch_error_handler([&](const informer::error& e) {
    if (e.code() == make_error_code(errc::unauthorized)) ++reported;
  });
  r->start();
  std::this_thread::sleep_for(600ms);
  r->stop();
  r->join();
  // 50 + 100 + 200 + 200 ms of waits fit in 600 ms: a handful of attempts, not hundreds.
  BOOST_TEST(source->list_calls() <= 6u);
  BOOST_TEST(source->list_calls() >= 3u);
  BOOST_TEST(reported.load() >= 3);
}

BOOST_FIXTURE_TEST_CASE(resync_runs_on_its_period_when_allowed, io_fixture) {
  source->create(pod("a"));
  recording_store store;
  std::atomic<bool> allow{false};
  auto opts = fast();
  opts.resync_period = 20ms;
  opts.should_resync = [&] { return allow.load(); };
  auto r = reflector::create(source, store, opts);
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  std::this_thread::sleep_for(100ms);
  BOOST_TEST(store.count("resync") == 0u);
  allow = true;
  BOOST_REQUIRE(eventually([&] { return store.count("resync") >= 2; }));
  r->stop();
  r->join();
}

BOOST_FIXTURE_TEST_CASE(stop_is_prompt_with_a_watch_open_and_events_flowing, io_fixture) {
  recording_store store;
  auto r = reflector::create(source, store, fast());
  r->start();
  BOOST_REQUIRE(source->wait_for_watches(1, 10s));
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; !done; ++i) source->create(pod("w" + std::to_string(i)));
  });
  std::this_thread::sleep_for(50ms);
  const auto started = std::chrono::steady_clock::now();
  r->stop();
  r->join();
  const auto took = std::chrono::steady_clock::now() - started;
  done = true;
  writer.join();
  BOOST_TEST(took < 2s);
  BOOST_TEST(!r->running());
  r->stop();  // twice is harmless
  r->join();
}

BOOST_AUTO_TEST_CASE(stop_before_start_and_join_without_start_return) {
  boost::asio::io_context io;
  auto source = std::make_shared<scripted_source>(io.get_executor());
  recording_store store;
  auto r = reflector::create(source, store);
  r->join();
  r->stop();
  r->start();  // after stop: nothing runs
  r->join();
  BOOST_TEST(!r->running());
  BOOST_TEST(io.poll() == 0u);
}
