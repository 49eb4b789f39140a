// Private to the library (and its tests): the one way an asynchronous operation of this project
// hands its outcome to a completion handler, in the manner of Beast's `async_base`. Every
// initiating function that does not complete at once (list, watch open, async_next, Range, HTTP
// request, stream read) keeps its handler in an `async_completion`, which guarantees:
// - the handler is invoked exactly once: the first `complete` wins, later ones do nothing (so a
//   cancellation and a late answer may race to complete);
// - never inside the initiating function: `delivery::post` queues the invocation; `dispatch` is
//   only for operations that complete from another completion (a coroutine's end, a gRPC
//   callback) and runs inline when already on the handler's executor;
// - on the handler's associated executor (the fallback executor given at creation when it has
//   none), with the handler's associated allocator;
// - that executor counts outstanding work from creation until the handler has run, so
//   `io_context::run` does not return under a pending operation;
// - a connected cancellation slot gets the operation's cancel action (`on_cancellation`,
//   `cancel_with`), cleared on the handler's executor just before the handler runs.
// Destroying one that never completed destroys the handler uninvoked and releases the work.
//
// An operation completed from a foreign thread (gRPC's, an etcd client's) names the execution
// context of its handler's executor at creation (`target`): it then registers with that context's
// `context_registry`, and when the context shuts down before the handler ran, the handler and its
// work are released there, uninvoked, as Asio does with its own pending handlers; a later
// `complete` posts nothing into the context (see context_registry.hpp). Without a target, the
// context must outlive the operation.
//
// Thread safety: `complete`, `completed` and the installed cancel action may race from any
// threads. `on_cancellation`/`cancel_with` belong to the initiating function, before anything
// can complete. As in Asio, the slot's signal is expected to be emitted on the handler's
// executor (where the slot is cleared).
// Lifetimes: always owned through `std::shared_ptr` (`create`); the cancel action holds it weakly,
// so a slot that outlives the operation keeps nothing alive.
#pragma once

#include "core/detail/context_registry.hpp"
#include "informer/core/mutex.hpp"

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/blocking.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>

namespace informer::detail {

/// How a completed operation reaches its handler's executor.
enum class delivery {
  /// Queued through the fallback executor, then dispatched to the handler's: never inline.
  post,
  /// Dispatched to the handler's executor: inline when `complete` already runs there.
  dispatch,
};

template <class Signature>
class async_completion;

template <class... Args>
class async_completion<void(Args...)> final : public std::enable_shared_from_this<async_completion<void(Args...)>>,
                                              public orphanable {
  struct passkey {};

public:
  using handler_type = boost::asio::any_completion_handler<void(Args...)>;

  /// Takes over `handler` and starts counting work on its associated executor (`fallback` when
  /// it has none). `fallback` is also where `delivery::post` queues the invocation. `target`, when
  /// given, is the execution context of the handler's executor (see the file comment).
  static std::shared_ptr<async_completion> create(handler_type handler, boost::asio::any_io_executor fallback,
                                                  delivery how = delivery::post,
                                                  boost::asio::execution_context* target = nullptr) {
    auto op = std::make_shared<async_completion>(passkey{}, std::move(handler), std::move(fallback), how, target);
    if (target != nullptr) {
      context_registry::add(*target, op);
    }
    return op;
  }

  async_completion(passkey, handler_type handler, boost::asio::any_io_executor fallback, delivery how,
                   boost::asio::execution_context* target)
      : slot_(boost::asio::get_associated_cancellation_slot(handler)),
        fallback_(std::move(fallback)),
        how_(how),
        // Once the target is gone, what would have gone to a fallback in that same context is
        // released where it is instead.
        fallback_in_target_(target != nullptr &&
                            &boost::asio::query(fallback_, boost::asio::execution::context) == target),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler, fallback_),
                                  boost::asio::execution::outstanding_work.tracked)) {
    handler_.swap(handler);  // (Boost 1.81's move assignment of any_completion_handler recurses)
  }

  async_completion(const async_completion&) = delete;
  async_completion& operator=(const async_completion&) = delete;

  /// When the handler's cancellation slot is connected, installs `action(cancellation_type)` as
  /// its handler (any type). The action must not assume the operation is alive: capture weakly.
  template <class Action>
  void on_cancellation(Action action) {
    if (!slot_.is_connected()) return;
    installed_ = true;
    slot_.assign(std::move(action));
  }

  /// On cancellation, completes with `args` (typically operation_aborted and an empty value).
  /// Always posted, whatever the delivery: the signal is emitted on the handler's executor, and
  /// the handler must not run inside `emit`.
  void cancel_with(Args... args) {
    on_cancellation([weak = this->weak_from_this(),
                     args = std::tuple<Args...>(std::move(args)...)](boost::asio::cancellation_type) mutable {
      if (auto self = weak.lock()) {
        std::apply([&](Args&... a) { self->finish(delivery::post, nullptr, std::move(a)...); }, args);
      }
    });
  }

  /// Hands `args` to the handler; false (and nothing happens) when it was completed before.
  bool complete(Args... args) { return finish(how_, nullptr, std::move(args)...); }

  /// As `complete`; `owner` is released on the handler's executor after the handler ran, so that
  /// the last reference to an operation's state is not dropped on a foreign thread (gRPC's).
  /// When completed before, `owner` is released through the fallback executor instead (or right
  /// here, when that executor's context has shut down).
  bool complete_releasing(std::shared_ptr<const void> owner, Args... args) {
    return finish(how_, std::move(owner), std::move(args)...);
  }

  /// True once `complete` was called (the handler may not have run yet), or once the target
  /// context shut down.
  bool completed() const noexcept { return completed_.load(std::memory_order_acquire); }

  /// The target context shuts down (see the file comment): the handler, never invoked, and its
  /// work go now, and nothing is posted afterwards. Waits for a post already under way.
  void orphan() override {
    std::optional<handler_type> handler;
    boost::asio::any_completion_executor work;
    std::optional<invocation> queued;
    {
      informer::unique_lock lock(mutex_);
      orphaned_ = true;
      if (!completed_.exchange(true, std::memory_order_acq_rel)) {
        handler.emplace(std::move(handler_));
        work = std::move(work_);
      }
      queued.swap(queued_);
      idle_.wait(lock, [this]() INFORMER_REQUIRES(mutex_) { return posting_ == 0; });
    }
    // Released here, outside the lock, while the context's services still run.
  }

private:
  // The queued call: carries the handler's executor and allocator, so Asio runs it where the
  // handler expects; clears the slot there, first, because the handler may reuse it.
  struct invocation {
    using executor_type = boost::asio::any_completion_executor;
    using allocator_type = boost::asio::associated_allocator_t<handler_type>;

    // A fresh executor object each time, never a copy of `work`: Asio makes and drops copies of
    // it on its own threads.
    executor_type get_executor() const noexcept { return boost::asio::get_associated_executor(handler, fallback); }
    allocator_type get_allocator() const noexcept { return boost::asio::get_associated_allocator(handler); }

    void operator()() {
      if (installed) slot.clear();
      std::apply(std::move(handler), std::move(args));
    }

    handler_type handler;
    boost::asio::any_io_executor fallback;
    boost::asio::any_completion_executor work;  // released after the handler ran (see `deliver`)
    boost::asio::cancellation_slot slot;
    bool installed;
    std::tuple<Args...> args;
    std::shared_ptr<const void> owner;
  };

  // The job that `delivery::post` queues on the fallback executor. The invocation waits in
  // `queued_` meanwhile, where `orphan` can reach it. A job destroyed unrun (its context shut
  // down) drops the invocation, which may hold the operation that holds this completion.
  struct queued_job {
    std::shared_ptr<async_completion> self;

    explicit queued_job(std::shared_ptr<async_completion> s) : self(std::move(s)) {}
    queued_job(queued_job&&) noexcept = default;
    queued_job& operator=(queued_job&&) = delete;
    ~queued_job() {
      if (self) std::exchange(self, nullptr)->drop_queued();
    }

    void operator()() { std::exchange(self, nullptr)->deliver_queued(); }
  };

  bool finish(delivery how, std::shared_ptr<const void> owner, Args&&... args) {
    enum class step { deliver, post_job, post_owner };
    step next;
    std::optional<invocation> call;
    {
      informer::lock_guard lock(mutex_);
      if (completed_.exchange(true, std::memory_order_acq_rel)) {
        // Completed before: the owner goes through the fallback, unless that context is gone (then
        // it goes on return, on this thread).
        if (!owner || (orphaned_ && fallback_in_target_)) return false;
        next = step::post_owner;
      } else {
        call.emplace(invocation{handler_type(std::move(handler_)), fallback_, std::move(work_), slot_, installed_,
                                std::tuple<Args...>(std::move(args)...), std::move(owner)});
        next = how == delivery::post ? step::post_job : step::deliver;
        if (next == step::post_job) queued_.swap(call);
      }
      ++posting_;
    }
    // The handler may release the last owner of this completion.
    const auto keep = this->shared_from_this();
    const posting_scope posting{*this};
    switch (next) {
      case step::deliver: deliver(std::move(*call)); break;
      case step::post_job:
        // A plain job, then a dispatch from inside it: `asio::post` would wrap the call in a work
        // dispatcher holding a tracked copy of the handler's executor, released on the fallback's
        // thread after the handler may have run and its context be gone.
        never_blocking(fallback_).execute(queued_job(keep));
        break;
      case step::post_owner: never_blocking(fallback_).execute([owner = std::move(owner)] {}); break;
    }
    return next != step::post_owner;
  }

  // Ends a post counted in `posting_`, however it ends (a throwing handler run inline included).
  struct posting_scope {
    async_completion& self;
    explicit posting_scope(async_completion& s) : self(s) {}
    posting_scope(const posting_scope&) = delete;
    posting_scope& operator=(const posting_scope&) = delete;
    ~posting_scope() { self.done_posting(); }
  };

  void deliver_queued() {
    std::optional<invocation> call;
    {
      informer::lock_guard lock(mutex_);
      if (!queued_) return;  // orphaned
      call.swap(queued_);
      ++posting_;
    }
    const posting_scope posting{*this};
    deliver(std::move(*call));
  }

  void drop_queued() {
    std::optional<invocation> call;
    informer::lock_guard lock(mutex_);
    call.swap(queued_);
  }

  void done_posting() {
    informer::lock_guard lock(mutex_);
    if (--posting_ == 0) idle_.notify_all();
  }

  // Dispatches `call` to the handler's executor. From another thread that is a post into the
  // handler's context, where the handler may run, release `call.work`, and let the context be
  // destroyed while the post is still signalling it: this thread holds the work until the post
  // has returned. (A copy of `work` shares its hold, so the last of the two releases it.)
  static void deliver(invocation call) {
    const boost::asio::any_completion_executor hold = call.work;
    boost::asio::dispatch(std::move(call));
  }

  static boost::asio::any_io_executor never_blocking(const boost::asio::any_io_executor& ex) {
    return boost::asio::require(ex, boost::asio::execution::blocking.never);
  }

  std::atomic<bool> completed_{false};
  // Set before anything can complete, then left alone.
  boost::asio::cancellation_slot slot_;
  bool installed_ = false;
  const boost::asio::any_io_executor fallback_;
  const delivery how_;
  const bool fallback_in_target_;

  informer::mutex mutex_;
  // Moved out by the one `finish` (or `orphan`) that wins.
  handler_type handler_ INFORMER_GUARDED_BY(mutex_);
  boost::asio::any_completion_executor work_ INFORMER_GUARDED_BY(mutex_);
  std::optional<invocation> queued_ INFORMER_GUARDED_BY(mutex_);  // posted to the fallback, not yet delivered
  int posting_ INFORMER_GUARDED_BY(mutex_) = 0;  // posts into an executor under way (`orphan` waits for them)
  bool orphaned_ INFORMER_GUARDED_BY(mutex_) = false;
  informer::condition_variable idle_;
};

}  // namespace informer::detail
