#include "informer/apiserver/event_recorder.hpp"

#include "apiserver/detail/event_correlator.hpp"
#include "codec/detail/go_json.hpp"

#include "informer/apiserver/rest_client.hpp"
#include "informer/core/log.hpp"
#include "informer/core/mutex.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <deque>
#include <exception>
#include <stdexcept>
#include <utility>

namespace asio = boost::asio;
namespace json = boost::json;

namespace informer {

namespace {

constexpr std::string_view component = "event_recorder";

resource events_resource() {
  return resource{.group = "", .version = "v1", .plural = "events", .kind = "Event", .namespaced = true};
}

std::string timestamp(std::chrono::system_clock::time_point t) {
  return codec::detail::format_time(std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count());
}

void check(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("event_recorder: ") + what);
}

// One Event to write: the whole object (for a create, and a re-create after a 404) and whether
// an earlier one is to be patched instead.
struct pending_write {
  std::string ns;
  std::string name;
  bool patch = false;
  json::object event;
};

}  // namespace

std::string_view to_string(event_type type) noexcept { return type == event_type::warning ? "Warning" : "Normal"; }

object_reference reference_to(const object& obj) {
  return object_reference{.api_version = std::string(obj.api_version()),
                          .kind = std::string(obj.kind()),
                          .ns = std::string(obj.ns()),
                          .name = std::string(obj.name()),
                          .uid = std::string(obj.uid()),
                          .resource_version = std::string(obj.resource_version())};
}

namespace detail {

// The queue, the correlator and the write loop. The loop runs on `strand_`, one at a time
// (`draining_`), so Events are written in the order they were correlated.
class event_recorder_state : public std::enable_shared_from_this<event_recorder_state> {
public:
  event_recorder_state(http_client http, event_recorder_options options)
      : http_(std::move(http)),
        options_(std::move(options)),
        strand_(asio::make_strand(http_.get_executor())),
        retry_timer_(strand_),
        correlator_(options_) {}

  void record(const object_reference& involved, event_type type, std::string_view reason, std::string_view message) {
    if (involved.name.empty() || involved.kind.empty()) {
      log(log_level::warning, component,
          "event " + std::string(reason) + " not recorded: the involved object has no " +
              (involved.name.empty() ? "name" : "kind") + " (" + involved.ns + "/" + involved.name + ")");
      lock_guard lock(mu_);
      ++stats_.failed;
      return;
    }
    const detail::event_occurrence occurrence{.involved = involved,
                                              .type = to_string(type),
                                              .reason = std::string(reason),
                                              .message = std::string(message),
                                              .time = options_.now ? options_.now() : std::chrono::system_clock::now()};
    {
      lock_guard lock(mu_);
      if (stopped_) return;
      if (queue_.size() >= options_.queue_capacity) {
        ++stats_.dropped_queue_full;
        return;
      }
      // Correlated and queued under one lock: a patch must not overtake the create it patches.
      auto correlated = correlator_.correlate(occurrence);
      if (!correlated) {
        ++stats_.dropped_rate_limited;
        return;
      }
      queue_.push_back(make_write(occurrence, *correlated));
      ++stats_.queued;
      if (draining_) return;
      draining_ = true;
    }
    asio::co_spawn(strand_, drain(), [self = shared_from_this()](const std::exception_ptr& ep) {
      if (!ep) return;
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& ex) {
        log(log_level::error, component, std::string("the write loop failed: ") + ex.what());
      }
      lock_guard lock(self->mu_);
      self->draining_ = false;
      self->idle_.notify_all();
    });
  }

  bool flush(std::chrono::steady_clock::time_point deadline) {
    unique_lock lock(mu_);
    return idle_.wait_until(lock, deadline, [this]() INFORMER_REQUIRES(mu_) { return queue_.empty() && !draining_; });
  }

  bool shutdown(std::chrono::steady_clock::time_point deadline) {
    {
      lock_guard lock(mu_);
      stopped_ = true;
    }
    const bool delivered = flush(deadline);
    if (!delivered) abandon();
    return delivered;
  }

  // Stops for good: drops the queue and ends a retry wait; a write in flight finishes.
  void abandon() {
    {
      lock_guard lock(mu_);
      stopped_ = true;
      abandoned_ = true;
      stats_.abandoned += queue_.size();
      queue_.clear();
    }
    asio::post(strand_, [self = shared_from_this()] { self->retry_timer_.cancel(); });
  }

  event_recorder_stats stats() const {
    lock_guard lock(mu_);
    return stats_;
  }

private:
  pending_write make_write(const detail::event_occurrence& e, const detail::correlated_event& c) const {
    const auto& r = e.involved;
    json::object involved;
    for (const auto& [key, value] :
         {std::pair{"kind", &r.kind}, std::pair{"namespace", &r.ns}, std::pair{"name", &r.name},
          std::pair{"uid", &r.uid}, std::pair{"apiVersion", &r.api_version},
          std::pair{"resourceVersion", &r.resource_version}}) {
      if (!value->empty()) involved[key] = *value;
    }
    json::object source{{"component", options_.component}};
    if (!options_.host.empty()) source["host"] = options_.host;
    // Cluster-scoped objects' Events go to "default", as client-go puts them.
    std::string ns = r.ns.empty() ? std::string("default") : r.ns;
    json::object event{
        {"apiVersion", "v1"},
        {"kind", "Event"},
        {"metadata", {{"name", c.name}, {"namespace", ns}}},
        {"involvedObject", std::move(involved)},
        {"reason", e.reason},
        {"message", c.message},
        {"source", std::move(source)},
        {"firstTimestamp", timestamp(c.first_timestamp)},
        {"lastTimestamp", timestamp(e.time)},
        {"count", c.count},
        {"type", e.type},
        {"reportingComponent", options_.component},
    };
    if (!options_.host.empty()) event["reportingInstance"] = options_.host;
    return pending_write{.ns = std::move(ns), .name = c.name, .patch = c.patch, .event = std::move(event)};
  }

  asio::awaitable<void> drain() {
    const auto keep = shared_from_this();
    for (;;) {
      pending_write next;
      {
        lock_guard lock(mu_);
        if (queue_.empty() || abandoned_) {
          draining_ = false;
          idle_.notify_all();
          co_return;
        }
        next = std::move(queue_.front());
        queue_.pop_front();
      }
      co_await write(std::move(next));
    }
  }

  // Writes `w`: patch (or create again when gone) or create; retries what did not reach the
  // server; counts and logs the outcome.
  asio::awaitable<void> write(pending_write w) {
    const rest_client events(http_, events_resource(), w.ns);
    // Named, not `{}`: see rest_client.hpp on g++ 12 and braced temporaries in coroutines.
    const patch_options patch_opts;
    const write_options create_opts;
    for (int attempt = 1;; ++attempt) {
      informer::error e;
      if (w.patch) {
        // What an occurrence changes; client-go's two-way merge patch comes to the same fields.
        const json::object patch{
            {"count", w.event["count"]}, {"lastTimestamp", w.event["lastTimestamp"]}, {"message", w.event["message"]}};
        auto [pe, patched] = co_await events.async_patch(w.name, patch_type::strategic_merge_patch,
                                                         json::serialize(patch), patch_opts, asio::use_awaitable);
        if (!pe) {
          count(&event_recorder_stats::patched);
          co_return;
        }
        if (pe == condition::not_found) {
          w.patch = false;  // removed (expired, or by someone): create it again, with the count so far
        } else {
          e = std::move(pe);
        }
      }
      if (!w.patch) {
        auto [ce, created] = co_await events.async_create(w.event, create_opts, asio::use_awaitable);
        if (!ce) {
          count(&event_recorder_stats::created);
          co_return;
        }
        e = std::move(ce);
      }
      // Only what never got an answer is worth repeating; the server's refusals stay refusals.
      const bool transient = e == condition::stream_cut || e == condition::unreachable;
      if (transient && attempt < options_.max_tries && !is_abandoned()) {
        retry_timer_.expires_after(options_.retry_interval);
        co_await retry_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (!is_abandoned()) continue;
        count(&event_recorder_stats::abandoned);
        co_return;
      }
      log(log_level::warning, component,
          "could not write event " + w.ns + "/" + w.name + " (" + std::string(w.event["reason"].as_string()) +
              "): " + e.what());
      count(&event_recorder_stats::failed);
      co_return;
    }
  }

  void count(std::uint64_t event_recorder_stats::*counter) {
    lock_guard lock(mu_);
    ++(stats_.*counter);
  }

  bool is_abandoned() const {
    lock_guard lock(mu_);
    return abandoned_;
  }

  const http_client http_;
  const event_recorder_options options_;
  const asio::strand<asio::any_io_executor> strand_;
  asio::steady_timer retry_timer_;  // confined to strand_

  mutable informer::mutex mu_;
  detail::event_correlator correlator_ INFORMER_GUARDED_BY(mu_);
  std::deque<pending_write> queue_ INFORMER_GUARDED_BY(mu_);
  bool draining_ INFORMER_GUARDED_BY(mu_) = false;   // a write loop runs (or is about to)
  bool stopped_ INFORMER_GUARDED_BY(mu_) = false;    // record ignores events
  bool abandoned_ INFORMER_GUARDED_BY(mu_) = false;  // nothing more is written
  event_recorder_stats stats_ INFORMER_GUARDED_BY(mu_);
  informer::condition_variable idle_;  // the loop ended
};

}  // namespace detail

event_recorder::event_recorder(http_client http, event_recorder_options options) {
  check(!options.component.empty(), "a component is required");
  check(options.queue_capacity > 0, "queue_capacity must be positive");
  check(options.cache_size > 0, "cache_size must be positive");
  check(options.max_similar_events > 0, "max_similar_events must be positive");
  check(options.spam_burst > 0, "spam_burst must be positive");
  check(options.spam_refill_interval.count() > 0, "spam_refill_interval must be positive");
  check(options.max_tries > 0, "max_tries must be positive");
  state_ = std::make_shared<detail::event_recorder_state>(std::move(http), std::move(options));
}

event_recorder::~event_recorder() {
  if (state_) state_->abandon();
}

event_recorder::event_recorder(event_recorder&&) noexcept = default;

event_recorder& event_recorder::operator=(event_recorder&& other) noexcept {
  if (this != &other) {
    if (state_) state_->abandon();
    state_ = std::move(other.state_);
  }
  return *this;
}

void event_recorder::record(const object& involved, event_type type, std::string_view reason,
                            std::string_view message) noexcept {
  try {
    state_->record(reference_to(involved), type, reason, message);
  } catch (const std::exception& ex) {
    log(log_level::error, component, std::string("an event was lost: ") + ex.what());
  }
}

void event_recorder::record(const object_reference& involved, event_type type, std::string_view reason,
                            std::string_view message) noexcept {
  try {
    state_->record(involved, type, reason, message);
  } catch (const std::exception& ex) {
    log(log_level::error, component, std::string("an event was lost: ") + ex.what());
  }
}

bool event_recorder::flush(std::chrono::steady_clock::time_point deadline) { return state_->flush(deadline); }

bool event_recorder::shutdown(std::chrono::steady_clock::time_point deadline) { return state_->shutdown(deadline); }

event_recorder_stats event_recorder::stats() const { return state_->stats(); }

}  // namespace informer
