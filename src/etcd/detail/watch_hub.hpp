// The watches of one client and the Watch streams that carry them, as a state machine without I/O
// or threads. Its driver (src/etcd/watch.cpp) feeds it what happened (a watch added or canceled,
// a response read, a stream ended) and performs the actions each call returns, in their order:
// open a stream, write a request to one, close one, deliver an update to a watch's callback.
// Tests drive it the same way with a fake stream (tests/unit/etcd_watch_hub_test.cpp).
//
// The rules it keeps:
// - One stream at a time takes new watches (the current one). Its creates are written one at a
//   time: etcd answers creates in order, so a `created` answer belongs to the create in flight
//   (this also matches a refusal, which carries watch id -1).
// - A stream etcd stops reading (etcd 3.4 does once it refused a watch for permissions, which it
//   also says for a stale token) is retired: it keeps delivering to its watches but takes no new
//   ones, and is closed once they are gone. With credentials, a watch refused so is retried once
//   on a new stream that authenticates afresh.
// - When a stream ends, its created watches get a final `failed` update with the stream's error.
//   Watches not yet answered on a stream that failed to connect are retried on a new stream (each
//   at most once per endpoint), created from the first revision they have not delivered.
// - A response etcd split in fragments is delivered once, reassembled; an end mid-fragment drops it.
// - Heartbeats (with `progress_interval`): `on_tick` writes a progress request to each serving
//   stream that carries watches, once per interval. A stream from which nothing at all arrives
//   within `progress_timeout` of such a request is dead (a blackholed connection, a frozen member,
//   neither of which ends the stream by itself): it is closed as `unresponsive` (the driver counts
//   that against its endpoint), its created watches fail with `errc::unavailable` as if it had
//   broken, and watches not yet answered on it are retried on a new stream. A heartbeat's reply
//   gives every watch of the stream a bookmark at the revision it has delivered itself, not at the
//   reply's: in etcd releases without the fix for etcd issue 15220 the reply can overtake events
//   still queued for a watch that is in sync, so its revision may lie ahead of them. So a quiet
//   watch hears from etcd once per interval, and nothing is skipped.
// - A member without a leader refuses new streams at once ("etcdserver: no leader": streams
//   require one). With heartbeats on, watches a stream could not create for that reason are
//   parked for at least one tick and tried again (up to 20 times) rather than failed, since an
//   election (the leader killed or frozen) takes a second or two and every member refuses meanwhile.
// - Progress: a per-watch notification (etcd sends those only to watches it has in sync) is a
//   `progress` update. The stream-wide reply to `request_progress` (watch id -1) is one only for
//   watches known to have caught up: etcd releases without the fix for etcd issue 15220 answer
//   with the store's revision even while a watch still replays older history, and as a bookmark
//   that revision would skip the events still to come. A watch has caught up when it had nothing to
//   replay (it starts after the revision etcd had when creating it), once it delivered an event at
//   or after that revision, or once it got a per-watch notification. (A watch that falls behind
//   again later, more than etcd's batch of revisions behind or with a slow reader, is not noticed;
//   fixed etcd releases hold the reply back until every watch of the stream is in sync. Nor is
//   the reply's overtaking of events queued for a watch in sync, which the heartbeats avoid.)
//
// Thread safety: none; the driver confines it to the client's thread.
#pragma once

#include "informer/etcd/watch.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace informer::etcd::detail {

/// What one watch asks of etcd (a WatchCreateRequest, which always allows fragments).
struct watch_spec {
  std::string key;
  std::string range_end;
  std::int64_t start_revision = 0;  ///< in a create_request: where this create starts
  bool prev_kv = false;
  bool progress_notify = false;
  bool filter_puts = false;
  bool filter_deletes = false;
  std::string what;  ///< "watch of prefix '/a/' from revision 7", for messages
};

/// One WatchResponse, as the hub reads it.
struct watch_response {
  std::int64_t watch_id = 0;
  std::int64_t revision = 0;  ///< the header's
  bool created = false;
  bool canceled = false;
  bool fragment = false;
  std::int64_t compact_revision = 0;
  std::string cancel_reason = {};
  std::vector<event> events = {};
};

// What the hub writes to a stream.
struct create_request {
  watch_spec spec;
};
struct cancel_request {
  std::int64_t watch_id = 0;
};
struct progress_request {};
using watch_request = std::variant<create_request, cancel_request, progress_request>;

// What the driver does for the hub.

/// Open stream `stream` on an endpoint; with `stale_token_of`, the token stream `stale_token_of`
/// used was refused: authenticate again first. Report where it went (`stream_at`) and, exactly
/// once, its end (`on_stream_end`).
struct open_stream {
  std::uint64_t stream = 0;
  std::uint64_t stale_token_of = 0;
};
/// Write `request` once the stream is up, after the requests before it.
struct write_request {
  std::uint64_t stream = 0;
  watch_request request;
};
/// End the stream from our side; its end is still reported.
struct close_stream {
  std::uint64_t stream = 0;
  /// It stopped answering: count it as a failure of its endpoint, so the next stream goes elsewhere.
  bool unresponsive = false;
};
/// Hand `update` to watch `watch`'s callback; a final update is the last one (drop the callback).
struct deliver_update {
  std::uint64_t watch = 0;
  watch_update update;
};
using watch_action = std::variant<open_stream, write_request, close_stream, deliver_update>;
using watch_actions = std::vector<watch_action>;

/// Where a watch is.
enum class watch_phase {
  waiting,    ///< for a stream to take it
  parked,     ///< refused for want of a leader: waiting for a later tick to try again
  queued,     ///< on a stream, its create not written yet
  creating,   ///< create written, etcd's answer awaited
  active,     ///< created: updates flow
  canceling,  ///< canceled (final update delivered) while its create was in flight
};

/// Where a stream is.
enum class stream_phase {
  connecting,  ///< opened, etcd has not answered yet: an end now is a connection failure
  serving,     ///< etcd answered; takes new watches if it is the current stream
  retired,     ///< takes no new watches; closed once it carries none
  closing,     ///< close_stream was asked; waiting for the end
};

struct watch_hub_options {
  std::size_t endpoints = 1;   ///< how many endpoints a watch may try to connect to
  bool authenticates = false;  ///< the client has credentials
  /// How often `on_tick` asks each stream for progress; zero: no heartbeats.
  std::chrono::milliseconds progress_interval{0};
  /// How long after that request a stream that sent nothing counts as dead.
  std::chrono::milliseconds progress_timeout{0};
};

class watch_hub {
public:
  explicit watch_hub(watch_hub_options options) : options_(options) {}

  // Events. Each returns what to do, in order.

  /// A new watch, `watch` unique per hub.
  watch_actions add(std::uint64_t watch, watch_spec spec);
  /// The user cancels `watch`; nothing if it already ended.
  watch_actions cancel(std::uint64_t watch);
  /// The user asks for progress: a WatchProgressRequest on the current stream, if any.
  watch_actions request_progress();
  watch_actions on_response(std::uint64_t stream, watch_response response);
  /// Stream `stream` ended with `why` (an error; a transport code for a broken stream).
  watch_actions on_stream_end(std::uint64_t stream, const error& why);
  /// Time passed (the driver ticks while `wants_ticks()`, a quarter of the shorter of the interval
  /// and the timeout apart): sends due heartbeats, ends streams that did not answer one in time.
  watch_actions on_tick(std::chrono::steady_clock::time_point now);
  /// The client closes: every watch ends with errc::closed and every stream is closed.
  watch_actions close();

  /// Stream `stream` went to `address` (for messages).
  void stream_at(std::uint64_t stream, std::string address);
  /// The dial timeout matters: `stream` carries watches and etcd has not answered yet.
  bool awaiting_first_answer(std::uint64_t stream) const;
  /// Heartbeats are on and there is a stream to watch over or a parked watch to retry.
  bool wants_ticks() const noexcept {
    return options_.progress_interval.count() > 0 && !closed_ && (!streams_.empty() || !parked_.empty());
  }

  // State, for tests.
  std::optional<watch_phase> phase_of_watch(std::uint64_t watch) const;
  std::optional<stream_phase> phase_of_stream(std::uint64_t stream) const;
  std::size_t watch_count() const noexcept { return watches_.size(); }
  std::size_t stream_count() const noexcept { return streams_.size(); }

private:
  struct watch_state {
    watch_spec spec;
    watch_phase phase = watch_phase::waiting;
    std::uint64_t stream = 0;     // queued, creating, active, canceling
    std::int64_t server_id = -1;  // active: etcd's watch id
    // The first revision not delivered yet, where a new create starts (0: "now", until created).
    std::int64_t next_revision = 0;
    std::int64_t created_revision = 0;  // the store's revision when etcd created it
    bool caught_up = false;             // see the file comment
    bool token_refreshed = false;       // retried once with a new token
    std::size_t connect_failures = 0;
    std::size_t leaderless = 0;    // refusals for want of a leader since it was last created
    std::vector<event> fragments;  // a fragmented response, so far
  };

  using time_point = std::chrono::steady_clock::time_point;

  struct stream_state {
    stream_phase phase = stream_phase::connecting;
    std::string address;
    // Heartbeats: when the last request went out (unset until the first tick that saw the stream
    // serving), whether it awaits its answer, and whether anything arrived since it went out.
    std::optional<time_point> last_probe;
    bool probing = false;
    bool heard = false;
    std::deque<bool> progress_pending;             // progress requests not answered yet, true for a heartbeat
    std::deque<std::uint64_t> queued;              // creates not written yet
    std::uint64_t creating = 0;                    // the create in flight
    std::map<std::int64_t, std::uint64_t> active;  // by etcd's watch id
  };

  void assign_waiting();
  void pump(std::uint64_t stream_id, stream_state& s);
  void send_cancel(std::uint64_t stream_id, stream_state& s, std::int64_t server_id);
  void on_created(std::uint64_t stream_id, stream_state& s, watch_response& r);
  void on_create_refused(std::uint64_t stream_id, stream_state& s, std::uint64_t id, const watch_response& r);
  void note_progress_request(stream_state& s, bool heartbeat);
  void on_progress_reply(stream_state& s, std::int64_t revision);
  void on_watch_response(std::uint64_t stream_id, stream_state& s, watch_response& r);
  void retire(std::uint64_t stream_id, stream_state& s);
  void declare_dead(std::uint64_t stream_id, stream_state& s);
  void close_if_idle(std::uint64_t stream_id, stream_state& s);
  void retry_or_fail(std::deque<std::uint64_t> ids, const error& why, bool connect_failure);
  void deliver(std::uint64_t id, watch_update update);
  // Delivers the final update and forgets the watch.
  void finish(std::uint64_t id, watch_update update);
  void advance(watch_state& w, std::int64_t delivered);
  watch_actions take() { return std::exchange(out_, {}); }

  const watch_hub_options options_;
  bool closed_ = false;
  std::uint64_t last_stream_ = 0;
  std::uint64_t current_ = 0;         // the stream that takes new watches, 0 for none
  std::uint64_t stale_token_of_ = 0;  // the next stream must authenticate afresh
  std::unordered_map<std::uint64_t, watch_state> watches_;
  std::deque<std::uint64_t> waiting_;
  std::uint64_t ticks_ = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> parked_;  // watch, the tick it was parked at
  std::map<std::uint64_t, stream_state> streams_;
  watch_actions out_;  // the actions of the event being handled
};

}  // namespace informer::etcd::detail
