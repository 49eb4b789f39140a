// informer/controller/controller.hpp
//
// The reconcile loop of a controller, as controller-runtime runs it: N worker threads take keys
// from a `workqueue`, call the user's reconcile function, and requeue according to its outcome.
// Event handlers call `enqueue(key)` (or use `queue()` for delayed adds); the reconcile reads the
// current state from a lister and drives the world towards it.
//
// Outcome of a reconcile, in order of precedence:
// - an error (or an exception):  counted, then `add_rate_limited(key)` (retry with backoff);
// - `requeue_after > 0`:          `forget(key)`, then `add_after(key, requeue_after)`;
// - `requeue`:                    `add_rate_limited(key)`;
// - otherwise:                    `forget(key)` (the next failure starts from the base delay).
// A key is never reconciled by two workers at once (the workqueue guarantees it).
//
// Errors: `run()` returns `errc::closed` after `stop()` (and throws `std::system_error` if a
// thread cannot be started). Exceptions thrown by the reconcile are
// caught in the worker and treated as errors; they never end a worker. The constructor throws
// `std::invalid_argument` for an empty reconcile or fewer than one worker.
//
// Thread safety: all members are thread-safe. `run()` and `stop()` (and so the destructor) must
// not be called from a reconcile or a hook: stop joins the workers. Metrics hooks run on worker threads without any
// controller lock held; they must not throw.
#pragma once

#include "informer/controller/rate_limiter.hpp"
#include "informer/controller/workqueue.hpp"
#include "informer/core/error.hpp"
#include "informer/core/mutex.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace informer {

/// What a successful reconcile asks for next.
struct reconcile_result {
  /// Reconcile again after the rate limiter's delay.
  bool requeue = false;
  /// If positive, reconcile again after this delay (takes precedence over `requeue`).
  std::chrono::nanoseconds requeue_after{0};
};

/// Reconciles the object under `key`. An error means "retry with backoff".
using reconcile_fn = std::function<result<reconcile_result>(const std::string& key)>;

/// Controller-level observability hooks; any may be empty. Invoked on worker threads.
struct controller_metrics {
  /// Wall time of each reconcile call, whatever its outcome.
  std::function<void(std::chrono::nanoseconds)> on_reconcile_latency;
  /// A reconcile failed: the error's message, or the exception's `what()`.
  std::function<void(const std::string& key, std::string_view message)> on_error;
  /// A key was requeued with the rate limiter (after an error or `requeue = true`).
  std::function<void(const std::string& key)> on_retry;
};

struct controller_options {
  /// Identifies the controller to its owner (see `name()`), e.g. as a log field or metric label.
  std::string name;
  /// Worker threads started by `run()`; at least 1.
  int workers = 1;
  /// Required.
  reconcile_fn reconcile;
  /// Null means `make_default_controller_rate_limiter()`.
  std::shared_ptr<rate_limiter> limiter;
  /// Hooks of the underlying workqueue (depth, adds, latencies, retries).
  workqueue_metrics queue_metrics;
  /// Runs the workqueue's timer of delayed keys (see `workqueue_options::executor`); empty means
  /// the timer thread shared by every queue given none.
  boost::asio::any_io_executor executor{};
  /// Hooks of the reconcile loop.
  controller_metrics metrics;
  /// If true, `stop()` lets the workers finish every queued key first (new keys are refused);
  /// if false, it drops queued keys and waits only for reconciles in flight.
  bool drain_on_stop = false;
};

class controller {
public:
  /// Throws `std::invalid_argument` if `reconcile` is empty or `workers < 1`.
  explicit controller(controller_options options);
  /// Calls `stop()`.
  ~controller();

  controller(const controller&) = delete;
  controller& operator=(const controller&) = delete;

  /// Starts the worker threads and returns. A second call while running does nothing.
  /// Errors: `errc::closed` once `stop()` has been called.
  result<void> run();

  /// Queues `key` for reconciliation (deduplicated; ignored after `stop()`). Keys queued before
  /// `run()` wait for it.
  void enqueue(const std::string& key);

  /// The controller's queue, for `add_after`, `add_rate_limited` and `len`.
  workqueue& queue() noexcept { return queue_; }

  /// Shuts the queue down (draining it if `drain_on_stop`) and joins the workers. Returns once no
  /// reconcile is running; a reconcile in flight is not interrupted (long reconciles can poll
  /// `queue().shutting_down()`). Idempotent.
  void stop();

  const std::string& name() const noexcept { return name_; }

private:
  void worker_loop();
  void process(const std::string& key);

  const std::string name_;
  const reconcile_fn reconcile_;
  const controller_metrics metrics_;
  const int worker_count_;
  const bool drain_on_stop_;
  workqueue queue_;  // thread-safe itself

  enum class state { idle, running, stopped };
  // Lock order: lifecycle_mu_ before the queue's lock; workers never take lifecycle_mu_, so
  // stop() may hold it while joining them.
  informer::mutex lifecycle_mu_;
  state state_ INFORMER_GUARDED_BY(lifecycle_mu_) = state::idle;
  std::vector<std::thread> workers_ INFORMER_GUARDED_BY(lifecycle_mu_);
};

}  // namespace informer
