// informer/cache/delta_fifo.hpp
//
// `delta_fifo` is the queue between a reflector (producer) and an informer (consumer), with the
// semantics of client-go's tools/cache DeltaFIFO. It keeps, per object key, the list of changes
// ("deltas") seen since the consumer last took that key, and hands keys out in the order they
// first arrived. A consumer therefore sees every change to an object, in order, and may see
// several changes at once.
//
// Beyond plain add/update/delete it knows two synthetic kinds of change:
//   - `replace(list)` (a relist) emits `replaced` (or `sync`) for every listed object and a
//     `deleted` tombstone (`deleted_final_state_unknown`) for every object the consumer knows but
//     the list lacks: the watch missed its deletion, so its final state is unknown.
//   - `resync()` re-delivers, as `sync`, every known object that has no change queued.
// "Known" objects are those in the consumer's store, reached through `known_objects` (usually
// the informer's indexer), which the consumer updates as it processes deltas.
//
// Use it when writing an informer or a controller loop that must see deletions that happened
// while disconnected; a consumer that only needs the latest state per key wants a work queue.
//
// Thread safety: thread-safe. Any number of producers; `pop` may be called from several threads
// (a key's deltas are handed to one consumer at a time), though an informer uses one.
// Locking rule: one mutex (`mutex_`) guards all the queue state (items, order, keys in flight,
// the sync counters and the closed flag). `known_objects` is called with `mutex_` held, so it
// must not call back into this queue; the lock order is delta_fifo::mutex_ -> the known store's
// own lock. `key_func` runs before the lock is taken. `pop`'s `process` callback runs WITHOUT
// `mutex_` held, so producers never wait on a consumer and `process` may call into the queue.
// To keep client-go's guarantees with the lock released, a key whose deltas are being processed
// ("in flight") counts as present in the known store with its newest state (see `pop`).
#pragma once

#include "informer/cache/known_objects.hpp"
#include "informer/core/error.hpp"
#include "informer/core/key.hpp"
#include "informer/core/mutex.hpp"
#include "informer/core/object.hpp"

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace informer {

/// The kind of a change.
enum class delta_type {
  added,
  updated,
  deleted,
  replaced,  ///< from a relist (`replace`); the object may or may not have changed
  sync,      ///< from a periodic `resync`, or from `replace` when replaced deltas are disabled
};

/// "Added", "Updated", "Deleted", "Replaced" or "Sync", as client-go spells them.
std::string_view to_string(delta_type type) noexcept;

/// The object of a `deleted` delta that `replace` made because a relist no longer contains a key:
/// the deletion itself was never observed, so `obj` is the last state the queue or the known store
/// had, which may be stale. `obj` is null when even that was unavailable (the known store listed
/// the key but no longer had it when asked).
struct deleted_final_state_unknown {
  std::string key;
  object::ptr obj;
};

/// An object, or the tombstone of one whose deletion was not observed.
using object_or_tombstone = std::variant<object::ptr, deleted_final_state_unknown>;

/// The object of `state`, or the tombstone's last known object (possibly stale or null).
inline const object::ptr& object_of(const object_or_tombstone& state) noexcept {
  if (const auto* t = std::get_if<deleted_final_state_unknown>(&state)) return t->obj;
  return std::get<object::ptr>(state);
}

/// One change to one object. `state` is the object after the change (for `deleted`, its last
/// state); only a `deleted` delta made by `replace` holds a tombstone instead.
struct delta {
  delta_type type = delta_type::added;
  object_or_tombstone state;

  /// The object, or the tombstone's last known object (possibly stale or null).
  const object::ptr& obj() const noexcept { return object_of(state); }
  /// The tombstone, or nullptr when this delta carries a plain object.
  const deleted_final_state_unknown* tombstone() const noexcept {
    return std::get_if<deleted_final_state_unknown>(&state);
  }
  /// True for a deletion whose final state is unknown (a tombstone from `replace`).
  bool final_state_unknown() const noexcept { return tombstone() != nullptr; }
};

/// A key's deltas, oldest first; never empty when handed out by the queue.
using delta_list = std::vector<delta>;

/// Computes the key of an object; must be deterministic.
using key_function = std::function<std::string(const object&)>;

/// The key of a delta: the tombstone's key, else `key_func` of the object.
std::string delta_key(const delta& d, const key_function& key_func = object_key);

struct delta_fifo_options {
  /// The consumer's store. Optional; when set it must outlive the queue. It changes three things:
  /// `delete_object` also accepts keys it holds, `replace` makes tombstones for its keys missing
  /// from the list, and `resync` works (it does nothing without one).
  known_objects* known = nullptr;
  /// Key of an object; client-go's MetaNamespaceKeyFunc by default.
  key_function key_func = object_key;
  /// Whether `replace` emits `replaced` (true) or, as old client-go did, `sync` (false).
  bool emit_delta_type_replaced = true;
};

/// What `pop`'s `process` callback reports back.
struct process_result {
  /// Returned by `pop` unchanged.
  error_code error{};
  /// Put the deltas back: ahead of any deltas that arrived for the key while processing, and at
  /// the back of the key order unless such deltas already queued the key.
  bool requeue = false;
};

/// Consumes one key's deltas. `is_in_initial_list` is true while the queue has not synced (the
/// deltas belong to the first relist), as client-go passes it to OnAdd handlers.
using process_function =
    std::function<process_result(const std::string& key, const delta_list& deltas, bool is_in_initial_list)>;

class delta_fifo {
public:
  explicit delta_fifo(delta_fifo_options options = {});

  delta_fifo(const delta_fifo&) = delete;
  delta_fifo& operator=(const delta_fifo&) = delete;

  /// Queues an `added` delta. `obj` must not be null.
  void add(object::ptr obj);
  /// Queues an `updated` delta. `obj` must not be null.
  void update(object::ptr obj);
  /// Queues a `deleted` delta, unless the object is unknown: with a known store, when neither the
  /// store (nor a key in flight) has it and no deltas are queued for it; without one, when no
  /// deltas are queued for it. A relist has then presumably reported the deletion already. Two
  /// deletions in a row collapse into one: the older, unless it is a tombstone (an observed
  /// deletion says more than a guessed one). `obj` must not be null.
  void delete_object(object::ptr obj);

  /// Applies a relist atomically: a `replaced` (or `sync`) delta for every object of `list`, then
  /// a tombstone for every pre-existing key that `list` lacks. Pre-existing keys are the queued
  /// ones whose newest delta is not a deletion (last known object: that delta's) and, with a known
  /// store, the keys it holds and the keys in flight that are not deletions (last known object:
  /// the newest in-flight one, else the store's). The first call also fixes the number of keys
  /// that must be popped before `has_synced`. `resource_version` is the list's; the queue does not
  /// use it but takes it so that a reflector can treat every store alike. Objects must not be null.
  /// Keys in `kept` (items the list holds but the source could not decode) are left as they are:
  /// no delta is queued for them, and a deletion neither.
  void replace(std::vector<object::ptr> list, std::string resource_version, const std::vector<std::string>& kept = {});

  /// Queues a `sync` delta for every object of the known store whose key has no queued deltas and
  /// is not in flight (a newer state is then on its way to the consumer). Without a known store it
  /// does nothing.
  void resync();

  /// Waits for a key that is ready, removes it with its deltas and calls `process` on them with
  /// the lock released; returns `process`'s error. Keys come out in the order they first arrived;
  /// a key being processed by another `pop` is skipped until that call ends. While `process`
  /// runs, the key is "in flight": `delete_object`, `replace` and `resync` treat it as if
  /// `process` had already applied the deltas to the known store, and new deltas for it wait.
  /// If `process` asks to requeue, or throws (the exception then propagates), the deltas go back
  /// in front of any that arrived meanwhile.
  /// Errors: `errc::closed` once the queue is closed and empty, at once or after waiting.
  error_code pop(const process_function& process);

  /// `pop` without waiting: nullopt when no key is ready (none queued, or all in flight);
  /// `errc::closed` once the queue is closed and empty; else `process`'s error. For consumers
  /// driven by an executor instead of a thread of their own.
  std::optional<error_code> try_pop(const process_function& process);

  /// True once the first `replace` has been called (or any add/update/delete before it) and
  /// every key it queued has been popped and processed (counted when `process` returns, so that
  /// the consumer's store holds the initial list when this turns true). It never turns false.
  bool has_synced() const;

  /// Closes the queue: blocked and future `pop`s return `errc::closed` once it is empty. Producers
  /// may still add (as in client-go).
  void close();
  bool is_closed() const;

  /// The queued keys, in pop order (keys in flight whose new deltas wait included).
  std::vector<std::string> list_keys() const;
  /// A copy of the deltas queued under `key`, or nullopt when none are.
  std::optional<delta_list> get_by_key(std::string_view key) const;
  /// Number of queued keys.
  std::size_t size() const;

private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using item_map = std::unordered_map<std::string, delta_list, string_hash, std::equal_to<>>;
  // For each key in flight: its newest object, or null when its newest delta is a deletion.
  using in_flight_map = std::unordered_map<std::string, object::ptr, string_hash, std::equal_to<>>;

  // Removes and returns the first queued key not in flight.
  std::optional<std::string> take_ready_locked() INFORMER_REQUIRES(mutex_);
  // Runs `process` on `key`'s deltas with `mutex_` released in between (see `pop`).
  error_code process_locked(std::string key, const process_function& process) INFORMER_REQUIRES(mutex_);
  void queue_action_locked(delta_type type, std::string key, delta d) INFORMER_REQUIRES(mutex_);
  void requeue_locked(const std::string& key, delta_list deltas) INFORMER_REQUIRES(mutex_);
  bool has_synced_locked() const INFORMER_REQUIRES(mutex_);

  const delta_fifo_options options_;

  mutable informer::mutex mutex_;
  informer::condition_variable cond_;           // signalled when a key may have become ready, or on close
  item_map items_ INFORMER_GUARDED_BY(mutex_);  // key -> non-empty deltas
  std::deque<std::string> queue_ INFORMER_GUARDED_BY(mutex_);  // the keys of items_, each once, in order
  in_flight_map in_flight_ INFORMER_GUARDED_BY(mutex_);        // keys whose deltas a pop is processing
  bool populated_ INFORMER_GUARDED_BY(mutex_) = false;
  std::size_t initial_population_count_ INFORMER_GUARDED_BY(mutex_) = 0;  // pops left of the first replace
  bool closed_ INFORMER_GUARDED_BY(mutex_) = false;
};

}  // namespace informer
