#include "apiserver/detail/proxy.hpp"

#include <boost/test/unit_test.hpp>

#include "io_threads.hpp"
#include "loopback_port.hpp"
#include "informer/apiserver/http_client.hpp"

#include <boost/asio/use_future.hpp>
#include <boost/beast/core/error.hpp>

#include <chrono>
#include <future>
#include <map>
#include <string>

using informer::errc;
using informer::proxy_config;
using informer::detail::no_proxy_list;
using informer::detail::parse_proxy_url;
using informer::detail::redact_proxy_url;
using informer::detail::select_proxy;
using informer::detail::server_url;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

server_url server(const std::string& url) {
  auto u = informer::detail::parse_server(url);
  BOOST_TEST_REQUIRE(u.has_value());
  return *u;
}

// An environment of the test's own.
struct fake_env {
  std::map<std::string, std::string> vars;
  std::string operator()(const char* name) const {
    const auto it = vars.find(name);
    return it == vars.end() ? std::string{} : it->second;
  }
};

// The proxy host select_proxy picks for `url`, or "direct".
std::string route(const proxy_config& config, const std::string& url, const fake_env& env) {
  auto p = select_proxy(config, server(url), env);
  BOOST_TEST_REQUIRE(p.has_value(), p.error().what());
  return *p ? (*p)->display : std::string{"direct"};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(proxy_url)

BOOST_AUTO_TEST_CASE(http_urls_give_host_port_and_basic_credentials) {
  auto p = parse_proxy_url("http://proxy.corp:3128", "test", false);
  BOOST_TEST_REQUIRE(p.has_value());
  BOOST_TEST(p->host == "proxy.corp");
  BOOST_TEST(p->port == "3128");
  BOOST_TEST(!p->host_is_ip);
  BOOST_TEST(p->authorization.empty());
  BOOST_TEST(p->display == "http://proxy.corp:3128");

  auto default_port = parse_proxy_url("HTTP://proxy.corp/", "test", false);
  BOOST_TEST_REQUIRE(default_port.has_value());
  BOOST_TEST(default_port->port == "80");

  auto v6 = parse_proxy_url("http://[::1]:8080", "test", false);
  BOOST_TEST_REQUIRE(v6.has_value());
  BOOST_TEST(v6->host == "::1");
  BOOST_TEST(v6->host_is_ip);
  BOOST_TEST(v6->display == "http://[::1]:8080");

  // Percent-decoded, then "user:password" in base64; the display keeps no credentials.
  auto with_user = parse_proxy_url("http://bob:s%40cret@10.0.0.1:3128", "test", false);
  BOOST_TEST_REQUIRE(with_user.has_value());
  BOOST_TEST(with_user->authorization == "Basic Ym9iOnNAY3JldA==");
  BOOST_TEST(with_user->host == "10.0.0.1");
  BOOST_TEST(with_user->display == "http://10.0.0.1:3128");

  auto user_only = parse_proxy_url("http://bob@h:1", "test", false);
  BOOST_TEST_REQUIRE(user_only.has_value());
  BOOST_TEST(user_only->authorization == "Basic Ym9iOg==");
}

BOOST_AUTO_TEST_CASE(other_schemes_are_refused_naming_the_scheme) {
  const std::map<std::string, std::string> cases = {{"socks5://h:1080", "socks5"},
                                                    {"socks5h://h:1080", "socks5"},
                                                    {"https://h:443", "https://"},
                                                    {"ftp://h", "\"ftp\""}};
  for (const auto& [url, named] : cases) {
    auto p = parse_proxy_url(url, "my.origin", false);
    BOOST_TEST_REQUIRE(p.has_error(), url);
    BOOST_TEST(p.error().code() == make_error_code(errc::invalid_config), url);
    BOOST_TEST(contains(p.error().detail(), named), p.error().detail());
    BOOST_TEST(contains(p.error().detail(), "my.origin"), p.error().detail());
  }
}

BOOST_AUTO_TEST_CASE(bare_host_port_is_http_only_where_go_takes_it) {
  BOOST_TEST(parse_proxy_url("proxy.corp:3128", "rest_config.proxy.url", false).has_error());
  auto env = parse_proxy_url("proxy.corp:3128", "HTTPS_PROXY", true);
  BOOST_TEST_REQUIRE(env.has_value());
  BOOST_TEST(env->display == "http://proxy.corp:3128");
  auto ip = parse_proxy_url(" 10.1.2.3:8080 ", "HTTPS_PROXY", true);
  BOOST_TEST_REQUIRE(ip.has_value());
  BOOST_TEST(ip->display == "http://10.1.2.3:8080");
}

BOOST_AUTO_TEST_CASE(malformed_urls_are_refused) {
  for (const char* url : {"http://", "http://:8080", "http://h:0", "http://h:99999", "http://h:12x", "http://[::1",
                          "http://bob:%zz@h:1"}) {
    auto p = parse_proxy_url(url, "test", false);
    BOOST_TEST(p.has_error(), url);
    if (p.has_error()) BOOST_TEST(p.error().code() == make_error_code(errc::invalid_config), url);
  }
}

BOOST_AUTO_TEST_CASE(errors_never_show_the_password) {
  for (const char* url : {"socks5://bob:hunter2@h:1080", "http://bob:hunter2@h:99999", "https://bob:hunter2@h"}) {
    auto p = parse_proxy_url(url, "test", false);
    BOOST_TEST_REQUIRE(p.has_error(), url);
    BOOST_TEST(!contains(p.error().detail(), "hunter2"), p.error().detail());
    BOOST_TEST(contains(p.error().detail(), "bob:xxxxx@h"), p.error().detail());
  }
  BOOST_TEST(redact_proxy_url("http://bob:pw@h:1/x") == "http://bob:xxxxx@h:1/x");
  BOOST_TEST(redact_proxy_url("http://bob@h:1") == "http://bob@h:1");
  BOOST_TEST(redact_proxy_url("http://h:1") == "http://h:1");
  BOOST_TEST(redact_proxy_url("bob:p@ss@h:1") == "bob:xxxxx@h:1");
  // A password with an unescaped '#', '/' or '?' would end a URL's host early: refused, and not
  // quoted.
  for (const auto& [url, secret] :
       {std::pair{"http://bob:p#ss@h:3128", "p#ss"}, std::pair{"http://bob:1234/x@h:3128", "1234"},
        std::pair{"http://bob:a?b@h", "a?b"}}) {
    auto p = parse_proxy_url(url, "test", false);
    BOOST_TEST_REQUIRE(p.has_error(), url);
    BOOST_TEST(!contains(p.error().detail(), secret), p.error().detail());
    BOOST_TEST(contains(p.error().detail(), "percent-encode"), p.error().detail());
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(no_proxy)

BOOST_AUTO_TEST_CASE(localhost_and_loopback_are_never_proxied) {
  const no_proxy_list none{""};
  BOOST_TEST(none.bypasses("localhost", "443"));
  BOOST_TEST(none.bypasses("127.0.0.1", "6443"));
  BOOST_TEST(none.bypasses("127.5.6.7", "6443"));
  BOOST_TEST(none.bypasses("::1", "443"));
  BOOST_TEST(none.bypasses("::ffff:127.0.0.1", "443"));
  BOOST_TEST(!none.bypasses("example.com", "443"));
  BOOST_TEST(!none.bypasses("10.0.0.1", "443"));
  // Go compares the name "localhost" as written, before lowercasing, and resolves no name.
  BOOST_TEST(!none.bypasses("LOCALHOST", "443"));
  BOOST_TEST(!none.bypasses("localhost.localdomain", "443"));
}

BOOST_AUTO_TEST_CASE(star_matches_everything) {
  const no_proxy_list all{"foo, *"};
  BOOST_TEST(all.bypasses("example.com", "443"));
  BOOST_TEST(all.bypasses("10.0.0.1", "1"));
  // "*" only counts alone, not inside a name.
  BOOST_TEST(!no_proxy_list{"*example.com"}.bypasses("www.example.com", "443"));
}

BOOST_AUTO_TEST_CASE(domains_match_themselves_and_subdomains) {
  const no_proxy_list plain{"example.com"};
  BOOST_TEST(plain.bypasses("example.com", "443"));
  BOOST_TEST(plain.bypasses("api.example.com", "443"));
  BOOST_TEST(plain.bypasses("API.Example.COM", "443"));
  BOOST_TEST(!plain.bypasses("notexample.com", "443"));
  BOOST_TEST(!plain.bypasses("example.com.evil", "443"));

  for (const char* entry : {".example.com", "*.example.com"}) {
    const no_proxy_list dotted{entry};
    BOOST_TEST(dotted.bypasses("api.example.com", "443"), entry);
    BOOST_TEST(!dotted.bypasses("example.com", "443"), entry);
  }

  const no_proxy_list list{" Example.COM ,, kube.internal , "};
  BOOST_TEST(list.bypasses("example.com", "443"));
  BOOST_TEST(list.bypasses("kube.internal", "6443"));
  BOOST_TEST(!list.bypasses("other.org", "443"));
}

BOOST_AUTO_TEST_CASE(ports_restrict_an_entry) {
  const no_proxy_list list{"example.com:6443,10.0.0.1:443,[fd00::1]:443"};
  BOOST_TEST(list.bypasses("example.com", "6443"));
  BOOST_TEST(!list.bypasses("example.com", "443"));
  BOOST_TEST(list.bypasses("10.0.0.1", "443"));
  BOOST_TEST(!list.bypasses("10.0.0.1", "6443"));
  BOOST_TEST(list.bypasses("fd00::1", "443"));
  BOOST_TEST(!list.bypasses("fd00::1", "6443"));
  // An entry without host is malformed and ignored.
  BOOST_TEST(!no_proxy_list{":443"}.bypasses("example.com", "443"));
}

BOOST_AUTO_TEST_CASE(ip_addresses_and_cidrs_match_ip_hosts) {
  const no_proxy_list list{"192.168.1.5,10.0.0.0/8,fd00::/8,::2,172.16.1.99/16"};
  BOOST_TEST(list.bypasses("192.168.1.5", "443"));
  BOOST_TEST(!list.bypasses("192.168.1.6", "443"));
  BOOST_TEST(list.bypasses("10.200.3.4", "443"));
  BOOST_TEST(!list.bypasses("11.0.0.1", "443"));
  BOOST_TEST(list.bypasses("::ffff:10.1.1.1", "443"));  // IPv4-mapped is the IPv4 address
  BOOST_TEST(list.bypasses("fd12:3456::1", "443"));
  BOOST_TEST(!list.bypasses("fe80::1", "443"));
  BOOST_TEST(list.bypasses("::2", "443"));
  BOOST_TEST(list.bypasses("172.16.200.1", "443"));  // host bits in a CIDR are masked, as Go does
  BOOST_TEST(!list.bypasses("172.17.0.1", "443"));
  // A CIDR says nothing about names.
  BOOST_TEST(!list.bypasses("10.example.com", "443"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(selection)

BOOST_AUTO_TEST_CASE(an_explicit_url_is_used_for_every_server) {
  const fake_env env{{{"HTTPS_PROXY", "http://env-proxy:1"}, {"NO_PROXY", "*"}}};
  const proxy_config config{.url = "http://explicit:3128"};
  BOOST_TEST(route(config, "https://kube.example:6443", env) == "http://explicit:3128");
  BOOST_TEST(route(config, "https://127.0.0.1:6443", env) == "http://explicit:3128");
  BOOST_TEST(route(config, "https://localhost:6443", env) == "http://explicit:3128");
}

BOOST_AUTO_TEST_CASE(the_environment_is_read_as_go_reads_it) {
  const proxy_config from_env{};
  BOOST_TEST(route(from_env, "https://kube.example", fake_env{}) == "direct");
  BOOST_TEST(route(from_env, "https://kube.example", fake_env{{{"HTTP_PROXY", "http://plain:1"}}}) == "direct");
  BOOST_TEST(route(from_env, "https://kube.example", fake_env{{{"https_proxy", "http://lower:1"}}}) ==
             "http://lower:1");
  BOOST_TEST(route(from_env, "https://kube.example",
                   fake_env{{{"HTTPS_PROXY", "http://upper:1"}, {"https_proxy", "http://lower:1"}}}) ==
             "http://upper:1");
  BOOST_TEST(route(from_env, "https://kube.example", fake_env{{{"HTTPS_PROXY", ""}, {"https_proxy", "lower:3128"}}}) ==
             "http://lower:3128");

  const fake_env with_no_proxy{{{"HTTPS_PROXY", "http://p:1"}, {"NO_PROXY", "kube.example"}, {"no_proxy", "*"}}};
  BOOST_TEST(route(from_env, "https://kube.example", with_no_proxy) == "direct");
  BOOST_TEST(route(from_env, "https://other.example", with_no_proxy) == "http://p:1");
  const fake_env lower_no_proxy{{{"HTTPS_PROXY", "http://p:1"}, {"no_proxy", ".example"}}};
  BOOST_TEST(route(from_env, "https://kube.example", lower_no_proxy) == "direct");
  // The server's port is the effective one: 443 without one in the URL.
  const fake_env port_rule{{{"HTTPS_PROXY", "http://p:1"}, {"NO_PROXY", "kube.example:443"}}};
  BOOST_TEST(route(from_env, "https://kube.example", port_rule) == "direct");
  BOOST_TEST(route(from_env, "https://kube.example:6443", port_rule) == "http://p:1");

  const fake_env proxy{{{"HTTPS_PROXY", "http://p:1"}}};
  BOOST_TEST(route(from_env, "https://127.0.0.1:6443", proxy) == "direct");
  BOOST_TEST(route(from_env, "https://[::1]:6443", proxy) == "direct");
  BOOST_TEST(route(from_env, "https://localhost:6443", proxy) == "direct");
  BOOST_TEST(route(proxy_config{.from_environment = false}, "https://kube.example", proxy) == "direct");
}

BOOST_AUTO_TEST_CASE(an_unusable_environment_proxy_names_its_variable) {
  auto p = select_proxy(proxy_config{}, server("https://kube.example"),
                        fake_env{{{"https_proxy", "socks5://bob:hunter2@p:1080"}}});
  BOOST_TEST_REQUIRE(p.has_error());
  BOOST_TEST(p.error().code() == make_error_code(errc::invalid_config));
  BOOST_TEST(contains(p.error().detail(), "https_proxy"), p.error().detail());
  BOOST_TEST(contains(p.error().detail(), "socks5"), p.error().detail());
  BOOST_TEST(!contains(p.error().detail(), "hunter2"), p.error().detail());
}

BOOST_AUTO_TEST_SUITE_END()

// The proxy's own failures, before any API server is involved (a real proxy is in
// tests/integration/apiserver_proxy_live_test.cpp).
BOOST_AUTO_TEST_SUITE(through_a_proxy)

using informer::http_client;
using informer::rest_config;
using informer::testing::io_threads;

std::tuple<informer::error, informer::http_response> get_version(http_client& client) {
  auto f = client.async_request(boost::beast::http::verb::get, "/version", {}, {}, boost::asio::use_future);
  BOOST_TEST_REQUIRE((f.wait_for(60s) == std::future_status::ready), "request did not complete");
  return f.get();
}

BOOST_AUTO_TEST_CASE(a_proxy_that_is_down_is_named_without_its_password) {
  loopback_port down(false);
  io_threads io;
  const std::string proxy_port = down.endpoint().substr(down.endpoint().rfind(':') + 1);
  auto client = http_client::create(io.ctx.get_executor(),
                                    rest_config{.server = "https://kube.example:6443",
                                                .proxy = {.url = "http://bob:hunter2@127.0.0.1:" + proxy_port}});
  BOOST_TEST_REQUIRE(client.has_value(), client.error().what());
  auto [e, r] = get_version(*client);
  BOOST_TEST_MESSAGE("proxy down: " << e.what());
  BOOST_TEST(e.code() == boost::asio::error::connection_refused, e.what());
  BOOST_TEST(contains(e.what(), "proxy http://127.0.0.1:" + proxy_port), e.what());
  BOOST_TEST(contains(e.what(), "https://kube.example:6443/version"), e.what());
  BOOST_TEST(!contains(e.what(), "hunter2"), e.what());
}

BOOST_AUTO_TEST_CASE(the_timeout_covers_the_connect_step) {
  loopback_port silent(true);  // accepts, never answers the CONNECT
  io_threads io;
  const std::string proxy_port = silent.endpoint().substr(silent.endpoint().rfind(':') + 1);
  auto client =
      http_client::create(io.ctx.get_executor(), rest_config{.server = "https://kube.example:6443",
                                                             .timeout = 400ms,
                                                             .proxy = {.url = "http://127.0.0.1:" + proxy_port}});
  BOOST_TEST_REQUIRE(client.has_value(), client.error().what());
  const auto start = std::chrono::steady_clock::now();
  auto [e, r] = get_version(*client);
  const auto took = std::chrono::steady_clock::now() - start;
  BOOST_TEST_MESSAGE("silent proxy: " << e.what());
  BOOST_TEST(e.code() == make_error_code(boost::beast::error::timeout), e.what());
  BOOST_TEST(contains(e.what(), "CONNECT kube.example:6443"), e.what());
  BOOST_TEST(contains(e.what(), "timeout 400 ms"), e.what());
  BOOST_TEST((took >= 350ms && took < 3s));
}

BOOST_AUTO_TEST_CASE(unsupported_proxies_are_refused_at_create) {
  io_threads io;
  for (const char* url : {"socks5://127.0.0.1:1080", "https://127.0.0.1:3128"}) {
    auto client = http_client::create(io.ctx.get_executor(),
                                      rest_config{.server = "https://kube.example", .proxy = {.url = url}});
    BOOST_TEST_REQUIRE(client.has_error(), url);
    BOOST_TEST(client.error().code() == make_error_code(errc::invalid_config), url);
    BOOST_TEST(contains(client.error().detail(), "rest_config.proxy.url"), client.error().detail());
  }
}

BOOST_AUTO_TEST_SUITE_END()
