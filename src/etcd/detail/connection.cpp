#include "etcd/detail/connection.hpp"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

namespace informer::etcd::detail {

namespace {

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

detailed_result<std::string> read_file(const std::string& path, std::string_view role) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return error{errc::invalid_options, "cannot read the " + std::string{role} + " '" + path + "'"};
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int to_millis(std::chrono::milliseconds d, int floor) {
  return static_cast<int>(std::clamp<std::int64_t>(d.count(), floor, std::numeric_limits<int>::max()));
}

struct parsed_endpoint {
  std::string address;
  bool tls = false;
};

detailed_result<parsed_endpoint> parse_endpoint(std::string_view text, bool tls_files_given) {
  parsed_endpoint out;
  std::string_view rest = text;
  if (rest.starts_with("https://")) {
    out.tls = true;
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.find("://") != std::string_view::npos) {
    return error{errc::invalid_options,
                 "endpoint '" + std::string{text} + "': only http:// and https:// are supported"};
  } else {
    out.tls = tls_files_given;
  }
  while (rest.ends_with('/')) {
    rest.remove_suffix(1);
  }
  const auto colon = rest.rfind(':');
  const auto bracket = rest.rfind(']');
  if (rest.empty() || colon == std::string_view::npos || colon + 1 == rest.size() ||
      (bracket != std::string_view::npos && bracket > colon) || rest.find('/') != std::string_view::npos) {
    return error{errc::invalid_options,
                 "endpoint '" + std::string{text} + "' is not of the form [http[s]://]host:port"};
  }
  out.address = std::string{rest};
  return out;
}

}  // namespace

detailed_result<std::shared_ptr<connection>> connection::create(client_options options) {
  if (options.endpoints.empty()) {
    return error{errc::invalid_options, "no etcd endpoint given"};
  }
  const tls_options& tls = options.tls;
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return error{errc::invalid_options, "tls.cert_file and tls.key_file go together: give both or neither"};
  }
  if (options.username.empty() && !options.password.empty()) {
    return error{errc::invalid_options, "a password was given without a username"};
  }
  const bool tls_files_given = !tls.ca_file.empty() || !tls.cert_file.empty();

  std::shared_ptr<grpc::ChannelCredentials> secure;
  auto secure_credentials = [&]() -> detailed_result<std::shared_ptr<grpc::ChannelCredentials>> {
    if (secure) {
      return secure;
    }
    grpc::SslCredentialsOptions ssl;
    if (!tls.ca_file.empty()) {
      auto ca = read_file(tls.ca_file, "CA file (tls.ca_file)");
      if (!ca) {
        return ca.error();
      }
      ssl.pem_root_certs = std::move(*ca);
    }
    if (!tls.cert_file.empty()) {
      auto cert = read_file(tls.cert_file, "client certificate (tls.cert_file)");
      if (!cert) {
        return cert.error();
      }
      auto key = read_file(tls.key_file, "client key (tls.key_file)");
      if (!key) {
        return key.error();
      }
      ssl.pem_cert_chain = std::move(*cert);
      ssl.pem_private_key = std::move(*key);
    }
    secure = grpc::SslCredentials(ssl);
    return secure;
  };

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, to_millis(options.keepalive_time, 1000));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, to_millis(options.keepalive_timeout, 1000));
  // A watch can stay quiet for hours: keep pinging so a dead peer is noticed.
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // gRPC's "minimum reconnect backoff" is in fact the timeout of one connection attempt.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, to_millis(options.dial_timeout, 100));
  // Reconnect soon after a restart (gRPC's defaults back off up to two minutes).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);

  std::shared_ptr<connection> conn{new connection};
  for (const auto& text : options.endpoints) {
    auto parsed = parse_endpoint(text, tls_files_given);
    if (!parsed) {
      return parsed.error();
    }
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    if (parsed->tls) {
      auto creds = secure_credentials();
      if (!creds) {
        return creds.error();
      }
      credentials = *creds;
    } else {
      credentials = grpc::InsecureChannelCredentials();
    }
    auto ep = std::make_unique<endpoint>();
    ep->address = parsed->address;
    ep->tls = parsed->tls;
    ep->channel = grpc::CreateCustomChannel(ep->address, credentials, args);
    ep->kv = etcdserverpb::KV::NewStub(ep->channel);
    ep->watch = etcdserverpb::Watch::NewStub(ep->channel);
    ep->lease = etcdserverpb::Lease::NewStub(ep->channel);
    ep->auth = etcdserverpb::Auth::NewStub(ep->channel);
    conn->endpoints_.push_back(std::move(ep));
  }
  conn->options_ = std::move(options);
  return conn;
}

void connection::failed(std::size_t index) noexcept {
  std::size_t expected = index;
  preferred_.compare_exchange_strong(expected, (index + 1) % endpoints_.size());
}

void connection::attach_token(grpc::ClientContext& context, const std::string& token) {
  if (!token.empty()) {
    context.AddMetadata("token", token);
  }
}

connection::readiness connection::wait_ready(std::size_t index) {
  grpc::Channel& channel = *endpoints_[index]->channel;
  auto state = channel.GetState(true);
  if (state == GRPC_CHANNEL_READY) {
    return readiness::ready;
  }
  const auto deadline = std::chrono::system_clock::now() + options_.dial_timeout;
  bool saw_failure = false;
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE) {
      saw_failure = true;
      if (endpoints_.size() > 1) {
        return readiness::failing;  // another endpoint may be up: do not wait for this one
      }
    }
    if (state == GRPC_CHANNEL_SHUTDOWN) {
      return readiness::failing;
    }
    if (!channel.WaitForStateChange(state, deadline)) {
      // A channel that has failed fails a call at once, with the reason (refused, TLS, ...).
      return saw_failure ? readiness::failing : readiness::not_connected;
    }
    state = channel.GetState(true);
  }
  return readiness::ready;
}

etcdserverpb::AuthenticateRequest connection::authenticate_request() const {
  etcdserverpb::AuthenticateRequest request;
  request.set_name(options_.username);
  request.set_password(options_.password);
  return request;
}

detailed_result<std::string> connection::authenticate(std::size_t index) {
  endpoint& ep = *endpoints_[index];
  const etcdserverpb::AuthenticateRequest request = authenticate_request();
  etcdserverpb::AuthenticateResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
  const grpc::Status status = ep.auth->Authenticate(&context, request, &response);
  return finish_authenticate(index, status, response);
}

detailed_result<std::string> connection::finish_authenticate(std::size_t index, const grpc::Status& status,
                                                             const etcdserverpb::AuthenticateResponse& response) {
  informer::lock_guard lock(mutex_);
  if (status.ok()) {
    token_ = response.token();
    auth_disabled_ = false;
    return token_;
  }
  if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
      contains(status.error_message(), "authentication is not enabled")) {
    // As etcd's Go client: credentials for a server without auth are no error.
    token_.clear();
    auth_disabled_ = true;
    return std::string{};
  }
  return to_error(status, "authenticating as user '" + options_.username + "'", endpoints_[index]->address);
}

std::optional<std::string> connection::cached_token() {
  if (!authenticates()) {
    return std::string{};
  }
  informer::lock_guard lock(mutex_);
  if (!token_.empty() || auth_disabled_) {
    return token_;
  }
  return std::nullopt;
}

void connection::drop_token(const std::string& stale) {
  informer::lock_guard lock(mutex_);
  if (token_ == stale) {
    token_.clear();
    auth_disabled_ = false;
  }
}

detailed_result<std::string> connection::token(std::size_t index) {
  if (!authenticates()) {
    return std::string{};
  }
  {
    informer::lock_guard lock(mutex_);
    if (!token_.empty() || auth_disabled_) {
      return token_;
    }
  }
  return authenticate(index);
}

detailed_result<std::string> connection::refresh_token(std::size_t index, const std::string& stale) {
  {
    informer::lock_guard lock(mutex_);
    if (!token_.empty() && token_ != stale) {
      return token_;
    }
    token_.clear();
    auth_disabled_ = false;
  }
  return authenticate(index);
}

error connection::unary(std::string_view what, call_kind kind, const call_function& call) {
  const std::size_t count = endpoints_.size();
  const std::size_t first = preferred();
  std::string failures;
  bool tls_failed = false;
  auto note_failure = [&](const endpoint& ep, std::string_view why) {
    tls_failed = tls_failed || ep.tls;
    failures += failures.empty() ? "" : "; ";
    failures += ep.address;
    failures += ": ";
    failures += why;
  };
  for (std::size_t attempt = 0; attempt < count; ++attempt) {
    const std::size_t index = (first + attempt) % count;
    endpoint& ep = *endpoints_[index];
    const readiness ready = wait_ready(index);
    if (ready == readiness::not_connected) {
      note_failure(ep, "no connection within the dial timeout");
      continue;
    }
    auto current = token(index);
    if (!current) {
      if (current.error().code() == make_error_code(errc::unavailable)) {
        note_failure(ep, current.error().detail());
        continue;
      }
      return current.error();
    }
    std::string tok = std::move(*current);
    grpc::Status status;
    for (bool refreshed = false;;) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
      attach_token(context, tok);
      status = call(ep, context);
      if (status.ok()) {
        prefer(index);
        return {};
      }
      if (refreshed || !authenticates() || !is_token_error(status)) {
        break;
      }
      refreshed = true;
      auto fresh = refresh_token(index, tok);
      if (!fresh) {
        return fresh.error();
      }
      tok = std::move(*fresh);
    }
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
        (kind == call_kind::read || ready != readiness::ready)) {
      note_failure(ep, status.error_message());
      continue;
    }
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && count > 1) {
      // A frozen member or a blackholed connection stays "ready" and answers nothing: without
      // this, every later call would start there again and wait out its deadline.
      failed(index);
      if (kind == call_kind::read) {
        note_failure(ep, "no answer within the request timeout");
        continue;
      }
    }
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      failed(index);
    }
    return to_error(status, what, ep.address);
  }
  failed(first);
  std::string detail = std::string{what} + ": no etcd endpoint reachable (" + failures + ")";
  if (tls_failed) {
    detail +=
        "; with TLS, check that tls.ca_file signed the server's certificate and that "
        "tls.cert_file/key_file are given if etcd runs with --client-cert-auth";
  }
  return error{errc::unavailable, std::move(detail)};
}

error to_error(const grpc::Status& status, std::string_view what, std::string_view address) {
  const std::string& message = status.error_message();
  std::string detail =
      std::string{what} + " at " + std::string{address} + ": " + (message.empty() ? "(no message)" : message);
  using grpc::StatusCode;
  switch (status.error_code()) {
    case StatusCode::OK: return {};
    case StatusCode::UNAVAILABLE: return {errc::unavailable, std::move(detail)};
    case StatusCode::DEADLINE_EXCEEDED: return {errc::deadline_exceeded, std::move(detail)};
    case StatusCode::CANCELLED: return {errc::canceled, std::move(detail)};
    case StatusCode::RESOURCE_EXHAUSTED: return {errc::resource_exhausted, std::move(detail)};
    case StatusCode::FAILED_PRECONDITION: return {errc::failed_precondition, std::move(detail)};
    case StatusCode::UNIMPLEMENTED: return {errc::unimplemented, std::move(detail)};
    case StatusCode::UNAUTHENTICATED: return {informer::errc::unauthorized, std::move(detail)};
    case StatusCode::PERMISSION_DENIED: return {informer::errc::forbidden, std::move(detail)};
    case StatusCode::NOT_FOUND: return {informer::errc::not_found, std::move(detail)};
    case StatusCode::ALREADY_EXISTS: return {informer::errc::already_exists, std::move(detail)};
    case StatusCode::OUT_OF_RANGE:
      if (contains(message, "compacted")) {
        return {informer::errc::expired, std::move(detail)};
      }
      if (contains(message, "future revision")) {
        return {informer::errc::resource_version_too_large, std::move(detail)};
      }
      return {informer::errc::bad_request, std::move(detail)};
    case StatusCode::INVALID_ARGUMENT:
      if (contains(message, "authentication failed") || contains(message, "user name is empty") ||
          contains(message, "auth store is old") || contains(message, "user name not found")) {
        if (contains(message, "user name is empty")) {
          detail += " (etcd has authentication enabled: set client_options::username and password)";
        }
        return {informer::errc::unauthorized, std::move(detail)};
      }
      return {informer::errc::bad_request, std::move(detail)};
    default: return {informer::errc::server_error, std::move(detail)};
  }
}

bool is_token_error(const grpc::Status& status) {
  const std::string& message = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED: return true;  // invalid or expired token
    case grpc::StatusCode::INVALID_ARGUMENT:
      return contains(message, "auth store is old") || contains(message, "user name is empty");
    default: return false;
  }
}

std::string describe_range(std::string_view key, std::string_view range_end) {
  auto quote = [](std::string_view bytes) {
    constexpr std::size_t limit = 120;
    std::string out = "'";
    for (std::size_t i = 0; i < bytes.size() && i < limit; ++i) {
      const auto c = static_cast<unsigned char>(bytes[i]);
      if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
        out += static_cast<char>(c);
      } else {
        char buffer[8];
        std::snprintf(buffer, sizeof buffer, "\\x%02x", c);
        out += buffer;
      }
    }
    if (bytes.size() > limit) {
      out += "...";
    }
    out += '\'';
    return out;
  };
  if (range_end.empty()) {
    return quote(key);
  }
  return "[" + quote(key) + ", " + quote(range_end) + ")";
}

}  // namespace informer::etcd::detail
