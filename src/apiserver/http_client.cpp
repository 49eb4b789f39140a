#include "informer/apiserver/http_client.hpp"

#include "apiserver/detail/completion.hpp"
#include "apiserver/detail/connection_pool.hpp"
#include "apiserver/detail/http_exchange.hpp"
#include "apiserver/detail/proxy.hpp"
#include "apiserver/detail/tls_connect.hpp"
#include "core/detail/async_completion.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <cctype>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace informer {
namespace detail {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

// Awaiting with this yields (error_code, ...) tuples instead of throwing.
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

using state_ptr = std::shared_ptr<http_client_state>;

// A header value that would end its line early and start another: refused, wherever it comes from.
bool splits_the_header(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) != value.npos;
}

// An extra's key as the tail of a header name: RFC 7230 token characters stay, others (and '%')
// are percent-encoded, as client-go does.
std::string header_key_escape(std::string_view key) {
  static constexpr std::string_view token_chars = "!#$&'*+-.^_`|~";
  std::string out;
  for (const unsigned char ch : key) {
    if (std::isalnum(ch) != 0 || token_chars.find(static_cast<char>(ch)) != std::string_view::npos) {
      out += static_cast<char>(ch);
    } else {
      static constexpr char hex[] = "0123456789ABCDEF";
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

// What `create` refuses in the headers the configuration will add to every request.
informer::error check_header_values(const rest_config& c) {
  const impersonation& as = c.impersonate;
  if (as.user.empty() && (!as.uid.empty() || !as.groups.empty() || !as.extra.empty())) {
    return {errc::invalid_config,
            "impersonating a uid, groups or extra needs a user to impersonate (impersonate.user)"};
  }
  std::vector<std::pair<std::string_view, std::string_view>> values = {{"user_agent", c.user_agent},
                                                                       {"bearer_token", c.bearer_token},
                                                                       {"impersonate.user", as.user},
                                                                       {"impersonate.uid", as.uid}};
  for (const auto& g : as.groups) values.emplace_back("impersonate.groups", g);
  for (const auto& [key, list] : as.extra) {
    values.emplace_back("impersonate.extra key", key);
    for (const auto& v : list) values.emplace_back("impersonate.extra", v);
  }
  for (const auto& [field, value] : values) {
    if (splits_the_header(value)) {
      return {errc::invalid_config, std::string(field) + " holds CR, LF or NUL, which would split an HTTP header"};
    }
  }
  return {};
}

request_message make_request(const http_client_state& s, http::verb method, const std::string& target,
                             const http::fields& headers, std::string body) {
  request_message req{method, s.url.prefix + target, 11};
  for (const auto& f : headers) req.insert(f.name_string(), f.value());
  if (const impersonation& as = s.config.impersonate; !as.user.empty()) {
    req.set("Impersonate-User", as.user);
    if (!as.uid.empty()) req.set("Impersonate-Uid", as.uid);
    for (const auto& g : as.groups) req.insert("Impersonate-Group", g);
    for (const auto& [key, list] : as.extra) {
      for (const auto& v : list) req.insert("Impersonate-Extra-" + header_key_escape(key), v);
    }
  }
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

informer::error check_request(const std::string& target, const http::fields& headers) {
  if (target.empty() || target.front() != '/') {
    return {errc::invalid_argument, "request path must start with '/': \"" + target + "\""};
  }
  if (splits_the_header(target) || target.find(' ') != std::string::npos) {
    return {errc::invalid_argument, "request path holds a space, CR, LF or NUL"};
  }
  for (const auto& f : headers) {
    if (splits_the_header(f.value()) || splits_the_header(f.name_string())) {
      return {errc::invalid_argument,
              "header " + std::string(f.name_string()) + " holds CR, LF or NUL, which would split it"};
    }
  }
  return {};
}

asio::awaitable<std::tuple<informer::error, http_response>> run_request(state_ptr s, http::verb method,
                                                                        std::string target, http::fields headers,
                                                                        std::string body,
                                                                        http_request_options options) {
  if (auto e = check_request(target, headers)) co_return std::tuple{e, http_response{}};
  std::string what = std::string{http::to_string(method)} + " " + s->url_for(s->url.prefix + target);
  const bool caller_authorization = headers.find(http::field::authorization) != headers.end();
  auto req = make_request(*s, method, target, headers, std::move(body));
  const exchange_policy policy{
      .throttle = true,
      .max_retries_after_429 = s->options.max_retries_after_429,
      .max_body_size = options.list ? s->options.max_list_body_size : s->options.max_body_size};
  auto r =
      co_await perform_exchange(s, std::move(req), caller_authorization, answer_part::whole, policy, std::move(what));
  co_return std::tuple{std::move(r.error), std::move(r.response)};
}

// An open stream: owns its connection and parser until destroyed.
class stream_impl final : public http_stream, public std::enable_shared_from_this<stream_impl> {
public:
  stream_impl(state_ptr s, connection_ptr c, std::unique_ptr<stream_parser> parser, http_response head,
              std::string what)
      : state_(std::move(s)),
        conn_(std::move(c)),
        parser_(std::move(parser)),
        head_(std::move(head)),
        what_(std::move(what)) {}

  ~stream_impl() override { release(std::move(conn_)); }

  const http_response& response() const noexcept override { return head_; }

  void cancel() override {
    cancelled_.store(true);
    asio::post(conn_->strand, [self = shared_from_this()] { self->conn_->tcp().close(); });
  }

protected:
  void read_impl(asio::any_completion_handler<read_signature> handler) override {
    auto strand = conn_->strand;
    auto op = async_completion<read_signature>::create(std::move(handler), strand, delivery::dispatch);
    // A cancellation slot ends the stream, as cancel() does: the read then completes aborted.
    op->on_cancellation([weak = weak_from_this()](asio::cancellation_type) {
      if (auto self = weak.lock()) self->cancel();
    });
    asio::co_spawn(strand, read_next(shared_from_this()), completing(std::move(op), what_));
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
  const std::unique_ptr<stream_parser> parser_;  // used on the strand only
  const http_response head_;
  const std::string what_;
  std::atomic<bool> cancelled_{false};
  informer::error final_;  // on the strand only: the error that finished the stream
};

asio::awaitable<std::tuple<informer::error, std::shared_ptr<http_stream>>> run_stream(state_ptr s, std::string target,
                                                                                      http::fields headers) {
  using result = std::tuple<informer::error, std::shared_ptr<http_stream>>;
  if (auto e = check_request(target, headers)) co_return result{e, nullptr};
  const std::string what = "GET " + s->url_for(s->url.prefix + target);
  const bool caller_authorization = headers.find(http::field::authorization) != headers.end();
  auto req = make_request(*s, http::verb::get, target, headers, {});
  // Streams are not throttled, and a 429 is an answer like any other.
  auto r =
      co_await perform_exchange(s, std::move(req), caller_authorization, answer_part::head, exchange_policy{}, what);
  if (r.error) co_return result{std::move(r.error), nullptr};
  auto stream =
      std::make_shared<stream_impl>(s, std::move(r.connection), std::move(r.parser), std::move(r.response), what);
  co_return result{informer::error{}, std::move(stream)};
}

}  // namespace
}  // namespace detail

detailed_result<http_client> http_client::create(boost::asio::any_io_executor executor, rest_config config,
                                                 http_client_options options) {
  auto url = detail::parse_server(config.server);
  if (!url) return url.error();
  if (config.qps > 0 && config.burst < 1) {
    return informer::error{errc::invalid_argument,
                           "burst must be at least 1 when qps > 0 (burst " + std::to_string(config.burst) + ")"};
  }
  if (auto e = detail::check_header_values(config)) return e;
  auto proxy = detail::select_proxy(config.proxy, *url, detail::process_environment);
  if (!proxy) return proxy.error();
  auto tls = detail::make_tls_context(config);
  if (!tls) return tls.error();
  std::shared_ptr<exec_credential_provider> exec;
  if (config.exec && config.bearer_token.empty() && config.bearer_token_file.empty()) {
    auto cluster = exec_cluster_info_of(config);
    if (!cluster) return cluster.error();
    auto provider = exec_credential_provider::create(
        executor, exec_credential_options{.exec = *config.exec, .cluster = std::move(*cluster)});
    if (!provider) return provider.error();
    exec = std::move(*provider);
  }
  auto s = std::make_shared<state>(std::move(executor), std::move(config), options, std::move(*url), std::move(*proxy),
                                   std::move(*tls));
  s->exec = std::move(exec);
  return http_client{std::move(s)};
}

boost::asio::any_io_executor http_client::get_executor() const { return state_->executor; }

const rest_config& http_client::config() const { return state_->config; }

http_client_stats http_client::stats() const {
  return http_client_stats{
      .connections_opened = state_->connections_opened.load(),
      .requests_sent = state_->requests_sent.load(),
      .connections_reused = state_->pool.reused(),
      .stale_connections = state_->pool.stale(),
      .retries_after_429 = state_->retries_after_429.load(),
      .throttled = state_->throttled.load(),
      .idle_connections = state_->pool.idle_count(),
  };
}

void http_client::close_idle_connections() { state_->pool.close_idle(); }

void http_client::start_request(const std::shared_ptr<state>& s, boost::beast::http::verb method,
                                std::string path_and_query, boost::beast::http::fields headers, std::string body,
                                http_request_options options,
                                boost::asio::any_completion_handler<request_signature> handler) {
  std::string what = std::string{boost::beast::http::to_string(method)} + " " + s->url_for(path_and_query);
  auto run = detail::run_request(s, method, std::move(path_and_query), std::move(headers), std::move(body), options);
  detail::spawn_operation(s->executor, std::move(run), std::move(handler), std::move(what));
}

void http_client::start_stream(const std::shared_ptr<state>& s, std::string path_and_query,
                               boost::beast::http::fields headers,
                               boost::asio::any_completion_handler<stream_signature> handler) {
  std::string what = "GET " + s->url_for(path_and_query);
  detail::spawn_operation(s->executor, detail::run_stream(s, std::move(path_and_query), std::move(headers)),
                          std::move(handler), std::move(what));
}

}  // namespace informer
