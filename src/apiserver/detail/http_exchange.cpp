#include "apiserver/detail/http_exchange.hpp"

#include "apiserver/detail/completion.hpp"
#include "informer/core/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <chrono>

namespace informer::detail {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using clock = std::chrono::steady_clock;

// Awaiting with this yields (error_code, ...) tuples instead of throwing.
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

bool success(unsigned code) { return code >= 200 && code < 300; }

bool idempotent(http::verb method) {
  switch (method) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::put:
    case http::verb::delete_:
    case http::verb::trace: return true;
    default: return false;
  }
}

informer::error status_error(const http_response& r, const std::string& what) {
  const auto e = status_of(r).to_error();
  return {e.code(), e.detail() + " (" + what + ")"};
}

// Sets the Authorization header for `token`.
informer::error set_token(request_message& req, const std::string& token) {
  if (token.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
    return {errc::invalid_config, "the bearer token holds CR, LF or NUL, which would split the Authorization header"};
  }
  if (token.empty()) {
    req.erase(http::field::authorization);
  } else {
    req.set(http::field::authorization, "Bearer " + token);
  }
  return {};
}

// Adds the current bearer token unless the caller set Authorization itself.
informer::error authorize(http_client_state& s, request_message& req, bool caller_authorization) {
  if (caller_authorization) return {};
  auto token = s.tokens.token();
  if (!token) return token.error();
  return set_token(req, *token);
}

// Makes new connections present the plugin's client certificate when it changed.
informer::error use_exec_certificate(http_client_state& s, const exec_credential& c, const std::string& what) {
  if (c.client_certificate.empty()) return {};
  informer::lock_guard lock(s.exec_cert_mu);
  if (s.exec_cert == c.client_certificate) return {};
  rest_config with_cert = s.config;
  with_cert.tls.cert_file.clear();
  with_cert.tls.key_file.clear();
  with_cert.tls.cert_data = c.client_certificate;
  with_cert.tls.key_data = c.client_key;
  auto tls = make_tls_context(with_cert);
  if (!tls) return {tls.error().code(), what + ": the exec plugin's client certificate: " + tls.error().detail()};
  s.pool.replace_tls(std::move(*tls));
  s.exec_cert = c.client_certificate;
  return {};
}

// Adds the exec plugin's token, or sets up its certificate (running the plugin when needed);
// `used` is the credential sent.
asio::awaitable<informer::error> authorize_exec(http_client_state& s, request_message& req, const std::string& what,
                                                exec_credential& used) {
  auto [e, credential] = co_await s.exec->async_get(nothrow);
  if (e) co_return informer::error{e.code(), what + ": getting a credential: " + e.detail()};
  if (auto ce = use_exec_certificate(s, credential, what)) co_return ce;
  used = credential;
  co_return set_token(req, credential.token);
}

// The outcome of one request on one connection.
struct attempt_result {
  informer::error error;
  http_response response;                 // for `head`: status and headers, and the body of a non-2xx answer
  std::unique_ptr<stream_parser> parser;  // `head` only
  bool keep_alive = false;
  // Failed before any byte of an answer arrived: an idempotent request may be sent again.
  bool nothing_received = false;
};

asio::awaitable<void> read_whole(http_client_state& s, connection& c, const request_message& req,
                                 std::uint64_t body_limit, const std::string& what, attempt_result& r) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(body_limit);
  if (req.method() == http::verb::head) parser.skip(true);
  auto [rec, read] = co_await http::async_read(c.stream, c.buffer, parser, nothrow);
  c.tcp().expires_never();
  if (rec == http::error::body_limit) {
    r.error = {rec, what + ": the answer's body is larger than the client accepts (" + std::to_string(body_limit) +
                        " bytes; see http_client_options::max_body_size and max_list_body_size)"};
    co_return;
  }
  if (rec) {
    r.error = {rec, stage_detail(what, "reading the answer failed", rec, s.config.timeout)};
    r.nothing_received = !parser.got_some();
    co_return;
  }
  auto message = parser.release();
  r.keep_alive = message.keep_alive();
  r.response.status_code = message.result_int();
  r.response.headers = std::move(static_cast<http::fields&>(message));
  r.response.body = std::move(message.body());
}

asio::awaitable<void> read_head(http_client_state& s, connection& c, const std::string& what, attempt_result& r) {
  r.parser = std::make_unique<stream_parser>();
  r.parser->body_limit(boost::none);  // a watch has no end in sight
  auto [hec, header_bytes] = co_await http::async_read_header(c.stream, c.buffer, *r.parser, nothrow);
  if (hec) {
    c.tcp().expires_never();
    r.error = {hec, stage_detail(what, "reading the answer failed", hec, s.config.timeout)};
    r.nothing_received = !r.parser->got_some();
    co_return;
  }
  r.response.status_code = r.parser->get().result_int();
  r.response.headers = static_cast<const http::fields&>(r.parser->get());
  if (!success(r.response.status_code)) {
    // The error body (a Status) is small; read it, bounded, to report it.
    constexpr std::size_t max_error_body = 1 << 20;
    char chunk[8192];
    while (!r.parser->is_done() && r.response.body.size() < max_error_body) {
      auto& body = r.parser->get().body();
      body.data = chunk;
      body.size = sizeof chunk;
      auto [ec, n] = co_await http::async_read_some(c.stream, c.buffer, *r.parser, nothrow);
      r.response.body.append(chunk, sizeof chunk - body.size);
      if (ec && ec != http::error::need_buffer) break;
    }
  }
  c.tcp().expires_never();
}

// One request and (part of) its answer on `c`, on the connection's strand.
asio::awaitable<attempt_result> attempt(std::shared_ptr<http_client_state> s, connection* c, const request_message* req,
                                        clock::time_point deadline, bool fresh, answer_part part,
                                        std::uint64_t body_limit, std::string what) {
  attempt_result r;
  c->expires_at(deadline);
  if (fresh) {
    const connect_route route{.proxy = s->proxy ? &*s->proxy : nullptr, .user_agent = s->config.user_agent};
    r.error =
        co_await tls_connect(c->stream, s->url, s->config.tls, route, s->config.timeout, what, s->connections_opened);
    if (r.error) co_return r;
  }
  ++s->requests_sent;
  auto [wec, written] = co_await http::async_write(c->stream, *req, nothrow);
  if (wec) {
    c->tcp().expires_never();
    r.error = {wec, stage_detail(what, "sending the request failed", wec, s->config.timeout)};
    r.nothing_received = true;
    co_return r;
  }
  if (part == answer_part::whole) {
    co_await read_whole(*s, *c, *req, body_limit, what, r);
  } else {
    co_await read_head(*s, *c, what, r);
  }
  co_return r;
}

// Sends `req` on an idle connection or a new one; once more on a new one when a reused connection
// turns out closed before any answer (idempotent requests only). Returns the connection used.
asio::awaitable<std::pair<attempt_result, connection_ptr>> on_a_connection(const std::shared_ptr<http_client_state>& s,
                                                                           const request_message& req, answer_part part,
                                                                           std::uint64_t body_limit,
                                                                           const std::string& what) {
  const auto deadline = s->config.timeout > std::chrono::nanoseconds::zero() ? clock::now() + s->config.timeout
                                                                             : clock::time_point::max();
  for (int tries = 0;; ++tries) {
    connection_ptr c = tries == 0 ? s->pool.take_idle() : nullptr;
    const bool reused = c != nullptr;
    if (!c) c = s->pool.make_connection();
    auto [ep, r] = co_await asio::co_spawn(
        c->strand, attempt(s, c.get(), &req, deadline, !reused, part, body_limit, what), nothrow);
    if (ep) r.error = error_from_exception(ep, what);
    if (r.error && reused && r.nothing_received && idempotent(req.method()) &&
        r.error.code() != beast::error::timeout) {
      s->pool.count_stale();
      log(log_level::debug, "http_client", what + ": a reused connection was closed by the server; sending again");
      release(std::move(c));
      continue;
    }
    co_return std::pair{std::move(r), std::move(c)};
  }
}

}  // namespace

http_client_state::http_client_state(asio::any_io_executor ex, rest_config c, http_client_options o, server_url u,
                                     std::optional<proxy_endpoint> p, asio::ssl::context tls)
    : executor(std::move(ex)),
      config(std::move(c)),
      options(o),
      url(std::move(u)),
      proxy(std::move(p)),
      pool(executor, std::move(tls), {.max_idle = options.max_idle_connections, .idle_timeout = options.idle_timeout}),
      tokens(token_source_options{.token = config.bearer_token,
                                  .file = config.bearer_token_file,
                                  .check_interval = config.token_file_check_interval}),
      limiter(config.qps > 0 ? std::make_unique<token_bucket>(
                                   token_bucket_options{.qps = config.qps, .burst = config.burst, .now = {}})
                             : nullptr) {}

asio::awaitable<exchange_outcome> perform_exchange(std::shared_ptr<http_client_state> s, request_message req,
                                                   bool caller_authorization, answer_part part, exchange_policy policy,
                                                   std::string what) {
  asio::steady_timer timer(s->executor);
  for (int retries = 0;; ++retries) {
    if (policy.throttle && s->limiter) {
      const auto delay = s->limiter->reserve();
      // Every limited attempt is observed, an undelayed one as 0, as client-go does.
      if (s->options.metrics.on_rate_limiter_wait) s->options.metrics.on_rate_limiter_wait(req.method(), delay);
      if (delay > std::chrono::nanoseconds::zero()) {
        ++s->throttled;
        timer.expires_after(delay);
        co_await timer.async_wait(nothrow);
      }
    }
    exec_credential sent;  // the plugin's credential used this time, if any
    if (!caller_authorization && s->exec) {
      if (auto e = co_await authorize_exec(*s, req, what, sent)) co_return exchange_outcome{.error = e};
    } else if (auto e = authorize(*s, req, caller_authorization)) {
      co_return exchange_outcome{.error = e};
    }
    const auto sent_at = std::chrono::steady_clock::now();
    auto [r, c] = co_await on_a_connection(s, req, part, policy.max_body_size, what);
    if (s->options.metrics.on_request) {
      s->options.metrics.on_request(req.method(), r.error ? 0u : r.response.status_code,
                                    std::chrono::steady_clock::now() - sent_at);
    }
    if (r.error) {
      release(std::move(c));
      co_return exchange_outcome{.error = std::move(r.error)};
    }
    const bool ok = success(r.response.status_code);
    if (part == answer_part::head) {
      if (ok) {
        co_return exchange_outcome{
            .error = {}, .response = std::move(r.response), .connection = std::move(c), .parser = std::move(r.parser)};
      }
      release(std::move(c));  // the rest of a refused stream is not worth reading
    } else if (r.keep_alive) {
      s->pool.put_idle(std::move(c));
    } else {
      release(std::move(c));
    }
    if (ok) co_return exchange_outcome{.error = {}, .response = std::move(r.response)};
    http_response& response = r.response;
    if (response.status_code == 401) {
      s->tokens.invalidate();  // the token file may have been rotated
      log(log_level::info, "http_client",
          what + ": 401 Unauthorized; the credentials will be read again (token file, plugin) for the next request");
      if (s->exec && (!sent.token.empty() || !sent.client_certificate.empty())) s->exec->invalidate(sent);
    }
    if (response.status_code == 429 && retries < policy.max_retries_after_429) {
      if (const auto wait = status_of(response).retry_after) {
        ++s->retries_after_429;
        if (s->options.metrics.on_retry) s->options.metrics.on_retry(req.method(), response.status_code);
        const auto delay = std::min<std::chrono::nanoseconds>(*wait, s->options.max_retry_after);
        if (log_enabled(log_level::info)) {
          log(log_level::info, "http_client",
              what + ": 429 Too Many Requests; retrying in " +
                  std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(delay).count()) + " ms (retry " +
                  std::to_string(retries + 1) + " of " + std::to_string(policy.max_retries_after_429) + ")");
        }
        timer.expires_after(delay);
        co_await timer.async_wait(nothrow);
        continue;
      }
    }
    auto e = status_error(response, what);
    co_return exchange_outcome{.error = std::move(e), .response = std::move(response)};
  }
}

}  // namespace informer::detail
