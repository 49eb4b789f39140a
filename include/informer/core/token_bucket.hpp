// informer/core/token_bucket.hpp
//
// A token bucket (client-go's util/flowcontrol): `qps` tokens are minted per second, up to `burst`
// kept. Each `reserve` takes one token, possibly one not minted yet, and says how long until it
// will have been: a full bucket lets `burst` calls through at once, then calls are spaced 1/qps
// apart. It computes waits and never sleeps, so the caller waits its own way (a timer, a queue).
// Used by the HTTP client's request limit, the workqueue's `bucket_rate_limiter` and the event
// recorder's spam filter (`try_take`).
//
// Errors: the constructor throws `std::invalid_argument` if qps <= 0 (or not finite) or burst < 1.
//
// Thread safety: thread-safe (one internal mutex; the clock is called without it held).
#pragma once

#include "informer/core/mutex.hpp"

#include <chrono>
#include <functional>

namespace informer {

/// A source of monotonic time. Empty means `std::chrono::steady_clock::now`; tests inject a
/// hand-driven clock.
using steady_now_fn = std::function<std::chrono::steady_clock::time_point()>;

struct token_bucket_options {
  /// Tokens minted per second.
  double qps = 10.0;
  /// Bucket size: how many `reserve` calls in a row return zero on a full bucket.
  int burst = 100;
  /// Clock; empty means steady_clock.
  steady_now_fn now{};
};

/// See the file comment. Starts full.
class token_bucket {
public:
  /// Throws `std::invalid_argument` if qps <= 0 (or not finite) or burst < 1.
  explicit token_bucket(token_bucket_options options = {});

  /// Takes one token and returns how long until it is minted (zero when one was available).
  std::chrono::nanoseconds reserve();

  /// Takes one token if one is available now, else takes nothing and returns false (client-go's
  /// TryAccept): for callers that drop what is over the limit instead of waiting.
  bool try_take();

private:
  void refill_locked(std::chrono::steady_clock::time_point now) INFORMER_REQUIRES(mu_);

  const double qps_;
  const double burst_;
  const steady_now_fn now_;
  informer::mutex mu_;
  double tokens_ INFORMER_GUARDED_BY(mu_);                               // negative when reserved ahead
  std::chrono::steady_clock::time_point last_ INFORMER_GUARDED_BY(mu_);  // when tokens_ was last refilled
};

}  // namespace informer
