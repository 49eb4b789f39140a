#include "informer/etcd/watch.hpp"

#include "etcd/detail/convert.hpp"
#include "etcd/detail/watch_driver.hpp"

#include <grpcpp/support/async_stream.h>
#include <grpcpp/support/async_unary_call.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <future>
#include <utility>

namespace informer::etcd {

watch_handle& watch_handle::operator=(watch_handle&& other) noexcept {
  if (this != &other) {
    if (auto driver = driver_.lock()) {
      driver->cancel(id_, true);
    }
    driver_ = std::move(other.driver_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

watch_handle::~watch_handle() {
  if (auto driver = driver_.lock()) {
    driver->cancel(id_, true);
  }
}

void watch_handle::cancel() noexcept {
  if (auto driver = driver_.lock()) {
    driver->cancel(id_, false);
  }
}

void watch_handle::detach() noexcept {
  cancel();
  driver_.reset();
  id_ = 0;
}

namespace detail {

namespace {

etcdserverpb::WatchRequest to_message(watch_request&& request) {
  etcdserverpb::WatchRequest out;
  if (auto* create = std::get_if<create_request>(&request)) {
    watch_spec& spec = create->spec;
    auto& c = *out.mutable_create_request();
    c.set_key(std::move(spec.key));
    c.set_range_end(std::move(spec.range_end));
    c.set_start_revision(spec.start_revision);
    c.set_progress_notify(spec.progress_notify);
    c.set_prev_kv(spec.prev_kv);
    if (spec.filter_puts) {
      c.add_filters(etcdserverpb::WatchCreateRequest::NOPUT);
    }
    if (spec.filter_deletes) {
      c.add_filters(etcdserverpb::WatchCreateRequest::NODELETE);
    }
    c.set_fragment(true);  // reassembled by the hub
  } else if (auto* cancel = std::get_if<cancel_request>(&request)) {
    out.mutable_cancel_request()->set_watch_id(cancel->watch_id);
  } else {
    out.mutable_progress_request();
  }
  return out;
}

watch_response to_watch_response(etcdserverpb::WatchResponse& r) {
  watch_response out;
  out.watch_id = r.watch_id();
  out.revision = r.header().revision();
  out.created = r.created();
  out.canceled = r.canceled();
  out.fragment = r.fragment();
  out.compact_revision = r.compact_revision();
  out.cancel_reason = std::move(*r.mutable_cancel_reason());
  out.events.reserve(static_cast<std::size_t>(r.events_size()));
  for (auto& ev : *r.mutable_events()) {
    out.events.push_back(to_event(std::move(ev)));
  }
  return out;
}

watch_update closed_update(const std::string& what) {
  watch_update update;
  update.kind = watch_update_kind::failed;
  update.failure = error{informer::errc::closed, what + ": the etcd client is closed"};
  return update;
}

}  // namespace

// One Watch call, the stream `stream_` of the hub: Authenticate first when no token is known, then
// StartCall, a read loop beside one write at a time, then Finish, every step an asynchronous
// operation on the client's queue. Its end is reported to the driver exactly once; the driver
// destroys it once no operation of it is pending. Loop thread only.
class watch_call {
public:
  enum class phase {
    authenticating,  // an Authenticate call is out
    starting,        // StartCall is out
    streaming,       // reading; writing what is queued
    broken,          // a read or write failed: waiting for the other to come back
    finishing,       // Finish is out
    done,            // the end was reported
  };

  watch_call(watch_driver& driver, std::uint64_t stream, std::size_t endpoint)
      : driver_(driver), conn_(*driver.conn_), stream_(stream), endpoint_(endpoint) {}

  std::uint64_t stream() const noexcept { return stream_; }
  std::size_t endpoint() const noexcept { return endpoint_; }
  const std::string& token() const noexcept { return token_; }
  bool idle() const noexcept { return phase_ == phase::done && pending_ops_ == 0; }

  void open() {
    if (auto token = conn_.cached_token()) {
      start_call(std::move(*token));
    } else {
      authenticate();
    }
  }

  void write(etcdserverpb::WatchRequest request) {
    outgoing_.push_back(std::move(request));
    if (phase_ == phase::streaming && !writing_) {
      write_next();
    }
  }

  // Ends the call from our side; its end is still reported.
  void cancel() {
    cancel_dial_timer();
    if (phase_ == phase::authenticating) {
      canceled_ = true;
      auth_context_.TryCancel();
    } else if (phase_ != phase::done) {
      context_.TryCancel();
    }
  }

private:
  void begin_op() {
    ++pending_ops_;
    driver_.loop_->started();
  }

  void authenticate() {
    phase_ = phase::authenticating;
    auth_context_.set_deadline(std::chrono::system_clock::now() + conn_.options().request_timeout);
    auth_request_ = conn_.authenticate_request();
    auth_ = conn_.at(endpoint_).auth->PrepareAsyncAuthenticate(&auth_context_, auth_request_, driver_.loop_->queue());
    auth_->StartCall();
    begin_op();
    auth_->Finish(&auth_response_, &auth_status_, &auth_op_);
  }

  void on_authenticated(bool) {
    --pending_ops_;
    auto token = conn_.finish_authenticate(endpoint_, auth_status_, auth_response_);
    if (canceled_) {
      end(error{errc::canceled, "watch stream at " + conn_.at(endpoint_).address + ": canceled"});
    } else if (!token) {
      if (token.error().code() == make_error_code(errc::unavailable)) {
        conn_.failed(endpoint_);
      }
      end(token.error());
    } else {
      start_call(std::move(*token));
    }
    driver_.release(*this);  // last: may delete this
  }

  void start_call(std::string token) {
    phase_ = phase::starting;
    token_ = std::move(token);
    connection::attach_token(context_, token_);
    // As etcd's clientv3 WithRequireLeader: a member that loses its leader (cut off from its
    // peers) ends the stream with UNAVAILABLE "etcdserver: no leader" instead of leaving the
    // watches silently stalled on its stale store; the next stream then goes elsewhere.
    context_.AddMetadata("hasleader", "true");
    // Wait through reconnects for the channel; the dial timer bounds the wait.
    context_.set_wait_for_ready(true);
    completion_loop& loop = *driver_.loop_;
    call_ = conn_.at(endpoint_).watch->PrepareAsyncWatch(&context_, loop.queue());
    begin_op();
    call_->StartCall(&start_op_);
    ++pending_ops_;
    dial_timer_ = loop.start_timer(conn_.options().dial_timeout, [this](bool fired) { on_dial_timer(fired); });
  }

  void on_start(bool ok) {
    --pending_ops_;
    if (!ok) {
      phase_ = phase::broken;
      maybe_finish();
      return;
    }
    phase_ = phase::streaming;
    read_next();
    if (!outgoing_.empty()) {
      write_next();
    }
  }

  void read_next() {
    reading_ = true;
    begin_op();
    call_->Read(&incoming_, &read_op_);
  }

  void on_read(bool ok) {
    --pending_ops_;
    reading_ = false;
    if (!ok) {
      phase_ = phase::broken;
      maybe_finish();
      return;
    }
    cancel_dial_timer();  // etcd answered
    driver_.on_response(*this, incoming_);
    incoming_.Clear();
    if (phase_ == phase::streaming) {
      read_next();
    } else {
      maybe_finish();
    }
  }

  void write_next() {
    writing_ = true;
    begin_op();
    call_->Write(outgoing_.front(), &write_op_);
  }

  void on_write(bool ok) {
    --pending_ops_;
    writing_ = false;
    if (!ok) {
      phase_ = phase::broken;
      outgoing_.clear();
      context_.TryCancel();  // the pending read then fails
    } else {
      outgoing_.pop_front();
    }
    if (phase_ == phase::streaming) {
      if (!outgoing_.empty()) {
        write_next();
      }
    } else {
      maybe_finish();  // also when the read failed while this write was out
    }
  }

  void maybe_finish() {
    if (phase_ != phase::broken || reading_ || writing_) {
      return;
    }
    phase_ = phase::finishing;
    cancel_dial_timer();
    begin_op();
    call_->Finish(&status_, &finish_op_);
  }

  void on_finish(bool) {
    --pending_ops_;
    grpc::Status status = status_;
    if (dial_timed_out_) {
      status = grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          "no answer within the dial timeout (" + std::to_string(conn_.options().dial_timeout.count()) + " ms)");
    }
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      conn_.failed(endpoint_);
    }
    end(to_error(status, "watch stream", conn_.at(endpoint_).address));
    driver_.release(*this);  // last: may delete this
  }

  void end(const error& why) {
    phase_ = phase::done;
    driver_.on_end(*this, why);
  }

  void cancel_dial_timer() {
    if (loop_timer* timer = std::exchange(dial_timer_, nullptr)) {
      timer->cancel();
    }
  }

  void on_dial_timer(bool fired) {
    --pending_ops_;
    const bool armed = std::exchange(dial_timer_, nullptr) != nullptr;
    if (fired && armed && driver_.hub_.awaiting_first_answer(stream_)) {
      dial_timed_out_ = true;
      context_.TryCancel();
    }
    driver_.release(*this);  // last: may delete this
  }

  watch_driver& driver_;
  connection& conn_;
  const std::uint64_t stream_;
  const std::size_t endpoint_;
  phase phase_ = phase::starting;
  int pending_ops_ = 0;  // operations whose tag has not come back
  bool reading_ = false;
  bool writing_ = false;
  bool canceled_ = false;             // canceled while authenticating
  bool dial_timed_out_ = false;       // canceled by the dial timer
  loop_timer* dial_timer_ = nullptr;  // armed until etcd first answers

  grpc::ClientContext auth_context_;
  etcdserverpb::AuthenticateRequest auth_request_;
  etcdserverpb::AuthenticateResponse auth_response_;
  grpc::Status auth_status_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::AuthenticateResponse>> auth_;

  std::string token_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>> call_;
  etcdserverpb::WatchResponse incoming_;
  std::deque<etcdserverpb::WatchRequest> outgoing_;  // front is being written while writing_
  grpc::Status status_;

  member_operation<watch_call, &watch_call::on_authenticated> auth_op_{this};
  member_operation<watch_call, &watch_call::on_start> start_op_{this};
  member_operation<watch_call, &watch_call::on_read> read_op_{this};
  member_operation<watch_call, &watch_call::on_write> write_op_{this};
  member_operation<watch_call, &watch_call::on_finish> finish_op_{this};
};

namespace {

watch_hub_options hub_options(const connection& conn) {
  const client_options& o = conn.options();
  return {
      .endpoints = conn.size(),
      .authenticates = conn.authenticates(),
      .progress_interval = std::max(o.watch_progress_interval, std::chrono::milliseconds{0}),
      .progress_timeout = o.watch_progress_timeout.count() > 0 ? o.watch_progress_timeout : o.watch_progress_interval};
}

// Detection comes at most this late after the timeout.
std::chrono::milliseconds tick_period(const watch_hub_options& o) {
  return std::max(std::min(o.progress_interval, o.progress_timeout) / 4, std::chrono::milliseconds{5});
}

}  // namespace

watch_driver::watch_driver(std::shared_ptr<connection> conn, std::shared_ptr<completion_loop> loop)
    : conn_(std::move(conn)),
      loop_(std::move(loop)),
      hub_(hub_options(*conn_)),
      tick_period_(tick_period(hub_options(*conn_))) {}

watch_driver::~watch_driver() = default;

std::uint64_t watch_driver::add(std::string key, const watch_options& options, watch_callback callback) {
  const std::uint64_t id = ++last_id_;
  auto spec = std::make_shared<watch_spec>();
  spec->range_end = options.prefix ? prefix_end(key) : options.range_end;
  spec->what = options.prefix            ? "watch of prefix " + describe_range(key)
               : spec->range_end.empty() ? "watch of key " + describe_range(key)
                                         : "watch of range " + describe_range(key, spec->range_end);
  if (options.start_revision > 0) {
    spec->what += " from revision " + std::to_string(options.start_revision);
  }
  spec->key = std::move(key);
  spec->start_revision = options.start_revision;
  spec->prev_kv = options.prev_kv;
  spec->progress_notify = options.progress_notify;
  spec->filter_puts = options.filter_puts;
  spec->filter_deletes = options.filter_deletes;
  // Shared so that the callback is still here should the post be refused.
  auto shared_callback = std::make_shared<watch_callback>(std::move(callback));
  if (!loop_->post([self = shared_from_this(), id, spec, shared_callback] {
        self->callbacks_.emplace(id, std::move(*shared_callback));
        self->perform(self->hub_.add(id, std::move(*spec)));
      })) {
    // Only when the client is being destroyed concurrently (a misuse); still end the watch.
    if (*shared_callback) {
      (*shared_callback)(closed_update(spec->what));
    }
  }
  return id;
}

void watch_driver::cancel(std::uint64_t id, bool wait) {
  if (!wait || loop_->in_loop_thread()) {
    loop_->post([self = shared_from_this(), id] { self->perform(self->hub_.cancel(id)); });
    return;
  }
  std::promise<void> done;
  auto delivered = done.get_future();
  if (loop_->post([self = shared_from_this(), id, &done] {
        self->perform(self->hub_.cancel(id));
        done.set_value();
      })) {
    delivered.wait();
  }
}

void watch_driver::request_progress() {
  loop_->post([self = shared_from_this()] { self->perform(self->hub_.request_progress()); });
}

void watch_driver::close_on_loop() {
  closed_ = true;
  if (loop_timer* timer = std::exchange(tick_timer_, nullptr)) {
    timer->cancel();
  }
  perform(hub_.close());
  for (auto& [stream, call] : calls_) {
    call->cancel();  // also the dial timers of calls already ended, so the loop closes promptly
  }
}

void watch_driver::perform(watch_actions actions) {
  for (watch_action& action : actions) {
    if (auto* open_action = std::get_if<open_stream>(&action)) {
      open(*open_action);
    } else if (auto* write = std::get_if<write_request>(&action)) {
      calls_.at(write->stream)->write(to_message(std::move(write->request)));
    } else if (auto* close = std::get_if<close_stream>(&action)) {
      watch_call& call = *calls_.at(close->stream);
      if (close->unresponsive) {
        conn_->failed(call.endpoint());
      }
      call.cancel();
    } else {
      auto& d = std::get<deliver_update>(action);
      deliver(d.watch, std::move(d.update));
    }
  }
  arm_ticks();
}

void watch_driver::arm_ticks() {
  if (tick_timer_ != nullptr || closed_ || !hub_.wants_ticks()) {
    return;
  }
  tick_timer_ =
      loop_->start_timer(tick_period_, [self = shared_from_this()](bool fired) { self->on_tick_timer(fired); });
}

void watch_driver::on_tick_timer(bool fired) {
  tick_timer_ = nullptr;
  if (fired && !closed_) {
    perform(hub_.on_tick(std::chrono::steady_clock::now()));  // re-arms
  }
}

void watch_driver::open(const open_stream& action) {
  if (action.stale_token_of != 0) {
    if (auto stale = calls_.find(action.stale_token_of); stale != calls_.end()) {
      conn_->drop_token(stale->second->token());  // so that the new call authenticates again
    }
  }
  const std::size_t index = choose_endpoint();
  hub_.stream_at(action.stream, conn_->at(index).address);
  auto& call = calls_[action.stream];
  call = std::make_unique<watch_call>(*this, action.stream, index);
  call->open();
}

std::size_t watch_driver::choose_endpoint() {
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

void watch_driver::deliver(std::uint64_t id, watch_update update) {
  auto it = callbacks_.find(id);
  if (it == callbacks_.end()) {
    return;
  }
  if (update.is_final()) {
    watch_callback callback = std::move(it->second);
    callbacks_.erase(it);
    if (callback) {
      callback(std::move(update));
    }
  } else if (it->second) {
    it->second(std::move(update));
  }
}

void watch_driver::on_response(watch_call& call, etcdserverpb::WatchResponse& response) {
  perform(hub_.on_response(call.stream(), to_watch_response(response)));
}

void watch_driver::on_end(watch_call& call, const error& why) { perform(hub_.on_stream_end(call.stream(), why)); }

void watch_driver::release(watch_call& call) {
  if (call.idle()) {
    calls_.erase(call.stream());
  }
}

}  // namespace detail
}  // namespace informer::etcd
