#include "informer/apiserver/http_client.hpp"

#include "apiserver/detail/completion.hpp"

#include "informer/client/status.hpp"
#include "informer/core/token_bucket.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json/parse.hpp>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <mutex>
#include <optional>
#include <tuple>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace informer {
namespace detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

// Awaiting with this yields (error_code, ...) tuples instead of throwing.
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// The server URL split into what a connection needs.
struct server_url {
  std::string host;       // without IPv6 brackets
  std::string port;
  std::string authority;  // host[:port] as written: the Host header and error messages
  std::string prefix;     // "" or "/some/prefix", no trailing slash
  bool host_is_ip = false;
};

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

detailed_result<server_url> parse_server(const std::string& server) {
  constexpr std::string_view scheme = "https://";
  const auto bad = [&](std::string_view why) {
    return informer::error{errc::invalid_field, "server \"" + server + "\": " + std::string{why}};
  };
  if (!std::string_view{server}.starts_with(scheme)) return bad("only https:// URLs are supported");
  const std::string rest = server.substr(scheme.size());
  const auto slash = rest.find('/');
  server_url u;
  u.authority = rest.substr(0, slash);
  u.prefix = slash == std::string::npos ? std::string{} : rest.substr(slash);
  while (!u.prefix.empty() && u.prefix.back() == '/') u.prefix.pop_back();
  if (u.authority.empty()) return bad("no host");
  if (u.authority.find_first_of("@?#") != std::string::npos || u.prefix.find_first_of("?#") != std::string::npos) {
    return bad("expected https://host[:port][/prefix]");
  }
  std::string port_text;
  if (u.authority.front() == '[') {
    const auto close = u.authority.find(']');
    if (close == std::string::npos) return bad("unterminated IPv6 address");
    u.host = u.authority.substr(1, close - 1);
    const std::string after = u.authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return bad("expected ':' after the IPv6 address");
    port_text = after.empty() ? std::string{} : after.substr(1);
  } else {
    const auto colon = u.authority.rfind(':');
    u.host = u.authority.substr(0, colon);
    port_text = colon == std::string::npos ? std::string{} : u.authority.substr(colon + 1);
  }
  if (u.host.empty()) return bad("no host");
  if (port_text.empty()) port_text = "443";
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
    return bad("invalid port \"" + port_text + "\"");
  }
  u.port = port_text;
  u.host_is_ip = is_ip_address(u.host);
  return u;
}

// One TLS connection. Everything that touches it runs on its strand, except the liveness check
// of an idle connection (a peek at the socket while nobody uses it).
struct connection {
  connection(const asio::any_io_executor& strand_executor, ssl::context& tls)
      : strand(strand_executor), stream(strand_executor, tls) {}

  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream); }

  asio::any_io_executor strand;
  beast::ssl_stream<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  clock::time_point idle_since{};
};
using connection_ptr = std::unique_ptr<connection>;

// True when an idle connection has nothing to read and no end of file: an idle HTTP/1.1 connection
// that became readable was closed by the server (FIN or a TLS close_notify).
bool still_open(connection& c) {
  if (c.buffer.size() != 0 || !c.tcp().socket().is_open()) return false;
  char byte = 0;
  const auto n = ::recv(c.tcp().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Destroys a connection on its strand, after anything queued there for it (a cancelled timer's
// handler) has run.
void release(connection_ptr c) {
  if (!c) return;
  auto strand = c->strand;
  asio::post(strand, [c = std::move(c)]() mutable { c.reset(); });
}

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

bool success(unsigned code) { return code >= 200 && code < 300; }

// The outcome of one request on one connection.
struct exchange_result {
  informer::error error;
  http_response response;
  bool keep_alive = false;
  // Failed before any byte of an answer arrived: an idempotent request may be sent again.
  bool nothing_received = false;
};

// The outcome of opening a stream on one connection.
struct open_result {
  informer::error error;
  http_response head;  // status and headers; the body too when not 2xx
  std::unique_ptr<http::response_parser<http::buffer_body>> parser;
  bool nothing_received = false;
};

}  // namespace

struct http_client_state {
  http_client_state(asio::any_io_executor ex, rest_config c, http_client_options o, server_url u, ssl::context ctx)
      : executor(std::move(ex)),
        config(std::move(c)),
        options(o),
        url(std::move(u)),
        tls(std::move(ctx)),
        tokens(token_source_options{.token = config.bearer_token,
                                    .file = config.bearer_token_file,
                                    .check_interval = config.token_file_check_interval}) {
    if (config.qps > 0) {
      limiter = std::make_unique<token_bucket>(token_bucket_options{.qps = config.qps, .burst = config.burst, .now = {}});
    }
  }

  // Idle connections are destroyed on their strands, after what their last operation left queued.
  ~http_client_state() {
    for (auto& c : idle) release(std::move(c));
  }
  http_client_state(const http_client_state&) = delete;
  http_client_state& operator=(const http_client_state&) = delete;

  std::string url_for(std::string_view target) const { return "https://" + url.authority + std::string{target}; }

  // Where the server's certificate is checked against, for handshake errors.
  std::string trust_description() const {
    if (!config.tls.ca_data.empty()) return "the CA in ca_data";
    if (!config.tls.ca_file.empty()) return "the CA in " + config.tls.ca_file.string();
    return "the system's trust store";
  }

  connection_ptr new_connection() { return std::make_unique<connection>(asio::make_strand(executor), tls); }

  // The most recently used idle connection that is still open; drops the ones that are not.
  connection_ptr take_idle() {
    std::vector<connection_ptr> dropped;
    connection_ptr found;
    {
      std::lock_guard lock(mu);
      const auto now = clock::now();
      while (!idle.empty() && !found) {
        connection_ptr c = std::move(idle.back());
        idle.pop_back();
        if (now - c->idle_since < options.idle_timeout && still_open(*c)) {
          found = std::move(c);
        } else {
          dropped.push_back(std::move(c));
        }
      }
    }
    stale_connections += dropped.size();
    for (auto& c : dropped) release(std::move(c));
    if (found) ++connections_reused;
    return found;
  }

  void put_idle(connection_ptr c) {
    c->idle_since = clock::now();
    connection_ptr dropped;
    {
      std::lock_guard lock(mu);
      if (idle.size() < options.max_idle_connections) {
        idle.push_back(std::move(c));
      } else {
        dropped = std::move(c);
      }
    }
    release(std::move(dropped));
  }

  std::vector<connection_ptr> take_all_idle() {
    std::lock_guard lock(mu);
    return std::exchange(idle, {});
  }

  const asio::any_io_executor executor;
  const rest_config config;
  const http_client_options options;
  const server_url url;
  ssl::context tls;  // not modified after construction: connections share it
  token_source tokens;
  std::unique_ptr<token_bucket> limiter;  // null: unlimited

  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> requests_sent{0};
  std::atomic<std::uint64_t> connections_reused{0};
  std::atomic<std::uint64_t> stale_connections{0};
  std::atomic<std::uint64_t> retries_after_429{0};
  std::atomic<std::uint64_t> throttled{0};

  std::mutex mu;
  std::vector<connection_ptr> idle;  // guarded by mu: most recently used last
};

namespace {

using state_ptr = std::shared_ptr<http_client_state>;

void tune_socket(tcp::socket& socket) {
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  // Notices a peer that vanished without closing (a watch may be silent for minutes).
  socket.set_option(asio::socket_base::keep_alive(true), ignored);
  const int seconds = 30;
  ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &seconds, sizeof seconds);
  ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &seconds, sizeof seconds);
}

std::string stage_detail(const std::string& what, std::string_view stage, const boost::system::error_code& ec,
                         const http_client_state& s) {
  std::string detail = what + ": " + std::string{stage};
  if (ec == beast::error::timeout) {
    detail += " (timeout " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(s.config.timeout).count()) +
              " ms)";
  }
  return detail;
}

// TCP connect and TLS handshake, on the connection's strand. The deadline is already set.
asio::awaitable<informer::error> connect(http_client_state& s, connection& c, const std::string& what) {
  auto& tcp_stream = c.tcp();
  if (s.url.host_is_ip) {
    const tcp::endpoint endpoint{asio::ip::make_address(s.url.host), static_cast<unsigned short>(std::stoi(s.url.port))};
    auto [ec] = co_await tcp_stream.async_connect(endpoint, nothrow);
    if (ec) co_return informer::error{ec, stage_detail(what, "cannot connect", ec, s)};
  } else {
    tcp::resolver resolver(c.strand);
    auto [rec, results] = co_await resolver.async_resolve(s.url.host, s.url.port, nothrow);
    if (rec) co_return informer::error{rec, what + ": cannot resolve " + s.url.host};
    auto [ec, endpoint] = co_await tcp_stream.async_connect(results, nothrow);
    if (ec) co_return informer::error{ec, stage_detail(what, "cannot connect", ec, s)};
  }
  ++s.connections_opened;
  tune_socket(tcp_stream.socket());

  SSL* ssl_handle = c.stream.native_handle();
  const std::string& name = s.config.tls.server_name.empty() ? s.url.host : s.config.tls.server_name;
  const bool name_is_ip = is_ip_address(name);
  if (!name_is_ip) SSL_set_tlsext_host_name(ssl_handle, name.c_str());  // no SNI for IP literals (RFC 6066)
  if (!s.config.tls.insecure_skip_tls_verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                              : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1) co_return informer::error{errc::invalid_field, what + ": cannot verify against name " + name};
  }
  auto [ec] = co_await c.stream.async_handshake(ssl::stream_base::client, nothrow);
  if (ec) {
    std::string detail = stage_detail(what, "TLS handshake failed", ec, s);
    if (const long verify = SSL_get_verify_result(ssl_handle); verify != X509_V_OK) {
      detail += ": " + std::string{X509_verify_cert_error_string(verify)} + " (server certificate checked for " + name +
                " against " + s.trust_description() + ")";
    }
    co_return informer::error{ec, std::move(detail)};
  }
  co_return informer::error{};
}

void set_deadline(connection& c, clock::time_point deadline) {
  if (deadline == clock::time_point::max()) {
    c.tcp().expires_never();
  } else {
    c.tcp().expires_at(deadline);
  }
}

// One request and its whole answer on `c`, on the connection's strand.
asio::awaitable<exchange_result> exchange(state_ptr s, connection* c, const http::request<http::string_body>* req,
                                          clock::time_point deadline, bool fresh, std::string what) {
  exchange_result r;
  set_deadline(*c, deadline);
  if (fresh) {
    r.error = co_await connect(*s, *c, what);
    if (r.error) co_return r;
  }
  ++s->requests_sent;
  auto [wec, written] = co_await http::async_write(c->stream, *req, nothrow);
  if (wec) {
    c->tcp().expires_never();
    r.error = {wec, stage_detail(what, "sending the request failed", wec, *s)};
    r.nothing_received = true;
    co_return r;
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(s->options.max_body_size);
  if (req->method() == http::verb::head) parser.skip(true);
  auto [rec, read] = co_await http::async_read(c->stream, c->buffer, parser, nothrow);
  c->tcp().expires_never();
  if (rec) {
    r.error = {rec, stage_detail(what, "reading the answer failed", rec, *s)};
    r.nothing_received = !parser.got_some();
    co_return r;
  }
  auto message = parser.release();
  r.keep_alive = message.keep_alive();
  r.response.status_code = message.result_int();
  r.response.headers = std::move(static_cast<http::fields&>(message));
  r.response.body = std::move(message.body());
  co_return r;
}

// Sends `req` on an idle connection or a new one; once more on a new one when a reused connection
// turns out closed before any answer (idempotent requests only).
asio::awaitable<exchange_result> send(state_ptr s, const http::request<http::string_body>& req, const std::string& what) {
  const auto deadline = s->config.timeout > std::chrono::nanoseconds::zero() ? clock::now() + s->config.timeout
                                                                              : clock::time_point::max();
  for (int attempt = 0;; ++attempt) {
    connection_ptr c = attempt == 0 ? s->take_idle() : nullptr;
    const bool reused = c != nullptr;
    if (!c) c = s->new_connection();
    auto [ep, r] = co_await asio::co_spawn(c->strand, exchange(s, c.get(), &req, deadline, !reused, what), nothrow);
    if (ep) r.error = error_from_exception(ep, what);
    if (r.error && reused && r.nothing_received && idempotent(req.method()) && r.error.code() != beast::error::timeout) {
      ++s->stale_connections;
      release(std::move(c));
      continue;
    }
    if (!r.error && r.keep_alive) {
      s->put_idle(std::move(c));
    } else {
      release(std::move(c));
    }
    co_return r;
  }
}

http::request<http::string_body> make_request(const http_client_state& s, http::verb method, const std::string& target,
                                              const http::fields& headers, std::string body) {
  http::request<http::string_body> req{method, s.url.prefix + target, 11};
  for (const auto& f : headers) req.insert(f.name_string(), f.value());
  req.set(http::field::host, s.url.authority);
  if (req.find(http::field::user_agent) == req.end()) req.set(http::field::user_agent, s.config.user_agent);
  if (req.find(http::field::accept) == req.end()) req.set(http::field::accept, "application/json");
  if (!body.empty() && req.find(http::field::content_type) == req.end()) {
    req.set(http::field::content_type, "application/json");
  }
  req.body() = std::move(body);
  req.prepare_payload();
  req.keep_alive(true);
  return req;
}

// Adds the current bearer token unless the caller set Authorization itself.
informer::error authorize(http_client_state& s, http::request<http::string_body>& req, bool caller_authorization) {
  if (caller_authorization) return {};
  auto token = s.tokens.token();
  if (!token) return token.error();
  if (token->empty()) {
    req.erase(http::field::authorization);
  } else {
    req.set(http::field::authorization, "Bearer " + *token);
  }
  return {};
}

informer::error check_target(const std::string& target) {
  if (target.empty() || target.front() != '/') {
    return {errc::invalid_field, "request path must start with '/': \"" + target + "\""};
  }
  return {};
}

asio::awaitable<std::tuple<informer::error, http_response>> run_request(state_ptr s, http::verb method, std::string target,
                                                                        http::fields headers, std::string body) {
  if (auto e = check_target(target)) co_return std::tuple{e, http_response{}};
  const std::string what = std::string{http::to_string(method)} + " " + s->url_for(s->url.prefix + target);
  const bool caller_authorization = headers.find(http::field::authorization) != headers.end();
  auto req = make_request(*s, method, target, headers, std::move(body));
  asio::steady_timer timer(s->executor);
  for (int retries = 0;; ++retries) {
    if (s->limiter) {
      if (const auto delay = s->limiter->reserve(); delay > std::chrono::nanoseconds::zero()) {
        ++s->throttled;
        timer.expires_after(delay);
        co_await timer.async_wait(nothrow);
      }
    }
    if (auto e = authorize(*s, req, caller_authorization)) co_return std::tuple{e, http_response{}};
    exchange_result r = co_await send(s, req, what);
    if (r.error) co_return std::tuple{r.error, http_response{}};
    http_response& response = r.response;
    if (success(response.status_code)) co_return std::tuple{informer::error{}, std::move(response)};
    if (response.status_code == 401) s->tokens.invalidate();  // the token file may have been rotated
    if (response.status_code == 429 && retries < s->options.max_retries_after_429) {
      if (const auto wait = status_of(response).retry_after) {
        ++s->retries_after_429;
        timer.expires_after(std::min<std::chrono::nanoseconds>(*wait, s->options.max_retry_after));
        co_await timer.async_wait(nothrow);
        continue;
      }
    }
    auto e = status_error(response, what);
    co_return std::tuple{std::move(e), std::move(response)};
  }
}

// Sends the GET and reads the answer's headers (and, for a non-2xx answer, its body), on the
// connection's strand.
asio::awaitable<open_result> open_exchange(state_ptr s, connection* c, const http::request<http::string_body>* req,
                                           clock::time_point deadline, bool fresh, std::string what) {
  open_result r;
  set_deadline(*c, deadline);
  if (fresh) {
    r.error = co_await connect(*s, *c, what);
    if (r.error) co_return r;
  }
  ++s->requests_sent;
  auto [wec, written] = co_await http::async_write(c->stream, *req, nothrow);
  if (wec) {
    c->tcp().expires_never();
    r.error = {wec, stage_detail(what, "sending the request failed", wec, *s)};
    r.nothing_received = true;
    co_return r;
  }
  r.parser = std::make_unique<http::response_parser<http::buffer_body>>();
  r.parser->body_limit(boost::none);  // a watch has no end in sight
  auto [hec, header_bytes] = co_await http::async_read_header(c->stream, c->buffer, *r.parser, nothrow);
  if (hec) {
    c->tcp().expires_never();
    r.error = {hec, stage_detail(what, "reading the answer failed", hec, *s)};
    r.nothing_received = !r.parser->got_some();
    co_return r;
  }
  r.head.status_code = r.parser->get().result_int();
  r.head.headers = static_cast<const http::fields&>(r.parser->get());
  if (!success(r.head.status_code)) {
    // The error body (a Status) is small; read it, bounded, to report it.
    constexpr std::size_t max_error_body = 1 << 20;
    char chunk[8192];
    while (!r.parser->is_done() && r.head.body.size() < max_error_body) {
      auto& body = r.parser->get().body();
      body.data = chunk;
      body.size = sizeof chunk;
      auto [ec, n] = co_await http::async_read_some(c->stream, c->buffer, *r.parser, nothrow);
      r.head.body.append(chunk, sizeof chunk - body.size);
      if (ec && ec != http::error::need_buffer) break;
    }
  }
  c->tcp().expires_never();
  co_return r;
}

// An open stream: owns its connection and parser until destroyed.
class stream_impl final : public http_stream, public std::enable_shared_from_this<stream_impl> {
public:
  stream_impl(state_ptr s, connection_ptr c, std::unique_ptr<http::response_parser<http::buffer_body>> parser,
              http_response head, std::string what)
      : state_(std::move(s)), conn_(std::move(c)), parser_(std::move(parser)), head_(std::move(head)), what_(std::move(what)) {}

  ~stream_impl() override { release(std::move(conn_)); }

  const http_response& response() const noexcept override { return head_; }

  void cancel() override {
    cancelled_.store(true);
    asio::post(conn_->strand, [self = shared_from_this()] { self->conn_->tcp().close(); });
  }

protected:
  void read_impl(asio::any_completion_handler<read_signature> handler) override {
    auto self = shared_from_this();
    auto strand = conn_->strand;
    asio::co_spawn(strand, read_next(std::move(self)), deliver_to<std::string>(std::move(handler), strand, what_));
  }

private:
  informer::error aborted() const { return {asio::error::operation_aborted, what_ + ": stream cancelled"}; }

  // On the connection's strand: the next non-empty piece of the body.
  static asio::awaitable<std::tuple<informer::error, std::string>> read_next(std::shared_ptr<stream_impl> self) {
    stream_impl& st = *self;
    if (st.cancelled_.load()) co_return std::tuple{st.aborted(), std::string{}};
    if (st.final_) co_return std::tuple{st.final_, std::string{}};
    std::string out(st.state_->options.stream_read_size, '\0');
    for (;;) {
      if (st.parser_->is_done()) {
        st.final_ = {errc::end_of_stream, what_ended(st.what_)};
        co_return std::tuple{st.final_, std::string{}};
      }
      auto& body = st.parser_->get().body();
      body.data = out.data();
      body.size = out.size();
      body.more = true;
      auto [ec, n] = co_await http::async_read_some(st.conn_->stream, st.conn_->buffer, *st.parser_, nothrow);
      const std::size_t got = out.size() - body.size;
      if (ec == http::error::need_buffer) ec = {};
      if (st.cancelled_.load()) {
        st.final_ = st.aborted();
        co_return std::tuple{st.final_, std::string{}};
      }
      if (ec) {
        st.final_ = {ec, st.what_ + ": reading the stream failed"};
        co_return std::tuple{st.final_, std::string{}};
      }
      if (got > 0) {
        out.resize(got);
        co_return std::tuple{informer::error{}, std::move(out)};
      }
    }
  }

  static std::string what_ended(const std::string& what) { return what + ": the server ended the stream"; }

  const state_ptr state_;
  connection_ptr conn_;
  const std::unique_ptr<http::response_parser<http::buffer_body>> parser_;  // used on the strand only
  const http_response head_;
  const std::string what_;
  std::atomic<bool> cancelled_{false};
  informer::error final_;  // on the strand only: the error that finished the stream
};

asio::awaitable<std::tuple<informer::error, std::shared_ptr<http_stream>>> run_stream(state_ptr s, std::string target,
                                                                                      http::fields headers) {
  using result = std::tuple<informer::error, std::shared_ptr<http_stream>>;
  if (auto e = check_target(target)) co_return result{e, nullptr};
  const std::string what = "GET " + s->url_for(s->url.prefix + target);
  const bool caller_authorization = headers.find(http::field::authorization) != headers.end();
  auto req = make_request(*s, http::verb::get, target, headers, {});
  if (auto e = authorize(*s, req, caller_authorization)) co_return result{e, nullptr};
  const auto deadline = s->config.timeout > std::chrono::nanoseconds::zero() ? clock::now() + s->config.timeout
                                                                              : clock::time_point::max();
  for (int attempt = 0;; ++attempt) {
    connection_ptr c = attempt == 0 ? s->take_idle() : nullptr;
    const bool reused = c != nullptr;
    if (!c) c = s->new_connection();
    auto [ep, r] = co_await asio::co_spawn(c->strand, open_exchange(s, c.get(), &req, deadline, !reused, what), nothrow);
    if (ep) r.error = error_from_exception(ep, what);
    if (r.error && reused && r.nothing_received && r.error.code() != beast::error::timeout) {
      ++s->stale_connections;
      release(std::move(c));
      continue;
    }
    if (r.error) {
      release(std::move(c));
      co_return result{r.error, nullptr};
    }
    if (!success(r.head.status_code)) {
      release(std::move(c));
      if (r.head.status_code == 401) s->tokens.invalidate();
      co_return result{status_error(r.head, what), nullptr};
    }
    auto stream = std::make_shared<stream_impl>(s, std::move(c), std::move(r.parser), std::move(r.head), what);
    co_return result{informer::error{}, std::move(stream)};
  }
}

}  // namespace
}  // namespace detail

detailed_result<http_client> http_client::create(boost::asio::any_io_executor executor, rest_config config,
                                                 http_client_options options) {
  namespace ssl = boost::asio::ssl;
  auto url = detail::parse_server(config.server);
  if (!url) return url.error();
  if (config.qps > 0 && config.burst < 1) {
    return informer::error{errc::invalid_field, "burst must be at least 1 when qps > 0 (burst " +
                                                    std::to_string(config.burst) + ")"};
  }
  auto pem = load_tls_pem(config.tls);
  if (!pem) return pem.error();

  ssl::context tls(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (config.tls.insecure_skip_tls_verify) {
    tls.set_verify_mode(ssl::verify_none, ec);
  } else {
    tls.set_verify_mode(ssl::verify_peer, ec);
    if (!ec) {
      if (pem->ca.empty()) {
        tls.set_default_verify_paths(ec);
      } else {
        tls.add_certificate_authority(boost::asio::buffer(pem->ca), ec);
      }
    }
  }
  if (ec) return informer::error{ec, "setting up TLS verification for " + config.server};
  if (!pem->cert.empty()) {
    tls.use_certificate_chain(boost::asio::buffer(pem->cert), ec);
    if (ec) return informer::error{ec, "loading the client certificate"};
    tls.use_private_key(boost::asio::buffer(pem->key), ssl::context::pem, ec);
    if (ec) return informer::error{ec, "loading the client key"};
  }
  return http_client{std::make_shared<state>(std::move(executor), std::move(config), options, std::move(*url),
                                             std::move(tls))};
}

boost::asio::any_io_executor http_client::get_executor() const { return state_->executor; }

const rest_config& http_client::config() const { return state_->config; }

http_client_stats http_client::stats() const {
  http_client_stats s{
      .connections_opened = state_->connections_opened.load(),
      .requests_sent = state_->requests_sent.load(),
      .connections_reused = state_->connections_reused.load(),
      .stale_connections = state_->stale_connections.load(),
      .retries_after_429 = state_->retries_after_429.load(),
      .throttled = state_->throttled.load(),
  };
  std::lock_guard lock(state_->mu);
  s.idle_connections = state_->idle.size();
  return s;
}

void http_client::close_idle_connections() {
  for (auto& c : state_->take_all_idle()) detail::release(std::move(c));
}

void http_client::start_request(const std::shared_ptr<state>& s, boost::beast::http::verb method,
                                std::string path_and_query, boost::beast::http::fields headers, std::string body,
                                boost::asio::any_completion_handler<request_signature> handler) {
  std::string what = std::string{boost::beast::http::to_string(method)} + " " + s->url_for(path_and_query);
  boost::asio::co_spawn(s->executor,
                        detail::run_request(s, method, std::move(path_and_query), std::move(headers), std::move(body)),
                        detail::deliver_to<http_response>(std::move(handler), s->executor, std::move(what)));
}

void http_client::start_stream(const std::shared_ptr<state>& s, std::string path_and_query,
                               boost::beast::http::fields headers,
                               boost::asio::any_completion_handler<stream_signature> handler) {
  std::string what = "GET " + s->url_for(path_and_query);
  boost::asio::co_spawn(s->executor, detail::run_stream(s, std::move(path_and_query), std::move(headers)),
                        detail::deliver_to<std::shared_ptr<http_stream>>(std::move(handler), s->executor, std::move(what)));
}

}  // namespace informer
