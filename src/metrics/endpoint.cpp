#include "informer/metrics/endpoint.hpp"

#include "informer/client/shared_informer.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <list>
#include <optional>
#include <utility>
#include <vector>

namespace informer::metrics {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace detail {

struct readiness_check {
  std::string name;
  std::function<bool()> check;
};

// The acceptor, the connections and `stopped` are used on `strand` only.
struct endpoint_state : std::enable_shared_from_this<endpoint_state> {
  endpoint_state(asio::any_io_executor executor, const registry& r, std::size_t max)
      : strand(asio::make_strand(std::move(executor))),
        acceptor(strand),
        retry_timer(strand),
        metrics(r),
        max_connections(max) {}

  void accept();
  void close_all();
  http::response<http::string_body> answer(const http::request<http::string_body>& req);
  http::response<http::string_body> readyz(bool verbose);

  asio::strand<asio::any_io_executor> strand;
  tcp::acceptor acceptor;
  asio::steady_timer retry_timer;  // a pause after a failed accept
  const registry& metrics;
  const std::size_t max_connections;
  std::uint16_t port = 0;  // set before the state is shared
  bool stopped = false;
  std::list<std::weak_ptr<struct connection>> connections;

  informer::mutex checks_mu;
  std::vector<readiness_check> checks INFORMER_GUARDED_BY(checks_mu);
};

// One accepted connection: read a request, answer it, repeat while the client keeps it alive. A
// client silent for `idle_timeout` (idle between requests, or stalled mid-body or mid-answer), or
// slower than `header_timeout` to send a request's head once it started (Go's ReadHeaderTimeout),
// is disconnected, so that stuck or slow clients cannot pile up connections. Requests are small
// GETs: a head or body over the limits ends the connection.
struct connection : std::enable_shared_from_this<connection> {
  static constexpr auto idle_timeout = std::chrono::seconds(60);
  static constexpr auto header_timeout = std::chrono::seconds(10);
  static constexpr std::uint32_t header_limit = 16 * 1024;
  static constexpr std::uint64_t body_limit = 8 * 1024;

  connection(std::shared_ptr<endpoint_state> s, tcp::socket sock) : state(std::move(s)), stream(std::move(sock)) {}

  void read() {
    parser.emplace();
    parser->header_limit(header_limit);
    parser->body_limit(body_limit);
    if (buffer.size() != 0) return read_header();  // a pipelined request's bytes are in already
    // Waiting for the next request's first bytes is idleness, not a slow head.
    stream.expires_after(idle_timeout);
    stream.async_read_some(buffer.prepare(1024),
                           [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                             if (ec || self->state->stopped) return self->close();
                             self->buffer.commit(n);
                             self->read_header();
                           });
  }

  void read_header() {
    stream.expires_after(header_timeout);
    http::async_read_header(stream, buffer, *parser,
                            [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                              if (ec || self->state->stopped) return self->close();
                              self->stream.expires_after(idle_timeout);
                              http::async_read(self->stream, self->buffer, *self->parser,
                                               [self](boost::system::error_code rec, std::size_t) {
                                                 if (rec || self->state->stopped) return self->close();
                                                 self->respond(self->parser->release());
                                               });
                            });
  }

  void respond(const http::request<http::string_body>& request) {
    try {
      response = state->answer(request);
    } catch (...) {
      // A throwing scrape-time callback, bad_alloc, ...: this request fails, the endpoint serves on.
      try {
        response = {http::status::internal_server_error, request.version()};
        response.set(http::field::content_type, "text/plain; charset=utf-8");
        response.body() = "internal server error\n";
        response.keep_alive(request.keep_alive());
        response.prepare_payload();
      } catch (...) {
        return close();
      }
    }
    stream.expires_after(idle_timeout);
    http::async_write(stream, response, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (ec || !self->response.keep_alive() || self->state->stopped) return self->close();
      self->read();
    });
  }

  void close() {
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.close();
  }

  std::shared_ptr<endpoint_state> state;
  boost::beast::tcp_stream stream;
  boost::beast::flat_buffer buffer;
  std::optional<http::request_parser<http::string_body>> parser;  // one per request
  http::response<http::string_body> response;
};

void endpoint_state::accept() {
  // The new socket takes the acceptor's executor, the strand: stop() closes connections from it.
  acceptor.async_accept([self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
    if (self->stopped || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors, a connection reset before it was accepted, ...: likely to pass, so keep
      // listening, after a pause so that a lasting error does not spin.
      self->retry_timer.expires_after(std::chrono::milliseconds(100));
      self->retry_timer.async_wait([self](boost::system::error_code) {
        if (!self->stopped) self->accept();
      });
      return;
    }
    self->connections.remove_if([](const auto& w) { return w.expired(); });
    if (self->connections.size() >= self->max_connections) {
      // Over the cap: refuse at once rather than queue work for a flood of clients.
      boost::system::error_code ignored;
      socket.close(ignored);
      return self->accept();
    }
    auto c = std::make_shared<connection>(self, std::move(socket));
    self->connections.push_back(c);
    c->read();
    self->accept();
  });
}

void endpoint_state::close_all() {
  stopped = true;
  boost::system::error_code ignored;
  acceptor.close(ignored);
  retry_timer.cancel();
  for (const auto& w : connections) {
    if (auto c = w.lock()) c->close();
  }
  connections.clear();
}

http::response<http::string_body> endpoint_state::readyz(bool verbose) {
  std::vector<readiness_check> copy;
  {
    informer::lock_guard lock(checks_mu);
    copy = checks;
  }
  std::string body;
  bool ok = true;
  for (const auto& c : copy) {
    bool passed = false;
    try {
      passed = c.check();
    } catch (...) {
      passed = false;
    }
    ok = ok && passed;
    if (!passed) {
      body += "[-]" + c.name + " failed\n";
    } else if (verbose) {
      body += "[+]" + c.name + " ok\n";
    }
  }
  http::response<http::string_body> res{ok ? http::status::ok : http::status::service_unavailable, 11};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  if (ok && !verbose) {
    res.body() = "ok";
  } else {
    res.body() = body + (ok ? "readyz check passed\n" : "readyz check failed\n");
  }
  return res;
}

http::response<http::string_body> endpoint_state::answer(const http::request<http::string_body>& req) {
  const std::string_view target = req.target();
  const auto q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);

  auto plain = [&](http::status status, std::string body) {
    http::response<http::string_body> res{status, req.version()};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::move(body);
    return res;
  };
  http::response<http::string_body> res;
  if (path != "/metrics" && path != "/healthz" && path != "/livez" && path != "/readyz") {
    res = plain(http::status::not_found, "404 page not found\n");
  } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
    res = plain(http::status::method_not_allowed, "method not allowed\n");
    res.set(http::field::allow, "GET, HEAD");
  } else if (path == "/metrics") {
    res = plain(http::status::ok, {});
    res.set(http::field::content_type, prometheus_content_type);
    metrics.write_prometheus(res.body());
  } else if (path == "/readyz") {
    bool verbose = false;
    for (std::size_t start = 0; start <= query.size();) {
      const auto end = std::min(query.find('&', start), query.size());
      const auto param = query.substr(start, end - start);
      if (param == "verbose" || param.starts_with("verbose=")) verbose = true;
      start = end + 1;
    }
    res = readyz(verbose);
    res.version(req.version());
  } else {
    res = plain(http::status::ok, "ok");
  }
  res.keep_alive(req.keep_alive());
  if (req.method() == http::verb::head) {
    // HEAD: the length of what GET would send, no body.
    res.content_length(res.body().size());
    res.body().clear();
  } else {
    res.prepare_payload();
  }
  return res;
}

}  // namespace detail

std::unique_ptr<endpoint> endpoint::create(asio::any_io_executor executor, const registry& metrics,
                                           endpoint_options options) {
  auto state = std::make_shared<detail::endpoint_state>(std::move(executor), metrics, options.max_connections);
  const tcp::endpoint where{asio::ip::make_address(options.address), options.port};
  state->acceptor.open(where.protocol());
  state->acceptor.set_option(tcp::acceptor::reuse_address(true));
  state->acceptor.bind(where);
  state->acceptor.listen(asio::socket_base::max_listen_connections);
  state->port = state->acceptor.local_endpoint().port();
  asio::dispatch(state->strand, [state] { state->accept(); });
  return std::make_unique<endpoint>(std::move(state));
}

endpoint::endpoint(std::shared_ptr<detail::endpoint_state> state) : state_(std::move(state)) {}

endpoint::~endpoint() { stop(); }

std::uint16_t endpoint::port() const noexcept { return state_->port; }

void endpoint::add_readiness_check(std::string name, std::function<bool()> check) {
  informer::lock_guard lock(state_->checks_mu);
  state_->checks.push_back({std::move(name), std::move(check)});
}

void endpoint::stop() {
  asio::dispatch(state_->strand, [state = state_] { state->close_all(); });
}

std::function<bool()> informer_synced_check(const std::shared_ptr<shared_informer>& informer) {
  // Not a weak_ptr to the informer: a check holding the last reference would destroy (and stop)
  // the informer on the endpoint's strand.
  return [synced = informer->synced_observer()] { return synced().value_or(false); };
}

}  // namespace informer::metrics
