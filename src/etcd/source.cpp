#include "informer/etcd/source.hpp"

#include "informer/core/field_selector.hpp"
#include "informer/core/label_selector.hpp"
#include "informer/core/log.hpp"
#include "informer/core/mutex.hpp"

#include "core/detail/async_completion.hpp"
#include "core/detail/context_registry.hpp"
#include "etcd/detail/client_access.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <limits>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace informer::etcd {

namespace asio = boost::asio;

// What a source shares with its watch streams: everything needed to decode, nothing that owns the
// client. Immutable after construction except the counter (atomic).
struct source::shared {
  std::string prefix;
  std::string range_end;  // prefix_end(prefix)
  std::shared_ptr<const object_decoder> decoder;
  std::function<void(const decode_failure&)> on_decode_error;
  asio::any_io_executor executor;
  std::size_t watch_buffer_bytes = 0;
  mutable std::atomic<std::uint64_t> failures{0};

  // The object for `kv`, or null after reporting why it cannot be decoded.
  object::ptr decode_or_report(const key_value& kv, std::int64_t resource_version) const {
    auto obj = decoder->decode(kv, resource_version);
    if (obj) {
      return std::move(*obj);
    }
    failures.fetch_add(1, std::memory_order_relaxed);
    if (log_enabled(log_level::warning)) {
      log(log_level::warning, "etcd",
          "cannot decode " + kv.key + " (mod_revision " + std::to_string(kv.mod_revision) + "): " + obj.error().what() +
              "; treated as absent");
    }
    if (on_decode_error) {
      on_decode_error(decode_failure{.key = kv.key, .mod_revision = kv.mod_revision, .error = obj.error()});
    }
    return nullptr;
  }

  // The object for `kv`, or null: for earlier states of a key, whose failure was reported already.
  object::ptr decode_quietly(const key_value& kv, std::int64_t resource_version) const {
    auto obj = decoder->decode(kv, resource_version);
    return obj ? std::move(*obj) : nullptr;
  }
};

namespace {

using next_handler = asio::any_completion_handler<watch_stream::next_signature>;
using next_completion = informer::detail::async_completion<watch_stream::next_signature>;
using open_completion = informer::detail::async_completion<lister_watcher::watch_signature>;

informer::error bad_request(std::string message) { return {informer::errc::bad_request, std::move(message)}; }

std::optional<std::int64_t> parse_revision(std::string_view text) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < 0) {
    return std::nullopt;
  }
  return v;
}

// Label and field selectors, applied here because etcd has neither.
struct selectors {
  label_selector labels;
  field_selector fields;

  bool empty() const { return labels.empty() && fields.empty(); }
  bool matches(const object& obj) const { return labels.matches(obj.labels()) && fields.matches(obj); }
};

detailed_result<selectors> parse_selectors(std::string_view label_text, std::string_view field_text) {
  auto labels = label_selector::parse(label_text);
  if (!labels) {
    return bad_request("invalid label selector: " + labels.error().what());
  }
  auto fields = field_selector::parse(field_text);
  if (!fields) {
    return bad_request("invalid field selector: " + fields.error().what());
  }
  return selectors{std::move(*labels), std::move(*fields)};
}

// The continue token of a page: "<snapshot revision>|<last key of the page>".
std::string make_continue_token(std::int64_t revision, std::string_view last_key) {
  return std::to_string(revision) + "|" + std::string{last_key};
}

// --- watch ---------------------------------------------------------------------------------------

// What a raw update weighs in a stream's buffer: its keys and values, plus a little per event.
std::size_t buffered_size(const watch_update& u) {
  std::size_t bytes = sizeof(watch_update);
  for (const event& e : u.events) {
    bytes += sizeof(event) + e.kv.key.size() + e.kv.value.size();
    if (e.prev_kv) {
      bytes += e.prev_kv->key.size() + e.prev_kv->value.size();
    }
  }
  return bytes;
}

// The state of one watch, shared by its stream object, the client-thread callback and the jobs
// posted to the source's executor.
//
// Lock rule: `mutex` guards every member below it. It is held only briefly: never while decoding,
// never while a completion handler runs or is destroyed (handlers leave under it only by being moved
// into a post, `async_completion::complete`'s included), never while a watch handle is destroyed.
// Calls made under it only queue work (`asio::post`, `watch_handle::cancel` and `detach`), so the
// client's thread, which takes it in the watch callback, never waits for anything that waits for it.
struct watch_state final : std::enable_shared_from_this<watch_state>, informer::detail::orphanable {
  watch_state(std::shared_ptr<const source::shared> s, selectors sel, bool allow_bookmarks)
      : shared(std::move(s)), filter(std::move(sel)), bookmarks(allow_bookmarks) {}

  watch_state(const watch_state&) = delete;
  watch_state& operator=(const watch_state&) = delete;

  // Wherever the last owner lets go (the client's thread included): nothing to wait for, since the
  // callback owns this state.
  ~watch_state() { handle.detach(); }

  struct raw_update {
    watch_update update;
    std::size_t bytes;  // buffered_size(update)
  };

  const std::shared_ptr<const source::shared> shared;
  const selectors filter;
  const bool bookmarks;

  informer::mutex mutex;
  watch_handle handle INFORMER_GUARDED_BY(mutex);                       // the etcd watch
  std::shared_ptr<open_completion> opening INFORMER_GUARDED_BY(mutex);  // async_watch's completion, until etcd answers
  std::shared_ptr<watch_stream> opening_stream INFORMER_GUARDED_BY(mutex);  // handed to `opening` on success
  std::deque<raw_update> raw INFORMER_GUARDED_BY(mutex);          // from the client's thread, not yet converted
  std::size_t raw_bytes INFORMER_GUARDED_BY(mutex) = 0;           // the sum of `raw`'s sizes
  bool fell_behind INFORMER_GUARDED_BY(mutex) = false;            // `raw` overflowed: the etcd watch is canceled
  std::deque<watch_event> ready INFORMER_GUARDED_BY(mutex);       // converted, not yet taken by async_next
  std::optional<informer::error> end INFORMER_GUARDED_BY(mutex);  // delivered once `raw` and `ready` are drained
  bool cancelled INFORMER_GUARDED_BY(mutex) = false;
  bool pumping INFORMER_GUARDED_BY(mutex) = false;                      // a pump job is posted or running (at most one)
  std::shared_ptr<next_completion> waiting INFORMER_GUARDED_BY(mutex);  // the async_next waiting for an event
  bool orphaned INFORMER_GUARDED_BY(mutex) =
      false;  // the executor's context is being destroyed: post nothing more to it

  // The client's thread: every update of the etcd watch.
  void on_update(watch_update u) {
    informer::lock_guard lock(mutex);
    if (orphaned) {
      return;
    }
    if (opening) {
      // The first update: etcd registered the watch, or refused it.
      auto stream = std::move(opening_stream);
      auto op = std::move(opening);
      if (u.kind == watch_update_kind::created) {
        op->complete(informer::error{}, std::move(stream));
      } else {
        const informer::error why = u.kind == watch_update_kind::failed
                                        ? u.failure
                                        : informer::error{asio::error::operation_aborted, "watch canceled"};
        end = why;
        op->complete(why, nullptr);
        // The stream must not die under the lock (its destructor takes it).
        asio::post(shared->executor, [dropped = std::move(stream)] {});
      }
      return;
    }
    if (cancelled || fell_behind || u.kind == watch_update_kind::created) {
      return;
    }
    const std::size_t bytes = buffered_size(u);
    if (!raw.empty() && raw_bytes + bytes > shared->watch_buffer_bytes) {
      fall_behind_locked();
      return;
    }
    raw_bytes += bytes;
    raw.push_back({std::move(u), bytes});
    schedule_pump_locked();
  }

  // The reader is too slow: stop the etcd watch, drop what it has not converted yet, and end the
  // stream after the converted events, as a cut. Every dropped update comes after those events, so
  // a watch from the last revision the reader saw gets them again from etcd's history.
  void fall_behind_locked() INFORMER_REQUIRES(mutex) {
    fell_behind = true;
    raw.clear();
    raw_bytes = 0;
    if (!end) {
      end =
          informer::error{informer::errc::end_of_stream,
                          "the watch fell behind: more than " + std::to_string(shared->watch_buffer_bytes) +
                              " bytes of etcd updates waited for the reader; watch again from the last revision read"};
    }
    handle.cancel();
    schedule_pump_locked();
  }

  // Any thread: the cancellation slot of async_watch's handler fired. Completes a pending open
  // with operation_aborted (posted) and cancels the etcd watch; nothing once the open completed.
  void abort_open() {
    std::shared_ptr<watch_stream> stream;
    {
      informer::lock_guard lock(mutex);
      if (!opening) {
        return;
      }
      stream = std::move(opening_stream);
      cancelled = true;
      raw.clear();
      raw_bytes = 0;
      ready.clear();
      end = informer::error{asio::error::operation_aborted, "watch canceled while opening"};
      std::exchange(opening, nullptr)->complete(*end, nullptr);
      handle.cancel();
    }
    // `stream` goes here, outside the lock (its destructor takes it); it waits for nothing.
  }

  // The executor's context is shutting down (see core/detail/context_registry.hpp): what waits here
  // for the client's thread to complete it (an open, an async_next) goes with the context, as its
  // own pending handlers do, instead of being posted into it later, once it is gone. Nothing is
  // invoked. The client's thread posts only under `mutex`, so none of its posts is under way after.
  void orphan() override {
    std::shared_ptr<open_completion> open;
    std::shared_ptr<watch_stream> stream;
    std::shared_ptr<next_completion> next;
    {
      informer::lock_guard lock(mutex);
      orphaned = true;
      open = std::move(opening);
      stream = std::move(opening_stream);
      next = std::move(waiting);
      handle.cancel();
    }
    // All released here, outside the lock (the stream's destructor takes it), while the context's
    // services still run: a completion destroyed uncompleted destroys its handler uninvoked and
    // lets go of the work it counted.
  }

  void schedule_pump_locked() INFORMER_REQUIRES(mutex) {
    if (waiting && !pumping) {
      pumping = true;
      asio::post(shared->executor, [self = shared_from_this()] { self->pump(); });
    }
  }

  // Hands the next event (or the end) to the waiting reader. The source's executor, one at a time.
  void pump() {
    informer::unique_lock lock(mutex);
    for (;;) {
      if (!waiting) {
        break;
      }
      if (!ready.empty()) {
        deliver_locked({}, std::move(ready.front()));
        ready.pop_front();
        break;
      }
      if (!raw.empty()) {
        watch_update u = std::move(raw.front().update);
        raw_bytes -= raw.front().bytes;
        raw.pop_front();
        lock.unlock();
        std::vector<watch_event> events;
        std::optional<informer::error> final_error;
        convert(u, events, final_error);
        lock.lock();
        if (!cancelled) {
          for (auto& e : events) {
            ready.push_back(std::move(e));
          }
          if (final_error && !end) {
            end = std::move(final_error);
          }
        }
        continue;
      }
      if (end) {
        deliver_locked(*end, {});
      }
      break;
    }
    pumping = false;
  }

  void deliver_locked(informer::error err, watch_event event) INFORMER_REQUIRES(mutex) {
    std::exchange(waiting, nullptr)->complete(std::move(err), std::move(event));
  }

  // Any thread. Returns true on the first call.
  bool cancel() {
    informer::lock_guard lock(mutex);
    if (cancelled) {
      return false;
    }
    cancelled = true;
    raw.clear();
    raw_bytes = 0;
    ready.clear();
    end = informer::error{asio::error::operation_aborted, "watch canceled"};
    if (waiting) {
      deliver_locked(*end, {});
    }
    handle.cancel();
    return true;
  }

  // The source's executor: the events a reader sees for one etcd update, and the stream's end when
  // it is the final one.
  void convert(const watch_update& u, std::vector<watch_event>& out,
               std::optional<informer::error>& final_error) const {
    switch (u.kind) {
      case watch_update_kind::created: return;
      case watch_update_kind::progress:
        if (bookmarks) {
          out.push_back(bookmark(u.revision));
        }
        return;
      case watch_update_kind::canceled:
        final_error = informer::error{asio::error::operation_aborted, "watch canceled"};
        return;
      case watch_update_kind::failed:
        // As etcd's client said it: a compaction is `expired`, a broken stream `unavailable`;
        // the reader's policy asks their conditions (relist, or watch again).
        final_error = u.failure;
        return;
      case watch_update_kind::events: break;
    }
    std::int64_t last_revision = 0;
    for (const event& e : u.events) {
      last_revision = std::max(last_revision, e.kv.mod_revision);
      if (e.type == event_type::put) {
        convert_put(e, out);
      } else {
        convert_delete(e, out);
      }
    }
    if (out.empty() && bookmarks && last_revision > 0) {
      out.push_back(bookmark(last_revision));
    }
  }

  void convert_put(const event& e, std::vector<watch_event>& out) const {
    const std::int64_t rv = e.kv.mod_revision;
    object::ptr obj = shared->decode_or_report(e.kv, rv);
    const bool created = e.kv.create_revision == rv;
    // Whether the reader holds the key now: its previous state was decodable and matched. Without
    // etcd's prev_kv that is unknown; assume it does (a DELETED for a key it lacks is harmless,
    // a MODIFIED of one it lacks is taken as an add).
    object::ptr prev;
    bool before = !created;
    if (!created && e.prev_kv && (!obj || !filter.empty())) {
      prev = shared->decode_quietly(*e.prev_kv, rv);
      before = prev && filter.matches(*prev);
    }
    if (!obj) {
      // Now undecodable: gone, as far as a list could tell.
      if (before) {
        if (!prev) {
          auto stand_in = shared->decoder->placeholder(e.kv.key, rv);
          if (!stand_in) {
            return;
          }
          prev = std::move(*stand_in);
        }
        out.push_back(make_event(watch_event_type::deleted, std::move(prev), rv));
      }
      return;
    }
    const bool now = filter.matches(*obj);
    if (now) {
      out.push_back(make_event(before ? watch_event_type::modified : watch_event_type::added, std::move(obj), rv));
    } else if (before) {
      // Stopped matching: the previous content at this event's revision, as the API server sends.
      out.push_back(make_event(watch_event_type::deleted, prev ? std::move(prev) : std::move(obj), rv));
    }
  }

  void convert_delete(const event& e, std::vector<watch_event>& out) const {
    const std::int64_t rv = e.kv.mod_revision;
    if (e.prev_kv) {
      object::ptr prev = shared->decode_quietly(*e.prev_kv, rv);
      if (prev && filter.matches(*prev)) {
        out.push_back(make_event(watch_event_type::deleted, std::move(prev), rv));
      }
      return;
    }
    // etcd no longer had the deleted value: a stand-in (the selectors cannot be checked).
    if (auto stand_in = shared->decoder->placeholder(e.kv.key, rv)) {
      out.push_back(make_event(watch_event_type::deleted, std::move(*stand_in), rv));
    }
  }

  static watch_event make_event(watch_event_type type, object::ptr obj, std::int64_t rv) {
    return {.type = type, .obj = std::move(obj), .resource_version = std::to_string(rv), .error_status = {}};
  }

  static watch_event bookmark(std::int64_t rv) {
    return {
        .type = watch_event_type::bookmark, .obj = nullptr, .resource_version = std::to_string(rv), .error_status = {}};
  }
};

class etcd_watch_stream final : public watch_stream {
public:
  etcd_watch_stream(std::shared_ptr<watch_state> state, const asio::any_io_executor& executor)
      : state_(std::move(state)), timer_(executor) {}

  etcd_watch_stream(const etcd_watch_stream&) = delete;
  etcd_watch_stream& operator=(const etcd_watch_stream&) = delete;

  // Waits for nothing (it may run on an executor thread that other informers share): the etcd
  // watch is detached, its final update still comes, to the callback, which owns `state_`.
  ~etcd_watch_stream() override {
    state_->cancel();
    informer::lock_guard lock(state_->mutex);
    state_->handle.detach();
  }

  void cancel() override { state_->cancel(); }

  // Ends the stream normally after `timeout` (the source's executor; before the stream is shared).
  void start_timer(std::chrono::seconds timeout) {
    timer_.expires_after(timeout);
    timer_.async_wait([weak = std::weak_ptr<watch_state>(state_)](boost::system::error_code ec) {
      auto state = weak.lock();
      if (ec || !state) {
        return;
      }
      informer::lock_guard lock(state->mutex);
      if (!state->end) {
        state->end = informer::error{informer::errc::end_of_stream, "watch timeout reached"};
      }
      state->handle.cancel();
      state->schedule_pump_locked();
    });
  }

protected:
  void next_impl(next_handler handler) override {
    informer::lock_guard lock(state_->mutex);
    if (state_->waiting) {
      asio::post(
          state_->shared->executor,
          asio::append(std::move(handler), informer::error{asio::error::already_started, "one async_next at a time"},
                       watch_event{}));
      return;
    }
    state_->waiting = next_completion::create(std::move(handler), state_->shared->executor);
    state_->schedule_pump_locked();
  }

private:
  const std::shared_ptr<watch_state> state_;
  asio::steady_timer timer_;  // touched only by start_timer (before sharing) and the destructor
};

}  // namespace

// --- source --------------------------------------------------------------------------------------

std::shared_ptr<source> source::create(std::shared_ptr<client> etcd, asio::any_io_executor executor,
                                       source_options options) {
  if (!etcd) {
    throw std::invalid_argument("etcd::source: null client");
  }
  if (!options.decoder) {
    throw std::invalid_argument("etcd::source: null decoder");
  }
  if (options.prefix.empty()) {
    throw std::invalid_argument("etcd::source: empty prefix");
  }
  if (options.watch_buffer_bytes == 0) {
    throw std::invalid_argument("etcd::source: watch_buffer_bytes must be positive");
  }
  auto state = std::make_shared<shared>();
  state->range_end = prefix_end(options.prefix);
  state->prefix = std::move(options.prefix);
  state->decoder = std::move(options.decoder);
  state->on_decode_error = std::move(options.on_decode_error);
  state->executor = executor;
  state->watch_buffer_bytes = options.watch_buffer_bytes;
  return std::make_shared<source>(passkey{}, std::move(etcd), std::move(executor), std::move(state));
}

source::source(passkey, std::shared_ptr<client> etcd, asio::any_io_executor executor,
               std::shared_ptr<const shared> state)
    : etcd_(std::move(etcd)), executor_(std::move(executor)), shared_(std::move(state)) {}

const std::string& source::prefix() const noexcept { return shared_->prefix; }

std::uint64_t source::decode_failures() const noexcept { return shared_->failures.load(std::memory_order_relaxed); }

void source::list_impl(informer::list_options options, asio::any_completion_handler<list_signature> handler) {
  auto fail = [&](informer::error e) {
    asio::post(executor_, asio::append(std::move(handler), std::move(e), object_list{}));
  };
  auto filter = parse_selectors(options.label_selector, options.field_selector);
  if (!filter) {
    return fail(filter.error());
  }
  std::string from = shared_->prefix;
  std::int64_t revision = 0;   // 0: the newest
  std::int64_t not_older = 0;  // the newest, which must be at least this
  if (!options.continue_token.empty()) {
    const auto& token = options.continue_token;
    const auto bar = token.find('|');
    const auto rev = bar == std::string::npos ? std::nullopt : parse_revision(std::string_view{token}.substr(0, bar));
    if (!rev || *rev == 0 || !std::string_view{token}.substr(bar + 1).starts_with(shared_->prefix)) {
      return fail(bad_request("invalid continue token for prefix " + shared_->prefix));
    }
    revision = *rev;
    from = token.substr(bar + 1);
    from.push_back('\0');  // the smallest key after the previous page's last
  } else if (!options.resource_version.empty() && options.resource_version != "0") {
    const auto rev = parse_revision(options.resource_version);
    if (!rev) {
      return fail(bad_request("invalid resourceVersion \"" + options.resource_version + "\""));
    }
    (options.match == resource_version_match::not_older_than ? not_older : revision) = *rev;
  }
  auto executor = asio::get_associated_executor(handler, executor_);
  auto slot = asio::get_associated_cancellation_slot(handler);
  const range_options range{.limit = std::max<std::int64_t>(options.limit, 0), .revision = revision};
  // The handler's executor is type-erased, so the client cannot ask it for its execution context:
  // it is taken to be the source's (the reflector's strand runs on the source's executor), so that
  // a Range still in flight when that context is destroyed goes with it instead of posting into it.
  detail::client_access::async_range(
      *etcd_, std::move(from), shared_->range_end, range,
      asio::bind_cancellation_slot(
          slot, asio::bind_executor(executor,
                                    [state = shared_, filter = std::move(*filter), revision, not_older,
                                     handler = std::move(handler)](informer::error e, range_result r) mutable {
                                      object_list page;
                                      if (!e && not_older > r.revision) {
                                        e = informer::error{informer::errc::resource_version_too_large,
                                                            "resourceVersion " + std::to_string(not_older) +
                                                                " is newer than etcd's revision " +
                                                                std::to_string(r.revision)};
                                      }
                                      if (!e) {
                                        const std::int64_t snapshot = revision != 0 ? revision : r.revision;
                                        page.resource_version = std::to_string(snapshot);
                                        page.items.reserve(r.kvs.size());
                                        for (const key_value& kv : r.kvs) {
                                          if (auto obj = state->decode_or_report(kv, kv.mod_revision);
                                              obj && filter.matches(*obj)) {
                                            page.items.push_back(std::move(obj));
                                          }
                                        }
                                        if (r.more && !r.kvs.empty()) {
                                          page.continue_token = make_continue_token(snapshot, r.kvs.back().key);
                                        }
                                      }
                                      std::move(handler)(std::move(e), std::move(page));
                                    })),
      asio::query(executor_, asio::execution::context));
}

void source::watch_impl(informer::watch_options options, asio::any_completion_handler<watch_signature> handler) {
  auto fail = [&](informer::error e) {
    asio::post(executor_, asio::append(std::move(handler), std::move(e), std::shared_ptr<watch_stream>{}));
  };
  auto filter = parse_selectors(options.label_selector, options.field_selector);
  if (!filter) {
    return fail(filter.error());
  }
  std::int64_t start = 0;
  if (!options.resource_version.empty() && options.resource_version != "0") {
    const auto rev = parse_revision(options.resource_version);
    if (!rev || *rev == std::numeric_limits<std::int64_t>::max()) {  // (no revision follows the largest)
      return fail(bad_request("invalid resourceVersion \"" + options.resource_version + "\""));
    }
    start = *rev + 1;
  }
  auto state = std::make_shared<watch_state>(shared_, std::move(*filter), options.allow_bookmarks);
  auto stream = std::make_shared<etcd_watch_stream>(state, executor_);
  // (`orphan` may release the stream's timer after the timers' service shut down, as the handlers
  // the scheduler destroys at its own shutdown do: Asio allows it.)
  informer::detail::context_registry::add(asio::query(executor_, asio::execution::context), state);
  if (options.timeout.count() > 0) {
    stream->start_timer(options.timeout);
  }
  const etcd::watch_options request{.prefix = false,
                                    .range_end = shared_->range_end,
                                    .start_revision = start,
                                    .prev_kv = true,
                                    .progress_notify = true};
  auto op = open_completion::create(std::move(handler), executor_);
  // The reflector cancels a pending open through the slot so that stop() returns promptly.
  op->on_cancellation([weak = std::weak_ptr<watch_state>(state)](asio::cancellation_type) {
    if (auto s = weak.lock()) {
      s->abort_open();
    }
  });
  {
    informer::lock_guard lock(state->mutex);
    state->opening = std::move(op);
    state->opening_stream = std::move(stream);
  }
  // Not under the lock: the client may call back inline when it is being destroyed.
  watch_handle handle =
      etcd_->watch(shared_->prefix, request, [state](watch_update u) { state->on_update(std::move(u)); });
  informer::lock_guard lock(state->mutex);
  state->handle = std::move(handle);
  if (state->cancelled || state->end || state->orphaned) {
    // Canceled, dropped, timed out, fallen behind or orphaned before the handle got here.
    state->handle.cancel();
  }
}

}  // namespace informer::etcd
