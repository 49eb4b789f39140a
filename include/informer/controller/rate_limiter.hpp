// informer/controller/rate_limiter.hpp
//
// Rate limiters decide how long a key waits before a workqueue hands it out again after a failed
// (or explicitly requeued) reconcile. They follow client-go's util/workqueue limiters:
//
// - `exponential_rate_limiter`: per key, base * 2^failures, capped. Slows one hot-failing key
//   without touching the others.
// - `bucket_rate_limiter`: one token bucket (informer/core/token_bucket.hpp) shared by all keys. Caps the overall retry
// rate so a
//   mass failure cannot flood the API server.
// - `max_of_rate_limiter` (`max_of(...)`): asks every child and waits the longest.
// - `make_default_controller_rate_limiter()`: max_of(exponential 5 ms..1000 s, bucket 10 qps /
//   burst 100), the default for a controller.
//
// Contract: `when(key)` records one more requeue of `key` and returns how long to wait before it
// may be processed; `forget(key)` clears the key's history (call it when a reconcile succeeds);
// `num_requeues(key)` says how many `when` calls the key has had since it was last forgotten.
//
// Errors: none at run time. Constructors throw `std::invalid_argument` for options that cannot
// describe a limiter (negative delays, max below base, qps <= 0, burst < 1, null children).
//
// Thread safety: every limiter here is thread-safe. Each guards its own state with its own mutex
// and never calls out while holding it, so limiters can be nested (max_of) in any order.
#pragma once

#include "informer/core/mutex.hpp"
#include "informer/core/token_bucket.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace informer {

/// How long a key should wait before it is retried. Implementations must be thread-safe.
class rate_limiter {
public:
  virtual ~rate_limiter() = default;

  /// Records a requeue of `key` and returns the delay before it may be processed (>= 0).
  virtual std::chrono::nanoseconds when(const std::string& key) = 0;
  /// Drops the history of `key`: its next `when` starts from scratch.
  virtual void forget(const std::string& key) = 0;
  /// Requeues of `key` since it was last forgotten (0 for limiters that do not count per key).
  virtual int num_requeues(const std::string& key) const = 0;
};

struct exponential_rate_limiter_options {
  /// Delay after the first failure; doubles with each further failure.
  std::chrono::nanoseconds base_delay = std::chrono::milliseconds(5);
  /// Upper bound of the delay.
  std::chrono::nanoseconds max_delay = std::chrono::seconds(1000);
};

/// Per-key exponential backoff: the n-th `when(key)` since `forget(key)` returns
/// min(base_delay * 2^(n-1), max_delay). Memory: one entry per key that has failed and not been
/// forgotten.
class exponential_rate_limiter final : public rate_limiter {
public:
  /// Throws `std::invalid_argument` if base_delay < 0 or max_delay < base_delay.
  explicit exponential_rate_limiter(exponential_rate_limiter_options options = {});

  std::chrono::nanoseconds when(const std::string& key) override;
  void forget(const std::string& key) override;
  int num_requeues(const std::string& key) const override;

private:
  const exponential_rate_limiter_options options_;
  mutable informer::mutex mu_;
  std::unordered_map<std::string, int> failures_ INFORMER_GUARDED_BY(mu_);
};

struct bucket_rate_limiter_options {
  /// Tokens added per second.
  double qps = 10.0;
  /// Bucket size: how many `when` calls in a row return zero on a full bucket.
  int burst = 100;
  /// Clock; empty means steady_clock.
  steady_now_fn now;
};

/// One `token_bucket` for all keys: `when` is its `reserve`, so a full bucket absorbs `burst` calls
/// at once, then calls are spaced 1/qps apart. Keys are not tracked: `forget` does nothing and
/// `num_requeues` is 0.
class bucket_rate_limiter final : public rate_limiter {
public:
  /// Throws `std::invalid_argument` if qps <= 0 (or not finite) or burst < 1.
  explicit bucket_rate_limiter(bucket_rate_limiter_options options = {});

  std::chrono::nanoseconds when(const std::string& key) override;
  void forget(const std::string& key) override;
  int num_requeues(const std::string& key) const override;

private:
  token_bucket bucket_;  // thread-safe itself
};

/// The strictest of several limiters: `when` asks every child (so each records the requeue) and
/// returns the longest delay; `num_requeues` is the children's maximum; `forget` forgets in all.
/// With no children `when` returns zero.
class max_of_rate_limiter final : public rate_limiter {
public:
  /// Throws `std::invalid_argument` if a child is null.
  explicit max_of_rate_limiter(std::vector<std::shared_ptr<rate_limiter>> limiters);

  std::chrono::nanoseconds when(const std::string& key) override;
  void forget(const std::string& key) override;
  int num_requeues(const std::string& key) const override;

private:
  const std::vector<std::shared_ptr<rate_limiter>> limiters_;  // immutable: no lock needed
};

/// `std::make_shared<max_of_rate_limiter>(limiters)`, e.g. `max_of({exponential, bucket})`.
std::shared_ptr<rate_limiter> max_of(std::vector<std::shared_ptr<rate_limiter>> limiters);

/// client-go's DefaultControllerRateLimiter: max_of(exponential 5 ms..1000 s, bucket 10 qps with
/// burst 100). `now` drives the bucket (empty means steady_clock).
std::shared_ptr<rate_limiter> make_default_controller_rate_limiter(steady_now_fn now = {});

}  // namespace informer
