#include "informer/client/shared_informer.hpp"

#include "sample_pods.hpp"
#include "scripted_source.hpp"
#include "wait.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

using namespace informer;
using namespace std::chrono_literals;
using informer::testing::eventually;
using informer::testing::patience;
using informer::testing::scripted_source;

namespace {

// Threads running one io_context for the source, the informer and the handlers. Declare it before
// the informers of a test so that it outlives them: an informer's stop() needs it running.
class executor_pool {
public:
  explicit executor_pool(int threads = 3) : work_(boost::asio::make_work_guard(context_)), running_(threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        context_.run();
        std::lock_guard lock(mutex_);
        --running_;
        idle_.notify_all();
      });
    }
  }
  ~executor_pool() {
    work_.reset();
    {
      // Everything stopped releases its work; a leak shows as this wait, not as a hang.
      std::unique_lock lock(mutex_);
      idle_.wait_for(lock, 5s, [this] { return running_ == 0; });
    }
    context_.stop();
    for (auto& t : threads_) t.join();
  }
  boost::asio::any_io_executor executor() { return context_.get_executor(); }

private:
  boost::asio::io_context context_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable idle_;
  int running_;
};

// Keeps a handler blocked until opened. Declare it after the informer: its destructor opens it, so
// a failing test releases the handler before the informer's stop() waits for it.
class gate {
public:
  gate() : opened_(promise_.get_future().share()) {}
  ~gate() { open(); }
  void open() {
    std::call_once(once_, [this] { promise_.set_value(); });
  }
  // Copy it into the handler: the shared state outlives the gate.
  std::shared_future<void> waiter() const { return opened_; }

private:
  std::promise<void> promise_;
  std::shared_future<void> opened_;
  std::once_flag once_;
};

std::string cm(const std::string& name, const std::string& data = "1", const std::string& app = "web") {
  return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"ns","name":")" + name +
         R"(","labels":{"app":")" + app + R"("}},"data":{"k":")" + data + R"("}})";
}

std::string numbered(const std::string& prefix, int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%03d", i);
  return prefix + buf;
}

shared_informer_options test_options() {
  shared_informer_options o;
  o.name = "test";
  o.minimum_resync_period = 10ms;
  o.reflector.backoff = {.initial = 200ms, .max = 1s, .factor = 2.0, .jitter = 0.0, .reset_after = 2min};
  return o;
}

// Records what a handler sees, for the test thread to check (Boost.Test is not thread-safe).
class event_log {
public:
  void record(std::string entry) {
    {
      std::lock_guard lock(mutex_);
      entries_.push_back(std::move(entry));
    }
    changed_.notify_all();
  }

  resource_event_handlers handlers() {
    return {
        .on_add = [this](const object::ptr& o,
                         bool initial) { record("add " + object_key(*o) + (initial ? " initial" : "")); },
        .on_update = [this](const object::ptr& a,
                            const object::ptr& b) { record((a == b ? "sync " : "update ") + object_key(*b)); },
        .on_delete =
            [this](const deleted_object& d) {
              {
                std::lock_guard lock(mutex_);
                deletions_.push_back(d);
              }
              record("delete " + (d.tombstone() ? d.tombstone()->key + " tombstone" : object_key(*d.obj())));
            },
    };
  }

  bool wait_for_size(std::size_t n, std::chrono::nanoseconds timeout = patience) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return entries_.size() >= n; });
  }
  bool wait_for(const std::string& entry, std::chrono::nanoseconds timeout = patience) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout,
                             [&] { return std::find(entries_.begin(), entries_.end(), entry) != entries_.end(); });
  }
  std::vector<std::string> entries() const {
    std::lock_guard lock(mutex_);
    return entries_;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }
  std::size_t count_prefix(std::string_view prefix) const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(
        std::count_if(entries_.begin(), entries_.end(), [&](const std::string& e) { return e.starts_with(prefix); }));
  }
  std::vector<deleted_object> deletions() const {
    std::lock_guard lock(mutex_);
    return deletions_;
  }

private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> entries_;
  std::vector<deleted_object> deletions_;
};

using strings = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_CASE(initial_list_then_watch_events_reach_handlers_in_order) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  source->create(cm("a"));
  source->create(cm("b"));
  event_log log;
  auto inf = shared_informer::create(source, test_options());
  auto reg = inf->add_event_handler(log.handlers());
  BOOST_TEST(!inf->has_synced());
  BOOST_TEST(!reg.has_synced());
  BOOST_TEST(reg.id() != 0u);
  BOOST_TEST(inf->last_sync_resource_version().empty());

  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  BOOST_REQUIRE(source->wait_for_watches(1, patience));
  source->create(cm("c"));
  const auto a2 = source->update(cm("a", "2"));
  source->remove("ns/b");

  BOOST_REQUIRE(log.wait_for_size(5));
  BOOST_TEST(
      log.entries() == (strings{"add ns/a initial", "add ns/b initial", "add ns/c", "update ns/a", "delete ns/b"}),
      boost::test_tools::per_element());
  BOOST_TEST(eventually([&] { return reg.has_synced(); }));
  BOOST_TEST(
      eventually([&] { return inf->last_sync_resource_version() == std::to_string(source->current_revision()); }));

  const auto l = inf->lister();
  BOOST_REQUIRE(l.get("ns", "a") != nullptr);
  BOOST_TEST(l.get("ns", "a")->resource_version() == a2->resource_version());
  BOOST_TEST(l.get("ns", "b") == nullptr);
  BOOST_TEST(inf->get_store()->size() == 2u);
  BOOST_TEST(log.deletions().size() == 1u);
  BOOST_TEST(!log.deletions().front().final_state_unknown());
  inf->stop();
}

BOOST_AUTO_TEST_CASE(has_synced_waits_for_the_handler_to_take_the_initial_list) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  source->create(cm("a"));
  source->create(cm("b"));
  event_log fast;
  auto inf = shared_informer::create(source, test_options());
  gate g;
  auto waiter = g.waiter();
  auto blocked = inf->add_event_handler({.on_add = [waiter](const object::ptr&, bool) { waiter.wait(); }});
  auto quick = inf->add_event_handler(fast.handlers());
  BOOST_TEST(!blocked.has_synced());

  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  BOOST_TEST(inf->has_synced());
  BOOST_TEST(eventually([&] { return quick.has_synced(); }));
  // The informer has synced, but this handler is still inside its first initial on_add.
  BOOST_TEST(!blocked.has_synced());
  BOOST_TEST(blocked.pending() == 2u);
  g.open();
  BOOST_TEST(eventually([&] { return blocked.has_synced(); }));
  BOOST_TEST(blocked.pending() == 0u);
  inf->stop();
  BOOST_TEST(blocked.has_synced());  // never turns false
}

BOOST_AUTO_TEST_CASE(slow_handler_does_not_delay_a_fast_one) {
  executor_pool pool(3);
  auto source = std::make_shared<scripted_source>(pool.executor());
  event_log fast;
  event_log slow;
  auto inf = shared_informer::create(source, test_options());
  gate g;
  auto waiter = g.waiter();
  auto slow_reg = inf->add_event_handler({.on_add = [waiter, &slow](const object::ptr& o, bool) {
    waiter.wait();
    slow.record("add " + object_key(*o));
  }});
  auto fast_reg = inf->add_event_handler(fast.handlers());
  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  BOOST_REQUIRE(source->wait_for_watches(1, patience));

  constexpr int n = 100;
  for (int i = 0; i < n; ++i) source->create(cm(numbered("o", i)));
  BOOST_REQUIRE(fast.wait_for_size(n));
  BOOST_TEST(slow.size() == 0u);
  // Every notification is queued for the slow handler (the first one in progress): the buffer
  // grows, nothing is dropped, and the depth is observable.
  BOOST_TEST(slow_reg.pending() == static_cast<std::size_t>(n));
  BOOST_TEST(eventually([&] { return fast_reg.pending() == 0; }));

  g.open();
  BOOST_REQUIRE(slow.wait_for_size(n));
  BOOST_TEST(slow.entries() == fast.entries(), boost::test_tools::per_element());
  BOOST_TEST(eventually([&] { return slow_reg.pending() == 0; }));
  inf->stop();
}

BOOST_AUTO_TEST_CASE(late_handler_gets_the_cache_first_then_every_later_change) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  constexpr int objects = 20;
  for (int i = 0; i < objects; ++i) source->create(cm(numbered("o", i)));
  auto inf = shared_informer::create(source, test_options());
  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  BOOST_REQUIRE(source->wait_for_watches(1, patience));

  // What the late handler saw, checked for continuity: the first event of every key is an add,
  // every update starts from the version last seen, and initial adds come before anything else.
  struct view {
    std::mutex mutex;
    std::map<std::string, std::string> versions;  // key -> last resourceVersion seen
    int initial_adds = 0;
    int later_events = 0;
    std::vector<std::string> violations;
  };
  auto seen = std::make_shared<view>();
  resource_event_handlers checker{
      .on_add =
          [seen](const object::ptr& o, bool initial) {
            std::lock_guard lock(seen->mutex);
            const auto key = object_key(*o);
            if (seen->versions.contains(key)) seen->violations.push_back("second add of " + key);
            if (initial && seen->later_events > 0)
              seen->violations.push_back("initial add after a later event: " + key);
            (initial ? seen->initial_adds : seen->later_events)++;
            seen->versions[key] = std::string(o->resource_version());
          },
      .on_update =
          [seen](const object::ptr& a, const object::ptr& b) {
            std::lock_guard lock(seen->mutex);
            const auto key = object_key(*b);
            auto it = seen->versions.find(key);
            if (it == seen->versions.end() || it->second != a->resource_version())
              seen->violations.push_back("update of " + key + " does not start from the version seen");
            seen->versions[key] = std::string(b->resource_version());
            ++seen->later_events;
          },
  };

  std::atomic<bool> added{false};
  std::jthread writer([&] {
    for (int i = 0; i < 300; ++i) {
      source->update(cm(numbered("o", i % objects), std::to_string(i)));
      if (i == 100) added.wait(false);  // keep writing while and after the handler is added
    }
  });
  while (source->current_revision() < 1 + objects + 50) std::this_thread::yield();
  auto reg = inf->add_event_handler(checker);
  added = true;
  added.notify_all();
  writer.join();

  // The late handler converges on the cache.
  const bool converged = eventually([&] {
    const auto cached = inf->lister().list();
    std::lock_guard lock(seen->mutex);
    if (cached.size() != seen->versions.size()) return false;
    for (const auto& o : cached)
      if (seen->versions[object_key(*o)] != o->resource_version()) return false;
    return true;
  });
  BOOST_TEST(converged);
  std::lock_guard lock(seen->mutex);
  BOOST_TEST(seen->initial_adds == objects);
  BOOST_TEST(seen->violations.empty());
  for (const auto& v : seen->violations) BOOST_TEST_MESSAGE(v);
  BOOST_TEST(reg.has_synced());
}

BOOST_AUTO_TEST_CASE(handler_exceptions_are_reported_and_delivery_continues) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  source->create(cm("a"));
  source->create(cm("b"));
  source->create(cm("c"));

  struct failure {
    std::uint64_t id;
    std::string stage;
    std::string what;
  };
  std::mutex failures_mutex;
  std::vector<failure> failures;
  auto options = test_options();
  options.on_handler_error = [&](const handler_failure& f) {
    std::string what;
    try {
      std::rethrow_exception(f.error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "not a std::exception";
    }
    std::lock_guard lock(failures_mutex);
    failures.push_back({f.registration_id, std::string(f.stage), what});
  };
  event_log thrower_log;
  event_log other;
  auto inf = shared_informer::create(source, options);
  auto thrower = inf->add_event_handler({
      .on_add =
          [&](const object::ptr& o, bool) {
            if (o->name() == "b") throw std::runtime_error("cannot add b");
            thrower_log.record("add " + object_key(*o));
          },
      .on_update = [](const object::ptr&, const object::ptr&) { throw 42; },
  });
  auto other_reg = inf->add_event_handler(other.handlers());
  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  BOOST_REQUIRE(source->wait_for_watches(1, patience));
  source->update(cm("a", "2"));
  source->create(cm("d"));

  BOOST_REQUIRE(other.wait_for_size(5));
  BOOST_REQUIRE(thrower_log.wait_for_size(3));
  BOOST_TEST(thrower_log.entries() == (strings{"add ns/a", "add ns/c", "add ns/d"}), boost::test_tools::per_element());
  BOOST_TEST(eventually([&] { return thrower.has_synced(); }));
  BOOST_TEST(other_reg.has_synced());
  std::lock_guard lock(failures_mutex);
  BOOST_REQUIRE(failures.size() == 2u);
  BOOST_TEST(failures[0].id == thrower.id());
  BOOST_TEST(failures[0].stage == "on_add");
  BOOST_TEST(failures[0].what == "cannot add b");
  BOOST_TEST(failures[1].stage == "on_update");
  BOOST_TEST(failures[1].what == "not a std::exception");
}

BOOST_AUTO_TEST_CASE(resync_reaches_only_the_handlers_that_are_due) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  for (int i = 0; i < 3; ++i) source->create(cm(numbered("o", i)));
  event_log fast;
  event_log slow;
  event_log never;
  event_log clamped;
  auto inf = shared_informer::create(source, test_options());
  auto fast_reg = inf->add_event_handler(fast.handlers(), 40ms);
  auto slow_reg = inf->add_event_handler(slow.handlers(), 400ms);
  auto never_reg = inf->add_event_handler(never.handlers());
  auto clamped_reg = inf->add_event_handler(clamped.handlers(), 1ns);
  BOOST_TEST(fast_reg.resync_period() == 40ms);
  BOOST_TEST(never_reg.resync_period() == 0ns);
  BOOST_TEST(clamped_reg.resync_period() == 10ms);  // raised to minimum_resync_period
  inf->remove_event_handler(clamped_reg);

  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  // Two rounds of the slow handler: three objects each.
  BOOST_REQUIRE(eventually([&] { return slow.count_prefix("sync ") >= 6; }));
  inf->stop();

  const auto fast_syncs = fast.count_prefix("sync ");
  const auto slow_syncs = slow.count_prefix("sync ");
  BOOST_TEST_MESSAGE("fast " << fast_syncs << " slow " << slow_syncs);
  BOOST_TEST(fast_syncs > slow_syncs);
  BOOST_TEST(fast_syncs >= 3u * 5u);  // at least 5 rounds of 40ms in 800ms
  BOOST_TEST(never.count_prefix("sync ") == 0u);
  BOOST_TEST(never.size() == 3u);  // the initial adds only
  BOOST_TEST(fast.count_prefix("update ") == 0u);
}

BOOST_AUTO_TEST_CASE(late_handler_with_resync_starts_the_timer_after_run) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  source->create(cm("a"));
  event_log log;
  auto inf = shared_informer::create(source, test_options());
  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  auto reg = inf->add_event_handler(log.handlers(), 20ms);
  BOOST_REQUIRE(log.wait_for("sync ns/a"));
  BOOST_TEST(log.entries().front() == "add ns/a initial");
  inf->stop();
}

BOOST_AUTO_TEST_CASE(transform_is_applied_before_objects_are_stored) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  const auto pod = source->create(informer::testing::sample_pod_json(1));
  const std::string key = object_key(*pod);
  BOOST_REQUIRE(pod->field("metadata.managedFields").has_value());

  std::atomic<int> transformed{0};
  auto options = test_options();
  options.transform = [&transformed](object::ptr obj) -> object::ptr {
    ++transformed;
    auto body = obj->body();
    body.as_object()["metadata"].as_object().erase("managedFields");
    return *object::from_json(body);
  };
  std::mutex seen_mutex;
  std::vector<object::ptr> seen;
  auto inf = shared_informer::create(source, options);
  auto reg = inf->add_event_handler({
      .on_add =
          [&](const object::ptr& o, bool) {
            std::lock_guard lock(seen_mutex);
            seen.push_back(o);
          },
      .on_update =
          [&](const object::ptr&, const object::ptr& o) {
            std::lock_guard lock(seen_mutex);
            seen.push_back(o);
          },
  });
  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  BOOST_REQUIRE(source->wait_for_watches(1, patience));
  auto changed = boost::json::parse(informer::testing::sample_pod_json(1));
  changed.as_object()["metadata"].as_object()["labels"].as_object()["track"] = "canary";
  source->update(changed);
  BOOST_REQUIRE(eventually([&] {
    std::lock_guard lock(seen_mutex);
    return seen.size() == 2;
  }));

  auto stored = inf->get_store()->get_by_key(key);
  BOOST_REQUIRE(stored != nullptr);
  BOOST_TEST(!stored->field("metadata.managedFields").has_value());
  BOOST_TEST(stored->labels().get("track").value_or("") == "canary");
  BOOST_TEST(stored->packed_size() < pod->packed_size());
  BOOST_TEST(source->get(key)->field("metadata.managedFields").has_value());
  {
    std::lock_guard lock(seen_mutex);
    for (const auto& o : seen) BOOST_TEST(!o->field("metadata.managedFields").has_value());
  }
  BOOST_TEST(transformed.load() == 2);
  inf->stop();
}

BOOST_AUTO_TEST_CASE(failing_transform_is_reported_and_the_object_kept) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  source->create(cm("good"));
  source->create(cm("bad"));
  source->create(cm("null"));
  std::mutex m;
  std::vector<std::string> stages;
  std::vector<std::uint64_t> ids;
  auto options = test_options();
  options.transform = [](object::ptr obj) -> object::ptr {
    if (obj->name() == "bad") throw std::runtime_error("no");
    if (obj->name() == "null") return nullptr;
    return obj;
  };
  options.on_handler_error = [&](const handler_failure& f) {
    std::lock_guard lock(m);
    stages.emplace_back(f.stage);
    ids.push_back(f.registration_id);
  };
  auto inf = shared_informer::create(source, options);
  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  BOOST_TEST(inf->get_store()->size() == 3u);
  std::lock_guard lock(m);
  BOOST_TEST(stages == (strings{"transform", "transform"}), boost::test_tools::per_element());
  BOOST_TEST(ids == (std::vector<std::uint64_t>{0, 0}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(relist_after_expiry_delivers_tombstones_for_objects_deleted_meanwhile) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  source->create(cm("a"));
  const auto b = source->create(cm("b"));
  source->create(cm("c"));
  std::mutex errors_mutex;
  std::vector<error_code> errors;
  auto options = test_options();
  options.watch_error_handler = [&](const informer::error& e) {
    std::lock_guard lock(errors_mutex);
    errors.push_back(e.code());
  };
  event_log log;
  event_log resyncing;
  auto inf = shared_informer::create(source, options);
  auto reg = inf->add_event_handler(log.handlers());
  auto resync_reg = inf->add_event_handler(resyncing.handlers(), 1h);
  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  BOOST_REQUIRE(source->wait_for_watches(1, patience));

  // The watch fails with 410; while the reflector backs off (200 ms) and before it relists, b is
  // deleted and the history compacted past the deletion, so no watch or list ever reports it: the
  // relist at the last resourceVersion fails with 410 too, and the one from scratch lacks b.
  source->send_error(status{.code = 410, .reason = "Expired", .message = "too old resource version"});
  source->remove("ns/b");
  source->compact(source->current_revision());
  BOOST_REQUIRE(log.wait_for("delete ns/b tombstone"));
  BOOST_REQUIRE(resyncing.wait_for("delete ns/b tombstone"));

  // a and c did not change: the relist's re-reports of them are syncs, which only the handler with
  // a resync period gets, and they come before b's tombstone (keys are processed in order).
  BOOST_TEST(
      log.entries() == (strings{"add ns/a initial", "add ns/b initial", "add ns/c initial", "delete ns/b tombstone"}),
      boost::test_tools::per_element());
  BOOST_TEST(resyncing.entries() == (strings{"add ns/a initial", "add ns/b initial", "add ns/c initial", "sync ns/a",
                                             "sync ns/c", "delete ns/b tombstone"}),
             boost::test_tools::per_element());
  const auto deletions = log.deletions();
  BOOST_REQUIRE(deletions.size() == 1u);
  BOOST_REQUIRE(deletions[0].final_state_unknown());
  BOOST_TEST(deletions[0].tombstone()->key == "ns/b");
  BOOST_REQUIRE(deletions[0].obj() != nullptr);
  BOOST_TEST(deletions[0].obj()->resource_version() == b->resource_version());  // the last state known
  BOOST_TEST(inf->lister().get("ns", "b") == nullptr);
  BOOST_TEST(inf->get_store()->size() == 2u);
  std::lock_guard lock(errors_mutex);
  BOOST_REQUIRE(!errors.empty());
  BOOST_TEST(errors.front() == make_error_code(errc::expired));
}

BOOST_AUTO_TEST_CASE(a_relist_with_an_undecodable_item_keeps_it_cached_and_reports_it) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  source->create(cm("a"));
  const auto b = source->create(cm("b"));
  source->create(cm("c"));
  std::mutex errors_mutex;
  std::vector<std::string> errors;
  auto options = test_options();
  options.watch_error_handler = [&](const informer::error& e) {
    std::lock_guard lock(errors_mutex);
    errors.push_back(e.what());
  };
  event_log log;
  auto inf = shared_informer::create(source, options);
  auto reg = inf->add_event_handler(log.handlers());
  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  BOOST_REQUIRE(source->wait_for_watches(1, patience));

  // b cannot be decoded any more when the relist comes, and c is deleted unseen meanwhile.
  source->set_undecodable("ns/b");
  source->send_error(status{.code = 410, .reason = "Expired", .message = "too old resource version"});
  source->remove("ns/c");
  source->compact(source->current_revision());
  BOOST_REQUIRE(log.wait_for("delete ns/c tombstone"));
  BOOST_TEST(
      log.entries() == (strings{"add ns/a initial", "add ns/b initial", "add ns/c initial", "delete ns/c tombstone"}),
      boost::test_tools::per_element());
  BOOST_REQUIRE(inf->lister().get("ns", "b") != nullptr);
  BOOST_TEST(inf->lister().get("ns", "b")->resource_version() == b->resource_version());
  // Reported once the relist is applied (the tombstone may reach the handler first).
  BOOST_TEST(eventually([&] {
    std::lock_guard lock(errors_mutex);
    return std::any_of(errors.begin(), errors.end(),
                       [](const std::string& m) { return m.find("ns/b is undecodable") != std::string::npos; });
  }));
}

BOOST_AUTO_TEST_CASE(remove_event_handler_stops_delivery) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  event_log kept;
  event_log removed;
  event_log self_removed;
  auto inf = shared_informer::create(source, test_options());
  auto kept_reg = inf->add_event_handler(kept.handlers());
  auto removed_reg = inf->add_event_handler(removed.handlers());
  // A handler that removes itself from inside its first call (no self-deadlock).
  // The cache is empty, so it is first called after run(), which orders the assignment before it.
  // The test owns the registration; the handler sees it by pointer (capturing the shared_ptr
  // would make registration -> listener -> handler -> registration a cycle that never frees).
  auto self = std::make_shared<handler_registration>();
  *self = inf->add_event_handler({.on_add = [&, reg = self.get()](const object::ptr& o, bool) {
    self_removed.record("add " + object_key(*o));
    inf->remove_event_handler(*reg);
  }});
  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  BOOST_REQUIRE(source->wait_for_watches(1, patience));
  source->create(cm("a"));
  BOOST_REQUIRE(kept.wait_for_size(1));
  BOOST_REQUIRE(removed.wait_for_size(1));
  BOOST_REQUIRE(self_removed.wait_for_size(1));

  inf->remove_event_handler(removed_reg);
  inf->remove_event_handler(removed_reg);  // again: ignored
  BOOST_TEST(removed_reg.pending() == 0u);
  source->create(cm("b"));
  source->create(cm("c"));
  BOOST_REQUIRE(kept.wait_for_size(3));
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(removed.entries() == (strings{"add ns/a"}), boost::test_tools::per_element());
  BOOST_TEST(self_removed.entries() == (strings{"add ns/a"}), boost::test_tools::per_element());
  inf->stop();
}

BOOST_AUTO_TEST_CASE(remove_event_handler_ignores_another_informers_registration) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  source->create(cm("a"));
  auto mine = shared_informer::create(source, test_options());
  auto other = shared_informer::create(source, test_options());
  event_log log;
  auto reg = mine->add_event_handler(log.handlers());
  other->remove_event_handler(reg);  // not other's: nothing happens
  mine->run();
  BOOST_REQUIRE(eventually([&] { return reg.has_synced(); }));
  BOOST_REQUIRE(source->wait_for_watches(1, patience));
  source->create(cm("b"));
  BOOST_TEST(log.wait_for("add ns/b"));
  mine->stop();
}

BOOST_AUTO_TEST_CASE(no_transform_or_hook_runs_after_stop_returns) {
  // A relist whose transform takes a while: stop() arrives in the middle of it.
  executor_pool pool(1);
  auto source = std::make_shared<scripted_source>(pool.executor());
  for (int i = 0; i < 300; ++i) source->create(cm(numbered("cm-", i)));
  std::atomic<bool> returned{false};
  std::atomic<int> transforms{0};
  std::atomic<int> late_calls{0};
  auto options = test_options();
  options.transform = [&](object::ptr obj) {
    if (returned.load()) ++late_calls;
    ++transforms;
    std::this_thread::sleep_for(5ms);
    return obj;
  };
  options.reflector.metrics.on_list = [&](std::size_t, std::chrono::nanoseconds) {
    if (returned.load()) ++late_calls;
  };
  options.watch_error_handler = [&](const informer::error&) {
    if (returned.load()) ++late_calls;
  };
  auto inf = shared_informer::create(source, options);
  inf->run();
  BOOST_REQUIRE(eventually([&] { return transforms.load() >= 10; }));
  const auto started = std::chrono::steady_clock::now();
  inf->stop();
  returned = true;
  const auto took = std::chrono::steady_clock::now() - started;
  std::this_thread::sleep_for(500ms);  // time for a loop that went on to show itself
  BOOST_TEST(late_calls.load() == 0);
  BOOST_TEST(transforms.load() < 300, "the relist's transform loop ended early");
  BOOST_TEST((took < 1s));
}

BOOST_AUTO_TEST_CASE(lifecycle_stop_is_idempotent_and_final) {
  executor_pool pool;
  auto source = std::make_shared<scripted_source>(pool.executor());
  source->create(cm("a"));
  auto inf = shared_informer::create(source, test_options());
  // Not running: never syncs.
  BOOST_TEST(!wait_for_cache_sync({inf}, 30ms));
  std::stop_source stopper;
  std::jthread requester([&] {
    std::this_thread::sleep_for(30ms);
    stopper.request_stop();
  });
  BOOST_TEST(!wait_for_cache_sync({inf}, stopper.get_token()));

  inf->run();
  inf->run();  // ignored
  BOOST_TEST(wait_for_cache_sync({inf}, std::stop_token{}));
  const std::vector<std::shared_ptr<shared_informer>> all{inf};
  BOOST_TEST(wait_for_cache_sync(all, patience));

  // Concurrent and repeated stops all return once it is done.
  std::jthread other([&] { inf->stop(); });
  inf->stop();
  other.join();
  inf->stop();
  BOOST_TEST(inf->stopped());

  event_log late;
  auto reg = inf->add_event_handler(late.handlers());
  inf->run();  // an informer runs once
  source->create(cm("b"));
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(late.size() == 0u);
  BOOST_TEST(!reg.has_synced());

  // A stopped informer that never synced makes waiters return at once.
  auto never = shared_informer::create(source, test_options());
  never->stop();
  const auto started = std::chrono::steady_clock::now();
  BOOST_TEST(!wait_for_cache_sync({never}, patience));
  BOOST_TEST((std::chrono::steady_clock::now() - started < 1s));
}

BOOST_AUTO_TEST_CASE(handlers_may_run_on_their_own_executor) {
  executor_pool io(1);
  executor_pool handlers(2);
  auto source = std::make_shared<scripted_source>(io.executor());
  source->create(cm("a"));
  auto options = test_options();
  options.handler_executor = handlers.executor();
  std::atomic<bool> on_io_thread{false};
  std::atomic<int> calls{0};
  // The io pool has one thread; learn its id from a job posted there.
  std::promise<std::thread::id> io_id;
  boost::asio::post(io.executor(), [&] { io_id.set_value(std::this_thread::get_id()); });
  const auto io_thread = io_id.get_future().get();
  auto inf = shared_informer::create(source, options);
  auto reg = inf->add_event_handler({.on_add = [&](const object::ptr&, bool) {
    if (std::this_thread::get_id() == io_thread) on_io_thread = true;
    ++calls;
  }});
  inf->run();
  BOOST_REQUIRE(eventually([&] { return reg.has_synced(); }));
  BOOST_TEST(calls.load() == 1);
  BOOST_TEST(!on_io_thread.load());
  inf->stop();
}

BOOST_AUTO_TEST_CASE(destroying_an_informer_after_its_io_context_stopped_does_not_hang) {
  auto io = std::make_unique<boost::asio::io_context>();
  auto source = std::make_shared<informer::testing::scripted_source>(io->get_executor());
  source->create(R"({"metadata":{"name":"a","namespace":"n"}})");
  auto inf = shared_informer::create(source, {});
  inf->run();
  std::thread runner([&] { io->run_for(std::chrono::milliseconds(300)); });
  runner.join();  // the io_context is no longer running
  const auto started = std::chrono::steady_clock::now();
  inf.reset();  // stop(): bounded wait for the reflector
  BOOST_TEST((std::chrono::steady_clock::now() - started < std::chrono::seconds(5)));
  io.reset();  // destroying the io_context ends the loop's frames
}
