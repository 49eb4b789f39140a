// informer/apiserver/event_recorder.hpp
//
// Kubernetes Events for a controller: what client-go's tools/record (EventRecorder,
// EventBroadcaster, EventCorrelator) gives a Go controller, as one component. `record` turns
// "this object, Normal or Warning, a reason, a message" into a core/v1 Event in the object's
// namespace ("default" for cluster-scoped objects), as `kubectl describe` shows it:
//
//   informer::event_recorder events(http, {.component = "my-controller"});
//   events.record(*pod, informer::event_type::warning, "FailedSync", "no node fits the pod");
//   ...
//   events.shutdown(std::chrono::steady_clock::now() + std::chrono::seconds(5));
//
// Recording never blocks and never throws: the event is correlated, then queued (bounded,
// `queue_capacity`), and a background loop on the http_client's executor writes the queue in
// order, one request at a time. What the server sees, as client-go's correlator decides it:
// - aggregation: an event identical to one seen before (same source, involved object, type,
//   reason and message; the last `cache_size` such keys are remembered) patches the existing Event
//   (count + 1, lastTimestamp) instead of creating a new one; an Event that is gone (404) is
//   created again, with the count so far;
// - similar events: the `max_similar_events`-th distinct message for the same source, object, type
//   and reason within `similar_events_window` (10 by default, within 10 minutes) and every
//   later one go to a single Event whose message is "(combined from similar events): <latest>";
// - spam filter: per source and involved object a token bucket (`spam_burst`, one token per
//   `spam_refill_interval`: 25, then one per 5 minutes) drops what is over the limit.
// The Event's name is "<involved name>.<hex unix nanoseconds>", unique within the recorder.
//
// Errors: never thrown nor returned. Drops are counted in `stats()` (queue full, rate limited);
// a write the server refuses (403 without RBAC on events, 422, ...) is logged as a warning
// (component "event_recorder", log.hpp; one per Event given up, as client-go does, so the spam
// filter bounds them per object) and counted as failed; transport failures (connection refused or
// cut) are retried `max_tries` times `retry_interval` apart, then counted as failed.
// RBAC: create and patch on events in the involved objects' namespaces.
//
// Thread safety: thread-safe. `record` and `stats` may be called from any thread, the I/O
// threads included. `flush` and `shutdown` block: call them from a thread that does not run the
// http_client's executor (else they wait for work that cannot run there until they return).
//
// Lifetimes: the destructor does not wait: it discards what is still queued (counted as
// abandoned); a write in flight finishes on its own. Call `shutdown` first to deliver what is
// pending. Destroy the recorder before the execution context it runs on.
#pragma once

#include "informer/apiserver/http_client.hpp"
#include "informer/core/object.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace informer {

/// The two Event types Kubernetes defines.
enum class event_type {
  normal,   ///< "Normal": information, nothing to act on
  warning,  ///< "Warning": something may need a person's attention
};

/// "Normal" or "Warning".
std::string_view to_string(event_type type) noexcept;

/// The object an Event is about (core/v1 ObjectReference); empty fields are left out.
struct object_reference {
  std::string api_version{};
  std::string kind{};
  std::string ns{};  ///< empty for cluster-scoped objects
  std::string name{};
  std::string uid{};
  std::string resource_version{};
};

/// `obj`'s apiVersion, kind, namespace, name, uid and resourceVersion. Objects read through a
/// rest_client or a lister-watcher carry apiVersion and kind; for others set them on the result.
object_reference reference_to(const object& obj);

struct event_recorder_options {
  /// `source.component` and `reportingComponent`: who reports, e.g. "my-controller". Required.
  std::string component{};
  /// `source.host` and `reportingInstance` (client-go leaves the host empty for controllers).
  std::string host{};
  /// Events waiting to be written; the ones recorded while it is full are dropped.
  std::size_t queue_capacity = 1000;
  /// Entries in each of the correlator's caches (identical events, similar events, spam buckets),
  /// the least recently used evicted first.
  std::size_t cache_size = 4096;
  /// Distinct messages for one source, object, type and reason before they are combined.
  std::size_t max_similar_events = 10;
  /// How long the distinct messages of similar events are counted from the last one.
  std::chrono::nanoseconds similar_events_window = std::chrono::minutes(10);
  /// Per source and involved object: events let through at once, and the time to earn one more.
  int spam_burst = 25;
  std::chrono::nanoseconds spam_refill_interval = std::chrono::minutes(5);
  /// Attempts per write when the server cannot be reached, and the wait between them.
  int max_tries = 12;
  std::chrono::nanoseconds retry_interval = std::chrono::seconds(10);
  /// The wall clock of the timestamps and the similar-events window; empty: system_clock. Tests
  /// inject a hand-driven one.
  std::function<std::chrono::system_clock::time_point()> now{};
};

/// Counters since construction.
struct event_recorder_stats {
  std::uint64_t queued = 0;                ///< accepted for writing
  std::uint64_t created = 0;               ///< Events created (re-creations after a 404 included)
  std::uint64_t patched = 0;               ///< Events updated with a new count
  std::uint64_t dropped_queue_full = 0;    ///< not queued: the queue was full
  std::uint64_t dropped_rate_limited = 0;  ///< not queued: over the spam filter's limit
  std::uint64_t failed = 0;                ///< given up on an error (each logged)
  std::uint64_t abandoned = 0;             ///< still queued when shut down or destroyed
};

namespace detail {
class event_recorder_state;
}

class event_recorder {
public:
  /// Writes through `http` (its executor runs the writes). Throws `std::invalid_argument` for an
  /// empty component, a zero queue or cache, `max_similar_events` < 1, `spam_burst` < 1, a
  /// non-positive refill interval or `max_tries` < 1.
  event_recorder(http_client http, event_recorder_options options);
  ~event_recorder();
  /// A moved-from recorder may only be destroyed or assigned to.
  event_recorder(event_recorder&&) noexcept;
  event_recorder& operator=(event_recorder&&) noexcept;

  /// Records an event about `involved` (see the file comment); `reason` is a short CamelCase
  /// word ("Scheduled", "FailedSync"), `message` a sentence for a person. Ignored after
  /// `shutdown`.
  void record(const object& involved, event_type type, std::string_view reason, std::string_view message) noexcept;
  void record(const object_reference& involved, event_type type, std::string_view reason,
              std::string_view message) noexcept;

  /// Waits until every queued event is written (or given up on); false when `deadline` came first.
  bool flush(std::chrono::steady_clock::time_point deadline);
  /// Stops accepting events, then waits as `flush`; what is still queued at the deadline is
  /// abandoned. Returns whether everything was delivered in time.
  bool shutdown(std::chrono::steady_clock::time_point deadline);

  event_recorder_stats stats() const;

private:
  std::shared_ptr<detail::event_recorder_state> state_;  // shared with the write loop
};

}  // namespace informer
