// The API-server client through a real HTTP proxy (tinyproxy, tests/support/tinyproxy.hpp) in front
// of a real kube-apiserver: an informer lists and watches through the kubeconfig's proxy-url; the
// proxy's credentials; HTTPS_PROXY and NO_PROXY from the environment; a proxy that is down, one
// that cannot reach the server, and proxy schemes that are not supported.
//
// Go never proxies a loopback address or "localhost" through the environment, and the API server
// listens on 127.0.0.1 only: the environment test addresses the server by this machine's host name
// (a name, so proxied; /etc/hosts maps it to loopback, where the proxy and, with NO_PROXY, the
// client resolve it) and verifies the server's certificate for "kubernetes", one of its names
// (tls.server_name, kubeconfig's tls-server-name). Without such a host name the test says so and
// checks nothing.
#include "informer/apiserver/http_client.hpp"

#include <boost/test/unit_test.hpp>

#include "control_plane.hpp"
#include "io_threads.hpp"
#include "tinyproxy.hpp"
#include "wait.hpp"
#include "informer/apiserver/kubeconfig.hpp"
#include "informer/apiserver/lister_watcher.hpp"
#include "informer/apiserver/resource_path.hpp"
#include "informer/client/shared_informer.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;
using informer::errc;
using informer::http_client;
using informer::http_response;
using informer::rest_config;
using informer::testing::control_plane;
using informer::testing::eventually;
using informer::testing::io_threads;
using informer::testing::tinyproxy;

namespace {

control_plane* cluster = nullptr;

struct cluster_fixture {
  cluster_fixture() {
    if (control_plane::available() && tinyproxy::available()) cluster = new control_plane();
  }
  ~cluster_fixture() { delete cluster; }
};

bool ready(boost::unit_test::test_unit_id) { return cluster != nullptr; }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string random_suffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng() % 1000000000);
}

// "127.0.0.1:<port>" of the API server: the CONNECT target when it is addressed by IP.
std::string apiserver_address() { return cluster->apiserver_url().substr(std::string{"https://"}.size()); }
std::string apiserver_port() { return apiserver_address().substr(apiserver_address().rfind(':') + 1); }

// A kubeconfig for the admin token with `proxy_url` on its cluster, in a file of the test's own.
std::filesystem::path write_kubeconfig(const std::string& proxy_url, const std::string& server = {}) {
  const auto path = cluster->dir() / ("proxy-kubeconfig-" + random_suffix() + ".yaml");
  std::ofstream out(path);
  out << "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
      << "    server: " << (server.empty() ? cluster->apiserver_url() : server) << "\n"
      << "    certificate-authority: " << cluster->ca_file() << "\n"
      << "    proxy-url: \"" << proxy_url << "\"\n"
      << "users:\n- name: u\n  user:\n    token: " << cluster->admin_token() << "\n"
      << "contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n";
  return path;
}

rest_config config_through(const std::string& proxy_url, const std::string& server = {}) {
  auto config = informer::load_kubeconfig({.files = {write_kubeconfig(proxy_url, server)}});
  BOOST_TEST_REQUIRE(config.has_value(), config.error().what());
  config->qps = 0;
  return *config;
}

http_client make_client(io_threads& io, const rest_config& config) {
  auto c = http_client::create(io.ctx.get_executor(), config);
  BOOST_TEST_REQUIRE(c.has_value(), "http_client::create failed: " << c.error().what());
  return *c;
}

std::tuple<informer::error, http_response> request(http_client& client, http::verb method, const std::string& path,
                                                   const std::string& body = {}) {
  http::fields headers;
  if (!body.empty()) headers.set(http::field::content_type, "application/json");
  auto f = client.async_request(method, path, headers, body, asio::use_future);
  BOOST_TEST_REQUIRE((f.wait_for(60s) == std::future_status::ready), "request did not complete: " << path);
  return f.get();
}

void create(http_client& client, const std::string& collection, const std::string& body) {
  auto [e, r] = request(client, http::verb::post, collection, body);
  BOOST_TEST_REQUIRE(!e, "POST " << collection << ": " << e.what());
}

// Sets (or, with nullopt, unsets) environment variables for one scope, restoring them after.
class scoped_env {
public:
  explicit scoped_env(const std::map<std::string, std::optional<std::string>>& vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name.c_str());
      saved_[name] = old != nullptr ? std::optional<std::string>{old} : std::nullopt;
      apply(name, value);
    }
  }
  ~scoped_env() {
    for (const auto& [name, value] : saved_) apply(name, value);
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

private:
  static void apply(const std::string& name, const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
  std::map<std::string, std::optional<std::string>> saved_;
};

// This machine's host name when it resolves to 127.0.0.1 only (where the API server listens), else
// nullopt.
std::optional<std::string> loopback_host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || std::string_view{name}.empty() ||
      std::string_view{name} == "localhost") {
    return std::nullopt;
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(name, nullptr, &hints, &found) != 0) return std::nullopt;
  bool all_loopback = found != nullptr;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
    all_loopback &= ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK;
  }
  ::freeaddrinfo(found);
  return all_loopback ? std::optional<std::string>{name} : std::nullopt;
}

// What an informer's error hook saw.
struct error_log {
  void operator()(const informer::error& e) {
    std::lock_guard lock(mutex);
    errors.push_back(e);
  }
  std::vector<informer::error> snapshot() const {
    std::lock_guard lock(mutex);
    return errors;
  }
  mutable std::mutex mutex;
  std::vector<informer::error> errors;
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

BOOST_AUTO_TEST_SUITE(apiserver_proxy, *boost::unit_test::precondition(ready))

BOOST_AUTO_TEST_CASE(an_informer_lists_and_watches_through_the_kubeconfig_proxy_url) {
  tinyproxy proxy;
  io_threads io;
  auto config = config_through(proxy.url());
  BOOST_TEST(config.proxy.url == proxy.url());
  auto client = make_client(io, config);

  const auto cms = informer::parse_resource("configmaps").value();
  const std::string ns = "proxy-" + random_suffix();
  create(client, "/api/v1/namespaces", R"({"metadata":{"name":")" + ns + R"("}})");
  const std::string collection = informer::resource_path(cms, ns);
  create(client, collection, R"({"metadata":{"name":"before"}})");

  auto lw = informer::apiserver_lister_watcher::create(client, cms, {.ns = ns});
  BOOST_TEST_REQUIRE(lw.has_value(), lw.error().what());
  auto inf = informer::shared_informer::create(*lw, {});
  std::mutex mutex;
  std::vector<std::string> added;
  inf->add_event_handler({.on_add =
                              [&](const informer::object::ptr& o, bool) {
                                std::lock_guard lock(mutex);
                                added.emplace_back(o->name());
                              },
                          .on_update = {},
                          .on_delete = {}});
  inf->run();
  BOOST_TEST_REQUIRE(informer::wait_for_cache_sync({inf}, 30s), "the informer did not sync through the proxy");
  BOOST_TEST(inf->get_store()->get_by_key(ns + "/before") != nullptr);

  create(client, collection, R"({"metadata":{"name":"after"}})");  // arrives by the watch
  BOOST_TEST(eventually(
      [&] {
        std::lock_guard lock(mutex);
        return std::find(added.begin(), added.end(), "after") != added.end();
      },
      30s));
  inf->stop();

  // Every connection the client opened (writes, list, watch) was a tunnel through the proxy.
  const auto opened = client.stats().connections_opened;
  BOOST_TEST(opened >= 2u);  // the watch holds one while the writes use another
  BOOST_TEST(eventually([&] { return proxy.connects_to(apiserver_address()) == opened; }),
             proxy.connects_to(apiserver_address()) << " CONNECTs logged, " << opened << " connections opened");
}

BOOST_AUTO_TEST_CASE(the_proxy_url_credentials_authenticate_and_stay_secret) {
  tinyproxy proxy({.user = "bob", .password = "hunter2"});
  io_threads io;
  auto good = make_client(io, config_through(proxy.url_with("bob", "hunter2")));
  auto [e, r] = request(good, http::verb::get, "/version");
  BOOST_TEST(!e, e.what());
  BOOST_TEST(r.status_code == 200u);

  for (const auto& url : {proxy.url_with("bob", "wrong-pass"), proxy.url()}) {
    auto bad = make_client(io, config_through(url));
    auto [be, br] = request(bad, http::verb::get, "/version");
    BOOST_TEST_MESSAGE("407: " << be.what());
    BOOST_TEST(be.code() == make_error_code(errc::unauthorized), be.what());
    // tinyproxy answers 407 without credentials and 401 to wrong ones.
    BOOST_TEST(contains(be.what(), "proxy " + proxy.url() + " refused CONNECT " + apiserver_address() + ": 40"),
               be.what());
    BOOST_TEST(contains(be.what(), "user and password"), be.what());
    BOOST_TEST(!contains(be.what(), "wrong-pass"), be.what());
  }
  BOOST_TEST(proxy.connects_to(apiserver_address()) == 3u);
}

BOOST_AUTO_TEST_CASE(https_proxy_from_the_environment_and_no_proxy) {
  const auto host = loopback_host_name();
  if (!host) {
    BOOST_TEST_MESSAGE("skipped: this machine's host name does not resolve to 127.0.0.1 only");
    return;
  }
  BOOST_TEST_MESSAGE("environment: the server as https://" << *host << ":" << apiserver_port());
  tinyproxy proxy;
  io_threads io;
  rest_config config{.server = "https://" + *host + ":" + apiserver_port(),
                     .tls = {.ca_file = cluster->ca_file(), .server_name = "kubernetes"},
                     .bearer_token = cluster->admin_token(),
                     .qps = 0};
  const std::string target = *host + ":" + apiserver_port();
  const auto get_version = [&](const rest_config& c) {
    auto client = make_client(io, c);
    auto [e, r] = request(client, http::verb::get, "/api/v1/namespaces/default");
    BOOST_TEST(!e, e.what());
    BOOST_TEST(r.status_code == 200u);
    return client.stats().connections_opened;
  };
  {
    scoped_env env({{"HTTPS_PROXY", proxy.url()},
                    {"https_proxy", std::nullopt},
                    {"NO_PROXY", std::nullopt},
                    {"no_proxy", std::nullopt}});
    const auto opened = get_version(config);
    BOOST_TEST(eventually([&] { return proxy.connects_to(target) == opened; }), proxy.log());

    // client-go's way to turn it off, and the loopback rule: direct, the proxy sees nothing more.
    auto off = config;
    off.proxy.from_environment = false;
    get_version(off);
    auto by_ip = config;
    by_ip.server = cluster->apiserver_url();
    by_ip.tls.server_name.clear();
    get_version(by_ip);
    BOOST_TEST(proxy.connects_to(target) == opened);
    BOOST_TEST(proxy.connects_to(apiserver_address()) == 0u);
  }
  const auto before = proxy.connects_to(target);
  for (const auto& no_proxy : std::vector<std::string>{*host, "*", "example.com, " + *host + ":" + apiserver_port()}) {
    scoped_env env({{"HTTPS_PROXY", std::nullopt},
                    {"https_proxy", proxy.url()},
                    {"NO_PROXY", std::nullopt},
                    {"no_proxy", no_proxy}});
    get_version(config);
  }
  BOOST_TEST(proxy.connects_to(target) == before);
  {
    // A NO_PROXY entry for another port does not bypass the proxy.
    scoped_env env({{"HTTPS_PROXY", proxy.url()}, {"NO_PROXY", *host + ":1"}});
    get_version(config);
    BOOST_TEST(eventually([&] { return proxy.connects_to(target) == before + 1; }), proxy.log());
  }
}

BOOST_AUTO_TEST_CASE(a_proxy_that_is_down_is_reported_by_the_informer) {
  std::string down_url;
  {
    tinyproxy gone;  // its port is free again once it stopped
    down_url = gone.url();
  }
  io_threads io;
  auto client = make_client(io, config_through(down_url));
  auto lw = informer::apiserver_lister_watcher::create(client, informer::parse_resource("pods").value(), {});
  BOOST_TEST_REQUIRE(lw.has_value(), lw.error().what());
  auto log = std::make_shared<error_log>();
  informer::shared_informer_options o;
  o.watch_error_handler = [log](const informer::error& e) { (*log)(e); };
  auto inf = informer::shared_informer::create(*lw, std::move(o));
  inf->run();
  BOOST_TEST_REQUIRE(eventually([&] { return !log->snapshot().empty(); }));
  inf->stop();
  const auto e = log->snapshot().front();
  BOOST_TEST_MESSAGE("proxy down: " << e.what());
  BOOST_TEST(e.code() == asio::error::connection_refused, e.what());
  BOOST_TEST((e == informer::condition::unreachable), e.what());
  BOOST_TEST(contains(e.what(), "cannot connect to proxy " + down_url), e.what());
}

BOOST_AUTO_TEST_CASE(a_proxy_that_cannot_reach_the_server_answers_with_its_status) {
  tinyproxy proxy;
  io_threads io;
  asio::io_context probe;
  asio::ip::tcp::acceptor acceptor(probe, {asio::ip::make_address("127.0.0.1"), 0});
  const std::string closed = "https://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  acceptor.close();
  auto client = make_client(io, config_through(proxy.url(), closed));
  auto [e, r] = request(client, http::verb::get, "/version");
  BOOST_TEST_MESSAGE("unreachable behind the proxy: " << e.what());
  BOOST_TEST(e.code() == make_error_code(errc::server_error), e.what());
  BOOST_TEST(contains(e.what(), "proxy " + proxy.url() + " refused CONNECT"), e.what());
}

BOOST_AUTO_TEST_CASE(unsupported_proxy_schemes_are_refused_clearly) {
  for (const char* url : {"socks5://bob:hunter2@127.0.0.1:1080", "https://127.0.0.1:3128"}) {
    auto config = informer::load_kubeconfig({.files = {write_kubeconfig(url)}});
    BOOST_TEST_REQUIRE(config.has_error(), url);
    BOOST_TEST_MESSAGE("refused: " << config.error().what());
    BOOST_TEST(config.error().code() == make_error_code(errc::invalid_config), url);
    BOOST_TEST(contains(config.error().detail(), "clusters[\"c\"].proxy-url"), config.error().detail());
    BOOST_TEST(contains(config.error().detail(), std::string_view{url}.substr(0, 5) == "socks" ? "socks5" : "https://"),
               config.error().detail());
    BOOST_TEST(!contains(config.error().detail(), "hunter2"), config.error().detail());
  }
}

BOOST_AUTO_TEST_SUITE_END()
