// informer/etcd/watch.hpp
//
// Watches on etcd: the change feed a reflector follows after its list. Start one with
// `client::watch(key, options, callback)`; every watch of a client shares one bidirectional gRPC
// Watch stream (etcd multiplexes them by watch id), and all callbacks run on the client's one
// thread. No thread per watch.
//
//   auto list = c.list_prefix_paged("/registry/pods/").value();
//   auto handle = c.watch("/registry/pods/",
//                         {.prefix = true, .start_revision = list.revision + 1, .prev_kv = true},
//                         [&](informer::etcd::watch_update u) { ... });
//
// What a callback receives, in this order:
//   created   once, when etcd has registered the watch; `revision` is the store's revision then.
//   events    the changes of one or more revisions, in revision order, never repeated, none missing
//             from `start_revision` on (a response etcd split in fragments arrives reassembled).
//   progress  a bookmark: no event with a revision <= `revision` is still to come (with
//             `progress_notify`, etcd sends one every few minutes to a quiet watch; see also
//             `client::request_progress`).
//   ...and exactly one final update, after which the callback is never called again and is
//   destroyed:
//   canceled  after `watch_handle::cancel()` (or the handle's destruction).
//   failed    with `failure` saying why:
//     - `informer::errc::expired` (`compact_revision` set): `start_revision` is older than etcd's
//       compaction; etcd's form of 410 Gone. List again, then watch from the new list's revision+1.
//     - `etcd::errc::unavailable` (or another transport code): the watch stream broke (etcd
//       restarted, its member lost its leader, or it stopped answering; see "Liveness"). Watch
//       again from the last revision seen + 1; the client opens a new stream, on another endpoint
//       when this one failed.
//     - `etcd::errc::watch_canceled`, `informer::errc::forbidden`: etcd canceled the watch itself.
//     - `informer::errc::closed`: the client was destroyed.
//
// Liveness: a stream must not stall silently. Every `client_options::watch_progress_interval`
// (default 10 s) the client asks each stream for progress: when etcd answers, every watch of the
// stream gets a `progress` update at the revision it has delivered so far (not etcd's newer one,
// which on etcd 3.4 can lie ahead of events still on their way), so even a quiet watch hears from
// etcd once per interval; a stream that sends nothing at all within `watch_progress_timeout` of
// the request (a blackholed connection, a frozen member) is taken as broken: its watches fail
// with `etcd::errc::unavailable`. Streams also
// require a leader (etcd's `hasleader` metadata, as clientv3's WithRequireLeader): a member cut
// off from its peers ends them with `unavailable` ("etcdserver: no leader") after three election
// timeouts without a leader, instead of serving a store that no longer changes. Members refuse new
// streams while they have no leader (during an election, too): with heartbeats on, a watch
// refused so is tried again at the next heartbeat tick (a quarter of the interval or timeout,
// whichever is shorter; up to 20 times) instead of failing at once.
//
// Thread safety: callbacks run on the client's thread, one at a time for all watches of a client:
// a slow callback delays every other watch of its client. A callback may call any member of the
// client or of a handle except the client's destructor (`watch`, `cancel`, `request_progress`
// only queue work for that thread; a unary call blocks it while it runs), and must not throw (an
// exception escaping it terminates the program). `watch_handle::cancel` is thread-safe.
//
// Lifetime: the handle cancels its watch when destroyed, and its destructor (or move assignment)
// waits until the final update has run, so once it returns the callback is done with whatever it
// captured. Hence: keep the handle as long as the watch should run; do not destroy it while holding
// a lock the callback takes. On the client's thread (inside a callback) it cannot wait: there, as
// after `cancel()`, the final update comes later and what the callback captures must stay valid
// until it has run. `watch_handle::detach()` cancels without waiting and lets go of the watch: for
// code that must not block (an executor thread), whose callback owns what it captures (e.g. by
// `shared_ptr`), since the final update still comes later on the client's thread. A handle may
// outlive its client.
#pragma once

#include "informer/etcd/client.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace informer::etcd {

struct watch_options {
  /// Watch every key that starts with the watched key (the range [key, prefix_end(key))).
  bool prefix = false;
  /// Or watch [key, range_end) ("\0": every key >= key). Ignored with `prefix`; empty: the key alone.
  std::string range_end = {};
  /// First revision to report (inclusive), e.g. a list's revision + 1; 0: changes after now.
  std::int64_t start_revision = 0;
  /// Deliver each event's previous key-value (so deletes carry the object that was deleted).
  bool prev_kv = false;
  /// Ask etcd for periodic progress notifications while the watch is quiet.
  bool progress_notify = false;
  bool filter_puts = false;     ///< drop put events at the server
  bool filter_deletes = false;  ///< drop delete events at the server
};

enum class event_type { put, del };

/// One change of one key.
struct event {
  event_type type = event_type::put;
  /// For a put, the new key-value; for a delete, the key with `mod_revision` the revision of the
  /// delete and everything else empty.
  key_value kv = {};
  /// The key-value before the change, with `watch_options::prev_kv` (absent for a creation, and
  /// when etcd had compacted it away).
  std::optional<key_value> prev_kv = {};
};

enum class watch_update_kind { created, events, progress, canceled, failed };

/// What a watch callback receives; see the file comment for the sequence.
struct watch_update {
  watch_update_kind kind = watch_update_kind::events;
  /// created: the store's revision at creation; events: the revision of the response (>= the last
  /// event's); progress: the bookmark revision.
  std::int64_t revision = 0;
  std::vector<event> events = {};     ///< kind == events: at least one
  error failure = {};                 ///< kind == failed: why
  std::int64_t compact_revision = 0;  ///< failed with errc::expired: the oldest revision etcd still has

  /// True for the last update of a watch (canceled or failed).
  bool is_final() const noexcept { return kind == watch_update_kind::canceled || kind == watch_update_kind::failed; }
};

/// Owns one watch. Movable; `cancel` and `id` are thread-safe.
class watch_handle {
public:
  watch_handle() = default;
  watch_handle(watch_handle&& other) noexcept : driver_(std::move(other.driver_)), id_(std::exchange(other.id_, 0)) {}
  /// Cancels the watch held so far (waiting as the destructor does), then takes `other`'s.
  watch_handle& operator=(watch_handle&& other) noexcept;
  /// Cancels the watch and waits for its final update; see "Lifetime" in the file comment.
  ~watch_handle();

  /// Cancels the watch: etcd is told (WatchCancelRequest) and the callback gets its final
  /// `canceled` update promptly on the client's thread; updates already running or queued before it
  /// may still arrive first, none after. Asynchronous, so callable from the callback itself.
  /// Idempotent; does nothing after the final update or once the client is gone.
  void cancel() noexcept;

  /// Cancels the watch (as `cancel`) and empties the handle without waiting: the final update still
  /// comes later, on the client's thread, so whatever the callback captures must stay valid until
  /// it has run (let the callback own it). Callable from any thread, the callback included.
  void detach() noexcept;

  /// The client-side id of the watch (unique per client, from 1); 0 for an empty handle.
  std::uint64_t id() const noexcept { return id_; }

private:
  friend class client;
  watch_handle(std::weak_ptr<detail::watch_driver> driver, std::uint64_t id) : driver_(std::move(driver)), id_(id) {}
  std::weak_ptr<detail::watch_driver> driver_;
  std::uint64_t id_ = 0;
};

}  // namespace informer::etcd
