#include "informer/controller/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace informer {

// exponential_rate_limiter

exponential_rate_limiter::exponential_rate_limiter(exponential_rate_limiter_options options) : options_(options) {
  if (options_.base_delay.count() < 0) {
    throw std::invalid_argument("exponential_rate_limiter: base_delay must not be negative");
  }
  if (options_.max_delay < options_.base_delay) {
    throw std::invalid_argument("exponential_rate_limiter: max_delay is below base_delay");
  }
}

std::chrono::nanoseconds exponential_rate_limiter::when(const std::string& key) {
  int exponent = 0;
  {
    informer::lock_guard lock(mu_);
    int& failures = failures_[key];
    exponent = failures;
    if (failures < std::numeric_limits<int>::max()) ++failures;
  }
  if (options_.base_delay.count() == 0) return std::chrono::nanoseconds::zero();
  // In floating point so that a long failure streak saturates at max_delay instead of overflowing.
  const double delay = static_cast<double>(options_.base_delay.count()) * std::exp2(exponent);
  if (delay >= static_cast<double>(options_.max_delay.count())) return options_.max_delay;
  return std::chrono::nanoseconds(static_cast<std::chrono::nanoseconds::rep>(delay));
}

void exponential_rate_limiter::forget(const std::string& key) {
  informer::lock_guard lock(mu_);
  failures_.erase(key);
}

int exponential_rate_limiter::num_requeues(const std::string& key) const {
  informer::lock_guard lock(mu_);
  const auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

// bucket_rate_limiter

bucket_rate_limiter::bucket_rate_limiter(bucket_rate_limiter_options options)
    : bucket_({.qps = options.qps, .burst = options.burst, .now = std::move(options.now)}) {}

std::chrono::nanoseconds bucket_rate_limiter::when(const std::string&) { return bucket_.reserve(); }

void bucket_rate_limiter::forget(const std::string&) {}

int bucket_rate_limiter::num_requeues(const std::string&) const { return 0; }

// max_of_rate_limiter

max_of_rate_limiter::max_of_rate_limiter(std::vector<std::shared_ptr<rate_limiter>> limiters)
    : limiters_(std::move(limiters)) {
  for (const auto& limiter : limiters_) {
    if (!limiter) throw std::invalid_argument("max_of_rate_limiter: null limiter");
  }
}

std::chrono::nanoseconds max_of_rate_limiter::when(const std::string& key) {
  auto longest = std::chrono::nanoseconds::zero();
  for (const auto& limiter : limiters_) longest = std::max(longest, limiter->when(key));
  return longest;
}

void max_of_rate_limiter::forget(const std::string& key) {
  for (const auto& limiter : limiters_) limiter->forget(key);
}

int max_of_rate_limiter::num_requeues(const std::string& key) const {
  int most = 0;
  for (const auto& limiter : limiters_) most = std::max(most, limiter->num_requeues(key));
  return most;
}

std::shared_ptr<rate_limiter> max_of(std::vector<std::shared_ptr<rate_limiter>> limiters) {
  return std::make_shared<max_of_rate_limiter>(std::move(limiters));
}

std::shared_ptr<rate_limiter> make_default_controller_rate_limiter(steady_now_fn now) {
  return max_of({
      std::make_shared<exponential_rate_limiter>(exponential_rate_limiter_options{
          .base_delay = std::chrono::milliseconds(5),
          .max_delay = std::chrono::seconds(1000),
      }),
      std::make_shared<bucket_rate_limiter>(bucket_rate_limiter_options{
          .qps = 10.0,
          .burst = 100,
          .now = std::move(now),
      }),
  });
}

}  // namespace informer
