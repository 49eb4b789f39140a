#include "apiserver/detail/proxy.hpp"

#include "apiserver/detail/base64.hpp"
#include "core/detail/ascii.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <charconv>
#include <cstdlib>

namespace informer::detail {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// Awaiting with this yields (error_code, ...) tuples instead of throwing.
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

using informer::detail::ascii_lower;

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

std::optional<asio::ip::address> parse_ip(std::string_view text) {
  boost::system::error_code ec;
  auto a = asio::ip::make_address(std::string{text}, ec);
  if (ec) return std::nullopt;
  // An IPv4-mapped IPv6 address is the IPv4 address, as Go's net.IP compares them.
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return asio::ip::address{asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6())};
  return a;
}

bool is_loopback(const asio::ip::address& a) {
  return a.is_v4() ? (a.to_v4().to_uint() >> 24) == 127 : a.to_v6().is_loopback();
}

bool in_network(const asio::ip::address& a, const asio::ip::address& network, unsigned prefix) {
  if (a.is_v4() != network.is_v4()) return false;
  const auto bytes = [](const asio::ip::address& x) {
    std::vector<unsigned char> b;
    if (x.is_v4()) {
      const auto v4 = x.to_v4().to_bytes();
      b.assign(v4.begin(), v4.end());
    } else {
      const auto v6 = x.to_v6().to_bytes();
      b.assign(v6.begin(), v6.end());
    }
    return b;
  };
  const auto lhs = bytes(a);
  const auto rhs = bytes(network);
  for (unsigned bit = 0; bit < prefix; ++bit) {
    const unsigned mask = 0x80U >> (bit % 8);
    if ((lhs[bit / 8] & mask) != (rhs[bit / 8] & mask)) return false;
  }
  return true;
}

// "host:port" or "[host]:port" as Go's net.SplitHostPort splits it (the port may be empty, and is
// not checked); nullopt without a port or with a colon in an unbracketed host.
std::optional<std::pair<std::string, std::string>> split_host_port(std::string_view s) {
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') return std::nullopt;
    return std::pair{std::string{s.substr(1, close - 1)}, std::string{s.substr(close + 2)}};
  }
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos || s.substr(0, colon).find(':') != std::string_view::npos) return std::nullopt;
  return std::pair{std::string{s.substr(0, colon)}, std::string{s.substr(colon + 1)}};
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex_value(s[i + 1]);
    const int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// "http" for "HTTP://x"; "" without "://" before the first '/'.
std::string scheme_of(std::string_view url) {
  const auto sep = url.find("://");
  if (sep == std::string_view::npos || url.substr(0, sep).find('/') != std::string_view::npos) return {};
  return ascii_lower(url.substr(0, sep));
}

std::string bracketed(const std::string& host) { return host.find(':') != std::string::npos ? "[" + host + "]" : host; }

}  // namespace

std::string redact_proxy_url(std::string_view url) {
  const auto sep = url.find("://");
  const std::size_t start = sep == std::string_view::npos ? 0 : sep + 3;
  // User info runs to the last '@', even past a '/', '?' or '#' that a password left unescaped.
  const auto at = url.rfind('@');
  if (at == std::string_view::npos || at < start) return std::string{url};
  const auto colon = url.substr(start, at - start).find(':');
  if (colon == std::string_view::npos) return std::string{url};
  return std::string{url.substr(0, start + colon + 1)} + "xxxxx" + std::string{url.substr(at)};
}

detailed_result<proxy_endpoint> parse_proxy_url(std::string_view text, std::string_view origin,
                                                bool bare_host_is_http) {
  const auto bad = [&](std::string_view why) {
    return informer::error{errc::invalid_config,
                           std::string{origin} + ": proxy URL \"" + redact_proxy_url(text) + "\": " + std::string{why}};
  };
  std::string url{trim(text)};
  std::string scheme = scheme_of(url);
  if (scheme.empty()) {
    if (!bare_host_is_http) return bad("expected http://[user:password@]host[:port]");
    url = "http://" + url;
    scheme = "http";
  }
  if (scheme == "https") {
    return bad("https:// proxies (TLS to the proxy) are not supported; use an http:// proxy");
  }
  if (scheme == "socks5" || scheme == "socks5h") {
    return bad("socks5 proxies are not supported; use an http:// proxy");
  }
  if (scheme != "http") return bad("scheme \"" + scheme + "\" is not supported; use an http:// proxy");

  std::string_view rest = std::string_view{url}.substr(scheme.size() + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (rest.substr(authority.size()).find('@') != std::string_view::npos) {
    // Read as a URL, a password holding '/', '?' or '#' would end the host early and become a host
    // or port, shown in every error: refuse it instead.
    return bad("'@' after the host: percent-encode '/', '?' and '#' in the user and password");
  }
  proxy_endpoint p;
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    const auto colon = userinfo.find(':');
    auto user = percent_decode(userinfo.substr(0, colon));
    auto password = percent_decode(colon == std::string_view::npos ? std::string_view{} : userinfo.substr(colon + 1));
    if (!user || !password) return bad("invalid percent-encoding in the user or password");
    p.authorization = "Basic " + encode_base64(*user + ":" + *password);
  }
  std::string port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    p.host = std::string{authority.substr(1, close - 1)};
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return bad("expected ':' after the IPv6 address");
    port = after.empty() ? std::string{} : std::string{after.substr(1)};
  } else {
    const auto colon = authority.rfind(':');
    p.host = std::string{authority.substr(0, colon)};
    port = colon == std::string_view::npos ? std::string{} : std::string{authority.substr(colon + 1)};
  }
  if (p.host.empty()) return bad("no host");
  if (port.empty()) port = "80";
  unsigned number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (ec != std::errc{} || end != port.data() + port.size() || number == 0 || number > 65535) {
    return bad("invalid port \"" + port + "\"");
  }
  p.port = port;
  p.host_is_ip = parse_ip(p.host).has_value();
  p.display = "http://" + bracketed(p.host) + ":" + p.port;
  return p;
}

no_proxy_list::no_proxy_list(std::string_view value) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    const std::string entry = ascii_lower(trim(value.substr(0, comma)));
    value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
    if (entry.empty()) continue;
    if (entry == "*") {
      all_ = true;
      return;
    }
    if (const auto slash = entry.find('/'); slash != std::string::npos) {
      const auto network = parse_ip(std::string_view{entry}.substr(0, slash));
      const std::string_view bits = std::string_view{entry}.substr(slash + 1);
      unsigned prefix = 0;
      const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
      // As Go's net.ParseCIDR: an IPv4 network is written as IPv4, with a prefix of at most 32.
      const bool written_as_v4 = entry.find(':') == std::string::npos;
      if (network && network->is_v4() == written_as_v4 && !bits.empty() && ec == std::errc{} &&
          end == bits.data() + bits.size() && prefix <= (written_as_v4 ? 32U : 128U)) {
        cidrs_.push_back({*network, prefix});
        continue;
      }
    }
    std::string host = entry;
    std::string port;
    if (auto split = split_host_port(entry)) {
      if (split->first.empty()) continue;  // ":80": no host, ignored as Go does
      host = std::move(split->first);
      port = std::move(split->second);
    }
    if (auto ip = parse_ip(host)) {
      ips_.push_back({*ip, port});
      continue;
    }
    if (host.starts_with("*.")) host.erase(0, 1);
    domain_entry d{.suffix = host, .port = port, .match_host = false};
    if (host.front() != '.') {
      d.match_host = true;
      d.suffix = "." + host;
    }
    domains_.push_back(std::move(d));
  }
}

bool no_proxy_list::bypasses(std::string_view host, std::string_view port) const {
  if (host == "localhost") return true;
  const auto ip = parse_ip(host);
  if (ip && is_loopback(*ip)) return true;
  if (all_) return true;
  const std::string name = ascii_lower(trim(host));
  if (ip) {
    for (const auto& c : cidrs_) {
      if (in_network(*ip, c.network, c.prefix)) return true;
    }
    for (const auto& e : ips_) {
      if (e.address == *ip && (e.port.empty() || e.port == port)) return true;
    }
  }
  for (const auto& d : domains_) {
    const bool name_matches = name.ends_with(d.suffix) || (d.match_host && name == d.suffix.substr(1));
    if (name_matches && (d.port.empty() || d.port == port)) return true;
  }
  return false;
}

std::string process_environment(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string{v} : std::string{};
}

detailed_result<std::optional<proxy_endpoint>> select_proxy(const proxy_config& config, const server_url& server,
                                                            const environment_reader& env) {
  if (!config.url.empty()) {
    auto p = parse_proxy_url(config.url, "rest_config.proxy.url", false);
    if (!p) return p.error();
    return std::optional<proxy_endpoint>{std::move(*p)};
  }
  if (!config.from_environment) return std::optional<proxy_endpoint>{};
  const auto first_set = [&](const char* upper, const char* lower_name) -> std::pair<std::string, const char*> {
    if (std::string v = env(upper); !v.empty()) return {std::move(v), upper};
    return {env(lower_name), lower_name};
  };
  const auto [proxy, variable] = first_set("HTTPS_PROXY", "https_proxy");
  if (proxy.empty()) return std::optional<proxy_endpoint>{};
  const auto [no_proxy, ignored] = first_set("NO_PROXY", "no_proxy");
  if (no_proxy_list{no_proxy}.bypasses(server.host, server.port)) return std::optional<proxy_endpoint>{};
  auto p = parse_proxy_url(proxy, variable, true);
  if (!p) return p.error();
  return std::optional<proxy_endpoint>{std::move(*p)};
}

asio::awaitable<informer::error> open_tunnel(beast::tcp_stream& stream, const proxy_endpoint& proxy,
                                             const server_url& target, const std::string& user_agent,
                                             std::chrono::nanoseconds timeout, const std::string& what) {
  const std::string target_address = bracketed(target.host) + ":" + target.port;
  const std::string via = "proxy " + proxy.display;
  http::request<http::empty_body> req{http::verb::connect, target_address, 11};
  req.set(http::field::host, target_address);
  req.set(http::field::user_agent, user_agent);
  if (!proxy.authorization.empty()) req.set(http::field::proxy_authorization, proxy.authorization);
  auto [wec, written] = co_await http::async_write(stream, req, nothrow);
  if (wec) co_return informer::error{wec, stage_detail(what, "sending CONNECT to " + via + " failed", wec, timeout)};

  beast::flat_buffer buffer;
  http::response_parser<http::empty_body> parser;
  parser.skip(true);  // a CONNECT answer's body, if any, is not read: the connection is dropped then
  auto [rec, read] = co_await http::async_read_header(stream, buffer, parser, nothrow);
  if (rec) {
    co_return informer::error{
        rec,
        stage_detail(what, "reading the answer of " + via + " to CONNECT " + target_address + " failed", rec, timeout)};
  }
  const unsigned status = parser.get().result_int();
  if (status == 200) {
    // The server speaks TLS only after the client hello: anything here is not the server's.
    if (buffer.size() != 0) {
      co_return informer::error{errc::malformed_response,
                                what + ": " + via + " sent data after accepting CONNECT " + target_address};
    }
    co_return informer::error{};
  }
  errc code = errc::api_error;
  // 407 is the proxy's "who are you"; some proxies (tinyproxy) answer wrong credentials with 401.
  const bool credentials_refused = status == 407 || status == 401;
  if (credentials_refused) {
    code = errc::unauthorized;
  } else if (status == 403) {
    code = errc::forbidden;
  } else if (status >= 500 && status < 600) {
    code = errc::server_error;
  }
  std::string detail = what + ": " + via + " refused CONNECT " + target_address + ": " + std::to_string(status) + " " +
                       std::string{parser.get().reason()};
  if (credentials_refused) {
    detail += proxy.authorization.empty() ? " (the proxy URL has no user and password)"
                                          : " (the proxy did not accept the proxy URL's user and password)";
  }
  co_return informer::error{code, std::move(detail)};
}

}  // namespace informer::detail
