// informer/apiserver/http_client.hpp
//
// HTTP/1.1 over TLS to one kube-apiserver, as a `rest_config` (config.hpp) describes it. The layer
// under the API-server lister-watcher and the REST client: it knows connections, credentials,
// throttling and Kubernetes' error bodies, not resources.
//
// - TLS (OpenSSL through Boost.Asio): the server's certificate is verified against the configured
//   CA (each of its certificates is a trust anchor, an intermediate too, as in Go's verifier) or
//   the system's trust store, and its name against the URL's host or `tls.server_name`
//   (DNS name or IP address), unless `insecure_skip_tls_verify` is set; TLS 1.2 at least. Client
//   certificates and bearer tokens (fixed, from a file re-read on change, or from an exec
//   credential plugin run on demand: exec_credential.hpp) authenticate. A plugin's client
//   certificate is presented by the connections opened after it was obtained; idle connections
//   made with an earlier one are closed.
// - Through an HTTP proxy (`rest_config::proxy`: explicit, or HTTPS_PROXY/NO_PROXY as Go reads
//   them), each connection is a CONNECT tunnel and TLS runs inside it, end to end with the server.
// - Connections are kept alive and reused: idle ones wait in a small pool per client (closed ones
//   are noticed before reuse; an idempotent request that fails on a reused connection before any
//   answer arrives is sent once more on a fresh one).
// - Unary requests (`async_request`) pass a client-side token bucket (`rest_config::qps`/`burst`),
//   are bounded by `rest_config::timeout`, and a 429 answer with Retry-After is waited out and
//   retried (at most `max_retries_after_429` times).
// - Streams (`async_open_stream`, for watches) are not throttled; their body is read piece by
//   piece as the server sends it, with no time bound, until the server ends it or `cancel()`.
//
// Errors (`informer::error`):
// - a non-2xx answer: the Kubernetes `Status` in its body through `status::from_json(...)
//   .to_error()` (401 -> errc::unauthorized, 403 -> forbidden, 404 -> not_found, 410 -> expired,
//   ...; a body that is not a Status is read as a status with the HTTP code, reason and text), with
//   the method and URL appended to the detail. `async_request` still hands over the response.
// - transport failures keep their codes (boost::asio::error::connection_refused, ssl errors such as
//   "certificate verify failed", boost::beast::error::timeout) with a detail naming the URL and the
//   step (connect, TLS handshake with OpenSSL's verification reason, send, receive);
// - a proxy that refuses the tunnel: its status as errc::unauthorized (407, or 401), forbidden (403),
//   server_error (5xx) or api_error, with a detail naming the proxy (never its credentials);
// - a bearer token file that cannot be read: its system error;
// - an exec plugin that fails (exec_credential.hpp): its error, the detail prefixed with the
//   request. A 401 answer fails the request (errc::unauthorized) and makes the next request run
//   the plugin again, as client-go does.
//
// Threads: all I/O runs on the executor given to `create` (any number of threads may run it; each
// connection has its own strand). No thread is started. Completion handlers run on their
// associated executor (for `use_awaitable`: the coroutine's), never inside the initiating call.
// A handler's cancellation slot (any type) completes a pending `async_request` or
// `async_open_stream` at once with `operation_aborted` (the exchange finishes unseen), and ends a
// stream during `async_read_some`, as `cancel()` does.
//
// Thread safety: `http_client` is thread-safe; copies are handles to the same connections,
// limiter and statistics. An `http_stream` serves one reader (one `async_read_some` at a time);
// `cancel()` may be called from any thread.
//
// Lifetimes: pending operations and open streams keep the client's shared state alive. Destroy
// clients and streams before the execution context they run on.
#pragma once

#include "informer/apiserver/config.hpp"
#include "informer/core/error.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace informer {

namespace detail {
struct http_client_state;  // connections, TLS context, limiter, token, counters (detail/http_exchange.hpp)
}  // namespace detail

/// An answer: status code, header fields and (for `async_request`) the whole body.
struct http_response {
  unsigned status_code = 0;
  boost::beast::http::fields headers{};
  std::string body{};
};

/// Observation points of unary requests and stream opens (informer/metrics/http_client_metrics.hpp
/// wires them to a registry); each may be empty. Called on the client's executor, without locks;
/// they must be quick and must not throw.
struct http_client_metrics {
  /// One attempt ended: `status` is the answer's code, 0 when none came (connect or TLS failure,
  /// cut, timeout); `latency` runs from sending (connecting included) to the answer's head for
  /// streams, to its whole body otherwise.
  std::function<void(boost::beast::http::verb verb, unsigned status, std::chrono::nanoseconds latency)> on_request;
  /// The client-side limiter (when `qps` > 0) let an attempt through after `wait` (0: at once).
  /// Called for every attempt it limits, as client-go observes its rate-limiter latency.
  std::function<void(boost::beast::http::verb verb, std::chrono::nanoseconds wait)> on_rate_limiter_wait;
  /// A 429 answer is being retried after its Retry-After.
  std::function<void(boost::beast::http::verb verb, unsigned status)> on_retry;
};

/// Transport settings a kubeconfig does not carry.
struct http_client_options {
  /// Idle keep-alive connections kept for reuse; more are closed when returned.
  std::size_t max_idle_connections = 16;
  /// An idle connection older than this is closed instead of reused.
  std::chrono::nanoseconds idle_timeout = std::chrono::seconds(90);
  /// Retries of one request after 429 answers that carry Retry-After (client-go's 10).
  int max_retries_after_429 = 10;
  /// Upper bound of one Retry-After wait.
  std::chrono::nanoseconds max_retry_after = std::chrono::seconds(60);
  /// Largest answer body `async_request` accepts, so that a broken or hostile server cannot make
  /// the client allocate without bound. An object is at most ~1.5 MiB in etcd (a few times that as
  /// JSON), so 64 MiB is ample for everything but lists. A larger body fails the request with
  /// `boost::beast::http::error::body_limit`, naming the limit.
  std::uint64_t max_body_size = std::uint64_t{64} << 20;
  /// The same for requests marked `http_request_options::list`: an unpaged LIST (the reflector's
  /// relist at a known resourceVersion is never paged) of 150,000 pods is about 1.4 GB as JSON.
  /// (Before lists were told apart, every answer had this limit; a list sent through the
  /// five-argument `async_request` now gets `max_body_size`.)
  std::uint64_t max_list_body_size = std::uint64_t{2} << 30;
  /// Most bytes one `http_stream::async_read_some` hands over.
  std::size_t stream_read_size = 64 * 1024;
  http_client_metrics metrics{};
};

/// Settings of one `async_request`.
struct http_request_options {
  /// The answer is a collection: its body may reach `http_client_options::max_list_body_size`
  /// instead of `max_body_size`.
  bool list = false;
};

/// Counters since the client was created (copies share them).
struct http_client_stats {
  std::uint64_t connections_opened = 0;  ///< TCP connections established
  std::uint64_t requests_sent = 0;       ///< requests written, retries and streams included
  std::uint64_t connections_reused = 0;  ///< requests sent on a kept-alive connection
  std::uint64_t stale_connections = 0;   ///< idle connections found closed or too old, dropped
  std::uint64_t retries_after_429 = 0;   ///< waits for Retry-After
  std::uint64_t throttled = 0;           ///< requests the client-side limiter delayed
  std::size_t idle_connections = 0;      ///< in the pool now
};

/// The body of one streamed answer (a watch), read as it arrives.
class http_stream {
public:
  using read_signature = void(informer::error, std::string);

  virtual ~http_stream() = default;

  /// The answer's status code and headers (2xx; the body is read with `async_read_some`).
  virtual const http_response& response() const noexcept = 0;

  /// Completes with the next bytes of the body (never empty), as the server sent them; chunk
  /// boundaries are not preserved. Errors: `errc::end_of_stream` when the server ended the body,
  /// `boost::asio::error::operation_aborted` after `cancel()`, transport errors (e.g. the
  /// connection dropped mid-body) otherwise. After an error every later read fails the same way.
  template <class CompletionToken>
  auto async_read_some(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, read_signature>(
        [this](auto handler) { read_impl(std::move(handler)); }, token);
  }

  /// Ends the stream from any thread: a pending read completes promptly with operation_aborted,
  /// the connection is closed.
  virtual void cancel() = 0;

protected:
  virtual void read_impl(boost::asio::any_completion_handler<read_signature> handler) = 0;
};

class http_client {
public:
  using request_signature = void(informer::error, http_response);
  using stream_signature = void(informer::error, std::shared_ptr<http_stream>);

  /// Checks `config` (URL, TLS material through `load_tls_pem`, qps/burst, the proxy) and prepares
  /// the TLS context; picks the proxy (reading the environment when `proxy.from_environment`);
  /// connects on first use. Errors: `errc::invalid_url` for a URL that is not
  /// https://host[:port][/prefix], `errc::invalid_argument` for qps > 0 with burst < 1;
  /// `errc::invalid_config` for a proxy URL that is malformed or not http:// (naming its origin:
  /// the field or the environment variable); those of `load_tls_pem`.
  static detailed_result<http_client> create(boost::asio::any_io_executor executor, rest_config config,
                                             http_client_options options = {});

  boost::asio::any_io_executor get_executor() const;
  const rest_config& config() const;

  /// Sends one request and reads the whole answer. `path_and_query` starts with '/' and is
  /// appended to the server URL's prefix. `headers` are sent as given; Host, User-Agent,
  /// Authorization (with a token), Accept (application/json) and, with a body, Content-Type
  /// (application/json) are added when absent. Completes with the answer, and an error for a
  /// non-2xx status or a failure (see the file comment; the response is empty on transport
  /// failures).
  template <class CompletionToken>
  auto async_request(boost::beast::http::verb method, std::string path_and_query, boost::beast::http::fields headers,
                     std::string body, CompletionToken&& token) {
    return async_request(method, std::move(path_and_query), std::move(headers), std::move(body), http_request_options{},
                         std::forward<CompletionToken>(token));
  }
  /// As above, with per-request settings.
  template <class CompletionToken>
  auto async_request(boost::beast::http::verb method, std::string path_and_query, boost::beast::http::fields headers,
                     std::string body, http_request_options options, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, request_signature>(
        [state = state_, options](auto handler, boost::beast::http::verb m, std::string p, boost::beast::http::fields h,
                                  std::string b) {
          start_request(state, m, std::move(p), std::move(h), std::move(b), options, std::move(handler));
        },
        token, method, std::move(path_and_query), std::move(headers), std::move(body));
  }

  /// Sends a GET and completes once the answer's headers are in: with a stream for a 2xx answer,
  /// or with the error a non-2xx answer stands for (its body read first). Not throttled; bounded
  /// by `rest_config::timeout` only until the headers arrive.
  template <class CompletionToken>
  auto async_open_stream(std::string path_and_query, boost::beast::http::fields headers, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, stream_signature>(
        [state = state_](auto handler, std::string p, boost::beast::http::fields h) {
          start_stream(state, std::move(p), std::move(h), std::move(handler));
        },
        token, std::move(path_and_query), std::move(headers));
  }

  /// A snapshot of the counters.
  http_client_stats stats() const;

  /// Closes the idle connections (the next request connects afresh).
  void close_idle_connections();

private:
  using state = detail::http_client_state;

  explicit http_client(std::shared_ptr<state> s) : state_(std::move(s)) {}

  static void start_request(const std::shared_ptr<state>& s, boost::beast::http::verb method,
                            std::string path_and_query, boost::beast::http::fields headers, std::string body,
                            http_request_options options,
                            boost::asio::any_completion_handler<request_signature> handler);
  static void start_stream(const std::shared_ptr<state>& s, std::string path_and_query,
                           boost::beast::http::fields headers,
                           boost::asio::any_completion_handler<stream_signature> handler);

  std::shared_ptr<state> state_;
};

}  // namespace informer
