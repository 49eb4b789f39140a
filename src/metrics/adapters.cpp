#include "informer/metrics/adapters.hpp"

#include "informer/client/shared_informer.hpp"
#include "informer/leaderelection/leader_elector.hpp"

#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>

namespace informer::metrics {
namespace {

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

// controller-runtime's workqueue buckets: 10 ns to 10 s, by factors of 10.
const std::vector<double>& workqueue_buckets() {
  static const std::vector<double> bounds = exponential_buckets(10e-9, 10, 10);
  return bounds;
}

const std::vector<double>& count_buckets() {
  static const std::vector<double> bounds = exponential_buckets(1, 4, 10);  // 1 .. 262144
  return bounds;
}

}  // namespace

informer::workqueue_metrics workqueue_metrics(registry& r, const std::string& name) {
  const std::vector<std::string> labels{"name"};
  auto depth = r.gauge("workqueue_depth", "Current depth of workqueue", labels).with({name});
  auto adds = r.counter("workqueue_adds_total", "Total number of adds handled by workqueue", labels).with({name});
  auto queued =
      r.histogram("workqueue_queue_duration_seconds",
                  "How long in seconds an item stays in workqueue before being requested", labels, workqueue_buckets())
          .with({name});
  auto work = r.histogram("workqueue_work_duration_seconds",
                          "How long in seconds processing an item from workqueue takes.", labels, workqueue_buckets())
                  .with({name});
  auto retries =
      r.counter("workqueue_retries_total", "Total number of retries handled by workqueue", labels).with({name});
  informer::workqueue_metrics m;
  m.on_depth = [depth](std::size_t n) { depth.set(static_cast<double>(n)); };
  m.on_add = [adds](const std::string&) { adds.inc(); };
  m.on_queue_latency = [queued](std::chrono::nanoseconds d) { queued.observe(seconds(d)); };
  m.on_work_duration = [work](std::chrono::nanoseconds d) { work.observe(seconds(d)); };
  m.on_retry = [retries](const std::string&) { retries.inc(); };
  return m;
}

informer::reflector_metrics reflector_metrics(registry& r, const std::string& name) {
  const std::vector<std::string> labels{"name"};
  auto lists =
      r.counter("reflector_lists_total", "Total number of API lists done by the reflectors", labels).with({name});
  auto list_duration =
      r.histogram("reflector_list_duration_seconds", "How long an API list takes to return and decode", labels)
          .with({name});
  auto list_items = r.histogram("reflector_items_per_list", "How many items an API list returns to the reflectors",
                                labels, count_buckets())
                        .with({name});
  auto relists =
      r.counter("reflector_relists_total", "Relists forced by an expired or too large resourceVersion", labels)
          .with({name});
  auto watches =
      r.counter("reflector_watches_total", "Total number of API watches done by the reflectors", labels).with({name});
  auto watch_items = r.histogram("reflector_items_per_watch", "How many events an API watch delivers to the reflectors",
                                 labels, count_buckets())
                         .with({name});
  auto& events =
      r.counter("reflector_watch_events_total", "Watch events received by the reflectors, by type", {"name", "type"});
  // One handle per event type, looked up now so that the hook takes no lock.
  std::array<counter, 5> by_type;
  for (auto t : {watch_event_type::added, watch_event_type::modified, watch_event_type::deleted,
                 watch_event_type::bookmark, watch_event_type::error}) {
    by_type[static_cast<std::size_t>(t)] = events.with({name, std::string(to_string(t))});
  }
  auto errors =
      r.counter("reflector_errors_total", "List and watch failures seen by the reflectors", labels).with({name});
  auto backoff =
      r.counter("reflector_backoff_seconds_total", "Time the reflectors waited before retrying", labels).with({name});
  auto last_rv =
      r.gauge("reflector_last_resource_version", "Last resource version seen for the reflectors", labels).with({name});
  // Nanoseconds since the steady clock's epoch of the last event; 0 before any.
  auto last_event = std::make_shared<std::atomic<std::int64_t>>(0);
  r.gauge("reflector_last_event_age_seconds", "Seconds since the reflector's last watch event", labels)
      .set_callback({name}, [last_event]() -> std::optional<double> {
        const auto at = last_event->load(std::memory_order_relaxed);
        if (at == 0) return std::nullopt;
        return seconds(std::chrono::steady_clock::now().time_since_epoch() - std::chrono::nanoseconds(at));
      });

  informer::reflector_metrics m;
  m.on_list = [lists, list_duration, list_items](std::size_t items, std::chrono::nanoseconds took) {
    lists.inc();
    list_duration.observe(seconds(took));
    list_items.observe(static_cast<double>(items));
  };
  m.on_watch_open = [watches] { watches.inc(); };
  m.on_watch_close = [watch_items](std::size_t n) { watch_items.observe(static_cast<double>(n)); };
  m.on_error = [errors](const informer::error&) { errors.inc(); };
  m.on_backoff = [backoff](std::chrono::nanoseconds d) { backoff.inc(seconds(d)); };
  m.on_relist = [relists](const std::string&) { relists.inc(); };
  m.on_event = [by_type, last_rv, last_event](watch_event_type t, const std::string& rv) {
    by_type[static_cast<std::size_t>(t)].inc();
    last_event->store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    // A resourceVersion is opaque; etcd-backed servers make it a number, which is what a graph shows.
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(rv.data(), rv.data() + rv.size(), v);
    if (ec == std::errc{} && end == rv.data() + rv.size() && !rv.empty()) last_rv.set(static_cast<double>(v));
  };
  return m;
}

void register_informer_metrics(registry& r, const std::shared_ptr<shared_informer>& informer, std::string name) {
  if (name.empty()) name = informer->name();
  const std::vector<std::string> labels{"name"};
  // Non-owning views only: a scrape that held the last reference to the informer would run its
  // destructor, which stops it, on the scraping (executor) thread.
  const auto synced = informer->synced_observer();
  const std::weak_ptr<const indexer> cache = informer->get_store();
  r.gauge("informer_store_size", "Objects in the informer's cache", labels)
      .set_callback({name}, [synced, cache]() -> std::optional<double> {
        const auto c = cache.lock();
        if (!c || !synced()) return std::nullopt;
        return static_cast<double>(c->size());
      });
  r.gauge("informer_synced", "1 once the informer has synced", labels)
      .set_callback({name}, [synced]() -> std::optional<double> {
        const auto s = synced();
        if (!s) return std::nullopt;
        return *s ? 1.0 : 0.0;
      });
}

void register_workqueue_progress_metrics(registry& r, const workqueue& queue, const std::string& name) {
  const std::vector<std::string> labels{"name"};
  const auto progress = queue.progress_observer();
  const auto seconds = [](std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); };
  r.gauge("workqueue_unfinished_work_seconds",
          "Seconds of work in progress that no done() has ended yet (large values: stuck workers)", labels)
      .set_callback({name}, [progress, seconds]() -> std::optional<double> {
        const auto p = progress();
        if (!p) return std::nullopt;
        return seconds(p->total);
      });
  r.gauge("workqueue_longest_running_processor_seconds", "Seconds the longest-running key in progress has run", labels)
      .set_callback({name}, [progress, seconds]() -> std::optional<double> {
        const auto p = progress();
        if (!p) return std::nullopt;
        return seconds(p->longest);
      });
}

void register_leader_election_metrics(registry& r, const leader_elector& elector, const std::string& name) {
  const std::vector<std::string> labels{"name"};
  const auto status = elector.status_observer();
  r.gauge("leader_election_master_status", "1 while this replica leads, else 0", labels)
      .set_callback({name}, [status]() -> std::optional<double> {
        const auto s = status();
        if (!s) return std::nullopt;
        return s->leading ? 1.0 : 0.0;
      });
  r.gauge("leader_election_transitions", "The lock record's leaderTransitions last seen", labels)
      .set_callback({name}, [status]() -> std::optional<double> {
        const auto s = status();
        if (!s || s->transitions < 0) return std::nullopt;
        return static_cast<double>(s->transitions);
      });
}

void register_handler_metrics(registry& r, const std::string& name, const std::string& handler,
                              const handler_registration& registration) {
  auto duration =
      r.histogram("informer_handler_duration_seconds", "Time each call of the handler took", {"name", "handler"})
          .with({name, handler});
  registration.observe_latency(
      [duration](std::chrono::nanoseconds d) { duration.observe(std::chrono::duration<double>(d).count()); });
  r.gauge("informer_handler_pending", "Notifications waiting for the handler", {"name", "handler"})
      .set_callback({name, handler}, [pending = registration.pending_observer()]() -> std::optional<double> {
        const auto n = pending();
        if (!n) return std::nullopt;
        return static_cast<double>(*n);
      });
}

}  // namespace informer::metrics
