// Private to the API-server rooms: reaching one kube-apiserver over TLS. What the server URL says
// (`parse_server`), the TLS context a `rest_config` asks for (`make_tls_context`), and the TCP
// connect (to the server, or to a proxy and through its tunnel: proxy.hpp) plus TLS handshake of
// one stream (`tls_connect`), whose errors name the failed step.
//
// Thread safety: pure functions; `tls_connect` uses its stream only (run it on the stream's strand).
#pragma once

#include "informer/apiserver/config.hpp"
#include "informer/core/error.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace informer::detail {

struct proxy_endpoint;

using tls_stream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

/// The server URL split into what a connection needs.
struct server_url {
  std::string host;  // without IPv6 brackets
  std::string port;
  std::string authority;  // host[:port] as written: the Host header and error messages
  std::string prefix;     // "" or "/some/prefix", no trailing slash
  bool host_is_ip = false;
};

/// `server` as https://host[:port][/prefix]; errc::invalid_url otherwise.
detailed_result<server_url> parse_server(const std::string& server);

/// A client TLS context (TLS 1.2 at least) that verifies the server as `config.tls` says and
/// presents its client certificate. Errors: those of `load_tls_pem`, OpenSSL's when the material
/// is refused.
detailed_result<boost::asio::ssl::context> make_tls_context(const rest_config& config);

/// "<what>: <stage>", with the timeout named when `ec` is Beast's timeout.
std::string stage_detail(const std::string& what, std::string_view stage, const boost::system::error_code& ec,
                         std::chrono::nanoseconds timeout);

/// How `tls_connect` reaches the server.
struct connect_route {
  const proxy_endpoint* proxy = nullptr;  ///< null: directly
  std::string_view user_agent{};          ///< sent with a proxy's CONNECT
};

/// Resolves `url`'s host (unless an IP address) and connects, or, with `route.proxy`, does so for
/// the proxy and opens a tunnel to `url` through it (`open_tunnel`); tunes the socket (no delay,
/// TCP keep-alive) and shakes hands, checking the server's name (`tls.server_name` or the host)
/// unless `tls.insecure_skip_tls_verify`. The stream's deadline is the caller's and covers every
/// step; `timeout` only names it in errors. Counts `connections_opened` once the TCP connection
/// (to the server or the proxy) stands.
boost::asio::awaitable<informer::error> tls_connect(tls_stream& stream, const server_url& url, const tls_config& tls,
                                                    const connect_route& route, std::chrono::nanoseconds timeout,
                                                    const std::string& what,
                                                    std::atomic<std::uint64_t>& connections_opened);

}  // namespace informer::detail
