#include "etcd/detail/lease_keeper.hpp"

#include <grpcpp/support/async_stream.h>

#include <algorithm>
#include <future>
#include <string>
#include <vector>

namespace informer::etcd::detail {

// One LeaseKeepAlive call: start, a read loop, one write at a time, Finish. Its Finish is its last
// operation; the keeper deletes it from there. Loop thread only.
class keep_alive_call {
public:
  keep_alive_call(lease_keeper& keeper, std::size_t endpoint, std::string token)
      : keeper_(keeper), endpoint_(endpoint), token_(std::move(token)) {}

  void start() {
    connection::attach_token(context_, token_);
    context_.set_wait_for_ready(true);
    request_.set_id(keeper_.lease_id_);
    call_ = keeper_.conn_->at(endpoint_).lease->PrepareAsyncLeaseKeepAlive(&context_, keeper_.loop_->queue());
    begin_op();
    call_->StartCall(&start_op_);
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

  void cancel() { context_.TryCancel(); }
  std::size_t endpoint() const noexcept { return endpoint_; }
  const std::string& token() const noexcept { return token_; }

private:
  void begin_op() { keeper_.loop_->started(); }

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
  const std::string token_;
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
  const std::size_t index = conn_->preferred();
  auto token = conn_->token(index);  // blocks the loop for one round trip when a token is needed
  if (!token) {
    if (token.error().code() == make_error_code(errc::unavailable)) {
      conn_->failed(index);
      ++failures_;
      schedule(std::chrono::milliseconds{250 << std::min(failures_, 4)});
      return;
    }
    end_on_loop(error{token.error().code(),
                      "keep-alive of lease " + std::to_string(lease_id_) + ": " + token.error().detail()});
    return;
  }
  call_ = std::make_unique<keep_alive_call>(*this, index, std::move(*token));
  call_->start();
  call_->send();
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
    if (auto fresh = conn_->refresh_token(endpoint, token); !fresh) {
      end_on_loop(error{fresh.error().code(),
                        "keep-alive of lease " + std::to_string(lease_id_) + ": " + fresh.error().detail()});
      return;
    }
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
