#include "informer/controller/controller.hpp"

#include <boost/test/unit_test.hpp>

#include "wait.hpp"

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using informer::controller;
using informer::reconcile_result;
using informer::testing::eventually;
using steady = std::chrono::steady_clock;

namespace {

// Reconcile calls as seen by the test, guarded by one mutex.
struct call_log {
  std::mutex mu;
  std::vector<std::string> keys;
  std::vector<steady::time_point> times;

  void record(const std::string& key) {
    std::lock_guard lock(mu);
    keys.push_back(key);
    times.push_back(steady::now());
  }
  std::size_t size() {
    std::lock_guard lock(mu);
    return keys.size();
  }
};

std::shared_ptr<informer::rate_limiter> backoff(std::chrono::nanoseconds base) {
  return std::make_shared<informer::exponential_rate_limiter>(
      informer::exponential_rate_limiter_options{.base_delay = base, .max_delay = 10s});
}

}  // namespace

BOOST_AUTO_TEST_CASE(requeue_after_runs_again_after_the_delay) {
  call_log log;
  std::atomic<int> calls{0};
  controller c({
      .name = "requeue-after",
      .reconcile = [&](const std::string& key) -> informer::result<reconcile_result> {
        log.record(key);
        if (calls.fetch_add(1) == 0) return reconcile_result{.requeue_after = 150ms};
        return reconcile_result{};
      },
  });
  BOOST_TEST(c.name() == "requeue-after");
  BOOST_TEST_REQUIRE(c.run().has_value());
  c.enqueue("ns/a");
  BOOST_TEST_REQUIRE(eventually([&] { return log.size() >= 2; }));
  std::this_thread::sleep_for(200ms);
  c.stop();

  std::lock_guard lock(log.mu);
  BOOST_TEST(log.keys.size() == 2u);  // the plain success did not requeue
  BOOST_TEST((log.times[1] - log.times[0] >= 150ms));
  BOOST_TEST(c.queue().num_requeues("ns/a") == 0);  // requeue_after forgets the backoff
}

BOOST_AUTO_TEST_CASE(errors_are_retried_with_growing_delay) {
  constexpr int failures = 4;
  constexpr auto base = 20ms;
  call_log log;
  std::atomic<int> calls{0};
  std::atomic<int> errors{0};
  std::atomic<int> retries{0};
  std::atomic<int> latencies{0};
  controller c({
      .reconcile = [&](const std::string& key) -> informer::result<reconcile_result> {
        log.record(key);
        if (calls.fetch_add(1) < failures) return informer::make_error_code(informer::errc::not_found);
        return reconcile_result{};
      },
      .limiter = backoff(base),
      .metrics = {
          .on_reconcile_latency = [&](std::chrono::nanoseconds) { ++latencies; },
          .on_error =
              [&](const std::string& key, std::string_view message) {
                // Boost.Test assertions are not thread-safe: count what matches instead.
                if (key == "k" && message == "not found") ++errors;
              },
          .on_retry = [&](const std::string&) { ++retries; },
      },
  });
  BOOST_TEST_REQUIRE(c.run().has_value());
  c.enqueue("k");
  BOOST_TEST_REQUIRE(eventually([&] { return log.size() >= failures + 1; }));
  c.stop();

  std::lock_guard lock(log.mu);
  BOOST_TEST(log.keys.size() == std::size_t{failures + 1});
  // Retry n waits at least base * 2^n: the timer never fires early, so these bounds are exact.
  for (int n = 0; n < failures; ++n) {
    BOOST_TEST((log.times[n + 1] - log.times[n] >= base * (1 << n)), "retry " << n);
  }
  BOOST_TEST(errors.load() == failures);
  BOOST_TEST(retries.load() == failures);
  BOOST_TEST(latencies.load() == failures + 1);
  BOOST_TEST(c.queue().num_requeues("k") == 0);  // the success forgot the failures
}

BOOST_AUTO_TEST_CASE(requeue_uses_the_rate_limiter) {
  std::atomic<int> calls{0};
  controller c({
      .reconcile = [&](const std::string&) -> informer::result<reconcile_result> {
        return reconcile_result{.requeue = calls.fetch_add(1) < 2};
      },
      .limiter = backoff(1ms),
  });
  BOOST_TEST_REQUIRE(c.run().has_value());
  c.enqueue("k");
  BOOST_TEST_REQUIRE(eventually([&] { return calls.load() >= 3; }));
  std::this_thread::sleep_for(50ms);
  c.stop();
  BOOST_TEST(calls.load() == 3);
  BOOST_TEST(c.queue().num_requeues("k") == 0);
}

BOOST_AUTO_TEST_CASE(exceptions_are_isolated_and_retried) {
  call_log log;
  std::atomic<int> bad_calls{0};
  std::mutex messages_mu;
  std::vector<std::string> messages;
  controller c({
      .workers = 1,  // one worker: it must survive the throws to process the other keys
      .reconcile = [&](const std::string& key) -> informer::result<reconcile_result> {
        log.record(key);
        if (key == "bad") {
          const int n = bad_calls.fetch_add(1);
          if (n == 0) throw std::runtime_error("boom");
          if (n == 1) throw 42;
        }
        return reconcile_result{};
      },
      .limiter = backoff(1ms),
      .metrics = {.on_error =
                      [&](const std::string& key, std::string_view message) {
                        std::lock_guard lock(messages_mu);
                        messages.push_back(key + ": " + std::string(message));
                      }},
  });
  c.enqueue("bad");
  c.enqueue("good-1");
  c.enqueue("good-2");
  BOOST_TEST_REQUIRE(c.run().has_value());
  BOOST_TEST_REQUIRE(eventually([&] { return bad_calls.load() >= 3 && log.size() >= 5; }));
  c.stop();

  BOOST_TEST(log.size() == 5u);
  std::lock_guard lock(messages_mu);
  BOOST_TEST_REQUIRE(messages.size() == 2u);
  BOOST_TEST(messages[0] == "bad: reconcile threw: boom");
  BOOST_TEST(messages[1] == "bad: reconcile threw a non-standard exception");
}

BOOST_AUTO_TEST_CASE(stop_with_work_in_flight_returns_promptly) {
  std::atomic<int> started{0};
  controller c({
      .workers = 2,
      .reconcile = [&](const std::string&) -> informer::result<reconcile_result> {
        ++started;
        std::this_thread::sleep_for(200ms);
        return reconcile_result{};
      },
  });
  for (int i = 0; i < 100; ++i) c.enqueue("k" + std::to_string(i));
  BOOST_TEST_REQUIRE(c.run().has_value());
  BOOST_TEST_REQUIRE(eventually([&] { return started.load() >= 2; }));

  const auto begin = steady::now();
  c.stop();
  // Waits for the two reconciles in flight (<= 200 ms), not for the 98 queued (~10 s).
  BOOST_TEST((steady::now() - begin < 2s));
  BOOST_TEST(started.load() <= 4);
  BOOST_TEST(c.queue().len() == 0u);
}

BOOST_AUTO_TEST_CASE(long_reconcile_can_watch_for_shutdown) {
  std::atomic<bool> in_flight{false};
  std::unique_ptr<controller> c;
  c = std::make_unique<controller>(informer::controller_options{
      .reconcile = [&](const std::string&) -> informer::result<reconcile_result> {
        in_flight = true;
        while (!c->queue().shutting_down()) std::this_thread::sleep_for(1ms);
        return reconcile_result{};
      },
  });
  BOOST_TEST_REQUIRE(c->run().has_value());
  c->enqueue("k");
  BOOST_TEST_REQUIRE(eventually([&] { return in_flight.load(); }));
  const auto begin = steady::now();
  c->stop();
  BOOST_TEST((steady::now() - begin < 2s));
}

BOOST_AUTO_TEST_CASE(drain_on_stop_finishes_queued_keys) {
  std::atomic<int> done{0};
  controller c({
      .workers = 3,
      .reconcile = [&](const std::string&) -> informer::result<reconcile_result> {
        std::this_thread::sleep_for(1ms);
        ++done;
        return reconcile_result{};
      },
      .drain_on_stop = true,
  });
  for (int i = 0; i < 50; ++i) c.enqueue("k" + std::to_string(i));
  BOOST_TEST_REQUIRE(c.run().has_value());
  c.stop();
  BOOST_TEST(done.load() == 50);
}

BOOST_AUTO_TEST_CASE(lifecycle) {
  auto ok = [](const std::string&) -> informer::result<reconcile_result> { return reconcile_result{}; };
  BOOST_CHECK_THROW(controller(informer::controller_options{}), std::invalid_argument);
  BOOST_CHECK_THROW(controller(informer::controller_options{.workers = 0, .reconcile = ok}), std::invalid_argument);

  {
    controller never_run({.reconcile = ok, .drain_on_stop = true});
    never_run.enqueue("k");
    never_run.stop();  // no workers to drain: must not wait
  }

  std::atomic<int> calls{0};
  {
    controller c({.workers = 4, .reconcile = [&](const std::string&) -> informer::result<reconcile_result> {
                    ++calls;
                    return reconcile_result{};
                  }});
    BOOST_TEST(c.run().has_value());
    BOOST_TEST(c.run().has_value());  // already running: no-op
    c.enqueue("k");
    BOOST_TEST_REQUIRE(eventually([&] { return calls.load() == 1; }));
    c.stop();
    c.stop();
    BOOST_TEST((c.run().error() == informer::errc::closed));
    c.enqueue("after-stop");  // ignored
  }
  {
    controller running({.workers = 2, .reconcile = ok});
    BOOST_TEST(running.run().has_value());
  }  // the destructor stops and joins
  BOOST_TEST(calls.load() == 1);
}
