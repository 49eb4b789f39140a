// informer/controller/workqueue.hpp
//
// The queue between event handlers and reconcile workers, with client-go's util/workqueue
// semantics (plain, delaying and rate-limited queue in one type). Handlers `add` object keys;
// workers loop on `get` / reconcile / `done`.
//
// Guarantees:
// - Deduplication: adding a key that is already queued does nothing; a burst of events for one
//   object costs one reconcile.
// - Exclusivity: a key handed out by `get` is not handed out again until `done(key)`, however
//   many workers call `get`. If it is added meanwhile it is marked dirty and queued again by
//   `done`, so the change that caused the add is always seen by a later reconcile.
// - Fairness: keys are handed out in the order they were first queued.
// - Delays: `add_after` holds a key until its deadline; one Asio timer per queue, on the queue's
//   executor, wakes it for the earliest deadline (no thread per queue). Queues given no executor
//   share one timer thread in the process, started by the first delayed add of any of them. When
//   a key is delayed twice the earlier deadline wins.
// - Rate limits: `add_rate_limited` delays a key by what the queue's `rate_limiter` says.
//
// Shutdown: after `shut_down` every add is ignored, delayed keys are dropped, queued keys are
// dropped and `get` returns nullopt at once, so workers stop after their current key. (client-go
// keeps handing out queued keys after ShutDown; here that is what `shut_down_with_drain` is for.)
// `shut_down_with_drain` also ignores new adds and drops delayed keys, but `get` keeps handing out
// the keys already queued (and dirty keys re-queued by `done`) until none is left, and the call
// blocks until nothing is queued or being processed. It needs workers still calling `get`/`done`
// and must not be called from a worker, or it waits forever. A `shut_down` during a drain ends the
// drain: the drainer returns and queued keys are dropped.
//
// Errors: none; adds after shutdown are ignored by design (a stopping controller's handlers may
// still fire).
//
// Thread safety: every member function is thread-safe. Metrics hooks are invoked with the queue's
// lock held (so gauges see changes in order), on the caller's thread or, for a delayed key, on the
// executor: they must be quick, must not throw and must not call back into the queue. Lifetime:
// destroy the queue only after every thread using it has stopped; the destructor shuts it down and
// does not wait for the executor (a timer wait still pending then completes harmlessly). The
// executor's execution context must outlive the queue, and delayed keys are released only while
// it runs; a pending delay counts as work for it (as any Asio timer) until it fires or the queue
// shuts down.
#pragma once

#include "informer/controller/rate_limiter.hpp"
#include "informer/core/mutex.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace informer {

namespace detail {
struct workqueue_timer;
struct workqueue_link;
}  // namespace detail

/// The keys being processed (handed out by `get`, not yet `done`), as controller-runtime's
/// unfinished-work and longest-running-processor gauges report them.
struct workqueue_progress {
  std::size_t keys = 0;
  std::chrono::nanoseconds total{0};    ///< summed time since each was handed out
  std::chrono::nanoseconds longest{0};  ///< the longest of them: a stuck worker shows here
};

/// Observability hooks; any may be empty. Called with the queue's lock held (see above).
struct workqueue_metrics {
  /// Number of queued keys (not counting those being processed or delayed), after each change.
  std::function<void(std::size_t depth)> on_depth;
  /// A key was accepted by `add` (or by a delay expiring); not called for collapsed duplicates.
  std::function<void(const std::string& key)> on_add;
  /// Time a key waited in the queue, reported when `get` hands it out.
  std::function<void(std::chrono::nanoseconds)> on_queue_latency;
  /// Time between `get` and `done` for a key.
  std::function<void(std::chrono::nanoseconds)> on_work_duration;
  /// `add_rate_limited` was called for a key.
  std::function<void(const std::string& key)> on_retry;
};

struct workqueue_options {
  /// Used by `add_rate_limited`; null means `make_default_controller_rate_limiter()`.
  std::shared_ptr<rate_limiter> limiter;
  workqueue_metrics metrics;
  /// Runs the timer of delayed keys (`add_after`, `add_rate_limited`), e.g. an informer factory's
  /// executor. Empty means the timer thread shared by every queue given none.
  boost::asio::any_io_executor executor{};
};

/// A deduplicating, delaying, rate-limited queue of keys. Thread-safe; see the file comment.
class workqueue {
public:
  explicit workqueue(workqueue_options options = {});
  /// Shuts down; see the file comment.
  ~workqueue();

  workqueue(const workqueue&) = delete;
  workqueue& operator=(const workqueue&) = delete;

  /// Queues `key` unless it is already queued; marks it dirty if it is being processed. Ignored
  /// after shutdown.
  void add(const std::string& key);

  /// Adds `key` once `delay` has passed (at once if delay <= 0). If `key` is already waiting, the
  /// earlier of the two deadlines is kept. Ignored after shutdown. The first delayed add of a queue
  /// without an executor may start the shared timer thread: throws `std::system_error` if it
  /// cannot be started.
  void add_after(const std::string& key, std::chrono::nanoseconds delay);

  /// `add_after(key, limiter.when(key))`.
  void add_rate_limited(const std::string& key);

  /// Clears the limiter's history of `key` (call after a successful reconcile). It does not remove
  /// the key from the queue.
  void forget(const std::string& key);

  /// The limiter's count of requeues of `key` since it was last forgotten.
  int num_requeues(const std::string& key) const;

  /// Blocks until a key is available and returns it, marking it as being processed; the caller
  /// must call `done(key)` afterwards. Returns nullopt once the queue is shut down (after a drain:
  /// once nothing queued is left).
  std::optional<std::string> get();

  /// Ends the processing of `key`; queues it again if it was added meanwhile. Does nothing for a
  /// key that is not being processed.
  void done(const std::string& key);

  /// Number of queued keys (excluding keys being processed or still delayed).
  std::size_t len() const;

  /// Stops the queue at once; see the file comment. Idempotent.
  void shut_down();

  /// Stops accepting keys, lets workers finish what is queued, and blocks until nothing is queued
  /// or being processed (or until `shut_down` is called); see the file comment.
  void shut_down_with_drain();

  /// True once either shutdown has begun.
  bool shutting_down() const;

  /// The keys being processed now.
  workqueue_progress progress() const;
  /// `progress()` for observers that must not outlive the queue (a metrics registry scraping it
  /// later): returns nullopt once the queue is destroyed. Thread-safe.
  std::function<std::optional<workqueue_progress>()> progress_observer() const;

private:
  using time_point = std::chrono::steady_clock::time_point;
  // Key -> the time it entered the queue (while dirty) or began processing (while processing).
  // Both sets use the same type so a key's node moves from one to the other without a copy.
  using key_times = std::unordered_map<std::string, time_point>;
  using waiting_list = std::multimap<time_point, std::string>;

  void add_locked(const std::string& key, time_point now) INFORMER_REQUIRES(mu_);
  // Sets the timer for the earliest deadline in waiting_ (creating it on first use).
  void arm_timer_locked() INFORMER_REQUIRES(mu_);
  // The timer fired: queues the keys whose deadline has passed and re-arms for the rest.
  void release_due_keys() INFORMER_EXCLUDES(mu_);
  void begin_shutdown_locked(bool drain) INFORMER_REQUIRES(mu_);

  const std::shared_ptr<rate_limiter> limiter_;  // immutable; thread-safe itself
  const workqueue_metrics metrics_;              // immutable
  const boost::asio::any_io_executor executor_;  // immutable; empty: the shared timer thread's

  // Lock order: the timer's link mutex (a wait calling back in) before mu_; the limiter is only
  // called without mu_.
  mutable informer::mutex mu_;
  informer::condition_variable ready_cv_;    // with mu_: a key was queued, or shutdown began
  informer::condition_variable drained_cv_;  // with mu_: the drain condition may have changed
  // The queued keys in order. Each points at its key in dirty_ (every queued key is dirty, and
  // map nodes do not move), so a queued key is stored once.
  std::deque<const std::string*> queue_ INFORMER_GUARDED_BY(mu_);
  key_times dirty_ INFORMER_GUARDED_BY(mu_);       // keys that need processing
  key_times processing_ INFORMER_GUARDED_BY(mu_);  // keys handed out by get and not yet done
  waiting_list waiting_ INFORMER_GUARDED_BY(mu_);  // delayed keys by deadline
  // Each delayed key (a view of its string in waiting_) to its entry there.
  std::unordered_map<std::string_view, waiting_list::iterator> waiting_index_ INFORMER_GUARDED_BY(mu_);
  bool shutting_down_ INFORMER_GUARDED_BY(mu_) = false;
  bool draining_ INFORMER_GUARDED_BY(mu_) = false;  // shut_down_with_drain in effect
  // Created by the first add_after (the steady_timer in it is used under mu_ too); shared with the
  // pending timer wait, which finds the queue through it while the queue lives.
  std::shared_ptr<detail::workqueue_timer> timer_ INFORMER_GUARDED_BY(mu_);
  // Shared with progress observers, which find the queue through it while the queue lives.
  const std::shared_ptr<detail::workqueue_link> link_;
};

}  // namespace informer
