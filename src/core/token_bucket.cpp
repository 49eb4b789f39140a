#include "informer/core/token_bucket.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace informer {

namespace {

std::chrono::steady_clock::time_point read(const steady_now_fn& now) {
  return now ? now() : std::chrono::steady_clock::now();
}

}  // namespace

token_bucket::token_bucket(token_bucket_options options)
    : qps_(options.qps), burst_(options.burst), now_(std::move(options.now)) {
  if (!(qps_ > 0.0) || !std::isfinite(qps_)) {
    throw std::invalid_argument("token_bucket: qps must be positive and finite");
  }
  if (options.burst < 1) throw std::invalid_argument("token_bucket: burst must be at least 1");
  tokens_ = burst_;
  last_ = read(now_);
}

void token_bucket::refill_locked(std::chrono::steady_clock::time_point now) {
  // A clock that steps back (only an injected one can) must not drain the bucket.
  if (now > last_) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * qps_);
    last_ = now;
  }
}

std::chrono::nanoseconds token_bucket::reserve() {
  const auto now = read(now_);
  double deficit = 0.0;
  {
    informer::lock_guard lock(mu_);
    refill_locked(now);
    tokens_ -= 1.0;
    deficit = -tokens_;
  }
  if (deficit <= 0.0) return std::chrono::nanoseconds::zero();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(deficit / qps_));
}

bool token_bucket::try_take() {
  const auto now = read(now_);
  informer::lock_guard lock(mu_);
  refill_locked(now);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

}  // namespace informer
