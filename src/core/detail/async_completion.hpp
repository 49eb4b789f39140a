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
// Thread safety: `complete`, `completed` and the installed cancel action may race from any
// threads. `on_cancellation`/`cancel_with` belong to the initiating function, before anything
// can complete. As in Asio, the slot's signal is expected to be emitted on the handler's
// executor (where the slot is cleared).
// Lifetimes: always owned through `std::shared_ptr` (`create`); the cancel action holds it weakly,
// so a slot that outlives the operation keeps nothing alive.
#pragma once

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
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/require.hpp>

#include <atomic>
#include <memory>
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
class async_completion<void(Args...)> : public std::enable_shared_from_this<async_completion<void(Args...)>> {
  struct passkey {};

public:
  using handler_type = boost::asio::any_completion_handler<void(Args...)>;

  /// Takes over `handler` and starts counting work on its associated executor (`fallback` when
  /// it has none). `fallback` is also where `delivery::post` queues the invocation.
  static std::shared_ptr<async_completion> create(handler_type handler, boost::asio::any_io_executor fallback,
                                                  delivery how = delivery::post) {
    return std::make_shared<async_completion>(passkey{}, std::move(handler), std::move(fallback), how);
  }

  async_completion(passkey, handler_type handler, boost::asio::any_io_executor fallback, delivery how)
      : slot_(boost::asio::get_associated_cancellation_slot(handler)),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler, fallback),
                                  boost::asio::execution::outstanding_work.tracked)),
        fallback_(std::move(fallback)),
        how_(how) {
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
  /// When completed before, `owner` is released through the fallback executor instead.
  bool complete_releasing(std::shared_ptr<const void> owner, Args... args) {
    return finish(how_, std::move(owner), std::move(args)...);
  }

  /// True once `complete` was called (the handler may not have run yet).
  bool completed() const noexcept { return completed_.load(std::memory_order_acquire); }

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

  bool finish(delivery how, std::shared_ptr<const void> owner, Args&&... args) {
    if (completed_.exchange(true, std::memory_order_acq_rel)) {
      if (owner) never_blocking(fallback_).execute([owner = std::move(owner)] {});
      return false;
    }
    invocation call{handler_type(std::move(handler_)),       fallback_,       std::move(work_), slot_, installed_,
                    std::tuple<Args...>(std::move(args)...), std::move(owner)};
    if (how == delivery::post) {
      // A plain job, then a dispatch from inside it: `asio::post` would wrap `call` in a work
      // dispatcher holding a tracked copy of the handler's executor, released on the fallback's
      // thread after the handler may have run and its context be gone.
      never_blocking(fallback_).execute([call = std::move(call)]() mutable { deliver(std::move(call)); });
    } else {
      deliver(std::move(call));
    }
    return true;
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
  // Set before anything can complete; moved out by the one `finish` that wins.
  handler_type handler_;
  boost::asio::cancellation_slot slot_;
  boost::asio::any_completion_executor work_;
  bool installed_ = false;
  const boost::asio::any_io_executor fallback_;
  const delivery how_;
};

}  // namespace informer::detail
