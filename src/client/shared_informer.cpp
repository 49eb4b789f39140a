#include "informer/client/shared_informer.hpp"

#include "informer/core/log.hpp"
#include "informer/core/mutex.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace informer {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

namespace {

// Keys one drain job processes before re-posting itself, so that a large relist does not hold an
// executor thread for long while other work waits.
constexpr std::size_t drain_batch = 256;
// Notifications one listener job delivers before re-posting itself, for the same reason.
constexpr std::size_t deliver_batch = 64;

std::atomic<std::uint64_t> next_registration_id{1};

void report(const std::function<void(const handler_failure&)>& hook, std::uint64_t id, std::string_view stage,
            std::exception_ptr error) {
  if (log_enabled(log_level::error)) {
    std::string what = "an exception that is not a std::exception";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log(log_level::error, "shared_informer",
        std::string(stage) + (id != 0 ? " of handler registration " + std::to_string(id) : std::string()) +
            " threw: " + what);
  }
  if (!hook) return;
  try {
    hook(handler_failure{id, stage, std::move(error)});
  } catch (...) {
    // The hook is the last resort; its own failure has nowhere to go.
  }
}

}  // namespace

namespace detail {

struct add_notification {
  object::ptr obj;
  bool is_initial_list = false;
};
struct update_notification {
  object::ptr old_obj;
  object::ptr new_obj;
};
using notification = std::variant<add_notification, update_notification, deleted_object>;

// One registration: its handlers and the buffer of notifications not yet delivered to them.
// Lock rule: `mutex` is a leaf (nothing else is locked while it is held) and is never held while a
// handler runs, so producers never wait for a handler. The informer calls `push` with its own
// mutex held (order: informer_state::mutex -> informer_listener::mutex).
struct informer_listener : std::enable_shared_from_this<informer_listener> {
  informer_listener(resource_event_handlers h, const asio::any_io_executor& executor,
                    std::function<void(const handler_failure&)> hook, std::chrono::nanoseconds period,
                    std::shared_ptr<void> owner)
      : keep_alive(std::move(owner)),
        handlers(std::move(h)),
        on_error(std::move(hook)),
        strand(asio::make_strand(executor)),
        resync_period(period) {}

  const std::shared_ptr<void> keep_alive;  // the executor's owner: outlives `strand` (declared first)

  const std::uint64_t id = next_registration_id.fetch_add(1);
  const resource_event_handlers handlers;
  const std::function<void(const handler_failure&)> on_error;
  asio::strand<asio::any_io_executor> strand;
  const std::chrono::nanoseconds resync_period;  // 0: never resynced

  steady::time_point next_resync{};  // guarded by the informer's mutex
  std::atomic<bool> synced{false};   // has_synced, latched once true

  mutable informer::mutex mutex;
  informer::condition_variable idle;  // with mutex: a delivery ended
  std::deque<notification> buffer INFORMER_GUARDED_BY(mutex);
  std::size_t initial_pending INFORMER_GUARDED_BY(mutex) = 0;  // initial-list adds not yet delivered
  bool scheduled INFORMER_GUARDED_BY(mutex) = false;           // a deliver job is posted or running
  bool delivering INFORMER_GUARDED_BY(mutex) = false;          // a handler call is in progress
  bool stopped INFORMER_GUARDED_BY(mutex) = false;
  // Told how long each handler call took (metrics); set by handler_registration::observe_latency.
  std::shared_ptr<const std::function<void(std::chrono::nanoseconds)>> latency_hook INFORMER_GUARDED_BY(mutex);

  void push(notification n) {
    {
      informer::lock_guard lock(mutex);
      if (stopped) return;
      if (const auto* a = std::get_if<add_notification>(&n); a != nullptr && a->is_initial_list) ++initial_pending;
      buffer.push_back(std::move(n));
      if (scheduled) return;
      scheduled = true;
    }
    schedule();
  }

  void schedule() {
    asio::post(strand, [self = shared_from_this()] { self->deliver(); });
  }

  // Runs on the strand. `scheduled` stays true while it runs, so at most one job is in flight.
  void deliver() {
    for (std::size_t i = 0; i < deliver_batch; ++i) {
      notification n;
      std::shared_ptr<const std::function<void(std::chrono::nanoseconds)>> timed;
      {
        informer::lock_guard lock(mutex);
        if (stopped || buffer.empty()) {
          scheduled = false;
          return;
        }
        n = std::move(buffer.front());
        buffer.pop_front();
        delivering = true;
        timed = latency_hook;
      }
      if (timed) {
        const auto started = steady::now();
        invoke(n);
        try {
          (*timed)(steady::now() - started);
        } catch (...) {  // a metrics hook must not throw; if it does, the delivery goes on
        }
      } else {
        invoke(n);
      }
      {
        informer::lock_guard lock(mutex);
        delivering = false;
        if (const auto* a = std::get_if<add_notification>(&n); a != nullptr && a->is_initial_list) --initial_pending;
      }
      idle.notify_all();
    }
    {
      informer::lock_guard lock(mutex);
      if (stopped || buffer.empty()) {
        scheduled = false;
        return;
      }
    }
    schedule();
  }

  void invoke(const notification& n) {
    std::string_view stage;
    try {
      if (const auto* a = std::get_if<add_notification>(&n)) {
        stage = "on_add";
        if (handlers.on_add) handlers.on_add(a->obj, a->is_initial_list);
      } else if (const auto* u = std::get_if<update_notification>(&n)) {
        stage = "on_update";
        if (handlers.on_update) handlers.on_update(u->old_obj, u->new_obj);
      } else {
        stage = "on_delete";
        if (handlers.on_delete) handlers.on_delete(std::get<deleted_object>(n));
      }
    } catch (...) {
      report(on_error, id, stage, std::current_exception());
    }
  }

  // Drops what is queued; waits for a call in progress unless called from this listener's strand.
  void stop_and_wait() {
    informer::unique_lock lock(mutex);
    stopped = true;
    buffer.clear();
    if (strand.running_in_this_thread()) return;
    idle.wait(lock, [this]() INFORMER_REQUIRES(mutex) { return !delivering; });
  }

  bool has_synced(bool upstream_synced) {
    if (synced.load()) return true;
    if (!upstream_synced) return false;
    informer::lock_guard lock(mutex);
    if (stopped || initial_pending != 0) return false;
    synced.store(true);
    return true;
  }

  std::size_t pending() const {
    informer::lock_guard lock(mutex);
    return buffer.size() + (delivering ? 1 : 0);
  }

  // nullopt once removed (or the informer stopped).
  std::optional<std::size_t> pending_unless_stopped() const {
    informer::lock_guard lock(mutex);
    if (stopped) return std::nullopt;
    return buffer.size() + (delivering ? 1 : 0);
  }
};

// The reflector's loop calls user code: the transform (through the sink), the metrics hooks and
// the watch-error handler. Each such call passes through here, so that `stop` can keep the promise
// "never after it returns" whether the executor still runs or not: `close` refuses new calls and
// waits for the one in progress (a relist's transform loop checks `stopping` and ends early). A
// call in progress is running on some thread, so that wait ends; only the loop's frames, which
// call nothing once the gate is closed, are left to the grace period of `stop`. `close` from
// inside a call (a hook that stops the informer) does not wait for itself. Calls do not nest.
class call_gate {
public:
  template <class F>
  void run(F&& f) {
    {
      informer::lock_guard lock(mutex_);
      if (closed_) return;
      ++active_;
    }
    struct leave {
      call_gate& gate;
      ~leave() {
        current_ = nullptr;
        {
          informer::lock_guard lock(gate.mutex_);
          --gate.active_;
        }
        gate.idle_.notify_all();
      }
    } guard{*this};
    current_ = this;
    std::forward<F>(f)();
  }

  // Wraps a hook so that it runs through the gate; an empty hook stays empty.
  template <class... Args>
  std::function<void(Args...)> wrap(std::function<void(Args...)> hook) {
    if (!hook) return hook;
    return [this, hook = std::move(hook)](Args... args) { run([&] { hook(args...); }); };
  }

  void close() {
    informer::unique_lock lock(mutex_);
    closed_ = true;
    const int own = current_ == this ? 1 : 0;
    idle_.wait(lock, [&]() INFORMER_REQUIRES(mutex_) { return active_ <= own; });
  }

private:
  static inline thread_local const call_gate* current_ = nullptr;  // the gate whose call runs here
  informer::mutex mutex_;
  informer::condition_variable idle_;
  bool closed_ INFORMER_GUARDED_BY(mutex_) = false;
  int active_ INFORMER_GUARDED_BY(mutex_) = 0;
};

// Everything an informer owns, shared with the jobs it posts so that a job outliving the
// `shared_informer` finds valid state.
//
// Lock rule: `mutex` guards the lifecycle flags, the listeners and their resync schedule, the
// reflector pointer and the resync timer (every call on the timer is made with it held). It is
// also held while one key's deltas are applied to the cache and distributed, so a handler added
// meanwhile replays a cache consistent with the notifications it gets afterwards, and stop()
// knows that nothing is distributed once it has set `stopped`. Order: mutex -> a listener's
// mutex; mutex -> the fifo's and the indexer's locks. The fifo calls `process` without its own
// lock, so there is no reverse order. Never held while a handler runs or while joining.
struct informer_state final : std::enable_shared_from_this<informer_state> {
  // How long `stop` waits for the reflector's loop. A running executor ends it in microseconds; a
  // stopped one never does, and then the loop (which shares this state) ends with the executor.
  static constexpr std::chrono::milliseconds stop_grace{250};
  // What the reflector writes into: transform, queue, schedule a drain.
  struct sink final : reflector_store {
    explicit sink(informer_state& s) : state(s) {}
    void add(object::ptr obj) override {
      state.gate.run([&] {
        state.fifo.add(state.transformed(std::move(obj)));
        state.schedule_drain();
      });
    }
    void update(object::ptr obj) override {
      state.gate.run([&] {
        state.fifo.update(state.transformed(std::move(obj)));
        state.schedule_drain();
      });
    }
    void remove(object::ptr obj) override {
      state.gate.run([&] {
        state.fifo.delete_object(state.transformed(std::move(obj)));
        state.schedule_drain();
      });
    }
    void replace(std::vector<object::ptr> objects, std::string resource_version) override {
      apply(objects, resource_version, {});
    }
    bool replace_keeping(std::vector<object::ptr>& objects, const std::string& resource_version,
                         const std::vector<std::string>& kept) override {
      // Kept keys are namespace/name keys: with a key function of its own the cache could not
      // match them, so such an informer fails the list instead.
      if (state.options.indexer.key_func) return false;
      apply(objects, resource_version, kept);
      return true;
    }
    void apply(std::vector<object::ptr>& objects, const std::string& resource_version,
               const std::vector<std::string>& kept) {
      state.gate.run([&] {
        if (state.options.transform) {
          for (auto& obj : objects) {
            if (state.stopping.load()) return;  // stop() waits for this loop: cut it short
            obj = state.transformed(std::move(obj));
          }
        }
        state.fifo.replace(std::move(objects), resource_version, kept);
        state.schedule_drain();
      });
    }
    void resync() override {
      state.gate.run([&] {
        state.fifo.resync();
        state.schedule_drain();
      });
    }
    informer_state& state;
  };

  informer_state(std::shared_ptr<lister_watcher> src, shared_informer_options opts)
      : options(std::move(opts)),
        name(options.name.empty() ? std::string("informer") : options.name),
        source(std::move(src)),
        executor(source->get_executor()),
        handler_executor(options.handler_executor ? options.handler_executor : executor),
        cache(std::make_shared<indexer>(options.indexer)),
        fifo(delta_fifo_options{
            .known = cache.get(),
            .key_func = options.indexer.key_func ? options.indexer.key_func : key_function(object_key),
            .emit_delta_type_replaced = true}),
        store(*this),
        resync_timer(executor) {}

  const shared_informer_options options;
  const std::string name;
  const std::shared_ptr<lister_watcher> source;
  const asio::any_io_executor executor;
  const asio::any_io_executor handler_executor;
  const std::shared_ptr<indexer> cache;
  delta_fifo fifo;  // thread-safe; the drain is its only consumer
  sink store;

  call_gate gate;                            // the reflector loop's calls into user code
  std::atomic<bool> drain_scheduled{false};  // a drain job is posted or running
  std::atomic<bool> stopping{false};         // set with `stopped`; read without the lock
  std::atomic<bool> released{false};         // the shared_informer is destroyed (synced_observer)
  std::once_flag stop_once;

  mutable informer::mutex mutex;
  bool started INFORMER_GUARDED_BY(mutex) = false;
  bool stopped INFORMER_GUARDED_BY(mutex) = false;
  std::vector<std::shared_ptr<informer_listener>> listeners INFORMER_GUARDED_BY(mutex);
  std::shared_ptr<reflector> refl INFORMER_GUARDED_BY(mutex);
  asio::steady_timer resync_timer INFORMER_GUARDED_BY(mutex);
  std::optional<steady::time_point> timer_deadline INFORMER_GUARDED_BY(mutex);  // what the timer waits for
  std::uint64_t timer_generation INFORMER_GUARDED_BY(mutex) = 0;                // ignores stale expiries

  object::ptr transformed(object::ptr obj) {
    if (!options.transform) return obj;
    try {
      if (auto out = options.transform(obj)) return out;
      throw std::invalid_argument(name + ": transform returned null for " + object_key(*obj));
    } catch (...) {
      report(options.on_handler_error, 0, "transform", std::current_exception());
    }
    return obj;
  }

  void schedule_drain() {
    if (stopping.load()) return;
    if (drain_scheduled.exchange(true)) return;
    asio::post(executor, [self = shared_from_this()] { self->drain(); });
  }

  void drain() {
    for (std::size_t done = 0; done < drain_batch; ++done) {
      if (stopping.load()) return;
      if (!pop_one()) {
        drain_scheduled.store(false);
        // A push between the empty pop and the store saw the flag still set and did not
        // schedule: look again, and take the flag back if there is work (unless a new job has).
        if (fifo.size() == 0 || drain_scheduled.exchange(true)) return;
      }
    }
    asio::post(executor, [self = shared_from_this()] { self->drain(); });
  }

  // Processes one ready key without waiting; false when none is ready.
  bool pop_one() {
    return fifo
        .try_pop([this](const std::string& key, const delta_list& deltas, bool is_in_initial_list) {
          return process(key, deltas, is_in_initial_list);
        })
        .has_value();
  }

  // client-go's processDeltas, plus distribution to the listeners.
  process_result process(const std::string& key, const delta_list& deltas, bool is_in_initial_list) {
    informer::lock_guard lock(mutex);
    if (stopped) return {};
    for (const delta& d : deltas) {
      try {
        apply_locked(key, d, is_in_initial_list);
      } catch (...) {
        // Only a throwing index function gets here; the indexer is left as it was.
        report(options.on_handler_error, 0, "indexer", std::current_exception());
      }
    }
    return {};
  }

  void apply_locked(const std::string& key, const delta& d, bool is_in_initial_list) INFORMER_REQUIRES(mutex) {
    if (d.type == delta_type::deleted) {
      if (const auto* t = d.tombstone()) {
        cache->remove_key(t->key);
      } else {
        cache->remove(*d.obj());
      }
      distribute_locked(deleted_object{d.state}, false);
      return;
    }
    const object::ptr& obj = d.obj();
    object::ptr old = cache->get_by_key(key);
    cache->add(obj);
    if (old) {
      // An unchanged resourceVersion means nothing changed (a relist re-reporting the object):
      // only handlers that asked for resyncs get it, as in client-go.
      // As client-go: a resync, or a relist re-reporting an object whose version did not change.
      const bool is_sync = d.type == delta_type::sync ||
                           (d.type == delta_type::replaced && old->resource_version() == obj->resource_version());
      distribute_locked(update_notification{std::move(old), obj}, is_sync);
    } else {
      distribute_locked(add_notification{obj, is_in_initial_list}, false);
    }
  }

  void distribute_locked(const notification& n, bool is_sync) INFORMER_REQUIRES(mutex) {
    for (const auto& l : listeners) {
      if (is_sync && l->resync_period.count() == 0) continue;
      l->push(n);
    }
  }

  std::shared_ptr<informer_listener> add_listener(resource_event_handlers handlers,
                                                  std::optional<std::chrono::nanoseconds> requested) {
    auto period = std::max(requested.value_or(options.resync_period), std::chrono::nanoseconds(0));
    if (period.count() > 0) period = std::max(period, options.minimum_resync_period);
    auto l = std::make_shared<informer_listener>(std::move(handlers), handler_executor, options.on_handler_error,
                                                 period, options.keep_alive);
    informer::lock_guard lock(mutex);
    if (stopped) {
      informer::lock_guard listener_lock(l->mutex);
      l->stopped = true;
      return l;
    }
    listeners.push_back(l);
    // Processing holds `mutex`, so this snapshot is exactly what earlier notifications built, and
    // every later notification reaches `l` after it.
    for (auto& obj : cache->list()) l->push(add_notification{std::move(obj), true});
    if (period.count() > 0) {
      l->next_resync = steady::now() + period;
      arm_resync_timer_locked();
    }
    return l;
  }

  void remove_listener(const std::shared_ptr<informer_listener>& l) {
    {
      informer::lock_guard lock(mutex);
      auto it = std::find(listeners.begin(), listeners.end(), l);
      if (it != listeners.end()) {
        listeners.erase(it);
        arm_resync_timer_locked();
      }
    }
    // Also when `stop` has taken the listeners already: no call may start after this returns.
    l->stop_and_wait();
  }

  void run() {
    std::shared_ptr<reflector> r;
    {
      informer::lock_guard lock(mutex);
      if (started || stopped) return;
      started = true;
      reflector_options ro = options.reflector;
      ro.name = name;
      ro.label_selector = options.label_selector;
      ro.field_selector = options.field_selector;
      // Resync is the informer's own (per listener), not the reflector's.
      ro.resync_period = std::chrono::nanoseconds(0);
      ro.should_resync = nullptr;
      ro.metrics.on_list = gate.wrap(std::move(ro.metrics.on_list));
      ro.metrics.on_watch_open = gate.wrap(std::move(ro.metrics.on_watch_open));
      ro.metrics.on_watch_close = gate.wrap(std::move(ro.metrics.on_watch_close));
      ro.metrics.on_error = gate.wrap(std::move(ro.metrics.on_error));
      ro.metrics.on_backoff = gate.wrap(std::move(ro.metrics.on_backoff));
      ro.metrics.on_relist = gate.wrap(std::move(ro.metrics.on_relist));
      ro.metrics.on_event = gate.wrap(std::move(ro.metrics.on_event));
      // The loop shares ownership of this state, so a loop that outlives `stop` (its executor
      // no longer runs) never writes into freed memory.
      refl = reflector::create(source, std::shared_ptr<reflector_store>(shared_from_this(), &store), std::move(ro));
      if (options.watch_error_handler) refl->set_watch_error_handler(gate.wrap(options.watch_error_handler));
      const auto now = steady::now();
      for (const auto& l : listeners)
        if (l->resync_period.count() > 0) l->next_resync = now + l->resync_period;
      arm_resync_timer_locked();
      r = refl;
    }
    r->start();
  }

  void stop() {
    std::call_once(stop_once, [this] {
      std::shared_ptr<reflector> r;
      std::vector<std::shared_ptr<informer_listener>> ls;
      {
        informer::lock_guard lock(mutex);
        stopped = true;
        stopping.store(true);
        ++timer_generation;
        timer_deadline.reset();
        resync_timer.cancel();
        r = refl;
        ls.swap(listeners);
      }
      // From here nothing is distributed: `process` checks `stopped` under the mutex.
      if (r) r->stop();
      // From here the loop calls no user code: a call in progress has ended.
      gate.close();
      if (r) {
        // Bounded: when the executor has been stopped for good the loop cannot end, and a
        // destructor must not hang; the loop then ends whenever the executor is destroyed.
        r->join_for(stop_grace);
      }
      fifo.close();
      for (const auto& l : ls) l->stop_and_wait();
    });
  }

  // Points the timer at the earliest resync deadline of the listeners (or disarms it).
  void arm_resync_timer_locked() INFORMER_REQUIRES(mutex) {
    if (!started || stopped) return;
    std::optional<steady::time_point> earliest;
    for (const auto& l : listeners)
      if (l->resync_period.count() > 0 && (!earliest || l->next_resync < *earliest)) earliest = l->next_resync;
    if (earliest == timer_deadline) return;
    timer_deadline = earliest;
    const auto generation = ++timer_generation;
    if (!earliest) {
      resync_timer.cancel();
      return;
    }
    resync_timer.expires_at(*earliest);  // cancels the previous wait, whose expiry is then stale
    resync_timer.async_wait([self = shared_from_this(), generation](const boost::system::error_code&) {
      self->on_resync_timer(generation);
    });
  }

  void on_resync_timer(std::uint64_t generation) {
    informer::lock_guard lock(mutex);
    if (stopped || generation != timer_generation) return;
    timer_deadline.reset();
    const auto now = steady::now();
    const bool synced = fifo.has_synced();
    std::optional<std::vector<object::ptr>> snapshot;
    for (const auto& l : listeners) {
      if (l->resync_period.count() == 0 || now < l->next_resync) continue;
      l->next_resync = now + l->resync_period;
      if (!synced) continue;  // nothing to re-deliver before the first list is in
      if (!snapshot) snapshot = cache->list();
      for (const auto& obj : *snapshot) l->push(update_notification{obj, obj});
    }
    arm_resync_timer_locked();
  }
};

}  // namespace detail

// --- handler_registration ---------------------------------------------------------------------

handler_registration::handler_registration(std::shared_ptr<detail::informer_listener> listener,
                                           std::weak_ptr<detail::informer_state> state)
    : listener_(std::move(listener)), state_(std::move(state)) {}

bool handler_registration::has_synced() const {
  if (!listener_) return false;
  auto state = state_.lock();
  return listener_->has_synced(state != nullptr && state->fifo.has_synced());
}

std::size_t handler_registration::pending() const { return listener_ ? listener_->pending() : 0; }

std::function<std::optional<std::size_t>()> handler_registration::pending_observer() const {
  return [weak = std::weak_ptr<detail::informer_listener>(listener_)]() -> std::optional<std::size_t> {
    const auto l = weak.lock();
    if (!l) return std::nullopt;
    return l->pending_unless_stopped();
  };
}

void handler_registration::observe_latency(std::function<void(std::chrono::nanoseconds)> hook) const {
  if (!listener_) return;
  auto shared = hook ? std::make_shared<const std::function<void(std::chrono::nanoseconds)>>(std::move(hook)) : nullptr;
  informer::lock_guard lock(listener_->mutex);
  listener_->latency_hook = std::move(shared);
}

std::chrono::nanoseconds handler_registration::resync_period() const {
  return listener_ ? listener_->resync_period : std::chrono::nanoseconds(0);
}

std::uint64_t handler_registration::id() const { return listener_ ? listener_->id : 0; }

// --- shared_informer --------------------------------------------------------------------------

std::shared_ptr<shared_informer> shared_informer::create(std::shared_ptr<lister_watcher> source,
                                                         shared_informer_options options) {
  if (source == nullptr) throw std::invalid_argument("shared_informer: null source");
  return std::make_shared<shared_informer>(
      passkey{}, std::make_shared<detail::informer_state>(std::move(source), std::move(options)));
}

shared_informer::shared_informer(passkey, std::shared_ptr<detail::informer_state> state) : state_(std::move(state)) {}

shared_informer::~shared_informer() {
  state_->released.store(true);
  stop();
}

handler_registration shared_informer::add_event_handler(resource_event_handlers handlers,
                                                        std::optional<std::chrono::nanoseconds> resync_period) {
  return handler_registration(state_->add_listener(std::move(handlers), resync_period), state_);
}

void shared_informer::remove_event_handler(const handler_registration& registration) {
  // Another informer's registration (or one of an informer that is gone) is not ours to stop.
  if (registration.listener_ && registration.state_.lock() == state_) state_->remove_listener(registration.listener_);
}

void shared_informer::run() { state_->run(); }

void shared_informer::stop() { state_->stop(); }

bool shared_informer::stopped() const {
  informer::lock_guard lock(state_->mutex);
  return state_->stopped;
}

bool shared_informer::has_synced() const { return state_->fifo.has_synced(); }

std::function<std::optional<bool>()> shared_informer::synced_observer() const {
  return [weak = std::weak_ptr<detail::informer_state>(state_)]() -> std::optional<bool> {
    // Destroying the state here (the last owner gone meanwhile) is harmless: it stops nothing.
    const auto state = weak.lock();
    if (!state || state->released.load()) return std::nullopt;
    return state->fifo.has_synced();
  };
}

std::string shared_informer::last_sync_resource_version() const {
  std::shared_ptr<reflector> r;
  {
    informer::lock_guard lock(state_->mutex);
    r = state_->refl;
  }
  return r ? r->last_sync_resource_version() : std::string();
}

std::shared_ptr<indexer> shared_informer::get_indexer() const { return state_->cache; }

std::shared_ptr<const indexer> shared_informer::get_store() const { return state_->cache; }

informer::lister shared_informer::lister() const { return informer::lister(state_->cache); }

const std::string& shared_informer::name() const noexcept { return state_->name; }

boost::asio::any_io_executor shared_informer::get_executor() const { return state_->executor; }

// --- wait_for_cache_sync ----------------------------------------------------------------------

namespace {

constexpr auto poll_interval = std::chrono::milliseconds(5);

// True when all have synced; false when one has stopped without syncing (it never will).
// Empty optional: keep waiting.
std::optional<bool> sync_state(std::span<const std::shared_ptr<shared_informer>> informers) {
  bool all = true;
  for (const auto& inf : informers) {
    if (inf == nullptr || inf->has_synced()) continue;
    if (inf->stopped()) return false;
    all = false;
  }
  if (all) return true;
  return std::nullopt;
}

}  // namespace

bool wait_for_cache_sync(std::span<const std::shared_ptr<shared_informer>> informers,
                         std::chrono::nanoseconds timeout) {
  const auto deadline = steady::now() + timeout;
  for (;;) {
    if (auto done = sync_state(informers)) return *done;
    const auto now = steady::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(poll_interval, deadline - now));
  }
}

bool wait_for_cache_sync(std::initializer_list<std::shared_ptr<shared_informer>> informers,
                         std::chrono::nanoseconds timeout) {
  return wait_for_cache_sync(std::span(informers.begin(), informers.size()), timeout);
}

bool wait_for_cache_sync(std::span<const std::shared_ptr<shared_informer>> informers, std::stop_token stop) {
  for (;;) {
    if (auto done = sync_state(informers)) return *done;
    if (stop.stop_requested()) return false;
    std::this_thread::sleep_for(poll_interval);
  }
}

bool wait_for_cache_sync(std::initializer_list<std::shared_ptr<shared_informer>> informers, std::stop_token stop) {
  return wait_for_cache_sync(std::span(informers.begin(), informers.size()), std::move(stop));
}

}  // namespace informer
