// client::async_range: a Range over gRPC's callback API, with the rules of the synchronous path
// (token, one re-authentication, failover of reads to the next endpoint on UNAVAILABLE, and on
// DEADLINE_EXCEEDED when there are several) written as
// a chain of callbacks instead of a blocking loop.
#include "informer/etcd/client.hpp"

#include "core/detail/async_completion.hpp"
#include "informer/core/mutex.hpp"
#include "etcd/detail/client_state.hpp"
#include "etcd/detail/convert.hpp"

#include <boost/asio/execution/blocking.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/system_executor.hpp>

#include <grpcpp/client_context.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

namespace informer::etcd {

namespace {

namespace asio = boost::asio;

// One asynchronous Range.
//
// Thread safety: the steps (attempt, the Authenticate and Range callbacks) run one at a time, each
// started by the previous one's gRPC callback (the first by the initiating call), so the step state
// needs no lock. `cancel` may come from any thread at any time: `mutex_` guards `context_` (the
// context of the operation in flight, replaced per step) and `cancelled_`.
// Lifetime: `self_` keeps the call alive while a gRPC operation is outstanding; the last step hands
// it to the completion, which first leaves the gRPC thread (see `finish`) and releases it on the
// handler's executor after the handler: the call, the handler and the connection it shares are
// never released on a gRPC thread.
class range_call : public std::enable_shared_from_this<range_call> {
public:
  using handler_type = asio::any_completion_handler<client::range_signature>;
  using completion = informer::detail::async_completion<client::range_signature>;

  range_call(std::shared_ptr<detail::connection> conn, std::string what, etcdserverpb::RangeRequest request,
             handler_type handler, asio::execution_context* target)
      : conn_(std::move(conn)),
        what_(std::move(what)),
        request_(std::move(request)),
        first_(conn_->preferred()),
        // A handler without an executor of its own completes on Asio's system executor. Every
        // completion comes from a gRPC callback (on a gRPC thread) or the initiating call, and is
        // posted through the never-blocking system executor before it reaches the handler's: see
        // `finish`.
        completion_(completion::create(std::move(handler),
                                       asio::require(asio::system_executor(), asio::execution::blocking.never),
                                       informer::detail::delivery::post, target)) {}

  // On the initiating thread, once.
  void start() {
    self_ = shared_from_this();
    completion_->on_cancellation([weak = weak_from_this()](asio::cancellation_type) {
      if (auto call = weak.lock()) {
        call->cancel();
      }
    });
    attempt();
  }

  // Any thread.
  void cancel() {
    informer::lock_guard lock(mutex_);
    cancelled_ = true;
    if (context_) {
      context_->TryCancel();
    }
  }

private:
  // A fresh context for the next operation, or null when the call was canceled meanwhile.
  grpc::ClientContext* new_context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + conn_->options().request_timeout);
    informer::lock_guard lock(mutex_);
    if (cancelled_) {
      return nullptr;
    }
    context_ = std::move(context);
    return context_.get();
  }

  void attempt() {
    const std::size_t count = conn_->size();
    if (tried_ == count) {
      conn_->failed(first_);
      finish(error{errc::unavailable, what_ + ": no etcd endpoint reachable (" + failures_ + ")"}, {});
      return;
    }
    index_ = (first_ + tried_) % count;
    if (auto token = conn_->cached_token()) {
      token_ = std::move(*token);
      send_range();
    } else {
      send_authenticate();
    }
  }

  void next_endpoint(std::string_view why) {
    failures_ += failures_.empty() ? "" : "; ";
    failures_ += conn_->at(index_).address;
    failures_ += ": ";
    failures_ += why;
    ++tried_;
    attempt();
  }

  void send_authenticate() {
    grpc::ClientContext* context = new_context();
    if (context == nullptr) {
      return finish_canceled();
    }
    auth_request_ = conn_->authenticate_request();
    auth_response_.Clear();
    hand_over();
    conn_->at(index_).auth->async()->Authenticate(context, &auth_request_, &auth_response_,
                                                  [this](grpc::Status status) { on_authenticated(status); });
  }

  void on_authenticated(const grpc::Status& status) {
    take_over();
    auto token = conn_->finish_authenticate(index_, status, auth_response_);
    if (!token) {
      if (token.error().code() == make_error_code(errc::unavailable)) {
        return next_endpoint(token.error().detail());
      }
      return finish(token.error(), {});
    }
    token_ = std::move(*token);
    send_range();
  }

  void send_range() {
    grpc::ClientContext* context = new_context();
    if (context == nullptr) {
      return finish_canceled();
    }
    detail::connection::attach_token(*context, token_);
    response_.Clear();
    hand_over();
    conn_->at(index_).kv->async()->Range(context, &request_, &response_,
                                         [this](grpc::Status status) { on_range(status); });
  }

  void on_range(const grpc::Status& status) {
    take_over();
    if (status.ok()) {
      conn_->prefer(index_);
      return finish({}, detail::to_range_result(response_));
    }
    if (!refreshed_ && conn_->authenticates() && detail::is_token_error(status)) {
      refreshed_ = true;
      conn_->drop_token(token_);
      return send_authenticate();
    }
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      return next_endpoint(status.error_message());
    }
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && conn_->size() > 1) {
      conn_->failed(index_);  // as the synchronous calls: a member that answers nothing is skipped
      return next_endpoint("no answer within the request timeout");
    }
    finish(detail::to_error(status, what_, conn_->at(index_).address), {});
  }

  // The step state passes from the thread that starts a gRPC operation to the one that runs its
  // callback. gRPC orders the two, but inside its own (uninstrumented) library, where
  // ThreadSanitizer cannot see it; this release/acquire pair states the same order where it can.
  void hand_over() { steps_.fetch_add(1, std::memory_order_release); }
  void take_over() { steps_.load(std::memory_order_acquire); }

  void finish_canceled() { finish(error{errc::canceled, what_ + ": canceled"}, {}); }

  // The last step, on a gRPC callback thread (or in the initiating call): hands the result, and the
  // call itself, to the completion, which never runs the handler or releases anything here. This
  // call may be the last owner of the client's connection (the client destroyed meanwhile), and a
  // channel destroyed on a thread of gRPC's shared callback queue shuts that queue down and frees
  // it under the very thread that is serving it. Dispatching to the handler's executor would not
  // do: an executor that runs work inline (use_future's, Asio's possibly-blocking system executor)
  // would run the handler, and the release, right here. Hence delivery::post, through Asio's
  // never-blocking system executor, and from there to the handler's.
  void finish(error failure, range_result result) {
    auto self = std::move(self_);
    completion_->complete_releasing(std::move(self), std::move(failure), std::move(result));
  }

  const std::shared_ptr<detail::connection> conn_;
  const std::string what_;
  const etcdserverpb::RangeRequest request_;
  const std::size_t first_;  // the endpoint tried first

  const std::shared_ptr<completion> completion_;

  // Step state (see the class comment).
  std::shared_ptr<range_call> self_;
  std::size_t tried_ = 0;  // endpoints given up on
  std::size_t index_ = 0;  // the endpoint of the current step
  std::string token_;
  bool refreshed_ = false;  // re-authenticated once already
  std::string failures_;
  etcdserverpb::RangeResponse response_;
  etcdserverpb::AuthenticateRequest auth_request_;
  etcdserverpb::AuthenticateResponse auth_response_;
  std::atomic<std::uint64_t> steps_{0};  // see hand_over

  informer::mutex mutex_;
  std::unique_ptr<grpc::ClientContext> context_ INFORMER_GUARDED_BY(mutex_);
  bool cancelled_ INFORMER_GUARDED_BY(mutex_) = false;
};

}  // namespace

void client::async_range_impl(std::string key, std::string range_end, range_options options,
                              asio::any_completion_handler<range_signature> handler, asio::execution_context* target) {
  etcdserverpb::RangeRequest request;
  detail::fill_range_request(request, key, range_end, options);
  auto call = std::make_shared<range_call>(state_->conn, "Range " + detail::describe_range(key, range_end),
                                           std::move(request), std::move(handler), target);
  call->start();
}

}  // namespace informer::etcd
