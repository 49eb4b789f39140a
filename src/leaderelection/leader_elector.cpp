#include "informer/leaderelection/leader_elector.hpp"

#include "informer/core/log.hpp"
#include "informer/core/mutex.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <exception>
#include <random>
#include <thread>
#include <utility>

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace informer {

namespace {

constexpr std::string_view component = "leader_election";
// client-go's JitterFactor: the acquire loop waits retry_period * (1 + [0, 1.2)).
constexpr double jitter_factor = 1.2;

steady_clock::duration jittered(std::chrono::milliseconds period) {
  thread_local std::minstd_rand gen{std::random_device{}()};
  std::uniform_real_distribution<double> fraction(0.0, jitter_factor);
  return std::chrono::duration_cast<steady_clock::duration>(period * (1.0 + fraction(gen)));
}

std::int64_t ticks(steady_clock::time_point t) { return t.time_since_epoch().count(); }

}  // namespace

namespace detail {

// The elector's state machine. Everything but the members guarded by `mutex_` and `lead_until_`
// is confined to `strand_`.
class elector_state : public std::enable_shared_from_this<elector_state> {
public:
  elector_state(std::shared_ptr<resource_lock> lock, leader_elector_options options, asio::any_io_executor executor)
      : lock_(std::move(lock)),
        options_(std::move(options)),
        lease_seconds_(std::chrono::ceil<std::chrono::seconds>(options_.lease_duration)),
        strand_(asio::make_strand(std::move(executor))),
        retry_timer_(strand_),
        deadline_timer_(strand_),
        release_timer_(strand_) {}

  void start() {
    asio::post(strand_, [self = shared_from_this()] {
      if (self->phase_ != phase::idle) return;
      self->phase_ = phase::acquiring;
      log(log_level::info, component, self->options_.identity + ": campaigning for " + self->lock_->describe());
      self->try_acquire_or_renew();
    });
  }

  void stop() {
    {
      lock_guard lock(mutex_);
      if (!stop_requested_) {
        stop_requested_ = true;
        asio::post(strand_, [self = shared_from_this()] { self->shutdown(); });
      }
    }
    // From a callback: the shutdown runs once it returns; waiting here would never end.
    if (strand_.running_in_this_thread()) return;
    unique_lock lock(mutex_);
    finished_cv_.wait(lock, [this]() INFORMER_REQUIRES(mutex_) { return finished_; });
  }

  bool is_leader() const { return ticks(steady_clock::now()) < lead_until_.load(std::memory_order_acquire); }
  std::int32_t transitions() const { return transitions_.load(std::memory_order_relaxed); }

  std::string leader() const {
    lock_guard lock(mutex_);
    return leader_;
  }

private:
  enum class phase { idle, acquiring, leading, stopping, done };

  template <class F>
  auto on_strand(F f) {
    return asio::bind_executor(strand_, std::move(f));
  }

  void schedule_try(steady_clock::duration delay) {
    retry_timer_.expires_after(delay);
    retry_timer_.async_wait(on_strand([self = shared_from_this(), gen = gen_](boost::system::error_code ec) {
      if (!ec && gen == self->gen_) self->try_acquire_or_renew();
    }));
  }

  // client-go's tryAcquireOrRenew: read, then create, renew or take over the record.
  void try_acquire_or_renew() {
    in_flight_ = true;
    const auto started = steady_clock::now();
    lock_->async_get(on_strand([self = shared_from_this(), gen = gen_, started](
                                   informer::error e, std::optional<versioned_lock_record> current) {
      self->on_get(gen, started, std::move(e), std::move(current));
      self->settle();
    }));
  }

  void on_get(std::uint64_t gen, steady_clock::time_point started, informer::error e,
              std::optional<versioned_lock_record> current) {
    if (gen != gen_) {
      in_flight_ = false;
      if (release_wanted_) release();
      return;
    }
    if (e) {
      in_flight_ = false;
      log(log_level::warning, component, options_.identity + failing() + "read " + lock_->describe() + ": " + e.what());
      attempt_done(false, started);
      return;
    }
    const auto now = std::chrono::system_clock::now();
    lock_record desired{.holder_identity = options_.identity,
                        .lease_duration = lease_seconds_,
                        .acquire_time = now,
                        .renew_time = now,
                        .leader_transitions = 0};
    if (!current) {
      write(gen, started, desired, std::nullopt);
      return;
    }
    observe(*current);
    const lock_record& old = current->record;
    const bool mine = old.holder_identity == options_.identity;
    if (!old.holder_identity.empty() && !mine && steady_clock::now() < observed_time_ + old.lease_duration) {
      in_flight_ = false;
      attempt_done(false, started);  // held by another, and not yet expired by our own clock
      return;
    }
    if (mine) {
      desired.acquire_time = old.acquire_time;
      desired.leader_transitions = old.leader_transitions;
    } else {
      desired.leader_transitions = old.leader_transitions + 1;
    }
    write(gen, started, desired, current->version);
  }

  void write(std::uint64_t gen, steady_clock::time_point started, const lock_record& desired,
             const std::optional<std::string>& version) {
    auto handler = on_strand([self = shared_from_this(), gen, started, desired](informer::error e, std::string v) {
      self->on_write(gen, started, desired, std::move(e), std::move(v));
      self->settle();
    });
    if (version) {
      lock_->async_update(desired, *version, std::move(handler));
    } else {
      lock_->async_create(desired, std::move(handler));
    }
  }

  void on_write(std::uint64_t gen, steady_clock::time_point started, const lock_record& written, informer::error e,
                std::string version) {
    in_flight_ = false;
    if (!e) {
      // Even when stale: the version a release must name.
      observed_ = versioned_lock_record{written, std::move(version)};
      observed_time_ = steady_clock::now();
      transitions_.store(written.leader_transitions, std::memory_order_relaxed);
    }
    if (gen != gen_) {
      if (release_wanted_) release();
      return;
    }
    if (e) {
      if (e == condition::conflict) {
        log(log_level::info, component,
            options_.identity + ": another candidate wrote " + lock_->describe() + " first");
      } else {
        log(log_level::warning, component,
            options_.identity + failing() + "write " + lock_->describe() + ": " + e.what());
      }
      attempt_done(false, started);
      return;
    }
    report_leader(written.holder_identity);
    attempt_done(true, started);
  }

  void attempt_done(bool succeeded, steady_clock::time_point started) {
    if (phase_ == phase::acquiring) {
      if (succeeded) {
        became_leader(started);
      } else {
        schedule_try(jittered(options_.retry_period));
      }
      return;
    }
    if (succeeded) extend(started);
    schedule_try(options_.retry_period);
  }

  // How a failed attempt is reported: a leader's counts against its renew deadline.
  const char* failing() const { return phase_ == phase::leading ? ": failed to renew: cannot " : ": cannot "; }

  void became_leader(steady_clock::time_point started) {
    phase_ = phase::leading;
    extend(started);
    log(log_level::info, component, options_.identity + ": acquired " + lock_->describe());
    invoke(options_.callbacks.on_started_leading);
    if (phase_ == phase::leading) schedule_try(options_.retry_period);
  }

  // Leads until `renew_deadline` after the start of the successful attempt: a follower observed
  // that write only after the attempt started, and waits lease_duration > renew_deadline from then.
  void extend(steady_clock::time_point started) {
    lead_deadline_ = started + options_.renew_deadline;
    lead_until_.store(ticks(lead_deadline_), std::memory_order_release);
    deadline_timer_.expires_at(lead_deadline_);
    deadline_timer_.async_wait(on_strand([self = shared_from_this(), gen = gen_](boost::system::error_code ec) {
      // A wait that expired just before a renewal moved the deadline may still arrive: recheck.
      if (ec || gen != self->gen_ || steady_clock::now() < self->lead_deadline_) return;
      self->lose();
    }));
  }

  void lose() {
    ++gen_;
    step_down();
    log(log_level::warning, component,
        options_.identity + ": lost " + lock_->describe() + ": no renewal within the renew deadline");
    invoke(options_.callbacks.on_stopped_leading);
    finish();
  }

  void step_down() {
    lead_until_.store(0, std::memory_order_release);
    retry_timer_.cancel();
    deadline_timer_.cancel();
    phase_ = phase::stopping;
  }

  void shutdown() {
    if (phase_ == phase::done) return;
    const bool was_leading = phase_ == phase::leading;
    ++gen_;
    step_down();
    if (was_leading) {
      log(log_level::info, component, options_.identity + ": stopped leading " + lock_->describe());
      invoke(options_.callbacks.on_stopped_leading);
    }
    // A write still in flight may yet make this candidate the holder: release after it as well.
    if (!options_.release_on_cancel || (!was_leading && !in_flight_)) {
      finish();
      return;
    }
    release_wanted_ = true;
    release_timer_.expires_after(options_.renew_deadline);
    release_timer_.async_wait(on_strand([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->phase_ == phase::done) return;
      log(log_level::warning, component, self->options_.identity + ": gave up releasing " + self->lock_->describe());
      self->finish();
    }));
    if (!in_flight_) release();
  }

  // client-go's release: an empty holder and a 1 s lease, so a follower takes over at its next try.
  void release() {
    release_wanted_ = false;
    if (phase_ == phase::done) return;
    if (!observed_ || observed_->record.holder_identity != options_.identity) {
      finish();
      return;
    }
    const auto now = std::chrono::system_clock::now();
    const lock_record released{.holder_identity = {},
                               .lease_duration = std::chrono::seconds(1),
                               .acquire_time = now,
                               .renew_time = now,
                               .leader_transitions = observed_->record.leader_transitions};
    in_flight_ = true;
    lock_->async_update(
        released, observed_->version, on_strand([self = shared_from_this()](informer::error e, std::string) {
          self->in_flight_ = false;
          if (e) {
            log(log_level::warning, component,
                self->options_.identity + ": cannot release " + self->lock_->describe() + ": " + e.what());
          } else {
            log(log_level::info, component, self->options_.identity + ": released " + self->lock_->describe());
          }
          self->finish();
          self->settle();
        }));
  }

  // Done: no callback runs any more. `stop()` returns once no lock call is in flight either, so
  // that none completes into an executor its owner may destroy as soon as `stop()` returned.
  void finish() {
    if (phase_ == phase::done) return;
    phase_ = phase::done;
    release_timer_.cancel();
    settle();
  }

  void settle() {
    if (phase_ != phase::done || in_flight_) return;
    lock_guard lock(mutex_);
    finished_ = true;
    finished_cv_.notify_all();
  }

  // client-go's observedRecord / observedTime: the time is when this host saw the record change.
  void observe(const versioned_lock_record& current) {
    transitions_.store(current.record.leader_transitions, std::memory_order_relaxed);
    if (!observed_ || observed_->record != current.record) {
      observed_ = current;
      observed_time_ = steady_clock::now();
    } else {
      observed_->version = current.version;
    }
    report_leader(current.record.holder_identity);
  }

  void report_leader(const std::string& holder) {
    {
      lock_guard lock(mutex_);
      if (leader_ == holder) return;
      leader_ = holder;
    }
    if (holder.empty()) return;
    if (holder != options_.identity) {
      log(log_level::info, component, options_.identity + ": " + lock_->describe() + " is held by " + holder);
    }
    invoke(options_.callbacks.on_new_leader, holder);
  }

  template <class F, class... Args>
  void invoke(const F& callback, const Args&... args) {
    if (!callback) return;
    try {
      callback(args...);
    } catch (const std::exception& ex) {
      log(log_level::error, component, options_.identity + ": a callback threw: " + ex.what());
    } catch (...) {
      log(log_level::error, component, options_.identity + ": a callback threw");
    }
  }

  const std::shared_ptr<resource_lock> lock_;
  const leader_elector_options options_;
  const std::chrono::seconds lease_seconds_;
  asio::strand<asio::any_io_executor> strand_;
  asio::steady_timer retry_timer_;
  asio::steady_timer deadline_timer_;
  asio::steady_timer release_timer_;

  // Confined to strand_.
  phase phase_ = phase::idle;
  std::uint64_t gen_ = 0;  // bumped when leading ends: answers to older attempts only update `observed_`
  bool in_flight_ = false;
  bool release_wanted_ = false;
  std::optional<versioned_lock_record> observed_;
  steady_clock::time_point observed_time_{};
  steady_clock::time_point lead_deadline_{};

  // Read by is_leader() from any thread: the steady clock's ticks until which this one leads.
  std::atomic<std::int64_t> lead_until_{0};
  // Read by metrics from any thread: the record's leader_transitions last seen.
  std::atomic<std::int32_t> transitions_{-1};

  mutable mutex mutex_;
  condition_variable finished_cv_;
  bool stop_requested_ INFORMER_GUARDED_BY(mutex_) = false;
  bool finished_ INFORMER_GUARDED_BY(mutex_) = false;
  std::string leader_ INFORMER_GUARDED_BY(mutex_);
};

// The thread of an elector given no executor.
struct elector_thread {
  elector_thread() : thread([this] { context.run(); }) {}
  ~elector_thread() { drain(); }
  // Lets the thread end once nothing is pending (a lock operation still in flight completes first),
  // so the state's timers can then be destroyed while their context still exists.
  void drain() {
    work.reset();
    if (thread.joinable()) thread.join();
  }
  asio::io_context context;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(context);
  std::thread thread;
};

}  // namespace detail

detailed_result<leader_elector> leader_elector::create(std::shared_ptr<resource_lock> lock,
                                                       leader_elector_options options, asio::any_io_executor executor) {
  const auto invalid = [](std::string what) { return informer::error(errc::invalid_argument, std::move(what)); };
  if (!lock) return invalid("leader_elector: no lock");
  if (options.identity.empty()) return invalid("leader_elector: the identity is empty");
  if (options.retry_period <= std::chrono::milliseconds::zero()) {
    return invalid("leader_elector: retry_period must be positive");
  }
  if (options.lease_duration <= options.renew_deadline) {
    return invalid("leader_elector: lease_duration must be greater than renew_deadline");
  }
  if (options.renew_deadline.count() <= jitter_factor * static_cast<double>(options.retry_period.count())) {
    return invalid("leader_elector: renew_deadline must be greater than 1.2 * retry_period");
  }
  std::unique_ptr<detail::elector_thread> thread;
  if (!executor) {
    thread = std::make_unique<detail::elector_thread>();
    executor = thread->context.get_executor();
  }
  auto state = std::make_shared<detail::elector_state>(std::move(lock), std::move(options), std::move(executor));
  return leader_elector(std::move(state), std::move(thread));
}

leader_elector::leader_elector(std::shared_ptr<detail::elector_state> state,
                               std::unique_ptr<detail::elector_thread> thread)
    : state_(std::move(state)), thread_(std::move(thread)) {}

leader_elector::leader_elector(leader_elector&&) noexcept = default;

leader_elector& leader_elector::operator=(leader_elector&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::move(other.state_);
    thread_ = std::move(other.thread_);
  }
  return *this;
}

leader_elector::~leader_elector() { close(); }

void leader_elector::close() noexcept {
  if (state_) state_->stop();
  if (thread_) thread_->drain();
  state_.reset();
  thread_.reset();
}

void leader_elector::start() { state_->start(); }
void leader_elector::stop() { state_->stop(); }
bool leader_elector::is_leader() const { return state_->is_leader(); }
std::string leader_elector::leader() const { return state_->leader(); }

std::function<std::optional<leader_elector::status>()> leader_elector::status_observer() const {
  return [weak = std::weak_ptr<const detail::elector_state>(state_)]() -> std::optional<status> {
    const auto state = weak.lock();
    if (!state) return std::nullopt;
    return status{.leading = state->is_leader(), .transitions = state->transitions()};
  };
}

}  // namespace informer
