#include "etcd/detail/watch_hub.hpp"

#include "informer/etcd/errors.hpp"

#include <algorithm>
#include <string_view>

namespace informer::etcd::detail {

namespace {

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// How often a watch is parked for want of a leader before it fails (see the file comment).
constexpr std::size_t most_leaderless = 20;

watch_update failed_update(error why, std::int64_t compact_revision = 0) {
  watch_update update;
  update.kind = watch_update_kind::failed;
  update.failure = std::move(why);
  update.compact_revision = compact_revision;
  return update;
}

watch_update compacted_update(const watch_spec& spec, std::int64_t compact_revision) {
  return failed_update(error{informer::errc::expired, spec.what + ": etcd has compacted its history up to revision " +
                                                          std::to_string(compact_revision) +
                                                          "; list again and watch from the list's revision + 1"},
                       compact_revision);
}

std::string or_no_reason(const std::string& reason) { return reason.empty() ? "(no reason given)" : reason; }

bool is_transport_failure(const error& why) {
  return why.code() == make_error_code(errc::unavailable) || why.code() == make_error_code(errc::deadline_exceeded);
}

}  // namespace

watch_actions watch_hub::add(std::uint64_t id, watch_spec spec) {
  if (closed_) {
    watch_update update = failed_update(error{informer::errc::closed, spec.what + ": the etcd client is closed"});
    out_.push_back(deliver_update{id, std::move(update)});
    return take();
  }
  watch_state& w = watches_[id];
  w.next_revision = spec.start_revision;
  w.spec = std::move(spec);
  waiting_.push_back(id);
  assign_waiting();
  return take();
}

watch_actions watch_hub::cancel(std::uint64_t id) {
  auto it = watches_.find(id);
  if (it == watches_.end() || it->second.phase == watch_phase::canceling) {
    return {};
  }
  watch_state& w = it->second;
  watch_update update;
  update.kind = watch_update_kind::canceled;
  switch (w.phase) {
    case watch_phase::waiting: std::erase(waiting_, id); break;
    case watch_phase::parked: std::erase_if(parked_, [id](const auto& p) { return p.first == id; }); break;
    case watch_phase::queued: std::erase(streams_.at(w.stream).queued, id); break;
    case watch_phase::creating:
      // Forgotten once etcd answers the create (and is told to cancel it) or the stream ends.
      w.phase = watch_phase::canceling;
      deliver(id, std::move(update));
      return take();
    case watch_phase::active: {
      const std::uint64_t stream_id = w.stream;
      stream_state& s = streams_.at(stream_id);
      s.active.erase(w.server_id);
      send_cancel(stream_id, s, w.server_id);
      finish(id, std::move(update));
      close_if_idle(stream_id, s);
      return take();
    }
    case watch_phase::canceling: break;
  }
  finish(id, std::move(update));
  return take();
}

watch_actions watch_hub::request_progress() {
  if (current_ != 0) {
    note_progress_request(streams_.at(current_), false);
    out_.push_back(write_request{current_, progress_request{}});
  }
  return take();
}

void watch_hub::note_progress_request(stream_state& s, bool heartbeat) {
  // Fixed etcd releases may answer several requests made while a watch replays with one reply:
  // the oldest entries then never find theirs, so the queue is kept short.
  constexpr std::size_t most_pending = 16;
  if (s.progress_pending.size() == most_pending) {
    s.progress_pending.pop_front();
  }
  s.progress_pending.push_back(heartbeat);
}

void watch_hub::stream_at(std::uint64_t stream, std::string address) {
  if (auto it = streams_.find(stream); it != streams_.end()) {
    it->second.address = std::move(address);
  }
}

bool watch_hub::awaiting_first_answer(std::uint64_t stream) const {
  auto it = streams_.find(stream);
  return it != streams_.end() && it->second.phase == stream_phase::connecting &&
         (it->second.creating != 0 || !it->second.queued.empty());
}

std::optional<watch_phase> watch_hub::phase_of_watch(std::uint64_t watch) const {
  auto it = watches_.find(watch);
  return it == watches_.end() ? std::nullopt : std::optional{it->second.phase};
}

std::optional<stream_phase> watch_hub::phase_of_stream(std::uint64_t stream) const {
  auto it = streams_.find(stream);
  return it == streams_.end() ? std::nullopt : std::optional{it->second.phase};
}

void watch_hub::assign_waiting() {
  if (closed_ || waiting_.empty()) {
    return;
  }
  if (current_ == 0) {
    current_ = ++last_stream_;
    streams_.emplace(current_, stream_state{});
    out_.push_back(open_stream{current_, std::exchange(stale_token_of_, 0)});
  }
  stream_state& s = streams_.at(current_);
  for (std::uint64_t id : waiting_) {
    watch_state& w = watches_.at(id);
    w.phase = watch_phase::queued;
    w.stream = current_;
    s.queued.push_back(id);
  }
  waiting_.clear();
  pump(current_, s);
}

void watch_hub::pump(std::uint64_t stream_id, stream_state& s) {
  const bool accepting = s.phase == stream_phase::connecting || s.phase == stream_phase::serving;
  if (!accepting || s.creating != 0 || s.queued.empty()) {
    return;
  }
  const std::uint64_t id = s.queued.front();
  s.queued.pop_front();
  watch_state& w = watches_.at(id);
  w.phase = watch_phase::creating;
  s.creating = id;
  create_request create{w.spec};
  create.spec.start_revision = w.next_revision;
  out_.push_back(write_request{stream_id, std::move(create)});
}

void watch_hub::send_cancel(std::uint64_t stream_id, stream_state& s, std::int64_t server_id) {
  // A retired stream is not read by etcd; a closing one takes its watches with it.
  if (s.phase == stream_phase::serving) {
    out_.push_back(write_request{stream_id, cancel_request{server_id}});
  }
}

watch_actions watch_hub::on_response(std::uint64_t stream_id, watch_response r) {
  auto it = streams_.find(stream_id);
  if (closed_ || it == streams_.end() || it->second.phase == stream_phase::closing) {
    return {};
  }
  stream_state& s = it->second;
  s.heard = true;
  if (s.phase == stream_phase::connecting) {
    s.phase = stream_phase::serving;
  }
  if (r.created) {
    on_created(stream_id, s, r);
  } else if (r.watch_id == -1) {
    if (!r.canceled) {
      on_progress_reply(s, r.revision);
    }
  } else {
    on_watch_response(stream_id, s, r);
  }
  return take();
}

void watch_hub::on_created(std::uint64_t stream_id, stream_state& s, watch_response& r) {
  const std::uint64_t id = std::exchange(s.creating, 0);
  if (id == 0) {
    return;  // etcd answers each create once, in order: nothing of ours is waiting
  }
  watch_state& w = watches_.at(id);
  if (r.canceled) {
    on_create_refused(stream_id, s, id, r);
  } else if (w.phase == watch_phase::canceling) {
    send_cancel(stream_id, s, r.watch_id);
    watches_.erase(id);
  } else {
    w.phase = watch_phase::active;
    w.server_id = r.watch_id;
    w.connect_failures = 0;
    w.leaderless = 0;
    w.created_revision = r.revision;
    if (w.next_revision == 0) {
      w.next_revision = r.revision + 1;  // what etcd makes of "from now"
    }
    w.caught_up = w.next_revision > r.revision;
    s.active[r.watch_id] = id;
    watch_update update;
    update.kind = watch_update_kind::created;
    update.revision = r.revision;
    deliver(id, std::move(update));
  }
  pump(stream_id, s);
  close_if_idle(stream_id, s);
}

void watch_hub::on_create_refused(std::uint64_t stream_id, stream_state& s, std::uint64_t id, const watch_response& r) {
  watch_state& w = watches_.at(id);
  if (w.phase == watch_phase::canceling) {
    watches_.erase(id);
    return;
  }
  if (r.compact_revision != 0) {
    finish(id, compacted_update(w.spec, r.compact_revision));
    return;
  }
  const std::string& reason = r.cancel_reason;
  const std::string refused =
      w.spec.what + (s.address.empty() ? "" : " at " + s.address) + ": etcd refused the watch: " + or_no_reason(reason);
  if (contains(reason, "permission denied") || contains(reason, "auth")) {
    // Also what etcd 3.4 says for an invalid token (expired, or etcd restarted): with credentials,
    // try once more on a new stream with a new token.
    retire(stream_id, s);
    if (options_.authenticates && !w.token_refreshed) {
      w.token_refreshed = true;
      w.phase = watch_phase::waiting;
      w.stream = 0;
      waiting_.push_front(id);
      stale_token_of_ = stream_id;
    } else {
      finish(id, failed_update(error{informer::errc::forbidden, refused}));
    }
    assign_waiting();
    return;
  }
  finish(id, failed_update(error{errc::watch_canceled, refused}));
}

void watch_hub::on_progress_reply(stream_state& s, std::int64_t revision) {
  // Replies come in the order of the requests (etcd queues them on one channel).
  const bool heartbeat = !s.progress_pending.empty() && s.progress_pending.front();
  if (!s.progress_pending.empty()) {
    s.progress_pending.pop_front();
  }
  if (heartbeat) {
    // Liveness only: a bookmark at what each watch has delivered, which moves nothing on (etcd
    // issue 15220: the reply can overtake events of a watch in sync too).
    for (const auto& [server_id, id] : s.active) {
      const std::int64_t delivered = watches_.at(id).next_revision - 1;
      if (delivered > 0) {
        watch_update update;
        update.kind = watch_update_kind::progress;
        update.revision = delivered;
        deliver(id, std::move(update));
      }
    }
    return;
  }
  for (const auto& [server_id, id] : s.active) {
    watch_state& w = watches_.at(id);
    // Not mid-fragment either: the reply may overtake the rest of a response.
    if (w.caught_up && w.fragments.empty()) {
      watch_update update;
      update.kind = watch_update_kind::progress;
      update.revision = revision;
      advance(w, revision);
      deliver(id, std::move(update));
    }
  }
}

void watch_hub::on_watch_response(std::uint64_t stream_id, stream_state& s, watch_response& r) {
  auto it = s.active.find(r.watch_id);
  if (it == s.active.end()) {
    return;  // canceled by us meanwhile
  }
  const std::uint64_t id = it->second;
  watch_state& w = watches_.at(id);
  if (r.compact_revision != 0 || r.canceled) {
    s.active.erase(it);
    if (r.compact_revision != 0) {
      finish(id, compacted_update(w.spec, r.compact_revision));
    } else {
      const std::string detail = w.spec.what + (s.address.empty() ? "" : " at " + s.address) +
                                 ": etcd canceled the watch: " + or_no_reason(r.cancel_reason);
      finish(id, failed_update(contains(r.cancel_reason, "permission denied") ? error{informer::errc::forbidden, detail}
                                                                              : error{errc::watch_canceled, detail}));
    }
    close_if_idle(stream_id, s);
    return;
  }
  if (w.fragments.empty()) {
    w.fragments = std::move(r.events);
  } else {
    std::move(r.events.begin(), r.events.end(), std::back_inserter(w.fragments));
  }
  if (r.fragment) {
    return;  // the rest of this response follows
  }
  watch_update update;
  update.revision = r.revision;
  if (w.fragments.empty()) {
    // A per-watch notification: etcd sends those only to a watch it has in sync.
    update.kind = watch_update_kind::progress;
    w.caught_up = true;
    advance(w, r.revision);
  } else {
    update.kind = watch_update_kind::events;
    update.events = std::exchange(w.fragments, {});
    advance(w, update.events.back().kv.mod_revision);
    // Replayed up to the store's revision at creation (events come in revision order).
    w.caught_up = w.caught_up || w.next_revision > w.created_revision;
  }
  deliver(id, std::move(update));
}

void watch_hub::advance(watch_state& w, std::int64_t delivered) {
  w.next_revision = std::max(w.next_revision, delivered + 1);
}

void watch_hub::retire(std::uint64_t stream_id, stream_state& s) {
  s.phase = stream_phase::retired;
  if (current_ == stream_id) {
    current_ = 0;
  }
  for (auto it = s.queued.rbegin(); it != s.queued.rend(); ++it) {
    watch_state& w = watches_.at(*it);
    w.phase = watch_phase::waiting;
    w.stream = 0;
    waiting_.push_front(*it);
  }
  s.queued.clear();
}

void watch_hub::close_if_idle(std::uint64_t stream_id, stream_state& s) {
  if (s.phase == stream_phase::retired && s.creating == 0 && s.queued.empty() && s.active.empty()) {
    s.phase = stream_phase::closing;
    out_.push_back(close_stream{stream_id});
  }
}

watch_actions watch_hub::on_stream_end(std::uint64_t stream_id, const error& why) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) {
    return {};
  }
  stream_state s = std::move(it->second);
  streams_.erase(it);
  if (current_ == stream_id) {
    current_ = 0;
  }
  if (closed_) {
    return {};
  }
  for (const auto& [server_id, id] : s.active) {
    finish(id, failed_update(error{why.code(), watches_.at(id).spec.what + ": " + why.detail()}));
  }
  std::deque<std::uint64_t> unanswered = std::move(s.queued);
  if (s.creating != 0) {
    unanswered.push_front(s.creating);
  }
  retry_or_fail(std::move(unanswered), why, s.phase == stream_phase::connecting && is_transport_failure(why));
  return take();
}

watch_actions watch_hub::on_tick(time_point now) {
  if (closed_ || options_.progress_interval.count() <= 0) {
    return {};
  }
  ++ticks_;
  // Parked for a whole tick period at least: released on the second tick after parking.
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (ticks_ >= it->second + 2) {
      watches_.at(it->first).phase = watch_phase::waiting;
      waiting_.push_back(it->first);
      it = parked_.erase(it);
    } else {
      ++it;
    }
  }
  assign_waiting();
  std::vector<std::uint64_t> dead;
  for (auto& [stream_id, s] : streams_) {
    // A connecting stream has the dial timer; etcd no longer reads a retired one.
    if (s.phase != stream_phase::serving || (s.active.empty() && s.creating == 0)) {
      s.last_probe.reset();
      s.probing = false;
      continue;
    }
    if (s.probing) {
      if (!s.heard) {
        if (now - *s.last_probe >= options_.progress_timeout) {
          dead.push_back(stream_id);
        }
        continue;
      }
      s.probing = false;
    }
    if (!s.last_probe) {
      s.last_probe = now;  // the interval counts from here
    } else if (now - *s.last_probe >= options_.progress_interval) {
      s.last_probe = now;
      s.probing = true;
      s.heard = false;
      note_progress_request(s, true);
      out_.push_back(write_request{stream_id, progress_request{}});
    }
  }
  for (std::uint64_t stream_id : dead) {
    declare_dead(stream_id, streams_.at(stream_id));
  }
  return take();
}

void watch_hub::declare_dead(std::uint64_t stream_id, stream_state& s) {
  const error why{errc::unavailable, "watch stream" + (s.address.empty() ? "" : " at " + s.address) +
                                         ": no answer to a progress request within " +
                                         std::to_string(options_.progress_timeout.count()) +
                                         " ms (the connection or the member stopped responding)"};
  s.phase = stream_phase::closing;
  if (current_ == stream_id) {
    current_ = 0;
  }
  out_.push_back(close_stream{stream_id, true});
  for (const auto& [server_id, id] : s.active) {
    finish(id, failed_update(error{why.code(), watches_.at(id).spec.what + ": " + why.detail()}));
  }
  s.active.clear();
  std::deque<std::uint64_t> unanswered = std::exchange(s.queued, {});
  if (s.creating != 0) {
    unanswered.push_front(std::exchange(s.creating, 0));
  }
  // As after a failed connection: each retried on another stream, at most once per endpoint.
  retry_or_fail(std::move(unanswered), why, true);
}

void watch_hub::retry_or_fail(std::deque<std::uint64_t> ids, const error& why, bool connect_failure) {
  std::deque<std::uint64_t> retry;
  for (std::uint64_t id : ids) {
    watch_state& w = watches_.at(id);
    w.stream = 0;
    if (w.phase == watch_phase::canceling) {
      watches_.erase(id);
    } else if (connect_failure && options_.progress_interval.count() > 0 && contains(why.detail(), "no leader") &&
               w.leaderless < most_leaderless) {
      ++w.leaderless;
      w.phase = watch_phase::parked;
      parked_.emplace_back(id, ticks_);
    } else if (connect_failure && ++w.connect_failures < options_.endpoints) {
      w.phase = watch_phase::waiting;
      retry.push_back(id);
    } else {
      finish(id, failed_update(error{why.code(), w.spec.what + ": " + why.detail()}));
    }
  }
  waiting_.insert(waiting_.begin(), retry.begin(), retry.end());
  assign_waiting();
}

watch_actions watch_hub::close() {
  if (closed_) {
    return {};
  }
  closed_ = true;
  for (auto& [stream_id, s] : streams_) {
    if (s.phase != stream_phase::closing) {
      s.phase = stream_phase::closing;
      out_.push_back(close_stream{stream_id});
    }
  }
  current_ = 0;
  waiting_.clear();
  parked_.clear();
  auto watches = std::exchange(watches_, {});
  for (auto& [id, w] : watches) {
    if (w.phase != watch_phase::canceling) {
      deliver(id, failed_update(error{informer::errc::closed, w.spec.what + ": the etcd client was destroyed"}));
    }
  }
  return take();
}

void watch_hub::deliver(std::uint64_t id, watch_update update) {
  out_.push_back(deliver_update{id, std::move(update)});
}

void watch_hub::finish(std::uint64_t id, watch_update update) {
  deliver(id, std::move(update));
  watches_.erase(id);
}

}  // namespace informer::etcd::detail
