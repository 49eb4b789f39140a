// informer/leaderelection/leader_elector.hpp
//
// Leader election, as client-go's tools/leaderelection: of several replicas of a controller, one
// leads (runs the reconcilers) and the others wait to take over. The candidates share one lock
// record in a store that offers optimistic concurrency: a Lease through kube-apiserver
// (informer/apiserver/lease_lock.hpp) or a key in etcd (informer/etcd/lease_lock.hpp), or any
// `resource_lock` of your own.
//
//   auto lock = std::make_shared<informer::lease_lock>(http, "kube-system", "my-controller");
//   auto elector = informer::leader_elector::create(lock, {.identity = "pod-a",
//                                                          .release_on_cancel = true,
//                                                          .callbacks = {.on_started_leading = start_work,
//                                                                        .on_stopped_leading = stop_work}},
//                                                   io.get_executor()).value();
//   elector.start();
//   ...
//   elector.stop();   // stops leading, releases the lock; no callback runs after it returns
//
// How it decides (client-go's algorithm):
// - Every `retry_period` (stretched by a random 0..1.2 while waiting to acquire) a candidate reads
//   the record. A record held by another is taken only once the candidate has seen it unchanged for
//   the record's lease duration, timed by the candidate's own steady clock from when it *observed*
//   the change: times written by other hosts are never compared with this host's clock, so clock
//   skew cannot make two leaders. A record with an empty holder (released) is taken at once.
// - The leader renews every `retry_period`. It leads until `renew_deadline` after the start of its
//   last successful renewal; if no renewal succeeds by then it stops leading (`is_leader()` turns
//   false at that instant even if the executor is busy) and calls `on_stopped_leading`. Since a
//   follower waits `lease_duration` > `renew_deadline` from observing that renewal, which it can
//   only see after the renewal started, the two never overlap (with steady clocks of equal rate).
// - Writes are conditional on the version read (resourceVersion, mod_revision): of two candidates
//   racing for an expired record one wins, the other reads again. A lost race is not an error.
// - Once stopped leading, an elector does not campaign again (as client-go's Run returns): create a
//   new one to rejoin.
// - `stop()` with `release_on_cancel`: a leader writes the record with an empty holder and a lease
//   of 1 s, so a successor takes over at its next try instead of after a full lease.
//
// Callbacks run on the elector's strand (of the executor given, or of its own thread when none is
// given), one at a time and in order; they must return quickly (start work elsewhere) and must not
// block on the elector (`stop()` from a callback is allowed: it does not wait then).
//
// Errors: `create` refuses bad options with errc::invalid_argument. Lock failures (the store
// unreachable, a conflict) never surface as errors: they are logged ("leader_election" component)
// and retried; for a leader they count against `renew_deadline`.
//
// Thread safety: `is_leader`, `leader`, `start` and `stop` are thread-safe. Lifetime: the elector
// (movable) stops in its destructor; destroy it neither from one of its callbacks nor after its
// executor's context is gone; once `stop()` returned, no lock call is in flight and the context may
// go. The executor must be running for `stop()` to return (it waits for the strand, for a lock
// call in flight, and for the release): call it from a callback or from a thread that
// is not one of the executor's (on a one-thread executor, another handler calling it would wait for
// itself).
#pragma once

#include "informer/core/error.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace informer {

/// What a lock stores: client-go's LeaderElectionRecord.
struct lock_record {
  std::string holder_identity{};  ///< "" when nobody holds it (released)
  std::chrono::seconds lease_duration{0};
  std::chrono::system_clock::time_point acquire_time{};
  std::chrono::system_clock::time_point renew_time{};
  std::int32_t leader_transitions = 0;

  friend bool operator==(const lock_record&, const lock_record&) = default;
};

/// A record as read, with the store's version of it (resourceVersion, mod_revision) that a
/// conditional update names.
struct versioned_lock_record {
  lock_record record{};
  std::string version{};
};

/// Where the record lives. Implementations complete every operation exactly once, in bounded time
/// (their store's request timeout: `stop()` waits for a call in flight), never inside the call, on the handler's
/// associated executor (through detail::async_completion), and may be called from any thread, several operations at
/// once. Errors: `async_get` completes with an empty optional (and no error) when there is no record; `async_create`
/// and `async_update` complete with an error equal to condition::conflict when the record exists already or moved on
/// from `version`; anything else is the store's error.
class resource_lock {
public:
  using get_signature = void(informer::error, std::optional<versioned_lock_record>);
  /// Completes with the version of the record as written.
  using write_signature = void(informer::error, std::string);

  virtual ~resource_lock() = default;

  virtual void async_get(boost::asio::any_completion_handler<get_signature> handler) = 0;
  virtual void async_create(const lock_record& record,
                            boost::asio::any_completion_handler<write_signature> handler) = 0;
  virtual void async_update(const lock_record& record, const std::string& version,
                            boost::asio::any_completion_handler<write_signature> handler) = 0;
  /// For logs: "lease kube-system/my-controller", "etcd key /locks/my-controller".
  virtual std::string describe() const = 0;
};

struct leader_election_callbacks {
  /// This candidate became the leader.
  std::function<void()> on_started_leading{};
  /// It stopped leading: a renewal did not succeed within `renew_deadline`, or `stop()`. Called
  /// only after `on_started_leading`.
  std::function<void()> on_stopped_leading{};
  /// The holder this candidate observes changed (itself included); not called for an empty holder.
  std::function<void(const std::string& identity)> on_new_leader{};
};

/// The defaults are client-go's. Validated as client-go does: every duration positive,
/// lease_duration > renew_deadline > 1.2 * retry_period, a non-empty identity.
struct leader_elector_options {
  /// Unique among the candidates (a pod name, a host name plus a random suffix).
  std::string identity{};
  /// How long a follower waits, from observing the last change of the record, before taking it;
  /// written in the record rounded up to whole seconds.
  std::chrono::milliseconds lease_duration = std::chrono::seconds(15);
  /// How long the leader keeps leading without a successful renewal.
  std::chrono::milliseconds renew_deadline = std::chrono::seconds(10);
  /// Time between tries (to acquire, to renew).
  std::chrono::milliseconds retry_period = std::chrono::seconds(2);
  /// `stop()` releases the record when leading.
  bool release_on_cancel = false;
  leader_election_callbacks callbacks{};
};

namespace detail {
class elector_state;
struct elector_thread;
}  // namespace detail

class leader_elector {
public:
  /// Validates `options`; runs on a strand of `executor`, or on a thread of its own when it is
  /// empty. Does not touch the lock until `start()`.
  static detailed_result<leader_elector> create(std::shared_ptr<resource_lock> lock, leader_elector_options options,
                                                boost::asio::any_io_executor executor = {});

  /// A moved-from elector may only be destroyed or assigned to.
  leader_elector(leader_elector&&) noexcept;
  leader_elector& operator=(leader_elector&&) noexcept;
  /// `stop()`; with a thread of its own, then waits for a lock operation still in flight and joins it.
  ~leader_elector();

  /// Starts campaigning; idempotent; does nothing after `stop()`.
  void start();
  /// Stops: a leader stops leading (`on_stopped_leading`) and, with `release_on_cancel`, releases
  /// the record (so does a candidate whose write in flight turns out to have acquired it, unless that
  /// write lands after `renew_deadline`). Waits until no callback runs and
  /// none will, and no lock call is in flight (unless called from a callback). Idempotent.
  void stop();

  /// True while this candidate leads: never after `renew_deadline` without a successful renewal.
  bool is_leader() const;
  /// The holder last observed ("" for none yet, or released).
  std::string leader() const;

  /// What metrics read at scrape time: whether this candidate leads (`is_leader()`) and the lock
  /// record's `leader_transitions` last observed (-1 before any read).
  struct status {
    bool leading = false;
    std::int32_t transitions = -1;
  };
  /// `status` for observers that must not own the elector (a metrics registry): holds the elector's
  /// state weakly and returns nullopt once it is gone. Thread-safe.
  std::function<std::optional<status>()> status_observer() const;

private:
  leader_elector(std::shared_ptr<detail::elector_state> state, std::unique_ptr<detail::elector_thread> thread);
  void close() noexcept;
  std::shared_ptr<detail::elector_state> state_;
  std::unique_ptr<detail::elector_thread> thread_;  // when no executor was given
};

}  // namespace informer
