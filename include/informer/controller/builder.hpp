// informer/controller/builder.hpp
//
// `controller_builder` wires informers to a `controller` the way controller-runtime's
// `builder.ControllerManagedBy(mgr).For(..).Owns(..).Watches(..).WithEventFilter(..)` does for Go
// operators: declare the primary resource, the kinds it owns and other watched kinds, filter events
// with predicates, and get a `managed_controller` whose reconcile sees one key per primary object.
//
//   informer::informer_factory factory;
//   auto http = informer::http_client::create(factory.get_executor(), config).value();
//   auto services = informer::controller_builder(factory, informer::apiserver_source_maker(http))
//                       .named("user-services")
//                       .for_resource({.resource = "v1/configmaps", .ns = "apps"})
//                       .owns({.resource = "apps/v1/deployments", .ns = "apps"},
//                             {informer::predicates::generation_changed()})
//                       .workers(2)
//                       .build([&](const std::string& key) -> informer::result<informer::reconcile_result> {
//                         ...  // read the listers, write through a rest_client
//                         return informer::reconcile_result{};
//                       });
//   services->run().value();  // starts the informers, waits for their caches, starts the workers
//   ...
//   services->stop();
//
// What enqueues which key (namespace/name, or name for cluster-scoped objects):
// - `for_resource`: every add, update and delete of a primary object enqueues its own key (a
//   tombstone's key when a relist found it gone).
// - `owns`: an event on an owned object enqueues the key of its controller owner: the
//   ownerReference with `controller: true` whose kind and apiVersion group are the primary's (the
//   version is ignored, as controller-runtime's EnqueueRequestForOwner with OnlyControllerOwner
//   does), named in the owned object's namespace (no namespace for a cluster-scoped primary). An
//   update enqueues the owners of the old and of the new object, so a change of owner reconciles
//   both. A delete uses the object, or a tombstone's last known state.
// - `watches`: an event enqueues the keys a mapping function returns for the object (for an
//   update: for the old and the new object).
// A tombstone without any last known state enqueues the primary's key and is dropped for owned
// and watched kinds (there is nothing to read an owner or a mapping from).
//
// Predicates (controller-runtime's): each event is a create (an add, initial list included),
// update, delete, or generic event (`managed_controller::trigger`); a `predicate` may filter each
// kind of event (an empty member passes). An event is handled only when every predicate of its
// watch and every global one (`with_event_filter`) passes. `predicates::` has the usual ones:
// `generation_changed` (updates pass only when metadata.generation changed, so status-only writes
// are ignored), `labels_changed`, `annotations_changed`, `filter` (one object test for all
// events) and `any_of`.
//
// Running: `run()` adds one handler per watch, runs the informers (idempotent for informers that
// already run), and waits until every handler has received its informer's initial list, so that
// the first reconcile sees complete caches (controller-runtime waits for its caches before
// starting workers); only then it starts the workers. Keys queued meanwhile wait for them.
// Reconcile outcomes are the `controller`'s (requeue, requeue_after, error -> rate-limited retry),
// and a key is never reconciled by two workers at once.
//
// Errors: the builder throws `std::invalid_argument` for programming errors: no `for_resource`, or
// a second one; a factory form without a factory; a primary given by `informer_key` whose resource
// is not in the built-in table (describe it with the `resource` form); a null informer; an empty
// mapping function or reconcile; fewer than one worker; `predicates::filter` with an empty
// test. `run()` returns `errc::closed` after `stop()` (also when stopped while waiting for the
// caches) and `boost::system::errc::timed_out` when the caches did not sync within
// `cache_sync_timeout` (the handlers stay; `run()` may be called again). Exceptions from
// predicates and mapping functions are caught by the informer and reported to its
// `on_handler_error` (the event is dropped).
//
// Thread safety: `controller_builder` is a value to configure on one thread. Every member of
// `managed_controller` is thread-safe. Predicates and mapping functions run on the informers'
// handler strands: one call at a time per watch, calls of different watches concurrently. `stop()`
// (and so the destructor) must not be called from a reconcile, a predicate or a mapping function:
// it waits for them. It does not stop the informers (they may be shared: stop the factory).
// Lifetimes: the managed controller keeps its informers alive; the registry given to
// `with_metrics` must outlive it.
#pragma once

#include "informer/client/informer_factory.hpp"
#include "informer/client/shared_informer.hpp"
#include "informer/controller/controller.hpp"
#include "informer/controller/rate_limiter.hpp"
#include "informer/core/error.hpp"
#include "informer/core/mutex.hpp"
#include "informer/core/object.hpp"
#include "informer/core/resource.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace informer {

namespace metrics {
class registry;
}  // namespace metrics

/// An object appeared (`is_initial_list`: it came with the informer's first list).
struct create_event {
  object::ptr obj;
  bool is_initial_list = false;
};

/// An object changed; `old_obj == new_obj` for a resync.
struct update_event {
  object::ptr old_obj;
  object::ptr new_obj;
};

/// An object went away; `final_state_unknown` when a relist found it gone (then `obj` is the last
/// state known, possibly stale). `obj` is never null here.
struct delete_event {
  object::ptr obj;
  bool final_state_unknown = false;
};

/// An event from outside the informers, naming a primary object (`managed_controller::trigger`).
struct generic_event {
  object::ptr obj;
};

/// Filters events, per kind of event; an empty member lets every event of its kind pass.
struct predicate {
  std::function<bool(const create_event&)> on_create{};
  std::function<bool(const update_event&)> on_update{};
  std::function<bool(const delete_event&)> on_delete{};
  std::function<bool(const generic_event&)> on_generic{};
};

namespace predicates {

/// Updates pass only when metadata.generation differs (spec changes; status and metadata-only
/// writes do not bump it). Other events pass. Resources that never set a generation (ConfigMaps,
/// for instance) never pass an update.
predicate generation_changed();
/// Updates pass only when the labels differ; other events pass.
predicate labels_changed();
/// Updates pass only when the annotations differ; other events pass.
predicate annotations_changed();
/// Every event passes when `test` accepts its object (for an update: the new object).
predicate filter(std::function<bool(const object& obj)> test);
/// An event passes when any of `any` lets it pass (none: nothing passes).
predicate any_of(std::vector<predicate> any);

}  // namespace predicates

/// The keys of the primary objects to reconcile for an object of a watched kind.
using watch_map_fn = std::function<std::vector<std::string>(const object& obj)>;

class managed_controller;

/// Collects a controller's watches and settings; `build` makes the `managed_controller`. See the
/// file comment.
class controller_builder {
public:
  /// A builder taking only informers (the `shared_informer` forms).
  controller_builder() = default;
  /// A builder that also takes `informer_key`s, for which it asks `factory` for the informer over
  /// `make_source` (so watches of one collection share one informer). `factory` must outlive the
  /// builder (not the built controller).
  controller_builder(informer_factory& factory, source_maker make_source);

  /// Names the controller (logs, metric labels); default "controller".
  controller_builder& named(std::string name);

  /// The primary resource, from the factory; its kind comes from `parse_resource(key.resource)`.
  controller_builder& for_resource(const informer_key& key, std::vector<predicate> filters = {});
  /// The primary resource: `informer` watches objects of `kind` (its group, kind and scope are what
  /// owner references are matched against).
  controller_builder& for_resource(std::shared_ptr<shared_informer> informer, resource kind,
                                   std::vector<predicate> filters = {});

  /// A kind the primary owns: events enqueue the controller owner's key.
  controller_builder& owns(const informer_key& key, std::vector<predicate> filters = {});
  controller_builder& owns(std::shared_ptr<shared_informer> informer, std::vector<predicate> filters = {});

  /// Any other kind: events enqueue the keys `map` returns.
  controller_builder& watches(const informer_key& key, watch_map_fn map, std::vector<predicate> filters = {});
  controller_builder& watches(std::shared_ptr<shared_informer> informer, watch_map_fn map,
                              std::vector<predicate> filters = {});

  /// A predicate applied to every watch (after the watch's own).
  controller_builder& with_event_filter(predicate filter);

  /// Concurrent reconciles (of different keys); default 1.
  controller_builder& workers(int n);
  /// Delays of `requeue` and error retries; default `make_default_controller_rate_limiter()`.
  controller_builder& with_rate_limiter(std::shared_ptr<rate_limiter> limiter);
  /// How long `run()` waits for the caches; default two minutes (controller-runtime's).
  controller_builder& cache_sync_timeout(std::chrono::nanoseconds timeout);
  /// Counts into `r`: the workqueue's metrics and its progress gauges (unfinished work, longest
  /// running key; informer/metrics/adapters.hpp), and
  /// controller-runtime's controller_runtime_reconcile_total{controller,result} (result: success,
  /// error, requeue, requeue_after), controller_runtime_reconcile_errors_total{controller} and
  /// controller_runtime_reconcile_time_seconds{controller}.
  controller_builder& with_metrics(metrics::registry& r);

  /// The controller, not yet running. Throws `std::invalid_argument` (see the file comment).
  std::unique_ptr<managed_controller> build(reconcile_fn reconcile);

  /// How a watch turns events into keys; internal.
  enum class watch_kind { primary, owned, mapped };
  struct watch_spec {
    std::shared_ptr<shared_informer> informer;
    watch_kind kind = watch_kind::primary;
    watch_map_fn map{};
    std::vector<predicate> filters{};
  };

private:
  std::shared_ptr<shared_informer> from_factory(const informer_key& key) const;
  void add(std::shared_ptr<shared_informer> informer, watch_kind kind, watch_map_fn map,
           std::vector<predicate> filters);

  informer_factory* factory_ = nullptr;
  source_maker make_source_{};
  std::string name_ = "controller";
  std::vector<watch_spec> watches_;
  resource primary_kind_{};
  bool has_primary_ = false;
  std::vector<predicate> global_filters_;
  int workers_ = 1;
  std::shared_ptr<rate_limiter> limiter_;
  std::chrono::nanoseconds cache_sync_timeout_ = std::chrono::minutes(2);
  metrics::registry* metrics_ = nullptr;
};

namespace detail {
struct managed_watch;
}  // namespace detail

/// A controller with its watches; made by `controller_builder::build`. See the file comment.
class managed_controller {
public:
  /// Calls `stop()`.
  ~managed_controller();
  managed_controller(const managed_controller&) = delete;
  managed_controller& operator=(const managed_controller&) = delete;

  /// Adds the handlers, runs the informers, waits for every handler to have its initial list,
  /// then starts the workers and returns. A call while running does nothing. Errors: see the file
  /// comment.
  result<void> run();
  /// Removes the handlers and stops the workers (a reconcile in flight is waited for); a `run()`
  /// waiting for the caches returns `errc::closed`. Idempotent.
  void stop();

  /// True once every handler has received its informer's initial list (false before `run()`).
  bool has_synced() const;
  /// A generic event for primary object `obj`: its key is queued if the primary watch's and the
  /// global predicates' `on_generic` let it pass.
  void trigger(const object::ptr& obj);
  /// Queues `key` for reconciliation, bypassing the predicates.
  void enqueue(const std::string& key);

  const std::string& name() const noexcept { return controller_.name(); }
  /// The watched informers: the primary's first, then the others in the order declared.
  std::vector<std::shared_ptr<shared_informer>> informers() const;
  /// The underlying controller (its queue, for tests and metrics).
  informer::controller& get_controller() noexcept { return controller_; }

  // Private: use controller_builder::build.
  struct passkey {
  private:
    passkey() = default;
    friend class controller_builder;
  };
  managed_controller(passkey, controller_options options, resource primary_kind,
                     std::vector<controller_builder::watch_spec> watches, std::chrono::nanoseconds cache_sync_timeout);

private:
  const std::chrono::nanoseconds cache_sync_timeout_;
  // The watches keep their informers alive; declared before the controller, whose queue's timer runs
  // on the primary informer's executor.
  std::vector<std::shared_ptr<detail::managed_watch>> watches_;
  informer::controller controller_;  // thread-safe itself

  enum class state { idle, running, stopped };
  mutable informer::mutex mu_;
  informer::condition_variable stopped_cv_;  // with mu_: state_ became stopped
  state state_ INFORMER_GUARDED_BY(mu_) = state::idle;
  bool handlers_added_ INFORMER_GUARDED_BY(mu_) = false;
  std::vector<handler_registration> registrations_ INFORMER_GUARDED_BY(mu_);
};

}  // namespace informer
