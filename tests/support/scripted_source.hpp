// tests/support/scripted_source.hpp
//
// `scripted_source` is an in-process `lister_watcher` that a test drives like a tiny API server:
// the test creates, updates and removes objects, sends bookmarks and errors, compacts the history,
// ends watches and injects failures, while the code under test (a reflector, an informer) lists
// and watches it through the ordinary interface. Counters and `wait_for_*` helpers let the test
// see what the code under test asked for and wait until it has a watch open.
//
// The server it imitates:
// - A map key -> object (key `namespace/name`, or `name` for cluster-scoped objects) and a global
//   revision counter, 1 for the empty store. Every create, update and remove bumps the revision and
//   stores the object with `metadata.resourceVersion` set to it (the object is rebuilt through
//   `boost::json`); the change goes into an event history and to every open watch whose selectors
//   match (label selectors through `label_selector`, field selectors through `field_selector`).
// - Lists take a snapshot: `limit` pages through it with continue tokens (`<revision>|<last key>`),
//   and every page of one list shows the state at the first page's revision, whatever changed in
//   between (snapshots are kept until `compact` passes them or `expire_continue_tokens`).
//   resourceVersion "" is the current state, paged; "0" is the current state in one page, `limit`
//   ignored (the API server's cache). A number N is "not older than N" (the current state), except
//   that `match = exact`, or `match = unset` with a `limit` (Kubernetes' legacy rule), reads the
//   state exactly at N, rebuilt from the history. `object_list::resource_version` is the
//   snapshot's revision.
// - Watches stream the events after `resource_version` from the history, then live ones; "" and
//   "0" mean "from now" (no synthetic ADDED events, unlike the real server). With selectors, an
//   object that starts matching arrives as ADDED and one that stops matching as DELETED, as the API
//   server's watch cache does. Bookmarks reach watches that allow them. A `timeout` > 0 ends the
//   stream normally after that long (an Asio steady_timer on the source's executor). Dropping
//   the last reference to a stream closes its watch, as closing the connection would.
// - Answers with errors as the API server gives them, as `status(...).to_error()`:
//   410 "Expired" for a list or watch from a compacted revision and for an expired continue token;
//   504 "Timeout" "Too large resource version" (-> errc::resource_version_too_large) for a revision
//   newer than the current one; 400 "BadRequest" for a malformed selector, resourceVersion or
//   continue token, and for a continue token together with a resourceVersion other than "0".
//   An ERROR event (`send_error`) ends the watch after it, as the API server closes the stream.
//
// Completions: every handler (list, watch open, `async_next`) is invoked through `boost::asio::post`
// onto its associated executor (default: the source's), never inline from the initiating call or
// from a mutator. An `async_next` that is waiting keeps outstanding work on its handler's executor
// (the library's `async_completion`), as a pending socket read would, so `io_context::run` does
// not return under it.
//
// Errors: mutators throw `std::invalid_argument` for misuse, which is a bug in the test (JSON that
// is not a valid object, create of an existing key, update or remove of a missing one); the state
// is unchanged then.
//
// Thread safety: every member function of `scripted_source` is thread-safe; tests mutate from
// their own thread while the executor runs elsewhere. A stream serves one reader (one `async_next`
// at a time; a second concurrent one completes with `boost::asio::error::already_started`);
// `cancel()` is safe from any thread. Lock rule: one mutex (`detail::scripted_state::mutex`)
// guards the whole server state, every watch's buffer and waiting handler, the counters and the
// injected failures. It is never held while posting a completion or touching a timer, and no
// stream or handler is destroyed under it; completions are collected under it and posted after it
// is released. Functions named `*_locked` expect it held.
// Lifetimes: streams and pending completions share the state, so they may outlive the source;
// the executor must outlive them all.
#pragma once

#include "informer/client/lister_watcher.hpp"
#include "informer/client/status.hpp"
#include "informer/core/field_selector.hpp"
#include "informer/core/key.hpp"
#include "informer/core/label_selector.hpp"
#include "informer/core/mutex.hpp"
#include "informer/core/object.hpp"

#include "core/detail/async_completion.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace informer::testing {

namespace detail {

using next_handler = boost::asio::any_completion_handler<watch_stream::next_signature>;
using next_completion = informer::detail::async_completion<watch_stream::next_signature>;

// One change as the history keeps it. `prev` is the state before it (null for added), so a
// selector watch can tell "stopped matching" apart and a list can rebuild an older state.
struct scripted_change {
  std::int64_t revision = 0;
  watch_event_type type = watch_event_type::added;
  object::ptr obj;  // for deleted: the last state, carrying the deletion's resourceVersion
  object::ptr prev;
};

// The objects at one revision, shared by the pages of the lists that read it.
struct scripted_snapshot {
  std::int64_t revision = 0;
  std::map<std::string, object::ptr> objects;
};

// One open (or finished but still referenced) watch. Guarded by scripted_state::mutex.
struct scripted_watch {
  label_selector labels;
  field_selector fields;
  bool bookmarks = true;
  std::deque<watch_event> buffer;  // events not yet taken by async_next, in order
  // Set when the watch has ended: delivered once the buffer is drained, and to every later call.
  std::optional<informer::error> end;
  bool open = true;  // still in scripted_state::watches (counted by open_watches)
  bool cancelled = false;
  std::shared_ptr<next_completion> waiting;  // the async_next waiting for an event, if any

  bool matches(const object& obj) const { return labels.matches(obj.labels()) && fields.matches(obj); }
};

// A completion to post once the mutex is released.
struct scripted_delivery {
  std::shared_ptr<next_completion> op;
  informer::error err;
  watch_event event;
};
using scripted_deliveries = std::vector<scripted_delivery>;

struct scripted_state {
  explicit scripted_state(boost::asio::any_io_executor ex) : executor(std::move(ex)) {}

  const boost::asio::any_io_executor executor;

  informer::mutex mutex;
  informer::condition_variable changed;  // notified on every counter or open-watch change

  std::map<std::string, object::ptr> objects INFORMER_GUARDED_BY(mutex);
  std::int64_t revision INFORMER_GUARDED_BY(mutex) = 1;
  std::int64_t compacted INFORMER_GUARDED_BY(mutex) = 0;  // changes with revision <= compacted are gone from `history`
  std::deque<scripted_change> history INFORMER_GUARDED_BY(mutex);
  std::map<std::int64_t, std::shared_ptr<const scripted_snapshot>> snapshots INFORMER_GUARDED_BY(mutex);  // by revision
  std::vector<std::shared_ptr<scripted_watch>> watches INFORMER_GUARDED_BY(mutex);  // the open ones
  std::set<std::string> undecodable INFORMER_GUARDED_BY(mutex);                     // keys lists report as skipped
  std::deque<informer::error> list_failures INFORMER_GUARDED_BY(mutex);
  std::deque<informer::error> watch_failures INFORMER_GUARDED_BY(mutex);
  std::vector<list_options> list_requests INFORMER_GUARDED_BY(mutex);
  std::vector<watch_options> watch_requests INFORMER_GUARDED_BY(mutex);

  // Hands `event` to the watch's waiting reader, or buffers it.
  void push_locked(scripted_watch& w, watch_event event, scripted_deliveries& out) INFORMER_REQUIRES(mutex) {
    if (w.waiting) {
      out.push_back({std::exchange(w.waiting, nullptr), {}, std::move(event)});
    } else {
      w.buffer.push_back(std::move(event));
    }
  }

  // Ends an open watch with `end` after its buffered events; a waiting reader gets `end` now.
  // The caller holds a reference to `w` (it leaves `watches` here).
  void finish_locked(scripted_watch& w, informer::error end, scripted_deliveries& out) INFORMER_REQUIRES(mutex) {
    if (!w.open) return;
    w.open = false;
    w.end = std::move(end);
    std::erase_if(watches, [&w](const auto& p) { return p.get() == &w; });
    if (w.waiting)  // a waiting reader implies an empty buffer
      out.push_back({std::exchange(w.waiting, nullptr), *w.end, {}});
    changed.notify_all();
  }

  // The event `w` sees for `c`, if any (selector watches see objects enter and leave).
  static std::optional<watch_event> filter(const scripted_watch& w, const scripted_change& c) {
    const bool now = c.type != watch_event_type::deleted && w.matches(*c.obj);
    const bool before = c.prev && w.matches(*c.prev);
    watch_event e{.type = c.type, .obj = c.obj, .resource_version = std::to_string(c.revision), .error_status = {}};
    switch (c.type) {
      case watch_event_type::added:
        if (!now) return std::nullopt;
        break;
      case watch_event_type::modified:
        if (!now && !before) return std::nullopt;
        e.type = now && before ? watch_event_type::modified : now ? watch_event_type::added : watch_event_type::deleted;
        break;
      case watch_event_type::deleted:
        if (!before) return std::nullopt;
        break;
      default: return std::nullopt;
    }
    return e;
  }

  void record_locked(scripted_change c, scripted_deliveries& out) INFORMER_REQUIRES(mutex) {
    for (const auto& w : watches)
      if (auto e = filter(*w, c)) push_locked(*w, std::move(*e), out);
    history.push_back(std::move(c));
  }

  // The objects exactly at `rev` (compacted <= rev <= revision): today's state with the later
  // changes undone.
  std::map<std::string, object::ptr> objects_at_locked(std::int64_t rev) const INFORMER_REQUIRES(mutex) {
    auto result = objects;
    for (auto it = history.rbegin(); it != history.rend() && it->revision > rev; ++it) {
      const std::string key = object_key(*it->obj);
      if (it->type == watch_event_type::added)
        result.erase(key);
      else
        result[key] = it->prev;
    }
    return result;
  }

  void post(scripted_deliveries& out) const {
    for (auto& d : out) d.op->complete(std::move(d.err), std::move(d.event));
    out.clear();
  }
};

inline informer::error status_error(std::int32_t code, std::string reason, std::string message) {
  return status{.code = code,
                .reason = std::move(reason),
                .message = std::move(message),
                .details = {},
                .retry_after = std::nullopt}
      .to_error();
}

inline informer::error bad_request(std::string message) { return status_error(400, "BadRequest", std::move(message)); }

inline std::optional<std::int64_t> parse_revision(std::string_view text) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || p != text.data() + text.size() || v < 0) return std::nullopt;
  return v;
}

// `body` with metadata.resourceVersion set to `rev`, as an object. Throws on an invalid object.
inline object::ptr with_revision(boost::json::value body, std::int64_t rev) {
  auto* o = body.if_object();
  if (!o) throw std::invalid_argument("scripted_source: the object is not a JSON object");
  auto& md = (*o)["metadata"];
  if (!md.is_object()) throw std::invalid_argument("scripted_source: the object has no metadata object");
  md.get_object()["resourceVersion"] = std::to_string(rev);
  auto r = object::from_json(body);
  if (!r) throw std::invalid_argument("scripted_source: " + r.error().what());
  return *r;
}

// The stream handed out by scripted_source::async_watch.
class scripted_watch_stream final : public watch_stream {
public:
  scripted_watch_stream(std::shared_ptr<scripted_state> state, std::shared_ptr<scripted_watch> w,
                        std::chrono::seconds timeout)
      : state_(std::move(state)), watch_(std::move(w)), timer_(state_->executor) {
    if (timeout.count() <= 0) return;
    timer_armed_ = true;
    timer_.expires_after(timeout);
    // Weak: a stream dropped before its timeout must not be kept alive by the timer.
    timer_.async_wait([st = state_, weak = std::weak_ptr<scripted_watch>(watch_)](boost::system::error_code ec) {
      if (ec) return;
      auto timed_out = weak.lock();
      if (!timed_out) return;
      scripted_deliveries out;
      {
        informer::lock_guard lock(st->mutex);
        st->finish_locked(*timed_out, informer::error(errc::end_of_stream, "watch timeout reached"), out);
      }
      st->post(out);
    });
  }

  scripted_watch_stream(const scripted_watch_stream&) = delete;
  scripted_watch_stream& operator=(const scripted_watch_stream&) = delete;

  // Dropping a stream closes the watch, as closing the connection would.
  ~scripted_watch_stream() override { abort(); }

  void cancel() override {
    if (abort() && timer_armed_) timer_.cancel();
  }

protected:
  void next_impl(next_handler handler) override {
    auto op = next_completion::create(std::move(handler), state_->executor);
    scripted_deliveries out;
    {
      informer::lock_guard lock(state_->mutex);
      scripted_watch& w = *watch_;
      if (!w.buffer.empty()) {
        out.push_back({std::move(op), {}, std::move(w.buffer.front())});
        w.buffer.pop_front();
      } else if (w.end) {
        out.push_back({std::move(op), *w.end, {}});
      } else if (w.waiting) {
        out.push_back(
            {std::move(op), informer::error(boost::asio::error::already_started, "one async_next at a time"), {}});
      } else {
        w.waiting = std::move(op);
      }
    }
    state_->post(out);
  }

private:
  // Drops what is buffered and ends the stream with operation_aborted; true on the first call.
  bool abort() {
    scripted_deliveries out;
    {
      informer::lock_guard lock(state_->mutex);
      scripted_watch& w = *watch_;
      if (w.cancelled) return false;
      w.cancelled = true;
      w.buffer.clear();
      const informer::error aborted(boost::asio::error::operation_aborted, "watch cancelled");
      if (w.open) {
        state_->finish_locked(w, aborted, out);
      } else {
        w.end = aborted;
      }
    }
    state_->post(out);
    return true;
  }

  std::shared_ptr<scripted_state> state_;
  std::shared_ptr<scripted_watch> watch_;
  // Armed once in the constructor, cancelled at most once (by the first cancel), destroyed last.
  boost::asio::steady_timer timer_;
  bool timer_armed_ = false;
};

}  // namespace detail

/// An in-process API server behind the `lister_watcher` interface; see the file comment.
class scripted_source final : public lister_watcher {
public:
  /// The source completes every operation on `executor` (or the handler's associated executor).
  explicit scripted_source(boost::asio::any_io_executor executor)
      : state_(std::make_shared<detail::scripted_state>(std::move(executor))) {}

  scripted_source(const scripted_source&) = delete;
  scripted_source& operator=(const scripted_source&) = delete;

  boost::asio::any_io_executor get_executor() const override { return state_->executor; }

  // --- The server's state -------------------------------------------------------------------

  /// Adds an object (JSON text, a JSON value or an object) under its key, at a new revision;
  /// open watches get ADDED. Returns the stored object (with its resourceVersion).
  /// Throws std::invalid_argument when the object is invalid or its key exists.
  object::ptr create(std::string_view json_text) { return create(parse(json_text)); }
  object::ptr create(const char* json_text) { return create(std::string_view(json_text)); }
  object::ptr create(const boost::json::value& json) { return create(from_json(json)); }
  object::ptr create(const object::ptr& obj) { return apply(watch_event_type::added, obj); }

  /// Replaces the object under its key, at a new revision; open watches get MODIFIED (or, for a
  /// selector watch, ADDED/DELETED when the object enters/leaves it). Returns the stored object.
  /// Throws std::invalid_argument when the object is invalid or its key is absent.
  object::ptr update(std::string_view json_text) { return update(parse(json_text)); }
  object::ptr update(const char* json_text) { return update(std::string_view(json_text)); }
  object::ptr update(const boost::json::value& json) { return update(from_json(json)); }
  object::ptr update(const object::ptr& obj) { return apply(watch_event_type::modified, obj); }

  /// Deletes the object under `key` at a new revision; open watches get DELETED with its last
  /// state (carrying the deletion's resourceVersion), which is returned.
  /// Throws std::invalid_argument when the key is absent.
  object::ptr remove(std::string_view key) {
    detail::scripted_deliveries out;
    object::ptr last;
    {
      informer::lock_guard lock(state_->mutex);
      auto it = state_->objects.find(std::string(key));
      if (it == state_->objects.end())
        throw std::invalid_argument("scripted_source: remove of a missing key " + std::string(key));
      const std::int64_t rev = state_->revision + 1;
      last = detail::with_revision(it->second->body(), rev);
      state_->revision = rev;
      auto prev = std::move(it->second);
      state_->objects.erase(it);
      state_->record_locked({.revision = rev, .type = watch_event_type::deleted, .obj = last, .prev = std::move(prev)},
                            out);
    }
    state_->post(out);
    return last;
  }

  /// The stored object under `key`, or null.
  object::ptr get(std::string_view key) const {
    informer::lock_guard lock(state_->mutex);
    auto it = state_->objects.find(std::string(key));
    return it == state_->objects.end() ? nullptr : it->second;
  }

  /// The revision of the last change (1 for a store that never changed).
  std::int64_t current_revision() const {
    informer::lock_guard lock(state_->mutex);
    return state_->revision;
  }

  /// Drops the history up to and including `revision` (clamped to the current one): watches and
  /// exact lists from an older resourceVersion, and continue tokens of older lists, then fail
  /// with 410 Expired. A watch from `revision` itself still works.
  void compact(std::int64_t revision) {
    informer::lock_guard lock(state_->mutex);
    revision = std::min(revision, state_->revision);
    if (revision <= state_->compacted) return;
    while (!state_->history.empty() && state_->history.front().revision <= revision) state_->history.pop_front();
    state_->compacted = revision;
    std::erase_if(state_->snapshots, [revision](const auto& s) { return s.first < revision; });
  }

  /// Lists leave the object under `key` out and report it in `object_list::skipped` (as a source
  /// does with an item it can key but not decode), until called again with `false`.
  void set_undecodable(std::string_view key, bool undecodable = true) {
    informer::lock_guard lock(state_->mutex);
    if (undecodable)
      state_->undecodable.insert(std::string(key));
    else
      state_->undecodable.erase(std::string(key));
  }

  /// Makes every continue token handed out so far fail with 410 Expired.
  void expire_continue_tokens() {
    informer::lock_guard lock(state_->mutex);
    state_->snapshots.clear();
  }

  // --- Watches ------------------------------------------------------------------------------

  /// Sends a BOOKMARK at the current revision to every open watch that allows bookmarks.
  void bookmark() {
    detail::scripted_deliveries out;
    {
      informer::lock_guard lock(state_->mutex);
      for (const auto& w : state_->watches)
        if (w->bookmarks)
          state_->push_locked(*w,
                              {.type = watch_event_type::bookmark,
                               .obj = nullptr,
                               .resource_version = std::to_string(state_->revision),
                               .error_status = {}},
                              out);
    }
    state_->post(out);
  }

  /// Sends an ERROR event carrying `s` to every open watch, then ends those watches (after the
  /// event, `async_next` gives errc::end_of_stream), as the API server closes the stream.
  void send_error(const status& s) {
    detail::scripted_deliveries out;
    {
      informer::lock_guard lock(state_->mutex);
      for (const auto& w : std::vector(state_->watches)) {
        state_->push_locked(
            *w, {.type = watch_event_type::error, .obj = nullptr, .resource_version = {}, .error_status = s}, out);
        state_->finish_locked(*w, informer::error(errc::end_of_stream, "watch closed after an ERROR event"), out);
      }
    }
    state_->post(out);
  }

  /// Ends every open watch: readers get what is buffered, then `end` (by default a normal end,
  /// errc::end_of_stream).
  void end_watches(informer::error end = informer::error(errc::end_of_stream, "watch ended by the server")) {
    detail::scripted_deliveries out;
    {
      informer::lock_guard lock(state_->mutex);
      for (const auto& w : std::vector(state_->watches)) state_->finish_locked(*w, end, out);
    }
    state_->post(out);
  }

  // --- Injected failures --------------------------------------------------------------------

  /// The next `times` list calls fail with `e` (queued after failures injected earlier).
  void fail_next_list(informer::error e, std::size_t times = 1) {
    informer::lock_guard lock(state_->mutex);
    state_->list_failures.insert(state_->list_failures.end(), times, e);
  }
  void fail_next_list(const status& s, std::size_t times = 1) { fail_next_list(s.to_error(), times); }

  /// The next `times` watch calls fail at open with `e` (queued after failures injected earlier).
  void fail_next_watch(informer::error e, std::size_t times = 1) {
    informer::lock_guard lock(state_->mutex);
    state_->watch_failures.insert(state_->watch_failures.end(), times, e);
  }
  void fail_next_watch(const status& s, std::size_t times = 1) { fail_next_watch(s.to_error(), times); }

  // --- What the code under test asked for ---------------------------------------------------

  /// Number of async_list calls (failed ones included).
  std::size_t list_calls() const {
    informer::lock_guard lock(state_->mutex);
    return state_->list_requests.size();
  }
  /// Number of async_watch calls (failed ones included).
  std::size_t watch_calls() const {
    informer::lock_guard lock(state_->mutex);
    return state_->watch_requests.size();
  }
  /// The options of every async_list call, in order.
  std::vector<list_options> list_requests() const {
    informer::lock_guard lock(state_->mutex);
    return state_->list_requests;
  }
  /// The options of every async_watch call, in order.
  std::vector<watch_options> watch_requests() const {
    informer::lock_guard lock(state_->mutex);
    return state_->watch_requests;
  }
  /// Watches opened and not yet ended (by the server, a timeout, cancel or dropping the stream).
  std::size_t open_watches() const {
    informer::lock_guard lock(state_->mutex);
    return state_->watches.size();
  }

  /// Waits until at least `n` watches are open; false on timeout.
  bool wait_for_watches(std::size_t n, std::chrono::nanoseconds timeout) const {
    return wait_until(timeout, [&]() INFORMER_REQUIRES(state_->mutex) { return state_->watches.size() >= n; });
  }
  /// Waits until at least `n` list calls have been made; false on timeout.
  bool wait_for_list_calls(std::size_t n, std::chrono::nanoseconds timeout) const {
    return wait_until(timeout, [&]() INFORMER_REQUIRES(state_->mutex) { return state_->list_requests.size() >= n; });
  }
  /// Waits until at least `n` watch calls have been made; false on timeout.
  bool wait_for_watch_calls(std::size_t n, std::chrono::nanoseconds timeout) const {
    return wait_until(timeout, [&]() INFORMER_REQUIRES(state_->mutex) { return state_->watch_requests.size() >= n; });
  }

protected:
  void list_impl(list_options options, boost::asio::any_completion_handler<list_signature> handler) override {
    informer::error err;
    object_list page;
    {
      informer::lock_guard lock(state_->mutex);
      state_->list_requests.push_back(options);
      state_->changed.notify_all();
      if (!state_->list_failures.empty()) {
        err = std::move(state_->list_failures.front());
        state_->list_failures.pop_front();
      } else {
        err = list_locked(*state_, options, page);
      }
    }
    if (err) page = {};
    boost::asio::post(state_->executor, boost::asio::append(std::move(handler), std::move(err), std::move(page)));
  }

  void watch_impl(watch_options options, boost::asio::any_completion_handler<watch_signature> handler) override {
    informer::error err;
    std::shared_ptr<detail::scripted_watch> w;
    {
      informer::lock_guard lock(state_->mutex);
      state_->watch_requests.push_back(options);
      state_->changed.notify_all();
      if (!state_->watch_failures.empty()) {
        err = std::move(state_->watch_failures.front());
        state_->watch_failures.pop_front();
      } else {
        err = open_watch_locked(*state_, options, w);
      }
    }
    std::shared_ptr<watch_stream> stream;
    if (!err) stream = std::make_shared<detail::scripted_watch_stream>(state_, std::move(w), options.timeout);
    boost::asio::post(state_->executor, boost::asio::append(std::move(handler), std::move(err), std::move(stream)));
  }

private:
  static object::ptr parse(std::string_view json_text) {
    auto r = object::parse(json_text);
    if (!r) throw std::invalid_argument("scripted_source: " + r.error().what());
    return *r;
  }
  static object::ptr from_json(const boost::json::value& json) {
    auto r = object::from_json(json);
    if (!r) throw std::invalid_argument("scripted_source: " + r.error().what());
    return *r;
  }

  // Create (added) or update (modified) `obj` at a new revision.
  object::ptr apply(watch_event_type type, const object::ptr& obj) {
    if (!obj) throw std::invalid_argument("scripted_source: null object");
    const std::string key = object_key(*obj);
    detail::scripted_deliveries out;
    object::ptr stored;
    {
      informer::lock_guard lock(state_->mutex);
      auto it = state_->objects.find(key);
      if (type == watch_event_type::added && it != state_->objects.end())
        throw std::invalid_argument("scripted_source: create of an existing key " + key);
      if (type == watch_event_type::modified && it == state_->objects.end())
        throw std::invalid_argument("scripted_source: update of a missing key " + key);
      const std::int64_t rev = state_->revision + 1;
      stored = detail::with_revision(obj->body(), rev);
      state_->revision = rev;
      object::ptr prev;
      if (it == state_->objects.end()) {
        state_->objects.emplace(key, stored);
      } else {
        prev = std::exchange(it->second, stored);
      }
      state_->record_locked({.revision = rev, .type = type, .obj = stored, .prev = std::move(prev)}, out);
    }
    state_->post(out);
    return stored;
  }

  template <class Pred>
  bool wait_until(std::chrono::nanoseconds timeout, Pred pred) const {
    informer::unique_lock lock(state_->mutex);
    return state_->changed.wait_for(lock, timeout, pred);
  }

  // `st` is `*state_`, passed in because the analysis does not follow a local alias to its mutex.
  static informer::error list_locked(detail::scripted_state& st, const list_options& o, object_list& page)
      INFORMER_REQUIRES(st.mutex) {
    auto labels = label_selector::parse(o.label_selector);
    if (!labels) return detail::bad_request("invalid label selector: " + labels.error().what());
    auto fields = field_selector::parse(o.field_selector);
    if (!fields) return detail::bad_request("invalid field selector: " + fields.error().what());

    std::shared_ptr<const detail::scripted_snapshot> snap;
    std::string after;  // the last key of the previous page
    bool paged = o.limit > 0;
    if (!o.continue_token.empty()) {
      if (!o.resource_version.empty() && o.resource_version != "0")
        return detail::bad_request("specifying resource version is not allowed when using continue");
      const auto bar = o.continue_token.find('|');
      const auto rev = detail::parse_revision(std::string_view(o.continue_token).substr(0, bar));
      if (bar == std::string::npos || !rev || bar + 1 == o.continue_token.size())
        return detail::bad_request("invalid continue token " + o.continue_token);
      auto it = st.snapshots.find(*rev);
      if (it == st.snapshots.end())
        return detail::status_error(410, "Expired",
                                    "The provided continue parameter is too old to display a consistent list result. "
                                    "You can start a new list without the continue parameter.");
      snap = it->second;
      after = o.continue_token.substr(bar + 1);
    } else if (o.resource_version.empty() || o.resource_version == "0") {
      paged = paged && o.resource_version.empty();
      snap = std::make_shared<detail::scripted_snapshot>(detail::scripted_snapshot{st.revision, st.objects});
    } else {
      const auto rev = detail::parse_revision(o.resource_version);
      if (!rev) return detail::bad_request("invalid resourceVersion " + o.resource_version);
      if (*rev > st.revision)
        return detail::status_error(
            504, "Timeout",
            "Too large resource version: " + o.resource_version + ", current: " + std::to_string(st.revision));
      const bool exact =
          o.match == resource_version_match::exact || (o.match == resource_version_match::unset && o.limit > 0);
      if (exact && *rev < st.compacted)
        return detail::status_error(410, "Expired", "The resourceVersion for the provided list is too old.");
      if (exact)
        snap = std::make_shared<detail::scripted_snapshot>(detail::scripted_snapshot{*rev, st.objects_at_locked(*rev)});
      else
        snap = std::make_shared<detail::scripted_snapshot>(detail::scripted_snapshot{st.revision, st.objects});
    }

    page.resource_version = std::to_string(snap->revision);
    const std::string* last_key = nullptr;
    auto it = after.empty() ? snap->objects.begin() : snap->objects.upper_bound(after);
    for (; it != snap->objects.end(); ++it) {
      const object& obj = *it->second;
      if (!labels->matches(obj.labels()) || !fields->matches(obj)) continue;
      if (paged && page.items.size() == static_cast<std::size_t>(o.limit)) {
        // More remain: a token for the rest of this snapshot, which is kept for it.
        page.continue_token = std::to_string(snap->revision) + "|" + *last_key;
        st.snapshots.try_emplace(snap->revision, snap);
        break;
      }
      if (st.undecodable.contains(it->first))
        page.skipped.push_back(
            {.key = it->first, .error = informer::error(errc::malformed_response, it->first + " is undecodable")});
      else
        page.items.push_back(it->second);
      last_key = &it->first;
    }
    return {};
  }

  static informer::error open_watch_locked(detail::scripted_state& st, const watch_options& o,
                                           std::shared_ptr<detail::scripted_watch>& out) INFORMER_REQUIRES(st.mutex) {
    auto labels = label_selector::parse(o.label_selector);
    if (!labels) return detail::bad_request("invalid label selector: " + labels.error().what());
    auto fields = field_selector::parse(o.field_selector);
    if (!fields) return detail::bad_request("invalid field selector: " + fields.error().what());
    std::int64_t from = st.revision;
    if (!o.resource_version.empty() && o.resource_version != "0") {
      const auto rev = detail::parse_revision(o.resource_version);
      if (!rev) return detail::bad_request("invalid resourceVersion " + o.resource_version);
      if (*rev < st.compacted)
        return detail::status_error(
            410, "Expired",
            "too old resource version: " + o.resource_version + " (" + std::to_string(st.compacted) + ")");
      if (*rev > st.revision)
        return detail::status_error(
            504, "Timeout",
            "Too large resource version: " + o.resource_version + ", current: " + std::to_string(st.revision));
      from = *rev;
    }
    auto w = std::make_shared<detail::scripted_watch>();
    w->labels = std::move(*labels);
    w->fields = std::move(*fields);
    w->bookmarks = o.allow_bookmarks;
    for (const auto& c : st.history)
      if (c.revision > from)
        if (auto e = detail::scripted_state::filter(*w, c)) w->buffer.push_back(std::move(*e));
    st.watches.push_back(w);
    st.changed.notify_all();
    out = std::move(w);
    return {};
  }

  std::shared_ptr<detail::scripted_state> state_;
};

}  // namespace informer::testing
