// Private to the API-server rooms: the shared state of one `http_client` and the one step every
// request and stream goes through: "with a connection, under this retry policy, do this
// exchange". The step throttles (unary requests), authorizes, takes an idle connection or opens
// one (`tls_connect`), writes the request and reads the answer (whole, or up to its headers for a
// stream) under `rest_config::timeout`; it sends once more on a fresh connection when a reused one
// turns out closed before any answer (idempotent methods), invalidates the token on 401 and waits
// out a 429's Retry-After. With an exec plugin the token comes from it (awaited without blocking);
// a 401 makes the plugin run again for the next request, as client-go does (not this one). A
// client certificate from it gives the pool a new TLS context: new connections present it.
//
// Thread safety: `http_client_state` is thread-safe (immutable parts, atomics, the pool's lock, the
// token source's and limiter's own). Each exchange runs on its connection's strand.
#pragma once

#include "apiserver/detail/connection_pool.hpp"
#include "apiserver/detail/proxy.hpp"
#include "apiserver/detail/tls_connect.hpp"

#include "informer/apiserver/config.hpp"
#include "informer/apiserver/exec_credential.hpp"
#include "informer/apiserver/http_client.hpp"
#include "informer/core/token_bucket.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace informer::detail {

struct http_client_state {
  http_client_state(boost::asio::any_io_executor ex, rest_config c, http_client_options o, server_url u,
                    std::optional<proxy_endpoint> p, boost::asio::ssl::context tls);

  std::string url_for(std::string_view target) const { return "https://" + url.authority + std::string{target}; }

  const boost::asio::any_io_executor executor;
  const rest_config config;
  const http_client_options options;
  const server_url url;
  const std::optional<proxy_endpoint> proxy;  // nullopt: direct connections
  connection_pool pool;
  token_source tokens;
  // The exec plugin's credentials, when the config has a plugin and no token of its own; set by
  // `http_client::create` before the state is shared.
  std::shared_ptr<exec_credential_provider> exec;
  // The plugin's client certificate the pool's TLS context presents ("" for the config's own).
  informer::mutex exec_cert_mu;
  std::string exec_cert INFORMER_GUARDED_BY(exec_cert_mu);
  const std::unique_ptr<token_bucket> limiter;  // null: unlimited

  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> requests_sent{0};
  std::atomic<std::uint64_t> retries_after_429{0};
  std::atomic<std::uint64_t> throttled{0};
};

using request_message = boost::beast::http::request<boost::beast::http::string_body>;
using stream_parser = boost::beast::http::response_parser<boost::beast::http::buffer_body>;

/// How much of the answer one exchange reads.
enum class answer_part {
  whole,  ///< status, headers and the whole body (up to `exchange_policy::max_body_size`)
  head,   ///< status and headers; the body only for a non-2xx answer (bounded), else left to a stream
};

/// How the step treats one request: what it retries besides a stale reused connection, and how
/// much of an answer it accepts.
struct exchange_policy {
  bool throttle = false;            ///< pass the client-side limiter first, before every attempt
  int max_retries_after_429 = 0;    ///< 429 answers with Retry-After waited out and sent again
  std::uint64_t max_body_size = 0;  ///< for `answer_part::whole`: larger bodies fail with body_limit
};

/// The outcome. On success (2xx) `connection` is the one that answered, left to the caller with
/// `answer_part::head` (the stream reads on with `parser`); with `whole` it is back in the pool
/// already. On a non-2xx answer `error` is the Status it stands for and `response` is the answer.
struct exchange_outcome {
  informer::error error{};
  http_response response{};
  connection_ptr connection{};
  std::unique_ptr<stream_parser> parser{};
};

/// The step (see the file comment). `what` ("GET https://...") prefixes error details; the
/// Authorization header is the caller's when `caller_authorization`, else the current token's.
boost::asio::awaitable<exchange_outcome> perform_exchange(std::shared_ptr<http_client_state> s, request_message req,
                                                          bool caller_authorization, answer_part part,
                                                          exchange_policy policy, std::string what);

}  // namespace informer::detail
