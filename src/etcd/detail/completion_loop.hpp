// The client's thread: one gRPC CompletionQueue and the one thread that drives it, shared by every
// watch stream and keep-alive stream of a client (no thread per watch).
//
// Rules that make shutdown safe (gRPC forbids starting operations on a queue after Shutdown, and
// needs every tag back before the queue is destroyed):
// - Every asynchronous gRPC operation is started on the loop thread and reported with `started()`;
//   its tag (an `operation`) comes back exactly once, and the loop counts it off after `complete`.
// - Other threads never touch streams: they `post` work, which runs on the loop thread in the order
//   it was posted.
// - `close` runs a function on the loop thread that must cancel everything pending (TryCancel the
//   calls, cancel the timers); then no more posts are accepted, and once the last outstanding tag
//   has come back the queue is shut down and the thread ends.
//
// Thread safety: `post`, `closing` and `in_loop_thread` are thread-safe; `started` and `start_timer`
// are for the loop thread only; `close` must not be called from the loop thread.
#pragma once

#include "informer/core/mutex.hpp"

#include <grpcpp/alarm.h>
#include <grpcpp/completion_queue.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>

namespace informer::etcd::detail {

/// A tag handed to the completion queue; `complete` runs on the loop thread.
class operation {
public:
  virtual void complete(bool ok) = 0;

protected:
  ~operation() = default;
};

/// An operation that calls `(self->*Method)(ok)`. A stream owns one per kind of pending operation;
/// the method may destroy the stream (and so this operation): nothing is touched after the call.
template <class T, void (T::*Method)(bool)>
class member_operation final : public operation {
public:
  explicit member_operation(T* self) : self_(self) {}
  void complete(bool ok) override { (self_->*Method)(ok); }

private:
  T* self_;
};

/// A one-shot timer on the loop. It deletes itself after calling its function with true (it fired)
/// or false (it was canceled); the pointer is valid until then. Loop thread only.
class loop_timer final : public operation {
public:
  /// Makes the timer complete promptly with false, unless it has already fired.
  void cancel() { alarm_.Cancel(); }

private:
  friend class completion_loop;
  explicit loop_timer(std::function<void(bool)> fn) : fn_(std::move(fn)) {}
  ~loop_timer() = default;
  void complete(bool ok) override;

  grpc::Alarm alarm_;
  std::function<void(bool)> fn_;
};

class completion_loop {
public:
  completion_loop() = default;
  /// Closes (with nothing to cancel) if `close` was not called.
  ~completion_loop();
  completion_loop(const completion_loop&) = delete;
  completion_loop& operator=(const completion_loop&) = delete;

  grpc::CompletionQueue* queue() noexcept { return &queue_; }

  /// Runs `fn` on the loop thread after everything posted before it, starting the thread on first
  /// use. Returns false, dropping `fn`, once the loop is closing.
  bool post(std::function<void()> fn);

  /// Loop thread: an operation was just started on `queue()`; its tag will come back.
  void started();

  /// Loop thread: calls `fn(true)` after `delay`, or `fn(false)` promptly once canceled.
  loop_timer* start_timer(std::chrono::steady_clock::duration delay, std::function<void(bool)> fn);

  /// True once `close` has run its function: start nothing new.
  bool closing() const;

  bool in_loop_thread() const noexcept { return std::this_thread::get_id() == loop_thread_id_.load(); }

  /// Runs `on_close` on the loop thread, waits until every outstanding tag has come back, shuts the
  /// queue down and joins the thread. Idempotent; not from the loop thread.
  void close(std::function<void()> on_close);

private:
  class wakeup;
  void run();
  void run_posted();
  void finished();
  // Queues `fn` and makes sure a wakeup is pending; needs the thread started.
  void post_locked(std::function<void()> fn) INFORMER_REQUIRES(mutex_);

  grpc::CompletionQueue queue_;
  std::atomic<std::thread::id> loop_thread_id_{};
  // A tag made on another thread (a post's wakeup) reaches the loop through the queue, which orders
  // the two inside the uninstrumented libgrpc; a release before arming and an acquire after Next
  // state that order where ThreadSanitizer sees it.
  std::atomic<std::uint64_t> armed_{0};

  // Lock order: mutex_ is a leaf; nothing posted or completed runs under it.
  mutable informer::mutex mutex_;
  std::thread thread_ INFORMER_GUARDED_BY(mutex_);  // started by the first post, taken by close
  std::deque<std::function<void()>> posted_ INFORMER_GUARDED_BY(mutex_);
  bool wakeup_pending_ INFORMER_GUARDED_BY(mutex_) = false;  // a wakeup alarm is in the queue
  std::size_t outstanding_ INFORMER_GUARDED_BY(mutex_) = 0;  // tags not yet come back
  bool close_requested_ INFORMER_GUARDED_BY(mutex_) = false;
  bool closing_ INFORMER_GUARDED_BY(mutex_) = false;    // posts refused, shut down when idle
  bool shut_down_ INFORMER_GUARDED_BY(mutex_) = false;  // queue_.Shutdown() was called
};

}  // namespace informer::etcd::detail
