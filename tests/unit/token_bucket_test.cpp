#include "informer/core/token_bucket.hpp"

#include <boost/test/unit_test.hpp>

#include <stdexcept>

using namespace std::chrono_literals;
using informer::token_bucket;

namespace {

struct fake_clock {
  std::chrono::steady_clock::time_point t{};
  informer::steady_now_fn fn() {
    return [this] { return t; };
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_full_bucket_lets_a_burst_through_then_spaces_calls) {
  fake_clock clock;
  token_bucket bucket({.qps = 10.0, .burst = 2, .now = clock.fn()});
  BOOST_TEST(bucket.reserve().count() == 0);
  BOOST_TEST(bucket.reserve().count() == 0);
  BOOST_TEST(bucket.reserve().count() == std::chrono::nanoseconds(100ms).count());
  BOOST_TEST(bucket.reserve().count() == std::chrono::nanoseconds(200ms).count());
  clock.t += 1s;  // refills, but never beyond the burst
  BOOST_TEST(bucket.reserve().count() == 0);
  BOOST_TEST(bucket.reserve().count() == 0);
  BOOST_TEST(bucket.reserve().count() == std::chrono::nanoseconds(100ms).count());
}

BOOST_AUTO_TEST_CASE(try_take_refuses_without_taking_once_empty) {
  fake_clock clock;
  token_bucket bucket({.qps = 1.0, .burst = 2, .now = clock.fn()});
  BOOST_TEST(bucket.try_take());
  BOOST_TEST(bucket.try_take());
  BOOST_TEST(!bucket.try_take());
  BOOST_TEST(!bucket.try_take());  // a refusal takes nothing ahead, unlike reserve
  clock.t += 1s;
  BOOST_TEST(bucket.try_take());
  BOOST_TEST(!bucket.try_take());
}

BOOST_AUTO_TEST_CASE(bad_options_are_refused) {
  BOOST_CHECK_THROW(token_bucket({.qps = 0.0}), std::invalid_argument);
  BOOST_CHECK_THROW(token_bucket({.qps = 1.0, .burst = 0}), std::invalid_argument);
}
