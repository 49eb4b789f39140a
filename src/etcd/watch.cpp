#include "informer/etcd/watch.hpp"

#include "etcd/detail/convert.hpp"
#include "etcd/detail/watch_hub.hpp"

#include <grpcpp/support/async_stream.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <utility>

namespace informer::etcd {

watch_handle& watch_handle::operator=(watch_handle&& other) noexcept {
  if (this != &other) {
    if (auto hub = hub_.lock()) {
      hub->cancel(id_, true);
    }
    hub_ = std::move(other.hub_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

watch_handle::~watch_handle() {
  if (auto hub = hub_.lock()) {
    hub->cancel(id_, true);
  }
}

void watch_handle::cancel() noexcept {
  if (auto hub = hub_.lock()) {
    hub->cancel(id_, false);
  }
}

void watch_handle::detach() noexcept {
  cancel();
  hub_.reset();
  id_ = 0;
}

namespace detail {

namespace {

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

watch_update failed_update(error why, std::int64_t compact_revision = 0) {
  watch_update update;
  update.kind = watch_update_kind::failed;
  update.failure = std::move(why);
  update.compact_revision = compact_revision;
  return update;
}

}  // namespace

// Where a watch is: waiting for a stream, queued on one, its create sent, or created.
enum class entry_state { waiting, pending, creating, active };

struct watch_entry {
  std::uint64_t id = 0;
  etcdserverpb::WatchCreateRequest create;
  std::string what;  // "watch of prefix '/a/' from revision 7", for messages
  watch_callback callback;
  entry_state state = entry_state::waiting;
  watch_stream* stream = nullptr;  // pending, creating, active
  std::int64_t server_id = -1;     // active
  bool ended = false;              // the final update was delivered
  bool token_refreshed = false;    // re-authenticated once on its behalf
  std::size_t connect_failures = 0;
  std::vector<event> fragments;  // a fragmented response, so far
};

// One Watch call. Its state machine: start -> (read loop, write queue) -> broken -> Finish ->
// finished; destroyed by the hub once no operation of it is pending. Loop thread only.
class watch_stream {
public:
  watch_stream(watch_hub& hub, std::size_t endpoint, std::string token)
      : hub_(hub), endpoint_(endpoint), token_(std::move(token)) {}

  void start() {
    completion_loop& loop = *hub_.loop_;
    connection::attach_token(context_, token_);
    // Wait through reconnects for the channel; the dial timer bounds the wait.
    context_.set_wait_for_ready(true);
    call_ = hub_.conn_->at(endpoint_).watch->PrepareAsyncWatch(&context_, loop.queue());
    begin_op();
    call_->StartCall(&start_op_);
    ++pending_ops_;
    dial_timer_ =
        loop.start_timer(hub_.conn_->options().dial_timeout, [this](bool fired) { on_dial_timer(fired); });
  }

  void write_next() {
    writing_ = true;
    begin_op();
    call_->Write(outgoing_.front(), &write_op_);
  }

  // Ends the call from our side; the pending read then fails and the stream finishes.
  void cancel_call() { context_.TryCancel(); }

  watch_hub& hub_;
  const std::size_t endpoint_;
  const std::string token_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>>
      call_;
  etcdserverpb::WatchResponse incoming_;
  std::deque<etcdserverpb::WatchRequest> outgoing_;  // front is being written while writing_
  grpc::Status status_;

  std::deque<watch_entry*> pending_;                       // creates not sent yet
  watch_entry* creating_ = nullptr;                        // create sent, answer awaited
  std::unordered_map<std::int64_t, watch_entry*> active_;  // by etcd's watch id
  loop_timer* dial_timer_ = nullptr;                       // until the first answer

  int pending_ops_ = 0;
  bool started_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool broken_ = false;     // a read or write failed: finishing
  bool finishing_ = false;  // Finish was called
  bool finished_ = false;
  bool accepting_ = true;  // may carry new watches
  bool answered_ = false;  // etcd answered at least once
  bool dial_timed_out_ = false;

private:
  void begin_op() {
    ++pending_ops_;
    hub_.loop_->started();
  }

  void read_next() {
    reading_ = true;
    begin_op();
    call_->Read(&incoming_, &read_op_);
  }

  void on_start(bool ok) {
    --pending_ops_;
    if (!ok) {
      broken_ = true;
      maybe_finish();
      return;
    }
    started_ = true;
    read_next();
    hub_.pump(*this);
  }

  void on_read(bool ok) {
    --pending_ops_;
    reading_ = false;
    if (!ok) {
      broken_ = true;
      maybe_finish();
      return;
    }
    hub_.on_response(*this, incoming_);
    incoming_.Clear();
    if (broken_) {
      maybe_finish();
    } else {
      read_next();
    }
  }

  void on_write(bool ok) {
    --pending_ops_;
    writing_ = false;
    if (!ok) {
      broken_ = true;
      outgoing_.clear();
      cancel_call();
      maybe_finish();
      return;
    }
    outgoing_.pop_front();
    hub_.pump(*this);
  }

  void maybe_finish() {
    if (!broken_ || finishing_ || reading_ || writing_) {
      return;
    }
    finishing_ = true;
    if (dial_timer_ != nullptr) {
      dial_timer_->cancel();
    }
    begin_op();
    call_->Finish(&status_, &finish_op_);
  }

  void on_finish(bool) {
    --pending_ops_;
    finished_ = true;
    hub_.on_stream_end(*this);
    hub_.maybe_destroy(*this);  // last: may delete this
  }

  void on_dial_timer(bool fired) {
    --pending_ops_;
    dial_timer_ = nullptr;
    if (fired && !answered_ && !finishing_ && (creating_ != nullptr || !pending_.empty())) {
      dial_timed_out_ = true;
      cancel_call();
    }
    hub_.maybe_destroy(*this);  // last: may delete this
  }

  member_operation<watch_stream, &watch_stream::on_start> start_op_{this};
  member_operation<watch_stream, &watch_stream::on_read> read_op_{this};
  member_operation<watch_stream, &watch_stream::on_write> write_op_{this};
  member_operation<watch_stream, &watch_stream::on_finish> finish_op_{this};
};

watch_hub::watch_hub(std::shared_ptr<connection> conn, std::shared_ptr<completion_loop> loop)
    : conn_(std::move(conn)), loop_(std::move(loop)) {}

watch_hub::~watch_hub() = default;

std::uint64_t watch_hub::add(std::string key, const watch_options& options, watch_callback callback) {
  auto entry = std::make_shared<watch_entry>();
  entry->id = ++last_id_;
  std::string range_end = options.prefix ? prefix_end(key) : options.range_end;
  entry->what = options.prefix      ? "watch of prefix " + describe_range(key)
                : range_end.empty() ? "watch of key " + describe_range(key)
                                    : "watch of range " + describe_range(key, range_end);
  if (options.start_revision > 0) {
    entry->what += " from revision " + std::to_string(options.start_revision);
  }
  auto& create = entry->create;
  create.set_key(std::move(key));
  create.set_range_end(std::move(range_end));
  create.set_start_revision(options.start_revision);
  create.set_progress_notify(options.progress_notify);
  create.set_prev_kv(options.prev_kv);
  if (options.filter_puts) {
    create.add_filters(etcdserverpb::WatchCreateRequest::NOPUT);
  }
  if (options.filter_deletes) {
    create.add_filters(etcdserverpb::WatchCreateRequest::NODELETE);
  }
  create.set_fragment(true);  // reassembled in on_response
  entry->callback = std::move(callback);

  const std::uint64_t id = entry->id;
  if (!loop_->post([self = shared_from_this(), entry] { self->add_on_loop(entry); })) {
    // Only when the client is being destroyed concurrently (a misuse); still end the watch.
    if (entry->callback) {
      entry->callback(
          failed_update(error{informer::errc::closed, entry->what + ": the etcd client is closed"}));
    }
  }
  return id;
}

void watch_hub::cancel(std::uint64_t id, bool wait) {
  if (!wait || loop_->in_loop_thread()) {
    loop_->post([self = shared_from_this(), id] { self->cancel_on_loop(id); });
    return;
  }
  std::promise<void> done;
  auto delivered = done.get_future();
  if (loop_->post([self = shared_from_this(), id, &done] {
        self->cancel_on_loop(id);
        done.set_value();
      })) {
    delivered.wait();
  }
}

void watch_hub::request_progress() {
  loop_->post([self = shared_from_this()] {
    watch_stream* s = self->current_;
    if (s == nullptr || s->broken_ || !s->accepting_) {
      return;
    }
    etcdserverpb::WatchRequest request;
    request.mutable_progress_request();
    s->outgoing_.push_back(std::move(request));
    self->pump(*s);
  });
}

void watch_hub::add_on_loop(std::shared_ptr<watch_entry> entry) {
  if (closed_) {
    entry->ended = true;
    entry->callback(
        failed_update(error{informer::errc::closed, entry->what + ": the etcd client is closed"}));
    return;
  }
  watch_entry* e = entry.get();
  entries_.emplace(e->id, std::move(entry));
  waiting_.push_back(e);
  assign_waiting();
}

void watch_hub::cancel_on_loop(std::uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second->ended) {
    return;
  }
  watch_entry& e = *it->second;
  watch_update update;
  update.kind = watch_update_kind::canceled;
  finish(e, std::move(update));
  switch (e.state) {
    case entry_state::waiting:
      std::erase(waiting_, &e);
      erase(e);
      break;
    case entry_state::pending:
      std::erase(e.stream->pending_, &e);
      erase(e);
      break;
    case entry_state::creating:
      break;  // forgotten when etcd answers the create (and told to cancel) or the stream ends
    case entry_state::active: {
      watch_stream& s = *e.stream;
      s.active_.erase(e.server_id);
      send_cancel(s, e.server_id);
      erase(e);
      close_if_idle(s);
      break;
    }
  }
}

void watch_hub::assign_waiting() {
  if (closed_ || waiting_.empty()) {
    return;
  }
  if (current_ != nullptr && current_->accepting_ && !current_->broken_) {
    for (watch_entry* e : waiting_) {
      e->state = entry_state::pending;
      e->stream = current_;
      current_->pending_.push_back(e);
    }
    waiting_.clear();
    pump(*current_);
    return;
  }
  open_stream(std::exchange(waiting_, {}));
}

std::size_t watch_hub::choose_endpoint() {
  const std::size_t count = conn_->size();
  const std::size_t first = conn_->preferred();
  if (count > 1) {
    for (std::size_t k = 0; k < count; ++k) {
      const std::size_t index = (first + k) % count;
      if (conn_->at(index).channel->GetState(true) != GRPC_CHANNEL_TRANSIENT_FAILURE) {
        return index;
      }
    }
  }
  return first;
}

void watch_hub::open_stream(std::deque<watch_entry*> entries) {
  const std::size_t index = choose_endpoint();
  // Blocks the loop for one round trip when a token is needed first.
  auto token = conn_->token(index);
  if (!token) {
    const bool connect_failure = token.error().code() == make_error_code(errc::unavailable);
    if (connect_failure) {
      conn_->failed(index);
    }
    retry_or_fail(std::move(entries), token.error(), connect_failure);
    return;
  }
  streams_.push_back(std::make_unique<watch_stream>(*this, index, std::move(*token)));
  watch_stream& s = *streams_.back();
  current_ = &s;
  for (watch_entry* e : entries) {
    e->state = entry_state::pending;
    e->stream = &s;
    s.pending_.push_back(e);
  }
  s.start();
}

void watch_hub::retry_or_fail(std::deque<watch_entry*> entries, const error& why, bool connect_failure) {
  std::deque<watch_entry*> retry;
  for (watch_entry* e : entries) {
    e->stream = nullptr;
    if (e->ended) {
      erase(*e);
    } else if (connect_failure && ++e->connect_failures < conn_->size()) {
      e->state = entry_state::waiting;
      retry.push_back(e);
    } else {
      finish(*e, failed_update(error{why.code(), e->what + ": " + why.detail()}));
      erase(*e);
    }
  }
  waiting_.insert(waiting_.begin(), retry.begin(), retry.end());
  assign_waiting();
}

void watch_hub::pump(watch_stream& s) {
  if (!s.started_ || s.broken_ || s.finishing_) {
    return;
  }
  if (s.creating_ == nullptr && s.accepting_ && !s.pending_.empty()) {
    watch_entry* e = s.pending_.front();
    s.pending_.pop_front();
    e->state = entry_state::creating;
    s.creating_ = e;
    etcdserverpb::WatchRequest request;
    *request.mutable_create_request() = e->create;
    s.outgoing_.push_back(std::move(request));
  }
  if (!s.writing_ && !s.outgoing_.empty()) {
    s.write_next();
  }
}

void watch_hub::send_cancel(watch_stream& s, std::int64_t server_id) {
  if (s.broken_ || !s.accepting_) {
    return;  // a broken stream takes its watches with it; a retired one is not read by etcd
  }
  etcdserverpb::WatchRequest request;
  request.mutable_cancel_request()->set_watch_id(server_id);
  s.outgoing_.push_back(std::move(request));
  pump(s);
}

void watch_hub::on_response(watch_stream& s, etcdserverpb::WatchResponse& r) {
  if (!s.answered_) {
    s.answered_ = true;
    if (s.dial_timer_ != nullptr) {
      s.dial_timer_->cancel();
    }
  }
  const std::int64_t revision = r.header().revision();

  if (r.created()) {
    watch_entry* e = std::exchange(s.creating_, nullptr);
    if (e == nullptr) {
      return;  // etcd answers each create once, in order: nothing of ours is waiting
    }
    if (r.canceled()) {
      on_create_refused(s, e, r);
    } else if (e->ended) {
      send_cancel(s, r.watch_id());  // canceled while its create was in flight
      erase(*e);
    } else {
      e->state = entry_state::active;
      e->server_id = r.watch_id();
      e->connect_failures = 0;
      s.active_[e->server_id] = e;
      watch_update update;
      update.kind = watch_update_kind::created;
      update.revision = revision;
      deliver(*e, std::move(update));
    }
    pump(s);
    close_if_idle(s);
    return;
  }

  if (r.watch_id() == -1) {
    // The answer to a WatchProgressRequest, meant for every watch of the stream.
    if (!r.canceled()) {
      for (auto& [server_id, e] : s.active_) {
        watch_update update;
        update.kind = watch_update_kind::progress;
        update.revision = revision;
        deliver(*e, std::move(update));
      }
    }
    return;
  }

  auto it = s.active_.find(r.watch_id());
  if (it == s.active_.end()) {
    return;  // canceled by us meanwhile
  }
  watch_entry& e = *it->second;
  if (r.compact_revision() != 0 || r.canceled()) {
    s.active_.erase(it);
    if (r.compact_revision() != 0) {
      finish(e, failed_update(error{informer::errc::expired,
                                    e.what + ": etcd has compacted its history up to revision " +
                                        std::to_string(r.compact_revision()) +
                                        "; list again and watch from the list's revision + 1"},
                              r.compact_revision()));
    } else {
      const std::string& reason = r.cancel_reason();
      const std::string detail =
          e.what + " at " + conn_->at(s.endpoint_).address +
          ": etcd canceled the watch: " + (reason.empty() ? "(no reason given)" : reason);
      finish(e, failed_update(contains(reason, "permission denied") ? error{informer::errc::forbidden, detail}
                                                                    : error{errc::watch_canceled, detail}));
    }
    erase(e);
    close_if_idle(s);
    return;
  }

  for (auto& ev : *r.mutable_events()) {
    e.fragments.push_back(to_event(std::move(ev)));
  }
  if (r.fragment()) {
    return;  // the rest of this batch follows
  }
  watch_update update;
  update.revision = revision;
  if (e.fragments.empty()) {
    update.kind = watch_update_kind::progress;
  } else {
    update.kind = watch_update_kind::events;
    update.events = std::exchange(e.fragments, {});
  }
  deliver(e, std::move(update));
}

void watch_hub::on_create_refused(watch_stream& s, watch_entry* e, const etcdserverpb::WatchResponse& r) {
  const std::string& reason = r.cancel_reason();
  const std::string& address = conn_->at(s.endpoint_).address;
  if (e->ended) {
    erase(*e);
    return;
  }
  if (r.compact_revision() != 0) {
    finish(*e, failed_update(error{informer::errc::expired,
                                   e->what + ": etcd has compacted its history up to revision " +
                                       std::to_string(r.compact_revision())},
                             r.compact_revision()));
    erase(*e);
    return;
  }
  if (contains(reason, "permission denied") || contains(reason, "auth")) {
    // etcd 3.4 stops reading a stream once it refused a watch for permissions, and also answers
    // so when the stream's token is invalid (expired, or etcd restarted): retire the stream; with
    // credentials, authenticate again once for this watch and retry it on a new stream.
    retire(s);
    if (conn_->authenticates() && !e->token_refreshed) {
      e->token_refreshed = true;
      auto fresh = conn_->refresh_token(s.endpoint_, s.token_);
      if (fresh) {
        e->state = entry_state::waiting;
        e->stream = nullptr;
        waiting_.push_front(e);
        assign_waiting();
        return;
      }
      finish(*e, failed_update(error{fresh.error().code(), e->what + ": " + fresh.error().detail()}));
    } else {
      finish(*e, failed_update(error{informer::errc::forbidden,
                                     e->what + " at " + address + ": etcd refused the watch: " + reason}));
    }
    erase(*e);
    assign_waiting();
    return;
  }
  finish(*e,
         failed_update(error{errc::watch_canceled, e->what + " at " + address + ": etcd refused the watch: " +
                                                       (reason.empty() ? "(no reason given)" : reason)}));
  erase(*e);
}

void watch_hub::retire(watch_stream& s) {
  s.accepting_ = false;
  if (current_ == &s) {
    current_ = nullptr;
  }
  for (auto it = s.pending_.rbegin(); it != s.pending_.rend(); ++it) {
    (*it)->state = entry_state::waiting;
    (*it)->stream = nullptr;
    waiting_.push_front(*it);
  }
  s.pending_.clear();
}

void watch_hub::close_if_idle(watch_stream& s) {
  if (!s.accepting_ && s.creating_ == nullptr && s.pending_.empty() && s.active_.empty()) {
    s.cancel_call();
  }
}

void watch_hub::on_stream_end(watch_stream& s) {
  if (current_ == &s) {
    current_ = nullptr;
  }
  std::deque<watch_entry*> unanswered;
  if (s.creating_ != nullptr) {
    unanswered.push_back(std::exchange(s.creating_, nullptr));
  }
  unanswered.insert(unanswered.end(), s.pending_.begin(), s.pending_.end());
  s.pending_.clear();
  auto active = std::exchange(s.active_, {});
  if (closed_) {
    return;
  }
  grpc::Status status = s.status_;
  if (s.dial_timed_out_) {
    status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "no answer within the dial timeout (" +
                              std::to_string(conn_->options().dial_timeout.count()) + " ms)");
  }
  const error base = to_error(status, "watch stream", conn_->at(s.endpoint_).address);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    conn_->failed(s.endpoint_);
  }
  for (auto& [server_id, e] : active) {
    finish(*e, failed_update(error{base.code(), e->what + ": " + base.detail()}));
    erase(*e);
  }
  const bool connect_failure = !s.answered_ && (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                                                status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  retry_or_fail(std::move(unanswered), base, connect_failure);
}

void watch_hub::maybe_destroy(watch_stream& s) {
  if (!s.finished_ || s.pending_ops_ != 0) {
    return;
  }
  if (current_ == &s) {
    current_ = nullptr;
  }
  streams_.remove_if([&](const std::unique_ptr<watch_stream>& p) { return p.get() == &s; });
}

void watch_hub::deliver(watch_entry& e, watch_update update) {
  if (!e.ended && e.callback) {
    e.callback(std::move(update));
  }
}

void watch_hub::finish(watch_entry& e, watch_update update) {
  e.ended = true;
  auto callback = std::move(e.callback);
  e.callback = nullptr;
  if (callback) {
    callback(std::move(update));
  }
}

void watch_hub::erase(watch_entry& e) {
  entries_.erase(e.id);
}

void watch_hub::close_on_loop() {
  closed_ = true;
  for (auto& s : streams_) {
    s->pending_.clear();
    s->creating_ = nullptr;
    s->active_.clear();
    s->accepting_ = false;
    if (s->dial_timer_ != nullptr) {
      s->dial_timer_->cancel();
    }
    s->cancel_call();
  }
  current_ = nullptr;
  waiting_.clear();
  auto entries = std::exchange(entries_, {});
  for (auto& [id, e] : entries) {
    if (!e->ended) {
      finish(*e, failed_update(error{informer::errc::closed, e->what + ": the etcd client was destroyed"}));
    }
  }
}

}  // namespace detail
}  // namespace informer::etcd
