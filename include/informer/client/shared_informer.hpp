// informer/client/shared_informer.hpp
//
// `shared_informer` is client-go's SharedIndexInformer: one list+watch of a resource, shared by
// any number of event handlers, feeding one cache (an `indexer`) that controllers read through a
// `lister`. Use it (usually through `informer_factory`) whenever code needs to react to changes of
// a resource or read it from a local cache instead of asking the server.
//
// Data path:
//   source --reflector--> transform --> delta_fifo --drain--> indexer + listeners --> handlers
// - The reflector (list, then watch; relist on 410; backoff) runs as a coroutine on the source's
//   executor and writes through a `reflector_store` adapter that applies `transform` to every
//   object, pushes into the DeltaFIFO and schedules a drain.
// - A drain is a job posted on the source's executor. It pops keys with a non-blocking pop (the
//   informer is the queue's only consumer), in the queue's order, a bounded batch per job (then it
//   re-posts itself so other work on the executor is not starved). An atomic flag keeps at most
//   one drain scheduled or running. Each key's deltas update the indexer and become notifications
//   (client-go's processDeltas): added/updated/replaced/sync -> on_update(old, new) when the key is
//   cached, else on_add(obj, is_initial_list); deleted -> on_delete (a tombstone,
//   `deleted_final_state_unknown`, when a relist found the object gone).
//   An update that does not change the resourceVersion (a relist re-reporting an unchanged
//   object) is a "sync": it goes only to handlers with a resync period (client-go sends it to the
//   listeners whose resync happens to be in progress; here the rule is deterministic).
// - Each handler has its own listener: an unbounded FIFO buffer drained on its own strand of the
//   handler executor. Handlers of one registration are never called concurrently and see
//   notifications in order; a slow handler delays only itself.
// No thread is created: the informer runs on the source's executor and the handler executor.
//
// A handler that cannot keep up: its buffer grows without bound (the informer never blocks or
// drops for it). Each pending notification costs about 64 bytes plus shared ownership of the
// objects it names (objects still cached cost nothing more; objects since replaced or deleted stay
// alive until delivered). Watch `handler_registration::pending()` and shed work in the handler
// (e.g. enqueue keys into a deduplicating `workqueue` and return) if it grows.
//
// Resync: each registration has its own period (0 = never). A registration is resynced when its
// own period has elapsed (a timer on the source's executor sleeps until the earliest deadline, so
// the informer's effective check period is the minimum of the handlers' periods, as in client-go,
// without rounding a handler's period up to a multiple of it). Only the registrations that are due
// receive the sync notifications: on_update(obj, obj) for every cached object, queued behind every
// notification distributed before it. Periods below `minimum_resync_period` are raised to it.
//
// Errors: run loops never throw. Source failures go to `watch_error_handler` (and the reflector's
// metrics hooks) and are retried with backoff. An exception thrown by a handler, by `transform` or
// by an index function is caught and reported to `on_handler_error`; delivery continues with the
// next notification (an object whose transform failed is stored untransformed).
//
// Thread safety: every member of `shared_informer` and `handler_registration` is thread-safe.
// `stop()` (and so the destructor) and `remove_event_handler` wait for work in progress: never
// call `stop()` from a handler or from a thread of the source's executor (it joins the reflector,
// which needs that executor). A call into user code in progress when `stop()` is called (a
// handler, the transform, a metrics hook, the watch-error handler) is waited for; a relist's
// transform loop ends early. If the executor no longer runs, `stop()` then gives the reflector's
// loop a quarter of a second and returns; the loop, which calls no user code any more, ends when
// the executor is destroyed. `remove_event_handler` may be called from the handler being removed
// (it then does not wait for itself).
// Lifetimes: the informer keeps its source alive. Handlers and hooks are called until `stop()` or
// `remove_event_handler` returns, never after. The informer's internal state (cache included) lives
// until the last job posted on an executor has run or been destroyed, even after the
// `shared_informer` is gone.
#pragma once

#include "informer/cache/delta_fifo.hpp"
#include "informer/cache/indexer.hpp"
#include "informer/cache/lister.hpp"
#include "informer/client/lister_watcher.hpp"
#include "informer/client/reflector.hpp"
#include "informer/core/error.hpp"
#include "informer/core/object.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <variant>

namespace informer {

namespace detail {
struct informer_state;
struct informer_listener;
}  // namespace detail

/// What `on_delete` receives: the deleted object, or a tombstone when a relist found the object
/// gone and its final state is unknown (then `obj()` is the last state the informer had, possibly
/// stale, and null only if even that was unavailable).
struct deleted_object {
  object_or_tombstone state;

  /// The object, or the tombstone's last known object.
  const object::ptr& obj() const noexcept { return object_of(state); }
  /// The tombstone, or nullptr for an observed deletion.
  const deleted_final_state_unknown* tombstone() const noexcept {
    return std::get_if<deleted_final_state_unknown>(&state);
  }
  bool final_state_unknown() const noexcept { return tombstone() != nullptr; }
};

/// The callbacks of one registration; any may be empty. Called on the registration's strand of the
/// handler executor, one at a time, in order. Objects are immutable and may be kept.
struct resource_event_handlers {
  /// An object appeared. `is_initial_list` is true for the objects of the first list (and for the
  /// cache replayed to a handler added late).
  std::function<void(const object::ptr& obj, bool is_initial_list)> on_add{};
  /// An object changed, or (old == new) a resync re-delivered it.
  std::function<void(const object::ptr& old_obj, const object::ptr& new_obj)> on_update{};
  std::function<void(const deleted_object& obj)> on_delete{};
};

/// An exception caught from a handler or the transform, as `on_handler_error` receives it.
struct handler_failure {
  /// The registration's `id()`; 0 for the transform and the indexer.
  std::uint64_t registration_id = 0;
  /// "on_add", "on_update", "on_delete", "transform", or "indexer" (an index function threw: the
  /// delta is not applied to the cache and not distributed).
  std::string_view stage;
  std::exception_ptr error;
};

struct shared_informer_options {
  /// Names the informer in error texts (the reflector's name); empty means "informer".
  std::string name{};
  /// Passed to the reflector (and so to the source) as the list/watch selectors, text form.
  std::string label_selector{};
  std::string field_selector{};
  /// Resync period of handlers added without one (client-go's defaultEventHandlerResyncPeriod);
  /// zero: no resync.
  std::chrono::nanoseconds resync_period{0};
  /// Smallest resync period a handler gets (client-go uses one second).
  std::chrono::nanoseconds minimum_resync_period = std::chrono::seconds(1);
  /// The cache's options: extra indexers, key function (also used by the DeltaFIFO).
  indexer_options indexer{};
  /// Applied to every object from lists and watch events before it is queued and stored, e.g. to
  /// drop `metadata.managedFields`. Must return an object with the same key; runs on the source's
  /// executor, one call at a time. A null result or an exception keeps the object untransformed
  /// and is reported to `on_handler_error`.
  std::function<object::ptr(object::ptr)> transform{};
  /// Where handlers run (each registration on its own strand of it). Empty: the source's executor.
  boost::asio::any_io_executor handler_executor{};
  /// Reflector settings (page size, backoff, watch timeout and liveness, metrics). Its `name`, selectors and
  /// `resync_period` are ignored: they come from the fields above (resync is the informer's own).
  reflector_options reflector{};
  /// Kept alive as long as any part of the informer (handler registrations included): the owner
  /// of the executors, when the informer may outlive whoever else owns them (the factory passes
  /// its thread pool).
  std::shared_ptr<void> keep_alive{};
  /// Called with every list/watch failure, on the source's executor.
  std::function<void(const informer::error&)> watch_error_handler{};
  /// Called with every exception caught from a handler (on that handler's strand) or from the
  /// transform (on the source's executor); must be thread-safe. Its own exceptions are swallowed.
  std::function<void(const handler_failure&)> on_handler_error{};
};

/// A handle to one added handler (client-go's ResourceEventHandlerRegistration). Copyable; an
/// empty (default-constructed) handle reports 0/false everywhere. Thread-safe.
class handler_registration {
public:
  handler_registration() = default;

  /// True once the informer has synced and every initial-list notification (and, for a handler
  /// added late, every replayed object) has been delivered to this handler. Never turns false.
  bool has_synced() const;
  /// Notifications queued for this handler and not yet completed (the one being delivered
  /// included). The measure of a handler that cannot keep up.
  std::size_t pending() const;
  /// `pending()` for observers (metrics) that must not keep the handler alive: the function holds
  /// this registration's buffer weakly and returns nullopt once the handler is removed, its
  /// informer stopped, or every copy of the registration and the informer are gone. Thread-safe.
  std::function<std::optional<std::size_t>()> pending_observer() const;
  /// Calls `hook` after each call of this registration's handlers with the time it took (the
  /// handler latency metric), on the handler's strand; empty removes it. The hook must be quick
  /// and must not throw (an exception from it is swallowed).
  void observe_latency(std::function<void(std::chrono::nanoseconds)> hook) const;
  /// The effective resync period (after the default and the minimum were applied); 0 = none.
  std::chrono::nanoseconds resync_period() const;
  /// Unique within the process; never 0 for a real registration.
  std::uint64_t id() const;
  explicit operator bool() const noexcept { return listener_ != nullptr; }

private:
  friend class shared_informer;
  handler_registration(std::shared_ptr<detail::informer_listener> listener,
                       std::weak_ptr<detail::informer_state> state);

  std::shared_ptr<detail::informer_listener> listener_;
  std::weak_ptr<detail::informer_state> state_;
};

class shared_informer {
public:
  /// Creates an informer over `source`, not yet running. Throws std::invalid_argument for a null
  /// source.
  static std::shared_ptr<shared_informer> create(std::shared_ptr<lister_watcher> source,
                                                 shared_informer_options options = {});
  /// Calls `stop()` (see the thread rules above).
  ~shared_informer();
  shared_informer(const shared_informer&) = delete;
  shared_informer& operator=(const shared_informer&) = delete;

  /// Adds a handler, before or after `run()`. A handler added after objects are cached first gets
  /// on_add(obj, true) for each of them, before any later notification. `resync_period`: nullopt
  /// means `options.resync_period`; zero means never. After `stop()` the handler is never called.
  handler_registration add_event_handler(resource_event_handlers handlers,
                                         std::optional<std::chrono::nanoseconds> resync_period = std::nullopt);
  /// Stops delivery to the handler: drops what is queued for it and waits for a call in progress
  /// (unless called from that handler). No call starts after it returns. Unknown or already
  /// removed registrations, and registrations of another informer, are ignored.
  void remove_event_handler(const handler_registration& registration);

  /// Starts the reflector (list, then watch) and the resync timer. Later calls, and calls after
  /// `stop()`, do nothing: an informer runs once.
  void run();
  /// Stops the reflector and joins it, stops processing and delivery, and waits for handler calls
  /// in progress. Idempotent; concurrent callers all return once it is done.
  void stop();
  bool stopped() const;

  /// True once the first list has been processed into the cache (the DeltaFIFO's has_synced).
  bool has_synced() const;
  /// `has_synced()` for observers that must not own the informer (metrics, readiness checks): the
  /// function holds the informer's internal state weakly, so calling it never keeps the informer
  /// alive nor runs its destructor (which stops it, and must not run on its executor). Returns
  /// nullopt once this object is destroyed. Thread-safe; callable from any thread.
  std::function<std::optional<bool>()> synced_observer() const;
  /// The resourceVersion of the last list or watch event applied; "" before the first list.
  std::string last_sync_resource_version() const;

  /// The cache. Read freely; add indexes with `add_indexers`; never write objects into it (the
  /// informer owns its content). Shared so that listers may outlive the informer.
  std::shared_ptr<indexer> get_indexer() const;
  /// The cache, read-only.
  std::shared_ptr<const indexer> get_store() const;
  /// A lister over the cache.
  informer::lister lister() const;

  const std::string& name() const noexcept;
  /// The source's executor (where the reflector, the drain and the resync timer run).
  boost::asio::any_io_executor get_executor() const;

  // Private: use create().
  struct passkey {
  private:
    passkey() = default;
    friend class shared_informer;
  };
  shared_informer(passkey, std::shared_ptr<detail::informer_state> state);

private:
  std::shared_ptr<detail::informer_state> state_;
};

/// Waits until every informer has synced; false when `timeout` passes first (or immediately for an
/// informer that is stopped without having synced). Null entries are ignored. Polls every few
/// milliseconds. Thread-safe.
bool wait_for_cache_sync(std::span<const std::shared_ptr<shared_informer>> informers, std::chrono::nanoseconds timeout);
bool wait_for_cache_sync(std::initializer_list<std::shared_ptr<shared_informer>> informers,
                         std::chrono::nanoseconds timeout);
/// As above, until `stop` is requested instead of a timeout.
bool wait_for_cache_sync(std::span<const std::shared_ptr<shared_informer>> informers, std::stop_token stop);
bool wait_for_cache_sync(std::initializer_list<std::shared_ptr<shared_informer>> informers, std::stop_token stop);

}  // namespace informer
