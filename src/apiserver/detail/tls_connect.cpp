#include "apiserver/detail/tls_connect.hpp"

#include "apiserver/detail/proxy.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <charconv>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace informer::detail {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// Awaiting with this yields (error_code, ...) tuples instead of throwing.
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

void tune_socket(tcp::socket& socket) {
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  // Notices a peer that vanished without closing (a watch may be silent for minutes).
  socket.set_option(asio::socket_base::keep_alive(true), ignored);
  const int seconds = 30;
  ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &seconds, sizeof seconds);
  ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &seconds, sizeof seconds);
}

// Connects to host:port; `peer` names it in errors ("" for the server, "proxy http://..." for a
// proxy).
asio::awaitable<informer::error> connect_tcp(beast::tcp_stream& tcp_stream, const std::string& host,
                                             const std::string& port, bool host_is_ip, const std::string& peer,
                                             std::chrono::nanoseconds timeout, const std::string& what) {
  const std::string to = peer.empty() ? std::string{} : " to " + peer;
  if (host_is_ip) {
    const tcp::endpoint endpoint{asio::ip::make_address(host), static_cast<unsigned short>(std::stoi(port))};
    auto [ec] = co_await tcp_stream.async_connect(endpoint, nothrow);
    if (ec) co_return informer::error{ec, stage_detail(what, "cannot connect" + to, ec, timeout)};
  } else {
    tcp::resolver resolver(tcp_stream.get_executor());
    auto [rec, results] = co_await resolver.async_resolve(host, port, nothrow);
    if (rec)
      co_return informer::error{rec, what + ": cannot resolve " + host + (peer.empty() ? "" : " (" + peer + ")")};
    auto [ec, endpoint] = co_await tcp_stream.async_connect(results, nothrow);
    if (ec) co_return informer::error{ec, stage_detail(what, "cannot connect" + to, ec, timeout)};
  }
  co_return informer::error{};
}

// Where the server's certificate is checked against, for handshake errors.
std::string trust_description(const tls_config& tls) {
  if (!tls.ca_data.empty()) return "the CA in ca_data";
  if (!tls.ca_file.empty()) return "the CA in " + tls.ca_file.string();
  return "the system's trust store";
}

}  // namespace

detailed_result<server_url> parse_server(const std::string& server) {
  constexpr std::string_view scheme = "https://";
  const auto bad = [&](std::string_view why) {
    return informer::error{errc::invalid_url, "server \"" + server + "\": " + std::string{why}};
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

detailed_result<ssl::context> make_tls_context(const rest_config& config) {
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
        tls.add_certificate_authority(asio::buffer(pem->ca), ec);
        // Every certificate of the configured CA is a trust anchor, an intermediate too, as in
        // Go's verifier (OpenSSL otherwise insists on reaching a self-signed root).
        X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(tls.native_handle()), X509_V_FLAG_PARTIAL_CHAIN);
      }
    }
  }
  if (ec) return informer::error{ec, "setting up TLS verification for " + config.server};
  if (!pem->cert.empty()) {
    tls.use_certificate_chain(asio::buffer(pem->cert), ec);
    if (ec) return informer::error{ec, "loading the client certificate"};
    tls.use_private_key(asio::buffer(pem->key), ssl::context::pem, ec);
    if (ec) return informer::error{ec, "loading the client key"};
  }
  return tls;
}

std::string stage_detail(const std::string& what, std::string_view stage, const boost::system::error_code& ec,
                         std::chrono::nanoseconds timeout) {
  std::string detail = what + ": " + std::string{stage};
  if (ec == beast::error::timeout) {
    detail +=
        " (timeout " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) + " ms)";
  }
  return detail;
}

asio::awaitable<informer::error> tls_connect(tls_stream& stream, const server_url& url, const tls_config& tls,
                                             const connect_route& route, std::chrono::nanoseconds timeout,
                                             const std::string& what, std::atomic<std::uint64_t>& connections_opened) {
  auto& tcp_stream = beast::get_lowest_layer(stream);
  if (route.proxy != nullptr) {
    const proxy_endpoint& proxy = *route.proxy;
    if (auto e = co_await connect_tcp(tcp_stream, proxy.host, proxy.port, proxy.host_is_ip, "proxy " + proxy.display,
                                      timeout, what)) {
      co_return e;
    }
  } else if (auto e = co_await connect_tcp(tcp_stream, url.host, url.port, url.host_is_ip, {}, timeout, what)) {
    co_return e;
  }
  ++connections_opened;
  tune_socket(tcp_stream.socket());
  if (route.proxy != nullptr) {
    if (auto e = co_await open_tunnel(tcp_stream, *route.proxy, url, std::string{route.user_agent}, timeout, what)) {
      co_return e;
    }
  }

  SSL* ssl_handle = stream.native_handle();
  const std::string& name = tls.server_name.empty() ? url.host : tls.server_name;
  const bool name_is_ip = is_ip_address(name);
  if (!name_is_ip) SSL_set_tlsext_host_name(ssl_handle, name.c_str());  // no SNI for IP literals (RFC 6066)
  if (!tls.insecure_skip_tls_verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                              : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1) co_return informer::error{errc::invalid_config, what + ": cannot verify against name " + name};
  }
  auto [ec] = co_await stream.async_handshake(ssl::stream_base::client, nothrow);
  if (ec) {
    std::string detail = stage_detail(what, "TLS handshake failed", ec, timeout);
    if (const long verify = SSL_get_verify_result(ssl_handle); verify != X509_V_OK) {
      detail += ": " + std::string{X509_verify_cert_error_string(verify)} + " (server certificate checked for " + name +
                " against " + trust_description(tls) + ")";
    }
    if (route.proxy != nullptr) detail += " (through proxy " + route.proxy->display + ")";
    co_return informer::error{ec, std::move(detail)};
  }
  co_return informer::error{};
}

}  // namespace informer::detail
