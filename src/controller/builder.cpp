#include "informer/controller/builder.hpp"

#include "informer/core/key.hpp"
#include "informer/core/log.hpp"
#include "informer/metrics/adapters.hpp"
#include "informer/metrics/registry.hpp"

#include <boost/system/errc.hpp>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace informer {

namespace predicates {

predicate generation_changed() {
  return {.on_update = [](const update_event& e) {
    return e.old_obj && e.new_obj && e.old_obj->generation() != e.new_obj->generation();
  }};
}

predicate labels_changed() {
  return {.on_update = [](const update_event& e) {
    return e.old_obj && e.new_obj && e.old_obj->labels() != e.new_obj->labels();
  }};
}

predicate annotations_changed() {
  return {.on_update = [](const update_event& e) {
    return e.old_obj && e.new_obj && e.old_obj->annotations() != e.new_obj->annotations();
  }};
}

predicate filter(std::function<bool(const object& obj)> test) {
  if (!test) throw std::invalid_argument("predicates::filter: the test is empty");
  auto t = std::make_shared<const std::function<bool(const object&)>>(std::move(test));
  return {
      .on_create = [t](const create_event& e) { return (*t)(*e.obj); },
      .on_update = [t](const update_event& e) { return (*t)(*e.new_obj); },
      .on_delete = [t](const delete_event& e) { return (*t)(*e.obj); },
      .on_generic = [t](const generic_event& e) { return (*t)(*e.obj); },
  };
}

predicate any_of(std::vector<predicate> any) {
  auto all = std::make_shared<const std::vector<predicate>>(std::move(any));
  // A member left empty lets its events pass, so it makes the disjunction pass too.
  const auto either = [all](auto member, const auto& event) {
    return std::any_of(all->begin(), all->end(), [&](const predicate& p) {
      const auto& f = p.*member;
      return !f || f(event);
    });
  };
  return {
      .on_create = [either](const create_event& e) { return either(&predicate::on_create, e); },
      .on_update = [either](const update_event& e) { return either(&predicate::on_update, e); },
      .on_delete = [either](const delete_event& e) { return either(&predicate::on_delete, e); },
      .on_generic = [either](const generic_event& e) { return either(&predicate::on_generic, e); },
  };
}

}  // namespace predicates

namespace detail {

// One watch as it runs: turns an informer's notifications into keys for the controller. Shared by
// the handler's callbacks; immutable.
struct managed_watch {
  std::shared_ptr<shared_informer> informer;
  controller_builder::watch_kind kind = controller_builder::watch_kind::primary;
  watch_map_fn map;
  std::vector<predicate> filters;  // the watch's own, then the global ones
  resource primary;                // group, kind and scope owners are matched against
  informer::controller* target = nullptr;

  template <class Member, class Event>
  bool passes(Member member, const Event& event) const {
    return std::all_of(filters.begin(), filters.end(), [&](const predicate& p) {
      const auto& f = p.*member;
      return !f || f(event);
    });
  }

  // The key of `obj`'s controller owner if it is of the primary kind.
  void add_owner_key(const object& obj, std::vector<std::string>& out) const {
    for (const auto& ref : obj.owner_references()) {
      if (!ref.controller || ref.kind != primary.kind) continue;
      const auto slash = ref.api_version.find('/');
      const auto group = slash == std::string_view::npos ? std::string_view{} : ref.api_version.substr(0, slash);
      if (group != primary.group) continue;
      out.push_back(make_key(primary.namespaced ? obj.ns() : std::string_view{}, ref.name));
    }
  }

  void add_keys(const object& obj, std::vector<std::string>& out) const {
    switch (kind) {
      case controller_builder::watch_kind::primary: out.push_back(object_key(obj)); break;
      case controller_builder::watch_kind::owned: add_owner_key(obj, out); break;
      case controller_builder::watch_kind::mapped: {
        auto keys = map(obj);
        out.insert(out.end(), std::make_move_iterator(keys.begin()), std::make_move_iterator(keys.end()));
        break;
      }
    }
  }

  void enqueue(std::vector<std::string>& keys) const {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (const auto& k : keys) target->enqueue(k);
  }

  void on_add(const object::ptr& obj, bool is_initial_list) const {
    if (!passes(&predicate::on_create, create_event{.obj = obj, .is_initial_list = is_initial_list})) return;
    std::vector<std::string> keys;
    add_keys(*obj, keys);
    enqueue(keys);
  }

  void on_update(const object::ptr& old_obj, const object::ptr& new_obj) const {
    if (!passes(&predicate::on_update, update_event{.old_obj = old_obj, .new_obj = new_obj})) return;
    std::vector<std::string> keys;
    // An owner or a mapping may have changed: reconcile what the object belonged to and belongs to.
    if (kind != controller_builder::watch_kind::primary) add_keys(*old_obj, keys);
    add_keys(*new_obj, keys);
    enqueue(keys);
  }

  void on_delete(const deleted_object& d) const {
    const auto& obj = d.obj();
    if (!obj) {
      // A tombstone with no state at all: only the primary's key is known.
      if (kind == controller_builder::watch_kind::primary) target->enqueue(d.tombstone()->key);
      return;
    }
    if (!passes(&predicate::on_delete, delete_event{.obj = obj, .final_state_unknown = d.final_state_unknown()}))
      return;
    std::vector<std::string> keys;
    if (kind == controller_builder::watch_kind::primary && d.tombstone()) {
      keys.push_back(d.tombstone()->key);
    } else {
      add_keys(*obj, keys);
    }
    enqueue(keys);
  }

  resource_event_handlers handlers(const std::shared_ptr<const managed_watch>& self) const {
    return {
        .on_add = [self](const object::ptr& o, bool initial) { self->on_add(o, initial); },
        .on_update = [self](const object::ptr& a, const object::ptr& b) { self->on_update(a, b); },
        .on_delete = [self](const deleted_object& d) { self->on_delete(d); },
    };
  }
};

}  // namespace detail

// --- controller_builder ------------------------------------------------------------------------

controller_builder::controller_builder(informer_factory& factory, source_maker make_source)
    : factory_(&factory), make_source_(std::move(make_source)) {
  if (!make_source_) throw std::invalid_argument("controller_builder: make_source is empty");
}

controller_builder& controller_builder::named(std::string name) {
  name_ = std::move(name);
  return *this;
}

std::shared_ptr<shared_informer> controller_builder::from_factory(const informer_key& key) const {
  if (!factory_)
    throw std::invalid_argument("controller_builder: " + to_string(key) +
                                " names an informer, but the builder was made without a factory");
  return factory_->for_resource(key, make_source_);
}

void controller_builder::add(std::shared_ptr<shared_informer> informer, watch_kind kind, watch_map_fn map,
                             std::vector<predicate> filters) {
  if (!informer) throw std::invalid_argument("controller_builder: the informer is null");
  watch_spec spec{.informer = std::move(informer), .kind = kind, .map = std::move(map), .filters = std::move(filters)};
  if (kind == watch_kind::primary) {
    if (has_primary_) throw std::invalid_argument("controller_builder: for_resource was given twice");
    has_primary_ = true;
    watches_.insert(watches_.begin(), std::move(spec));
  } else {
    watches_.push_back(std::move(spec));
  }
}

controller_builder& controller_builder::for_resource(const informer_key& key, std::vector<predicate> filters) {
  auto kind = parse_resource(key.resource);
  if (!kind)
    throw std::invalid_argument("controller_builder: the kind of " + key.resource + " is unknown (" +
                                kind.error().what() + "): use for_resource(informer, resource)");
  return for_resource(from_factory(key), *kind, std::move(filters));
}

controller_builder& controller_builder::for_resource(std::shared_ptr<shared_informer> informer, resource kind,
                                                     std::vector<predicate> filters) {
  add(std::move(informer), watch_kind::primary, {}, std::move(filters));
  primary_kind_ = std::move(kind);
  return *this;
}

controller_builder& controller_builder::owns(const informer_key& key, std::vector<predicate> filters) {
  return owns(from_factory(key), std::move(filters));
}

controller_builder& controller_builder::owns(std::shared_ptr<shared_informer> informer,
                                             std::vector<predicate> filters) {
  add(std::move(informer), watch_kind::owned, {}, std::move(filters));
  return *this;
}

controller_builder& controller_builder::watches(const informer_key& key, watch_map_fn map,
                                                std::vector<predicate> filters) {
  return watches(from_factory(key), std::move(map), std::move(filters));
}

controller_builder& controller_builder::watches(std::shared_ptr<shared_informer> informer, watch_map_fn map,
                                                std::vector<predicate> filters) {
  if (!map) throw std::invalid_argument("controller_builder: the mapping function of a watch is empty");
  add(std::move(informer), watch_kind::mapped, std::move(map), std::move(filters));
  return *this;
}

controller_builder& controller_builder::with_event_filter(predicate filter) {
  global_filters_.push_back(std::move(filter));
  return *this;
}

controller_builder& controller_builder::workers(int n) {
  workers_ = n;
  return *this;
}

controller_builder& controller_builder::with_rate_limiter(std::shared_ptr<rate_limiter> limiter) {
  limiter_ = std::move(limiter);
  return *this;
}

controller_builder& controller_builder::cache_sync_timeout(std::chrono::nanoseconds timeout) {
  cache_sync_timeout_ = timeout;
  return *this;
}

controller_builder& controller_builder::with_metrics(metrics::registry& r) {
  metrics_ = &r;
  return *this;
}

std::unique_ptr<managed_controller> controller_builder::build(reconcile_fn reconcile) {
  if (!has_primary_) throw std::invalid_argument("controller_builder: for_resource is required");
  if (!reconcile) throw std::invalid_argument("controller_builder: reconcile is empty");
  if (workers_ < 1) throw std::invalid_argument("controller_builder: workers must be at least 1");

  controller_options options{.name = name_,
                             .workers = workers_,
                             .reconcile = std::move(reconcile),
                             .limiter = limiter_,
                             .queue_metrics = {},
                             // The queue's delays run where the primary's informer runs: no thread of their own.
                             .executor = watches_.front().informer->get_executor(),
                             .metrics = {},
                             .drain_on_stop = false};

  const std::string name = name_;
  auto on_error_log = [name](const std::string& key, std::string_view message) {
    log(log_level::warning, "controller", name + ": reconcile of " + key + " failed: " + std::string(message));
  };
  options.metrics.on_error = on_error_log;
  if (metrics_) {
    auto& r = *metrics_;
    options.queue_metrics = metrics::workqueue_metrics(r, name_);
    auto& totals = r.counter("controller_runtime_reconcile_total", "Total number of reconciliations per controller",
                             {"controller", "result"});
    auto success = totals.with({name_, "success"});
    auto error = totals.with({name_, "error"});
    auto requeue = totals.with({name_, "requeue"});
    auto requeue_after = totals.with({name_, "requeue_after"});
    auto errors = r.counter("controller_runtime_reconcile_errors_total",
                            "Total number of reconciliation errors per controller", {"controller"})
                      .with({name_});
    auto time = r.histogram("controller_runtime_reconcile_time_seconds",
                            "Length of time per reconciliation per controller", {"controller"})
                    .with({name_});
    options.reconcile = [user = std::move(options.reconcile), success, requeue,
                         requeue_after](const std::string& key) -> result<reconcile_result> {
      auto outcome = user(key);  // errors and exceptions are counted by on_error
      if (outcome) {
        if (outcome->requeue_after > std::chrono::nanoseconds::zero()) {
          requeue_after.inc();
        } else if (outcome->requeue) {
          requeue.inc();
        } else {
          success.inc();
        }
      }
      return outcome;
    };
    options.metrics.on_error = [on_error_log, error, errors](const std::string& key, std::string_view message) {
      error.inc();
      errors.inc();
      on_error_log(key, message);
    };
    options.metrics.on_reconcile_latency = [time](std::chrono::nanoseconds d) {
      time.observe(std::chrono::duration<double>(d).count());
    };
  }

  auto watches = watches_;
  for (auto& w : watches) w.filters.insert(w.filters.end(), global_filters_.begin(), global_filters_.end());
  auto built = std::make_unique<managed_controller>(managed_controller::passkey{}, std::move(options), primary_kind_,
                                                    std::move(watches), cache_sync_timeout_);
  if (metrics_) metrics::register_workqueue_progress_metrics(*metrics_, built->get_controller().queue(), name_);
  return built;
}

// --- managed_controller ------------------------------------------------------------------------

managed_controller::managed_controller(passkey, controller_options options, resource primary_kind,
                                       std::vector<controller_builder::watch_spec> watches,
                                       std::chrono::nanoseconds cache_sync_timeout)
    : cache_sync_timeout_(cache_sync_timeout), controller_(std::move(options)) {
  for (auto& spec : watches) {
    auto w = std::make_shared<detail::managed_watch>();
    w->informer = std::move(spec.informer);
    w->kind = spec.kind;
    w->map = std::move(spec.map);
    w->filters = std::move(spec.filters);
    w->primary = primary_kind;
    w->target = &controller_;
    watches_.push_back(std::move(w));
  }
}

managed_controller::~managed_controller() { stop(); }

result<void> managed_controller::run() {
  std::vector<handler_registration> registrations;
  {
    informer::lock_guard lock(mu_);
    if (state_ == state::stopped) return make_error_code(errc::closed);
    if (state_ == state::running) return {};
    if (!handlers_added_) {
      for (const auto& w : watches_) registrations_.push_back(w->informer->add_event_handler(w->handlers(w)));
      handlers_added_ = true;
    }
    registrations = registrations_;
  }
  for (const auto& w : watches_) w->informer->run();

  const auto deadline = std::chrono::steady_clock::now() + cache_sync_timeout_;
  const auto synced = [&registrations] {
    return std::all_of(registrations.begin(), registrations.end(),
                       [](const handler_registration& r) { return r.has_synced(); });
  };
  informer::unique_lock lock(mu_);
  while (!synced()) {
    if (state_ == state::stopped) return make_error_code(errc::closed);
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return make_error_code(boost::system::errc::timed_out);
    // Registrations say nothing when they sync: poll, woken early by stop().
    stopped_cv_.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(5)));
  }
  if (state_ == state::stopped) return make_error_code(errc::closed);
  if (auto r = controller_.run(); !r) return r;
  state_ = state::running;
  return {};
}

void managed_controller::stop() {
  std::vector<handler_registration> registrations;
  {
    informer::lock_guard lock(mu_);
    if (state_ != state::stopped) {
      state_ = state::stopped;
      registrations = std::move(registrations_);
      registrations_.clear();
    }
  }
  stopped_cv_.notify_all();
  for (std::size_t i = 0; i < registrations.size(); ++i) watches_[i]->informer->remove_event_handler(registrations[i]);
  controller_.stop();
}

bool managed_controller::has_synced() const {
  informer::lock_guard lock(mu_);
  return handlers_added_ && !registrations_.empty() &&
         std::all_of(registrations_.begin(), registrations_.end(),
                     [](const handler_registration& r) { return r.has_synced(); });
}

void managed_controller::trigger(const object::ptr& obj) {
  if (!obj) return;
  const auto& primary = *watches_.front();
  if (primary.passes(&predicate::on_generic, generic_event{.obj = obj})) controller_.enqueue(object_key(*obj));
}

void managed_controller::enqueue(const std::string& key) { controller_.enqueue(key); }

std::vector<std::shared_ptr<shared_informer>> managed_controller::informers() const {
  std::vector<std::shared_ptr<shared_informer>> out;
  for (const auto& w : watches_) out.push_back(w->informer);
  return out;
}

}  // namespace informer
