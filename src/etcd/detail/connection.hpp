// What every call of a client shares: the endpoints with their gRPC channels and stubs, the choice
// of endpoint (failover), the authentication token, and the synchronous call path with its retry
// rules. Also the mapping of gRPC statuses to the project's errors.
//
// Thread safety: `connection` is thread-safe. Endpoints and options are immutable after `create`;
// the preferred endpoint is atomic; the token is guarded by a mutex.
#pragma once

#include "informer/core/mutex.hpp"
#include "informer/etcd/client.hpp"

#include "etcd/rpc.grpc.pb.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace informer::etcd::detail {

/// One endpoint: its channel and stubs (gRPC stubs are thread-safe).
struct endpoint {
  std::string address;  ///< host:port, as dialed
  bool tls = false;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Auth::Stub> auth;
};

/// Whether a call may be repeated on another endpoint after the connection dropped under it. Reads
/// may; writes only when the call surely never left (the channel was not connected).
enum class call_kind { read, write };

class connection {
public:
  using call_function = std::function<grpc::Status(endpoint&, grpc::ClientContext&)>;

  static detailed_result<std::shared_ptr<connection>> create(client_options options);

  const client_options& options() const noexcept { return options_; }
  std::size_t size() const noexcept { return endpoints_.size(); }
  endpoint& at(std::size_t index) { return *endpoints_[index]; }

  /// The endpoint to try first: the last one that answered.
  std::size_t preferred() const noexcept { return preferred_.load(); }
  void prefer(std::size_t index) noexcept { preferred_.store(index); }
  /// `index` failed: if it is the preferred endpoint, prefer the next one.
  void failed(std::size_t index) noexcept;

  bool authenticates() const noexcept { return !options_.username.empty(); }

  /// The token to send to endpoint `index`, authenticating there first if there is none yet; "" when
  /// no username is configured or etcd has authentication disabled. Blocks for the round trip.
  detailed_result<std::string> token(std::size_t index);
  /// Drops `stale` (unless another thread already replaced it) and authenticates again.
  detailed_result<std::string> refresh_token(std::size_t index, const std::string& stale);

  // The non-blocking pieces of the above, for asynchronous calls (which send their own
  // Authenticate request and must not wait for a round trip on the caller's thread).

  /// The token to send when it is known without a round trip ("" without a username, or when etcd
  /// has authentication disabled); nullopt when an Authenticate call must come first.
  std::optional<std::string> cached_token();
  /// Forgets `stale` unless another call already replaced it; then `cached_token` is nullopt.
  void drop_token(const std::string& stale);
  /// The Authenticate request for the configured user.
  etcdserverpb::AuthenticateRequest authenticate_request() const;
  /// Records the answer of an Authenticate call to endpoint `index`: the token, or "" when etcd has
  /// authentication disabled, or the error.
  detailed_result<std::string> finish_authenticate(std::size_t index, const grpc::Status& status,
                                                   const etcdserverpb::AuthenticateResponse& response);

  /// Runs a unary call with the deadline, the token, failover and one re-authentication; see the
  /// file comment of informer/etcd/client.hpp. `what` names the call in error messages.
  error unary(std::string_view what, call_kind kind, const call_function& call);

  /// Adds the token metadata (if any) for a call or stream.
  static void attach_token(grpc::ClientContext& context, const std::string& token);

private:
  enum class readiness { ready, failing, not_connected };

  connection() = default;
  readiness wait_ready(std::size_t index);
  detailed_result<std::string> authenticate(std::size_t index);

  client_options options_;
  std::vector<std::unique_ptr<endpoint>> endpoints_;
  std::atomic<std::size_t> preferred_{0};

  informer::mutex mutex_;
  std::string token_ INFORMER_GUARDED_BY(mutex_);           // "" until authenticated
  bool auth_disabled_ INFORMER_GUARDED_BY(mutex_) = false;  // etcd said authentication is not enabled
};

/// The error for a failed gRPC call: the code mapped as in informer/etcd/errors.hpp, the detail
/// "<what> at <address>: <etcd's message>".
error to_error(const grpc::Status& status, std::string_view what, std::string_view address);

/// etcd says the token is missing, invalid or stale: worth authenticating again.
bool is_token_error(const grpc::Status& status);

/// `key` (and the range end) quoted for messages, non-printable bytes escaped, long keys cut.
std::string describe_range(std::string_view key, std::string_view range_end = {});

}  // namespace informer::etcd::detail
