#include "etcd/detail/lease_keeper.hpp"

#include <grpcpp/support/async_stream.h>

#include <algorithm>
#include <future>
#include <string>
#include <vector>

namespace informer::etcd::detail {

// One LeaseKeepAlive call: an Authenticate call first when no token is known, then start, a read
// loop, one write at a time, Finish. Its last operation (a failed Authenticate, or Finish) reports
// to the keeper, which deletes it from there. Nothing waits on the loop thread. Loop thread only.
class keep_alive_call {
public:
  keep_alive_call(lease_keeper& keeper, std::size_t endpoint) : keeper_(keeper), endpoint_(endpoint) {}

  void open() {
    connection& conn = *keeper_.conn_;
    if (auto token = conn.cached_token()) {
      start(std::move(*token));
      return;
    }
    authenticating_ = true;
    auth_context_.set_deadline(std::chrono::system_clock::now() + conn.options().request_timeout);
    auth_request_ = conn.authenticate_request();
    auth_ = conn.at(endpoint_).auth->PrepareAsyncAuthenticate(&auth_context_, auth_request_, keeper_.loop_->queue());
    auth_->StartCall();
    begin_op();
    auth_->Finish(&auth_response_, &auth_status_, &auth_op_);
  }

  // Sends one renewal now (or as soon as the call has started).
  void send() {
    if (!started_) {
      send_wanted_ = true;
      return;
    }
    if (broken_ || writing_) {
      return;
    }
    writing_ = true;
    begin_op();
    call_->Write(request_, &write_op_);
  }

  void cancel() {
    if (authenticating_) {
      canceled_ = true;
      auth_context_.TryCancel();
    } else {
      context_.TryCancel();
    }
  }
  std::size_t endpoint() const noexcept { return endpoint_; }
  const std::string& token() const noexcept { return token_; }

private:
  void begin_op() { keeper_.loop_->started(); }

  void start(std::string token) {
    token_ = std::move(token);
    connection::attach_token(context_, token_);
    // As for watches: a member cut off from its leader ends the stream instead of swallowing
    // renewals it cannot commit, and the keeper moves to another endpoint.
    context_.AddMetadata("hasleader", "true");
    context_.set_wait_for_ready(true);
    request_.set_id(keeper_.lease_id_);
    call_ = keeper_.conn_->at(endpoint_).lease->PrepareAsyncLeaseKeepAlive(&context_, keeper_.loop_->queue());
    begin_op();
    call_->StartCall(&start_op_);
  }

  void on_authenticated(bool) {
    authenticating_ = false;
    auto token = keeper_.conn_->finish_authenticate(endpoint_, auth_status_, auth_response_);
    if (canceled_) {
      keeper_.on_open_failed(endpoint_, error{errc::canceled, "canceled"});  // deletes this
    } else if (!token) {
      keeper_.on_open_failed(endpoint_, token.error());  // deletes this
    } else {
      start(std::move(*token));
    }
  }

  void read_next() {
    reading_ = true;
    begin_op();
    call_->Read(&response_, &read_op_);
  }

  void on_start(bool ok) {
    if (!ok) {
      broken_ = true;
      maybe_finish();
      return;
    }
    started_ = true;
    read_next();
    if (send_wanted_) {
      send_wanted_ = false;
      send();
    }
  }

  void on_write(bool ok) {
    writing_ = false;
    if (!ok) {
      broken_ = true;
      cancel();
    }
    maybe_finish();
  }

  void on_read(bool ok) {
    reading_ = false;
    if (!ok) {
      broken_ = true;
      maybe_finish();
      return;
    }
    answered_ = true;
    keeper_.on_answer(response_.ttl());
    if (broken_) {
      maybe_finish();
    } else {
      read_next();
    }
  }

  void maybe_finish() {
    if (!broken_ || finishing_ || reading_ || writing_) {
      return;
    }
    finishing_ = true;
    begin_op();
    call_->Finish(&status_, &finish_op_);
  }

  void on_finish(bool) {
    const grpc::Status status = status_;
    const bool answered = answered_;
    keeper_.on_call_end(status, answered);  // deletes this
  }

  lease_keeper& keeper_;
  const std::size_t endpoint_;
  std::string token_;
  bool authenticating_ = false;
  bool canceled_ = false;  // canceled while authenticating
  grpc::ClientContext auth_context_;
  etcdserverpb::AuthenticateRequest auth_request_;
  etcdserverpb::AuthenticateResponse auth_response_;
  grpc::Status auth_status_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::AuthenticateResponse>> auth_;
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<etcdserverpb::LeaseKeepAliveRequest, etcdserverpb::LeaseKeepAliveResponse>>
      call_;
  etcdserverpb::LeaseKeepAliveRequest request_;
  etcdserverpb::LeaseKeepAliveResponse response_;
  grpc::Status status_;
  bool started_ = false;
  bool send_wanted_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool broken_ = false;
  bool finishing_ = false;
  bool answered_ = false;

  member_operation<keep_alive_call, &keep_alive_call::on_authenticated> auth_op_{this};
  member_operation<keep_alive_call, &keep_alive_call::on_start> start_op_{this};
  member_operation<keep_alive_call, &keep_alive_call::on_read> read_op_{this};
  member_operation<keep_alive_call, &keep_alive_call::on_write> write_op_{this};
  member_operation<keep_alive_call, &keep_alive_call::on_finish> finish_op_{this};
};

lease_keeper::lease_keeper(std::shared_ptr<connection> conn, std::shared_ptr<completion_loop> loop,
                           std::shared_ptr<lease_keepers> registry, std::int64_t lease_id, keep_alive_options options)
    : conn_(std::move(conn)),
      loop_(std::move(loop)),
      registry_(std::move(registry)),
      lease_id_(lease_id),
      options_(std::move(options)) {}

lease_keeper::~lease_keeper() = default;

void lease_keeper::start() {
  loop_->post([self = shared_from_this()] {
    if (self->ended_) {
      return;
    }
    self->registry_->add(self);
    self->open_call();
  });
}

void lease_keeper::stop(bool wait) {
  if (!wait || loop_->in_loop_thread()) {
    loop_->post([self = shared_from_this()] { self->end_on_loop(error{}); });
    return;
  }
  std::promise<void> done;
  auto ended = done.get_future();
  if (loop_->post([self = shared_from_this(), &done] {
        self->end_on_loop(error{});
        done.set_value();
      })) {
    ended.wait();
  }
}

void lease_keeper::open_call() {
  if (ended_) {
    return;
  }
  call_ = std::make_unique<keep_alive_call>(*this, conn_->preferred());
  call_->open();
  call_->send();  // sent once the call has started
}

void lease_keeper::on_open_failed(std::size_t endpoint, error why) {
  auto self = shared_from_this();
  call_.reset();
  if (ended_) {
    release_if_done();
    return;
  }
  // A member that is down or frozen: try the next one after a backoff (the lease must not end).
  if (why.code() == make_error_code(errc::unavailable) || why.code() == make_error_code(errc::deadline_exceeded)) {
    conn_->failed(endpoint);
    ++failures_;
    schedule(std::chrono::milliseconds{250 << std::min(failures_, 4)});
    return;
  }
  end_on_loop(error{why.code(), "keep-alive of lease " + std::to_string(lease_id_) + ": " + why.detail()});
}

void lease_keeper::on_answer(std::int64_t ttl) {
  failures_ = 0;
  if (ended_) {
    return;
  }
  if (ttl <= 0) {
    end_on_loop(error{informer::errc::not_found, "lease " + std::to_string(lease_id_) + " expired or was revoked"});
    return;
  }
  const auto interval = options_.interval.count() > 0 ? options_.interval : std::chrono::milliseconds{ttl * 1000 / 3};
  schedule(std::max(interval, std::chrono::milliseconds{100}));
}

void lease_keeper::on_call_end(const grpc::Status& status, bool answered) {
  auto self = shared_from_this();
  const std::size_t endpoint = call_->endpoint();
  const std::string token = call_->token();
  call_.reset();
  if (ended_) {
    release_if_done();
    return;
  }
  using grpc::StatusCode;
  const StatusCode code = status.error_code();
  if (conn_->authenticates() && is_token_error(status)) {
    conn_->drop_token(token);  // the next call authenticates afresh, asynchronously
  } else if (code != StatusCode::UNAVAILABLE && code != StatusCode::DEADLINE_EXCEEDED &&
             code != StatusCode::CANCELLED && code != StatusCode::INTERNAL && code != StatusCode::UNKNOWN &&
             code != StatusCode::OK) {
    end_on_loop(to_error(status, "keep-alive of lease " + std::to_string(lease_id_), conn_->at(endpoint).address));
    return;
  }
  if (code == StatusCode::UNAVAILABLE) {
    conn_->failed(endpoint);
  }
  failures_ = answered ? 1 : failures_ + 1;
  schedule(std::chrono::milliseconds{250 << std::min(failures_, 4)});
}

void lease_keeper::schedule(std::chrono::milliseconds delay) {
  if (timer_ != nullptr || ended_) {
    return;  // the pending timer will renew, or reopen the call if it is gone by then
  }
  timer_ = loop_->start_timer(delay, [self = shared_from_this()](bool) {
    self->timer_ = nullptr;
    if (!self->ended_) {
      if (self->call_) {
        self->call_->send();
      } else {
        self->open_call();
      }
    }
    self->release_if_done();
  });
}

void lease_keeper::end_on_loop(error why) {
  if (ended_) {
    return;
  }
  auto self = shared_from_this();
  ended_ = true;
  if (timer_ != nullptr) {
    timer_->cancel();
  }
  if (call_) {
    call_->cancel();
  }
  auto on_end = std::move(options_.on_end);
  options_.on_end = nullptr;
  if (on_end) {
    on_end(why);
  }
  release_if_done();
}

void lease_keeper::release_if_done() {
  if (ended_ && timer_ == nullptr && !call_) {
    registry_->remove(this);
  }
}

void lease_keepers::close_on_loop() {
  std::vector<std::shared_ptr<lease_keeper>> keepers;
  keepers.reserve(live_.size());
  for (auto& [raw, keeper] : live_) {
    keepers.push_back(keeper);
  }
  for (auto& keeper : keepers) {
    keeper->end_on_loop(error{informer::errc::closed, "lease keep-alive: the etcd client was destroyed"});
  }
}

}  // namespace informer::etcd::detail
