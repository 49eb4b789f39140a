#include "informer/controller/rate_limiter.hpp"

#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using informer::bucket_rate_limiter;
using informer::bucket_rate_limiter_options;
using informer::exponential_rate_limiter;
using informer::exponential_rate_limiter_options;

namespace {

// A clock the test moves by hand; the limiter reads it through `now()`.
struct fake_clock {
  std::chrono::steady_clock::time_point t{std::chrono::hours(1)};
  informer::steady_now_fn fn() {
    return [this] { return t; };
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(exponential_doubles_per_failure_and_resets_on_forget) {
  exponential_rate_limiter limiter({.base_delay = 5ms, .max_delay = 1s});
  BOOST_TEST(limiter.num_requeues("a") == 0);
  BOOST_TEST(limiter.when("a").count() == std::chrono::nanoseconds(5ms).count());
  BOOST_TEST(limiter.when("a").count() == std::chrono::nanoseconds(10ms).count());
  BOOST_TEST(limiter.when("a").count() == std::chrono::nanoseconds(20ms).count());
  BOOST_TEST(limiter.num_requeues("a") == 3);

  // Keys back off independently.
  BOOST_TEST(limiter.when("b").count() == std::chrono::nanoseconds(5ms).count());
  BOOST_TEST(limiter.num_requeues("b") == 1);

  limiter.forget("a");
  BOOST_TEST(limiter.num_requeues("a") == 0);
  BOOST_TEST(limiter.when("a").count() == std::chrono::nanoseconds(5ms).count());
  BOOST_TEST(limiter.num_requeues("b") == 1);
}

BOOST_AUTO_TEST_CASE(exponential_saturates_at_max_without_overflow) {
  exponential_rate_limiter limiter({.base_delay = 5ms, .max_delay = 1s});
  for (int i = 0; i < 8; ++i) limiter.when("k");                                  // 5ms * 2^7 = 640ms
  BOOST_TEST(limiter.when("k").count() == std::chrono::nanoseconds(1s).count());  // 1280ms capped
  for (int i = 0; i < 200; ++i) {
    const auto d = limiter.when("k");
    BOOST_TEST_REQUIRE(d.count() == std::chrono::nanoseconds(1s).count());
  }
}

BOOST_AUTO_TEST_CASE(exponential_with_zero_base_never_waits) {
  exponential_rate_limiter limiter({.base_delay = 0ns, .max_delay = 1s});
  for (int i = 0; i < 2000; ++i) BOOST_TEST_REQUIRE(limiter.when("k").count() == 0);
  BOOST_TEST(limiter.num_requeues("k") == 2000);
}

BOOST_AUTO_TEST_CASE(exponential_defaults_match_client_go) {
  exponential_rate_limiter limiter;
  BOOST_TEST(limiter.when("k").count() == std::chrono::nanoseconds(5ms).count());
  for (int i = 0; i < 100; ++i) limiter.when("k");
  BOOST_TEST(limiter.when("k").count() == std::chrono::nanoseconds(1000s).count());
}

BOOST_AUTO_TEST_CASE(exponential_rejects_bad_options) {
  BOOST_CHECK_THROW(exponential_rate_limiter({.base_delay = -1ms}), std::invalid_argument);
  BOOST_CHECK_THROW(exponential_rate_limiter({.base_delay = 2s, .max_delay = 1s}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(bucket_allows_burst_then_spaces_calls) {
  fake_clock clock;
  bucket_rate_limiter limiter({.qps = 10.0, .burst = 3, .now = clock.fn()});
  for (int i = 0; i < 3; ++i) BOOST_TEST(limiter.when("k").count() == 0);
  // Each further call reserves a token 100 ms after the previous one.
  BOOST_TEST(limiter.when("k").count() == std::chrono::nanoseconds(100ms).count());
  BOOST_TEST(limiter.when("other").count() == std::chrono::nanoseconds(200ms).count());

  // 100 ms later one token has been minted and is already spoken for.
  clock.t += 100ms;
  BOOST_TEST(limiter.when("k").count() == std::chrono::nanoseconds(200ms).count());

  // A long pause refills the bucket only up to the burst.
  clock.t += 1h;
  for (int i = 0; i < 3; ++i) BOOST_TEST(limiter.when("k").count() == 0);
  BOOST_TEST(limiter.when("k").count() == std::chrono::nanoseconds(100ms).count());

  BOOST_TEST(limiter.num_requeues("k") == 0);
  limiter.forget("k");  // no per-key state: the bucket is unchanged
  BOOST_TEST(limiter.when("k").count() == std::chrono::nanoseconds(200ms).count());
}

BOOST_AUTO_TEST_CASE(bucket_ignores_a_clock_stepping_back) {
  fake_clock clock;
  bucket_rate_limiter limiter({.qps = 1.0, .burst = 1, .now = clock.fn()});
  BOOST_TEST(limiter.when("k").count() == 0);
  clock.t -= 10s;
  BOOST_TEST(limiter.when("k").count() == std::chrono::nanoseconds(1s).count());
}

BOOST_AUTO_TEST_CASE(bucket_rejects_bad_options) {
  BOOST_CHECK_THROW(bucket_rate_limiter({.qps = 0.0}), std::invalid_argument);
  BOOST_CHECK_THROW(bucket_rate_limiter({.qps = 1.0, .burst = 0}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(max_of_takes_the_longest_and_forgets_everywhere) {
  fake_clock clock;
  auto exponential = std::make_shared<exponential_rate_limiter>(exponential_rate_limiter_options{.base_delay = 5ms});
  auto bucket =
      std::make_shared<bucket_rate_limiter>(bucket_rate_limiter_options{.qps = 1.0, .burst = 1, .now = clock.fn()});
  auto limiter = informer::max_of({exponential, bucket});

  BOOST_TEST(limiter->when("k").count() == std::chrono::nanoseconds(5ms).count());  // bucket: 0
  BOOST_TEST(limiter->when("k").count() == std::chrono::nanoseconds(1s).count());   // bucket: 1 s
  BOOST_TEST(limiter->num_requeues("k") == 2);
  BOOST_TEST(exponential->num_requeues("k") == 2);  // every child saw every call

  limiter->forget("k");
  BOOST_TEST(limiter->num_requeues("k") == 0);
  clock.t += 1h;
  BOOST_TEST(limiter->when("k").count() == std::chrono::nanoseconds(5ms).count());

  BOOST_TEST(informer::max_of({})->when("k").count() == 0);
  BOOST_CHECK_THROW(informer::max_of({exponential, nullptr}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(default_controller_limiter_combines_backoff_and_bucket) {
  fake_clock clock;
  auto limiter = informer::make_default_controller_rate_limiter(clock.fn());
  BOOST_TEST(limiter->when("k").count() == std::chrono::nanoseconds(5ms).count());
  BOOST_TEST(limiter->when("k").count() == std::chrono::nanoseconds(10ms).count());
  // 98 more distinct keys use up the burst of 100 ...
  for (int i = 0; i < 98; ++i) limiter->when("key-" + std::to_string(i));
  // ... so the next fresh key waits for the bucket (100 ms at 10 qps), not for its 5 ms backoff.
  BOOST_TEST(limiter->when("fresh").count() == std::chrono::nanoseconds(100ms).count());
}

BOOST_AUTO_TEST_CASE(limiters_are_thread_safe) {
  auto limiter = informer::make_default_controller_rate_limiter();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&limiter, t] {
      for (int i = 0; i < 1000; ++i) {
        const std::string key = "k" + std::to_string((i + t) % 7);
        limiter->when(key);
        if (i % 10 == 0) limiter->forget(key);
        limiter->num_requeues(key);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  BOOST_TEST(limiter->num_requeues("never") == 0);
}
