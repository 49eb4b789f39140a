// informer/client/backoff.hpp
//
// Exponential backoff with jitter, reset after a healthy period: the delay a run loop waits after
// a failure so that a broken server is not hammered. Each `next()` returns the current delay
// stretched by a random factor in [1, 1 + jitter] and doubles the base up to `max`; when more
// than `reset_after` has passed since the previous failure, the base starts again at `initial`.
//
// Thread safety: not thread-safe; owned by one loop.
#pragma once

#include <chrono>
#include <optional>
#include <random>

namespace informer {

struct backoff_options {
  std::chrono::nanoseconds initial = std::chrono::milliseconds(800);
  std::chrono::nanoseconds max = std::chrono::seconds(30);
  double factor = 2.0;
  double jitter = 1.0;
  std::chrono::nanoseconds reset_after = std::chrono::minutes(2);
};

class backoff {
public:
  using clock = std::chrono::steady_clock;

  explicit backoff(backoff_options options = {}, std::uint64_t seed = std::random_device{}())
      : options_(options), current_(options.initial), rng_(seed) {}

  /// The delay to wait now, given the time of this failure.
  std::chrono::nanoseconds next(clock::time_point now = clock::now()) {
    if (last_ && now - *last_ > options_.reset_after) current_ = options_.initial;
    last_ = now;
    const auto base = current_;
    current_ = std::min<std::chrono::nanoseconds>(
        std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(current_.count()) * options_.factor)),
        options_.max);
    std::uniform_real_distribution<double> stretch(1.0, 1.0 + options_.jitter);
    return std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(base.count()) * stretch(rng_)));
  }
  /// Starts again from `initial` (after a success that proves the peer healthy).
  void reset() {
    current_ = options_.initial;
    last_.reset();
  }
  /// The base of the next delay, before jitter.
  std::chrono::nanoseconds current() const noexcept { return current_; }

private:
  backoff_options options_;
  std::chrono::nanoseconds current_;
  std::optional<clock::time_point> last_;
  std::mt19937_64 rng_;
};

}  // namespace informer
