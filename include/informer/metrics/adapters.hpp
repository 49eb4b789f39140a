// informer/metrics/adapters.hpp
//
// Wires the library's observation hooks to a `registry`, under the metric names a client-go /
// controller-runtime operator's dashboards already use where such a name exists. Each family is
// registered on first use and shared by every queue / reflector / informer adapted to the same
// registry; a series is labelled `name=<the name given>`.
//
// workqueue_metrics(r, name) -> workqueue_options::metrics (controller-runtime's names):
//   workqueue_depth                        gauge      keys queued
//   workqueue_adds_total                   counter    keys accepted by add
//   workqueue_queue_duration_seconds       histogram  time in the queue before get
//   workqueue_work_duration_seconds        histogram  time between get and done
//   workqueue_retries_total                counter    add_rate_limited calls
// register_workqueue_progress_metrics(r, queue, name) adds scrape-time gauges (controller-runtime's):
//   workqueue_unfinished_work_seconds      gauge      summed time the keys in progress have run
//   workqueue_longest_running_processor_seconds  gauge  the longest of them (a stuck worker)
//
// reflector_metrics(r, name) -> reflector_options::metrics (client-go's former reflector names,
// plus the reflector's own cases):
//   reflector_lists_total                  counter    completed lists (initial and relists)
//   reflector_list_duration_seconds        histogram  time a complete list took
//   reflector_items_per_list               histogram  items in a list
//   reflector_relists_total                counter    relists forced (410 Gone, too large RV)
//   reflector_watches_total                counter    watches opened (restarts included)
//   reflector_items_per_watch              histogram  events a watch delivered before it ended
//   reflector_watch_events_total{type}     counter    events by type (ADDED, MODIFIED, ...)
//   reflector_errors_total                 counter    failures (list, watch open, stream)
//   reflector_backoff_seconds_total        counter    time spent waiting before a retry
//   reflector_last_resource_version        gauge      the last event's resourceVersion, when numeric
//   reflector_last_event_age_seconds       gauge      time since the last watch event (scrape time)
//
// register_informer_metrics(r, informer) adds scrape-time gauges read from the informer:
//   informer_store_size                    gauge      objects in its cache
//   informer_synced                        gauge      1 once has_synced()
// register_handler_metrics(r, name, registration, handler) adds
//   informer_handler_pending{handler}      gauge      notifications waiting for that handler
//   informer_handler_duration_seconds{handler}  histogram  time each call of the handler took
// register_leader_election_metrics(r, elector, name) adds (client-go's name, and the record's count):
//   leader_election_master_status          gauge      1 while this replica leads, else 0
//   leader_election_transitions            gauge      the lock record's leaderTransitions last seen
// The informer gauges do not own the informer (they read `shared_informer::synced_observer` and
// the cache, never lock the informer itself) and vanish once it is destroyed; the handler gauge
// holds the registration weakly (`handler_registration::pending_observer`) and vanishes once the
// handler is removed or its informer stopped.
//
// Errors: `std::invalid_argument` from the registry when one of these names is already registered
// in it with another type or other labels.
//
// Names: adapting two reflectors (or informers, or handlers) under the same name makes them share
// their counters and histograms, and the scrape-time gauges (reflector_last_event_age_seconds,
// informer_*, informer_handler_pending) of the later one silently replace those of the earlier
// one (`gauge_family::set_callback`): give each a distinct name.
//
// Thread safety: the returned hooks are thread-safe and lock-free (series handles are looked up
// when the adapter is made). Lifetimes: the hooks share ownership of their series, so they may
// outlive the registry (not so the hooks of `rest_client_metrics`, see
// informer/metrics/http_client_metrics.hpp). The scrape-time callbacks belong to the registry.
#pragma once

#include "informer/client/reflector.hpp"
#include "informer/controller/workqueue.hpp"
#include "informer/metrics/registry.hpp"

#include <memory>
#include <string>

namespace informer {
class shared_informer;
class handler_registration;
class leader_elector;
}  // namespace informer

namespace informer::metrics {

/// Hooks for `workqueue_options::metrics`, labelled name=`name`.
informer::workqueue_metrics workqueue_metrics(registry& r, const std::string& name);

/// Scrape-time gauges of the keys `queue` is processing, labelled name=`name`. They read
/// `workqueue::progress_observer` and vanish once the queue is destroyed.
void register_workqueue_progress_metrics(registry& r, const workqueue& queue, const std::string& name);

/// Hooks for `reflector_options::metrics` (also `shared_informer_options::reflector.metrics`),
/// labelled name=`name`.
informer::reflector_metrics reflector_metrics(registry& r, const std::string& name);

/// Scrape-time gauges of `informer`, labelled name=`name` (empty: `informer->name()`).
void register_informer_metrics(registry& r, const std::shared_ptr<shared_informer>& informer, std::string name = {});

/// Scrape-time gauges of `elector`, labelled name=`name` (the lock's name, as client-go labels it).
/// They hold the elector weakly and vanish once it is destroyed.
void register_leader_election_metrics(registry& r, const leader_elector& elector, const std::string& name);

/// A scrape-time gauge of the notifications pending for `registration`, and a histogram of its
/// handler calls' durations (`handler_registration::observe_latency`), labelled name=`name`,
/// handler=`handler`.
void register_handler_metrics(registry& r, const std::string& name, const std::string& handler,
                              const handler_registration& registration);

}  // namespace informer::metrics
