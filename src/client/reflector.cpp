#include "informer/client/reflector.hpp"

#include "informer/core/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <random>

namespace informer {

namespace asio = boost::asio;

namespace {

constexpr auto awaitable_tuple = asio::as_tuple(asio::use_awaitable);

}  // namespace

// The loop's state. Everything here is confined to `strand`; the reflector's mutex guards only
// what other threads read or poke (flags, last resourceVersion, the open watch).
struct reflector::loop {
  std::shared_ptr<reflector> self;
  std::shared_ptr<reflector_store> store_owner;  // keeps a shared store alive while the loop runs
  asio::strand<asio::any_io_executor> strand;
  asio::steady_timer timer;  // backoff and "connection refused" waits
  asio::steady_timer resync_timer;
  asio::steady_timer liveness_timer;      // ends a watch that has been silent for too long
  asio::cancellation_signal cancel_list;  // cancels an outstanding list on stop
  backoff delays;
  std::mt19937_64 rng{std::random_device{}()};
  // A relist must ask for the most recent state: the last resourceVersion is gone or unusable.
  bool resource_version_unavailable = false;
  // A list from the server's cache came back in pages: the server pages whatever we ask.
  bool paginated_result = false;
  int running = 0;  // coroutines still running

  explicit loop(std::shared_ptr<reflector> r)
      : self(std::move(r)),
        strand(asio::make_strand(self->source_->get_executor())),
        timer(strand),
        resync_timer(strand),
        liveness_timer(strand),
        delays(self->options_.backoff) {}

  const reflector_options& options() const { return self->options_; }

  // The liveness timeout, at most a day: "forever" spelt as a huge duration must not overflow the
  // timer's deadline (which would make the check fire in a loop).
  std::chrono::nanoseconds liveness_timeout() const {
    return std::min<std::chrono::nanoseconds>(options().watch_liveness_timeout, std::chrono::hours(24));
  }

  bool stopping() const {
    informer::lock_guard lock(self->mutex_);
    return self->stopping_;
  }

  // `level`: how loud the log line is; the hooks see every report alike.
  void report(const informer::error& e, log_level level = log_level::warning) {
    if (log_enabled(level)) {
      // Led by the reflector's name ("pods in default: ..."), which some details start with.
      const auto& name = options().name;
      log(level, "reflector",
          e.detail().starts_with(name) ? e.detail() + " (" + e.code().message() + ")" : name + ": " + e.what());
    }
    if (options().metrics.on_error) options().metrics.on_error(e);
    std::function<void(const informer::error&)> handler;
    {
      informer::lock_guard lock(self->mutex_);
      handler = self->error_handler_;
    }
    if (handler) handler(e);
  }

  void set_last(std::string rv) {
    informer::lock_guard lock(self->mutex_);
    self->last_sync_resource_version_ = std::move(rv);
  }

  std::string last() const {
    informer::lock_guard lock(self->mutex_);
    return self->last_sync_resource_version_;
  }

  // Called on the strand when stop() is requested.
  void cancel_all() {
    timer.cancel();
    resync_timer.cancel();
    liveness_timer.cancel();
    cancel_list.emit(asio::cancellation_type::all);
  }

  std::string relist_resource_version() const {
    if (resource_version_unavailable) return "";
    auto rv = last();
    if (rv.empty()) return options().initial_list_from_cache ? "0" : "";
    return rv;
  }

  // client-go's rule: a list at a specific version is not paged (a paged list at an old version
  // bypasses the API server's watch cache and reads etcd at exactly that revision, which fails
  // once compacted), unless the server has shown it pages anyway (watch cache off).
  std::int64_t page_size_for(const std::string& rv) const {
    if (paginated_result || rv.empty() || rv == "0") return options().page_size;
    return 0;
  }

  asio::awaitable<informer::error> list() {
    auto e = co_await list_once();
    if (e == condition::relist_required && resource_version_unavailable && !stopping()) {
      // The version is gone: ask again at once for the most recent state, no backoff.
      report(e);
      if (options().metrics.on_relist) options().metrics.on_relist(e.what());
      e = co_await list_once();
    }
    co_return e;
  }

  asio::awaitable<informer::error> list_once() {
    const auto started = std::chrono::steady_clock::now();
    const auto rv = relist_resource_version();
    list_options request{.label_selector = options().label_selector,
                         .field_selector = options().field_selector,
                         .limit = page_size_for(rv),
                         .resource_version = rv};
    const auto first_rv = request.resource_version;
    std::vector<object::ptr> items;
    std::vector<skipped_item> skipped;
    std::string list_rv;
    for (;;) {
      auto [e, page] = co_await self->source_->async_list(
          request, asio::bind_cancellation_slot(cancel_list.slot(), awaitable_tuple));
      if (e) {
        if (e == condition::relist_required && !request.continue_token.empty()) {
          // The continue token outlived the server's compaction: take the rest in one full list.
          request.continue_token.clear();
          request.limit = 0;
          request.resource_version = first_rv;
          items.clear();
          skipped.clear();
          continue;
        }
        if (e == condition::relist_required && !first_rv.empty()) resource_version_unavailable = true;
        co_return e;
      }
      if (items.empty()) {
        items = std::move(page.items);
      } else {
        items.insert(items.end(), std::make_move_iterator(page.items.begin()),
                     std::make_move_iterator(page.items.end()));
      }
      std::move(page.skipped.begin(), page.skipped.end(), std::back_inserter(skipped));
      list_rv = page.resource_version;
      if (page.continue_token.empty() || stopping()) break;
      if (first_rv == "0") paginated_result = true;
      request.continue_token = std::move(page.continue_token);
      request.resource_version.clear();  // the token carries the snapshot's revision
    }
    if (stopping()) co_return informer::error{};
    const auto count = items.size();
    if (skipped.empty()) {
      self->store_.replace(std::move(items), list_rv);
    } else {
      std::vector<std::string> kept;
      kept.reserve(skipped.size());
      for (const auto& s : skipped) kept.push_back(s.key);
      if (!self->store_.replace_keeping(items, list_rv, kept)) co_return skipped.front().error;
      for (const auto& s : skipped) {
        report(informer::error{s.error.code(), options().name + ": " + s.error.detail() +
                                                   "; left out of the list, its cached state (if any) is kept"});
      }
    }
    resource_version_unavailable = false;
    set_last(list_rv);
    const auto took = std::chrono::steady_clock::now() - started;
    if (log_enabled(log_level::info)) {
      log(log_level::info, "reflector",
          options().name + ": listed " + std::to_string(count) + " objects at resourceVersion " + list_rv + " in " +
              std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) + " ms");
    }
    if (options().metrics.on_list) options().metrics.on_list(count, took);
    co_return informer::error{};
  }

  // Watches until the stream fails; returns the reason (empty when stopping).
  asio::awaitable<informer::error> watch() {
    for (;;) {
      if (stopping()) co_return informer::error{};
      std::uniform_real_distribution<double> spread(1.0, 2.0);
      const auto timeout = std::chrono::seconds(
          static_cast<std::int64_t>(static_cast<double>(options().min_watch_timeout.count()) * spread(rng)));
      watch_options request{.label_selector = options().label_selector,
                            .field_selector = options().field_selector,
                            .resource_version = last(),
                            .allow_bookmarks = options().allow_bookmarks,
                            .timeout = timeout};
      auto [e, stream] = co_await self->source_->async_watch(
          request, asio::bind_cancellation_slot(cancel_list.slot(), awaitable_tuple));
      if (stopping()) {
        if (stream) stream->cancel();
        co_return informer::error{};
      }
      if (e) {
        if (e == condition::unreachable || e == condition::throttled) {
          // The server is probably restarting, or asks us to slow down: wait, then watch again
          // from the same version. A full list would only add to its load.
          report(e);
          if (!co_await wait(delays.next())) co_return informer::error{};
          continue;
        }
        co_return e;
      }
      {
        informer::lock_guard lock(self->mutex_);
        if (self->stopping_) {
          stream->cancel();
          co_return informer::error{};
        }
        self->watch_ = stream;
      }
      if (options().metrics.on_watch_open) options().metrics.on_watch_open();
      auto result = co_await consume(stream);
      {
        informer::lock_guard lock(self->mutex_);
        self->watch_.reset();
      }
      if (result.first) co_return *result.first;
      if (options().metrics.on_watch_close) options().metrics.on_watch_close(result.second);
    }
  }

  // Liveness of one watch: the time of the last event (bookmarks included), and whether the
  // check gave the watch up. Touched on the strand only.
  struct silence {
    std::chrono::steady_clock::time_point last_heard;
    bool detected = false;
    bool done = false;  // the watch ended: the check stops
  };

  // Sleeps until the watch has been silent for the liveness timeout, then cancels it; an event
  // meanwhile pushes the deadline back. One timer wait per timeout period, not one per event.
  void watch_liveness(std::shared_ptr<silence> silent, std::weak_ptr<watch_stream> stream) {
    liveness_timer.expires_at(silent->last_heard + liveness_timeout());
    liveness_timer.async_wait([this, silent, stream](boost::system::error_code ec) {
      if (ec || silent->done) return;
      if (std::chrono::steady_clock::now() - silent->last_heard < liveness_timeout()) {
        watch_liveness(silent, stream);
        return;
      }
      silent->detected = true;
      if (auto s = stream.lock()) s->cancel();
    });
  }

  // Applies a stream's events; returns an error to relist for, or nothing to reopen the watch.
  asio::awaitable<std::pair<std::optional<informer::error>, std::size_t>> consume(
      const std::shared_ptr<watch_stream>& stream) {
    const auto opened = std::chrono::steady_clock::now();
    const auto liveness = liveness_timeout();
    auto silent = std::make_shared<silence>();
    silent->last_heard = opened;
    if (liveness.count() > 0) watch_liveness(silent, stream);
    // However this returns, the check ends with it.
    struct end_liveness {
      silence& s;
      asio::steady_timer& timer;
      ~end_liveness() {
        s.done = true;
        timer.cancel();
      }
    } end_check{*silent, liveness_timer};
    std::size_t events = 0;
    for (;;) {
      auto [e, event] = co_await stream->async_next(awaitable_tuple);
      silent->last_heard = std::chrono::steady_clock::now();
      if (stopping()) co_return std::pair{std::optional<informer::error>{informer::error{}}, events};
      if (e && silent->detected) {
        // The connection may look open while nothing comes through (a middlebox, a half-dead
        // peer): treat it as cut and reopen from the last resourceVersion, no relist.
        // Info, not warning: a healthy watch of a resource that has not changed since the server
        // started hears no bookmarks, and is reopened this way every timeout.
        report(informer::error{make_error_code(asio::error::timed_out),
                               options().name + ": the watch received nothing (no event, no bookmark) for " +
                                   std::to_string(
                                       std::chrono::duration_cast<std::chrono::milliseconds>(liveness).count()) +
                                   " ms; reopening it from resourceVersion " + last()},
               log_level::info);
        co_return std::pair{std::optional<informer::error>{}, events};
      }
      if (e) {
        // A cut ends a watch like a normal close: reopen it from the last version instead of
        // relisting, as client-go does.
        if (e == condition::stream_cut) {
          if (events == 0 && std::chrono::steady_clock::now() - opened < std::chrono::seconds(1)) {
            co_return std::pair{
                std::optional<informer::error>{informer::error{
                    errc::end_of_stream, options().name + ": the watch closed within a second without any event"}},
                events};
          }
          co_return std::pair{std::optional<informer::error>{}, events};
        }
        co_return std::pair{std::optional<informer::error>{e}, events};
      }
      if (options().metrics.on_event) options().metrics.on_event(event.type, event.resource_version);
      switch (event.type) {
        case watch_event_type::added: self->store_.add(event.obj); break;
        case watch_event_type::modified: self->store_.update(event.obj); break;
        case watch_event_type::deleted: self->store_.remove(event.obj); break;
        case watch_event_type::bookmark: break;
        case watch_event_type::error:
          co_return std::pair{std::optional<informer::error>{event.error_status.to_error()}, events};
      }
      if (!event.resource_version.empty()) set_last(std::move(event.resource_version));
      ++events;
    }
  }

  // Waits `delay` unless stopped first; false when stopped.
  asio::awaitable<bool> wait(std::chrono::nanoseconds delay) {
    if (log_enabled(log_level::info)) {
      log(log_level::info, "reflector",
          options().name + ": trying again in " +
              std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(delay).count()) + " ms");
    }
    if (options().metrics.on_backoff) options().metrics.on_backoff(delay);
    timer.expires_after(delay);
    co_await timer.async_wait(awaitable_tuple);
    co_return !stopping();
  }

  asio::awaitable<void> run() {
    while (!stopping()) {
      auto e = co_await list();
      if (!e && !stopping()) e = co_await watch();
      if (stopping()) break;
      if (e) {
        report(e);
        if (e == condition::relist_required && options().metrics.on_relist) options().metrics.on_relist(e.what());
      }
      if (!co_await wait(delays.next())) break;
    }
  }

  asio::awaitable<void> resync() {
    const auto period = options().resync_period;
    while (!stopping()) {
      resync_timer.expires_after(period);
      co_await resync_timer.async_wait(awaitable_tuple);
      if (stopping()) break;
      if (!options().should_resync || options().should_resync()) self->store_.resync();
    }
  }

  void finished() {
    if (--running > 0) return;
    informer::lock_guard lock(self->mutex_);
    self->ended_ = true;
    self->cancel_wait_ = nullptr;  // drops the loop's last reference to itself
    self->ended_cv_.notify_all();
  }
};

std::shared_ptr<reflector> reflector::create(std::shared_ptr<lister_watcher> source, reflector_store& store,
                                             reflector_options options) {
  return std::make_shared<reflector>(passkey{}, std::move(source), store, std::move(options));
}

std::shared_ptr<reflector> reflector::create(std::shared_ptr<lister_watcher> source,
                                             std::shared_ptr<reflector_store> store, reflector_options options) {
  auto r = std::make_shared<reflector>(passkey{}, std::move(source), *store, std::move(options));
  {
    informer::lock_guard lock(r->mutex_);  // uncontended: `r` is not shared yet
    r->store_owner_ = std::move(store);
  }
  return r;
}

reflector::reflector(passkey, std::shared_ptr<lister_watcher> source, reflector_store& store, reflector_options options)
    : source_(std::move(source)), store_(store), options_(std::move(options)) {}

reflector::~reflector() = default;

void reflector::start() {
  auto state = std::make_shared<loop>(shared_from_this());
  {
    informer::lock_guard lock(mutex_);
    if (started_ || stopping_) return;
    started_ = true;
    state->store_owner = std::move(store_owner_);
    // stop() posts this to the strand, where the loop's timers and signals live.
    cancel_wait_ = [state] { asio::post(state->strand, [state] { state->cancel_all(); }); };
  }
  state->running = options_.resync_period.count() > 0 ? 2 : 1;
  asio::co_spawn(
      state->strand,
      [state]() -> asio::awaitable<void> {
        co_await state->run();
        state->finished();
      },
      asio::detached);
  if (options_.resync_period.count() > 0) {
    asio::co_spawn(
        state->strand,
        [state]() -> asio::awaitable<void> {
          co_await state->resync();
          state->finished();
        },
        asio::detached);
  }
}

void reflector::stop() {
  std::shared_ptr<watch_stream> watch;
  std::function<void()> cancel;
  {
    informer::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    if (!started_) ended_ = true;
    watch = watch_;
    // Taken, not copied: it holds the loop, which holds this reflector. Once stop is asked, only
    // the coroutine frames own the loop, so destroying the executor frees everything.
    cancel = std::move(cancel_wait_);
    cancel_wait_ = nullptr;
  }
  if (watch) watch->cancel();
  if (cancel) cancel();
  ended_cv_.notify_all();
}

void reflector::join() {
  informer::unique_lock lock(mutex_);
  ended_cv_.wait(lock, [&]() INFORMER_REQUIRES(mutex_) { return ended_ || !started_; });
}

bool reflector::join_for(std::chrono::nanoseconds timeout) {
  informer::unique_lock lock(mutex_);
  return ended_cv_.wait_for(lock, timeout, [&]() INFORMER_REQUIRES(mutex_) { return ended_ || !started_; });
}

bool reflector::running() const {
  informer::lock_guard lock(mutex_);
  return started_ && !ended_;
}

std::string reflector::last_sync_resource_version() const {
  informer::lock_guard lock(mutex_);
  return last_sync_resource_version_;
}

void reflector::set_watch_error_handler(std::function<void(const informer::error&)> handler) {
  informer::lock_guard lock(mutex_);
  error_handler_ = std::move(handler);
}

}  // namespace informer
