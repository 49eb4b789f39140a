// Private to the API-server rooms: reaching the API server through an HTTP proxy. Which proxy a
// `rest_config` asks for (`select_proxy`: its explicit URL, or the environment read as Go's
// golang.org/x/net/http/httpproxy reads it), and the CONNECT tunnel through it (`open_tunnel`),
// over which `tls_connect` then shakes hands with the API server.
//
// Credentials of a proxy URL never leave `proxy_endpoint::authorization`: error details name the
// proxy by `display` (scheme, host and port) or by the URL with its password masked.
//
// Thread safety: pure functions and immutable values; `open_tunnel` uses its stream only (run it on
// the stream's strand).
#pragma once

#include "apiserver/detail/tls_connect.hpp"

#include "informer/apiserver/config.hpp"
#include "informer/core/error.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace informer::detail {

/// An http:// proxy as a connection needs it.
struct proxy_endpoint {
  std::string host;  // without IPv6 brackets
  std::string port;
  bool host_is_ip = false;
  std::string authorization;  // "Basic <base64 of user:password>", or "" without userinfo
  std::string display;        // "http://host:port": for error details, without credentials
};

/// `text` as an http://[user[:password]@]host[:port][/...] URL (port 80 by default; a path is
/// ignored, as Go's transport ignores it). `origin` names where the text came from for errors
/// ("HTTPS_PROXY", `clusters["x"].proxy-url`). With `bare_host_is_http` (environment values), text
/// without one of the schemes Go knows (http, https, socks5) is read as "http://" + text, as Go
/// does. Errors: errc::invalid_config naming the scheme for https:// and socks5:// (not supported)
/// and any other scheme, and for a URL without host or with a bad port; the detail quotes the URL
/// with its password masked.
detailed_result<proxy_endpoint> parse_proxy_url(std::string_view text, std::string_view origin, bool bare_host_is_http);

/// `url` with the password of its userinfo replaced by "xxxxx" (as Go's URL.Redacted does).
std::string redact_proxy_url(std::string_view url);

/// A NO_PROXY value, matched as Go's httpproxy matches it: comma-separated entries, trimmed and
/// case-insensitive; "*" alone matches every host; an IP address or a CIDR ("10.0.0.0/8",
/// "fd00::/8") matches IP-address hosts; anything else is a domain: "example.com" matches
/// example.com and its subdomains, ".example.com" and "*.example.com" only the subdomains. An entry
/// may end with ":port" ("[::1]:443" for IPv6), then it matches that port only. Entries that are
/// malformed (":80") are skipped. Not handled: internationalized names (Go converts them to ASCII
/// first).
class no_proxy_list {
public:
  explicit no_proxy_list(std::string_view value);

  /// True when a connection to host:port goes direct: `host` is "localhost" or a loopback address
  /// (never proxied by Go, whatever NO_PROXY says), or an entry matches. `host` comes without IPv6
  /// brackets; `port` is the effective port (443 for https without one).
  bool bypasses(std::string_view host, std::string_view port) const;

private:
  struct ip_entry {
    boost::asio::ip::address address;
    std::string port;  // "" for any
  };
  struct cidr_entry {
    boost::asio::ip::address network;
    unsigned prefix = 0;
  };
  struct domain_entry {
    std::string suffix;       // with its leading '.'
    std::string port;         // "" for any
    bool match_host = false;  // also matches `suffix` without its dot (written without one)
  };

  bool all_ = false;
  std::vector<ip_entry> ips_;
  std::vector<cidr_entry> cidrs_;
  std::vector<domain_entry> domains_;
};

/// Reads one environment variable; "" when unset. Tests pass their own.
using environment_reader = std::function<std::string(const char* name)>;

/// The process environment (std::getenv).
std::string process_environment(const char* name);

/// The proxy for connections to `server` under `config`, or nullopt for a direct connection: the
/// explicit URL; else, with `from_environment`, the first non-empty of HTTPS_PROXY and https_proxy
/// unless the first non-empty of NO_PROXY and no_proxy, or the localhost/loopback rule, bypasses
/// the server (see `no_proxy_list`). Errors: those of `parse_proxy_url`, with the origin
/// "rest_config.proxy.url" or the variable's name.
detailed_result<std::optional<proxy_endpoint>> select_proxy(const proxy_config& config, const server_url& server,
                                                            const environment_reader& env);

/// Opens a tunnel to `target` on `stream`, which is connected to `proxy`: sends "CONNECT
/// host:port HTTP/1.1" with Host, User-Agent and Proxy-Authorization (when the proxy URL had
/// userinfo), and reads the answer's headers. Errors: the transport's (a timeout named with
/// `timeout`), with a detail naming the proxy; a status other than 200 as errc::unauthorized
/// (407, or 401 as some proxies answer wrong credentials), forbidden (403), server_error (5xx: the proxy could not
/// reach the server) or api_error, with the status and reason; errc::malformed_response for bytes after a 200 answer's
/// headers.
boost::asio::awaitable<informer::error> open_tunnel(boost::beast::tcp_stream& stream, const proxy_endpoint& proxy,
                                                    const server_url& target, const std::string& user_agent,
                                                    std::chrono::nanoseconds timeout, const std::string& what);

}  // namespace informer::detail
