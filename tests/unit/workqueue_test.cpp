#include "informer/controller/workqueue.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using informer::workqueue;

namespace {

// Generous bound for "should happen soon": only reached when something is broken.
constexpr auto patience = 10s;

// get() with a deadline: a hung get fails the test instead of hanging it (the queue is shut down
// to release the waiting thread).
std::optional<std::string> get_within(workqueue& q, std::chrono::nanoseconds limit = patience) {
  auto pending = std::async(std::launch::async, [&q] { return q.get(); });
  if (pending.wait_for(limit) != std::future_status::ready) {
    q.shut_down();
    BOOST_FAIL("get() did not return in time");
  }
  return pending.get();
}

}  // namespace

BOOST_AUTO_TEST_CASE(duplicate_adds_of_a_queued_key_collapse) {
  workqueue q;
  q.add("a");
  q.add("b");
  q.add("a");
  BOOST_TEST(q.len() == 2u);
  BOOST_TEST(q.get().value() == "a");
  BOOST_TEST(q.get().value() == "b");
  BOOST_TEST(q.len() == 0u);
}

BOOST_AUTO_TEST_CASE(key_added_while_processing_is_redelivered_after_done) {
  workqueue q;
  q.add("a");
  BOOST_TEST(q.get().value() == "a");
  q.add("a");
  q.add("a");
  BOOST_TEST(q.len() == 0u);  // held back while a worker has it
  q.done("a");
  BOOST_TEST(q.len() == 1u);  // exactly once, however often it was re-added
  BOOST_TEST(q.get().value() == "a");
  q.done("a");
  BOOST_TEST(q.len() == 0u);
  q.done("a");  // not processing: ignored
  q.done("never");
  BOOST_TEST(q.len() == 0u);
}

BOOST_AUTO_TEST_CASE(progress_counts_the_keys_in_progress_and_their_time) {
  std::optional<informer::workqueue> q(std::in_place);
  const auto observe = q->progress_observer();
  BOOST_TEST(observe()->keys == 0u);
  q->add("a");
  q->add("b");
  BOOST_TEST(q->progress().keys == 0u);  // queued is not in progress
  const auto a = q->get();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  const auto b = q->get();
  const auto p = observe();
  BOOST_REQUIRE(p.has_value());
  BOOST_TEST(p->keys == 2u);
  BOOST_TEST(p->longest >= std::chrono::milliseconds(30));
  BOOST_TEST(p->total >= p->longest);
  BOOST_TEST(p->total < p->longest * 2);  // b has run for much less than a
  q->done(*a);
  q->done(*b);
  BOOST_TEST(q->progress().keys == 0u);
  BOOST_TEST(q->progress().longest.count() == 0);
  q.reset();
  BOOST_TEST(!observe().has_value());  // the queue is gone
}

BOOST_AUTO_TEST_CASE(keys_come_out_in_first_queued_order) {
  workqueue q;
  for (const char* key : {"c", "a", "b", "a"}) q.add(key);
  BOOST_TEST(q.get().value() == "c");
  BOOST_TEST(q.get().value() == "a");
  BOOST_TEST(q.get().value() == "b");
}

BOOST_AUTO_TEST_CASE(no_two_workers_hold_the_same_key) {
  constexpr int key_count = 8;
  constexpr int worker_count = 8;
  constexpr int adds = 20000;
  workqueue q;
  std::array<std::atomic<int>, key_count> holders{};
  std::array<std::atomic<long>, key_count> version{};  // bumped before every add
  std::array<std::atomic<long>, key_count> seen{};     // highest version a worker has processed
  std::atomic<bool> overlap{false};

  std::vector<std::thread> workers;
  for (int w = 0; w < worker_count; ++w) {
    workers.emplace_back([&] {
      while (auto key = q.get()) {
        const int k = std::stoi(*key);
        if (holders[k].fetch_add(1) != 0) overlap = true;
        // Read after get(): any add that happens later must cause another delivery.
        const long v = version[k].load();
        std::this_thread::yield();
        long prev = seen[k].load();
        while (prev < v && !seen[k].compare_exchange_weak(prev, v)) {
        }
        holders[k].fetch_sub(1);
        q.done(*key);
      }
    });
  }

  std::vector<std::thread> producers;
  for (int p = 0; p < 2; ++p) {
    producers.emplace_back([&, p] {
      std::minstd_rand rng(static_cast<unsigned>(p + 1));
      for (int i = 0; i < adds / 2; ++i) {
        const int k = static_cast<int>(rng() % key_count);
        version[k].fetch_add(1);
        q.add(std::to_string(k));
      }
    });
  }
  for (auto& producer : producers) producer.join();

  // Every key's last add must be followed by a reconcile that saw it.
  const auto give_up = std::chrono::steady_clock::now() + patience;
  auto caught_up = [&] {
    for (int k = 0; k < key_count; ++k) {
      if (seen[k].load() != version[k].load()) return false;
    }
    return true;
  };
  while (!caught_up() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(1ms);

  q.shut_down();
  for (auto& worker : workers) worker.join();
  BOOST_TEST(!overlap.load());
  for (int k = 0; k < key_count; ++k) BOOST_TEST(seen[k].load() == version[k].load(), "key " << k);
}

BOOST_AUTO_TEST_CASE(add_after_releases_keys_in_deadline_order) {
  workqueue q;
  q.add_after("c", 300ms);
  q.add_after("a", 100ms);
  q.add_after("b", 200ms);
  q.add_after("now", 0ms);  // no delay: queued at once
  BOOST_TEST(q.len() == 1u);
  BOOST_TEST(q.get().value() == "now");
  const auto start = std::chrono::steady_clock::now();
  BOOST_TEST(get_within(q).value() == "a");
  BOOST_TEST(get_within(q).value() == "b");
  BOOST_TEST(get_within(q).value() == "c");
  BOOST_TEST((std::chrono::steady_clock::now() - start >= 250ms));  // never early
}

BOOST_AUTO_TEST_CASE(add_after_earlier_deadline_wins) {
  workqueue q;
  // A later deadline does not postpone a key that is already waiting ...
  q.add_after("x", 50ms);
  q.add_after("x", 1h);
  // ... and an earlier one brings it forward.
  q.add_after("y", 1h);
  q.add_after("y", 100ms);
  BOOST_TEST(get_within(q).value() == "x");
  BOOST_TEST(get_within(q).value() == "y");
  q.done("x");
  q.done("y");
  std::this_thread::sleep_for(100ms);
  BOOST_TEST(q.len() == 0u);  // each delivered once
}

BOOST_AUTO_TEST_CASE(delayed_key_that_is_already_queued_collapses) {
  workqueue q;
  q.add("k");
  q.add_after("k", 10ms);
  std::this_thread::sleep_for(100ms);
  BOOST_TEST(q.len() == 1u);
}

BOOST_AUTO_TEST_CASE(add_rate_limited_uses_the_limiter) {
  workqueue q({.limiter = std::make_shared<informer::exponential_rate_limiter>(
                   informer::exponential_rate_limiter_options{.base_delay = 20ms})});
  const auto start = std::chrono::steady_clock::now();
  q.add_rate_limited("k");
  BOOST_TEST(q.num_requeues("k") == 1);
  BOOST_TEST(q.len() == 0u);
  BOOST_TEST(get_within(q).value() == "k");
  BOOST_TEST((std::chrono::steady_clock::now() - start >= 20ms));
  q.forget("k");
  BOOST_TEST(q.num_requeues("k") == 0);
}

BOOST_AUTO_TEST_CASE(delayed_keys_wait_on_the_given_executor) {
  boost::asio::io_context io;
  workqueue q({.executor = io.get_executor()});
  q.add_after("k", 10ms);
  BOOST_TEST(q.len() == 0u);
  io.run_for(patience);  // the pending wait is the context's only work: returns once it fired
  BOOST_TEST(q.len() == 1u);

  // Shutting down cancels the wait: the context is out of work at once, not in an hour.
  q.add_after("later", 1h);
  q.shut_down();
  io.restart();
  const auto start = std::chrono::steady_clock::now();
  io.run_for(patience);
  BOOST_TEST((std::chrono::steady_clock::now() - start < patience));
}

BOOST_AUTO_TEST_CASE(shut_down_wakes_blocked_get) {
  workqueue q;
  auto blocked = std::async(std::launch::async, [&q] { return q.get(); });
  BOOST_TEST((blocked.wait_for(50ms) == std::future_status::timeout));
  q.shut_down();
  BOOST_REQUIRE((blocked.wait_for(patience) == std::future_status::ready));
  BOOST_TEST(!blocked.get().has_value());
  BOOST_TEST(q.shutting_down());
}

BOOST_AUTO_TEST_CASE(shut_down_drops_queued_and_delayed_keys_and_ignores_adds) {
  workqueue q;
  q.add("a");
  q.add_after("later", 10ms);
  q.shut_down();
  BOOST_TEST(q.len() == 0u);
  BOOST_TEST(!q.get().has_value());
  q.add("b");
  q.add_after("c", 1ms);
  q.add_rate_limited("d");
  BOOST_TEST(q.len() == 0u);
  BOOST_TEST(!q.get().has_value());
  q.shut_down();  // idempotent
}

BOOST_AUTO_TEST_CASE(shut_down_with_drain_waits_for_in_flight_and_queued_work) {
  workqueue q;
  q.add("a");
  q.add("b");
  BOOST_TEST(q.get().value() == "a");  // in flight
  q.add("a");                          // dirty: must still be processed during the drain

  std::atomic<bool> drained{false};
  std::thread drainer([&] {
    q.shut_down_with_drain();
    drained = true;
  });
  std::this_thread::sleep_for(100ms);
  BOOST_TEST(!drained.load());
  BOOST_TEST(q.shutting_down());
  q.add("new");  // refused during the drain
  BOOST_TEST(q.len() == 1u);

  BOOST_TEST(get_within(q).value() == "b");  // already queued keys are still handed out
  q.done("a");                               // re-queues the dirty "a"
  q.done("b");
  BOOST_TEST(get_within(q).value() == "a");
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(!drained.load());  // "a" is still in flight
  q.done("a");
  drainer.join();
  BOOST_TEST(drained.load());
  BOOST_TEST(!q.get().has_value());
}

BOOST_AUTO_TEST_CASE(shut_down_ends_a_drain) {
  workqueue q;
  q.add("a");
  BOOST_TEST(q.get().value() == "a");
  auto drainer = std::async(std::launch::async, [&q] { q.shut_down_with_drain(); });
  BOOST_TEST((drainer.wait_for(50ms) == std::future_status::timeout));
  q.shut_down();
  BOOST_TEST((drainer.wait_for(patience) == std::future_status::ready));
  q.done("a");
}

BOOST_AUTO_TEST_CASE(metrics_hooks_report_queue_activity) {
  std::mutex mu;
  std::vector<std::size_t> depths;
  std::vector<std::string> added;
  std::vector<std::string> retried;
  int latencies = 0;
  int durations = 0;
  workqueue q({
      .limiter = std::make_shared<informer::exponential_rate_limiter>(
          informer::exponential_rate_limiter_options{.base_delay = 1ms}),
      .metrics = {
          .on_depth =
              [&](std::size_t n) {
                std::lock_guard l(mu);
                depths.push_back(n);
              },
          .on_add =
              [&](const std::string& key) {
                std::lock_guard l(mu);
                added.push_back(key);
              },
          .on_queue_latency =
              [&](std::chrono::nanoseconds) {
                std::lock_guard l(mu);
                ++latencies;
              },
          .on_work_duration =
              [&](std::chrono::nanoseconds) {
                std::lock_guard l(mu);
                ++durations;
              },
          .on_retry =
              [&](const std::string& key) {
                std::lock_guard l(mu);
                retried.push_back(key);
              },
      },
  });
  q.add("a");
  q.add("a");  // collapsed: not reported
  q.add("b");
  BOOST_TEST(q.get().value() == "a");
  q.done("a");
  BOOST_TEST(q.get().value() == "b");
  q.add_rate_limited("c");
  BOOST_TEST(get_within(q).value() == "c");

  std::lock_guard l(mu);
  BOOST_TEST(added == (std::vector<std::string>{"a", "b", "c"}), boost::test_tools::per_element());
  BOOST_TEST(retried == std::vector<std::string>{"c"}, boost::test_tools::per_element());
  BOOST_TEST(depths == (std::vector<std::size_t>{1, 2, 1, 0, 1, 0}), boost::test_tools::per_element());
  BOOST_TEST(latencies == 3);
  BOOST_TEST(durations == 1);
}
