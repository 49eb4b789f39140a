#include "informer/apiserver/http_client.hpp"

#include <boost/test/unit_test.hpp>

#include "control_plane.hpp"
#include "shared_control_plane.hpp"
#include "io_threads.hpp"
#include "informer/apiserver/kubeconfig.hpp"
#include "informer/apiserver/lister_watcher.hpp"
#include "informer/client/shared_informer.hpp"
#include "informer/codec/protobuf.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace std::chrono_literals;
using informer::errc;
using informer::http_client;
using informer::http_response;
using informer::rest_config;
using informer::testing::cluster;
using informer::testing::cluster_fixture;
using informer::testing::cluster_running;
using informer::testing::control_plane;

namespace {

using informer::testing::io_threads;

rest_config admin_config() {
  return rest_config{.server = cluster->apiserver_url(),
                     .tls = {.ca_file = cluster->ca_file()},
                     .bearer_token = cluster->admin_token(),
                     .qps = 0};
}

http_client make_client(io_threads& io, const rest_config& config, informer::http_client_options options = {}) {
  auto c = http_client::create(io.ctx.get_executor(), config, options);
  BOOST_TEST_REQUIRE(c.has_value(), "http_client::create failed: " << c.error().what());
  return *c;
}

using request_result = std::tuple<informer::error, http_response>;

request_result request(http_client& client, http::verb method, std::string path, std::string body = {}) {
  auto f = client.async_request(method, std::move(path), {}, std::move(body), asio::use_future);
  BOOST_TEST_REQUIRE((f.wait_for(60s) == std::future_status::ready), "request did not complete");
  return f.get();
}

request_result get(http_client& client, std::string path) { return request(client, http::verb::get, std::move(path)); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string random_suffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng() % 1000000000);
}

// A self-signed P-256 CA certificate that signed nothing the servers use.
std::string unrelated_ca_pem() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("unrelated-ca"), -1, -1,
                             0);
  X509_set_issuer_name(x, name);
  X509_sign(x, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  X509_free(x);
  EVP_PKEY_free(key);
  return pem;
}

// A certificate and its key, made here: a CA (signing others) or a server certificate for
// 127.0.0.1. `issuer` null: self-signed.
struct test_cert {
  std::shared_ptr<EVP_PKEY> key;
  std::shared_ptr<X509> cert;

  static test_cert make(const char* cn, bool ca, const test_cert* issuer) {
    test_cert out{std::shared_ptr<EVP_PKEY>(EVP_EC_gen("P-256"), EVP_PKEY_free),
                  std::shared_ptr<X509>(X509_new(), X509_free)};
    X509* x = out.cert.get();
    X509_set_version(x, 2);
    static long serial = 100;
    ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, out.key.get());
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer->cert.get()) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer != nullptr ? issuer->cert.get() : x, x, nullptr, nullptr, 0);
    const auto extend = [&](int nid, const char* value) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    };
    extend(NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    extend(NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    if (!ca) extend(NID_subject_alt_name, "IP:127.0.0.1");
    X509_sign(x, issuer != nullptr ? issuer->key.get() : out.key.get(), EVP_sha256());
    return out;
  }
  std::string cert_pem() const {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    PEM_write_bio_X509(bio.get(), cert.get());
    return drain(bio.get());
  }
  std::string key_pem() const {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    return drain(bio.get());
  }

private:
  static std::string drain(BIO* bio) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(n));
  }
};

// A scripted HTTPS server on loopback with the apiserver's certificate (valid for 127.0.0.1,
// signed by the control plane's CA), or the given chain and key. `respond(request, index)`
// answers the index-th request; nullopt means: never answer (the connection stays open until the
// client leaves).
class fake_server {
public:
  using response = http::response<http::string_body>;
  using responder = std::function<std::optional<response>(const http::request<http::string_body>&, int)>;

  explicit fake_server(responder respond, const std::string& chain_pem = {}, const std::string& key_pem = {})
      : respond_(std::move(respond)) {
    if (chain_pem.empty()) {
      tls_.use_certificate_chain_file((cluster->dir() / "apiserver.crt").string());
      tls_.use_private_key_file((cluster->dir() / "apiserver.key").string(), asio::ssl::context::pem);
    } else {
      tls_.use_certificate_chain(asio::buffer(chain_pem));
      tls_.use_private_key(asio::buffer(key_pem), asio::ssl::context::pem);
    }
    acceptor_.open(asio::ip::tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    asio::co_spawn(ctx_, serve(), asio::detached);
    thread_ = std::thread([this] { ctx_.run(); });
  }
  ~fake_server() {
    ctx_.stop();
    thread_.join();
  }

  std::string url() const { return "https://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }
  int requests() const { return requests_.load(); }

private:
  static constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

  asio::awaitable<void> serve() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(nothrow);
      if (ec) co_return;
      asio::co_spawn(ctx_, session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> session(asio::ip::tcp::socket socket) {
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), tls_);
    auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, nothrow);
    if (hec) co_return;
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      auto [rec, n] = co_await http::async_read(stream, buffer, req, nothrow);
      if (rec) co_return;
      auto answer = respond_(req, requests_++);
      if (!answer) {
        co_await http::async_read(stream, buffer, req, nothrow);  // until the client leaves
        co_return;
      }
      answer->prepare_payload();
      auto [wec, w] = co_await http::async_write(stream, *answer, nothrow);
      if (wec) co_return;
    }
  }

  responder respond_;
  asio::io_context ctx_;
  asio::ssl::context tls_{asio::ssl::context::tls_server};
  asio::ip::tcp::acceptor acceptor_{ctx_};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

fake_server::response answer(http::status code, std::string body) {
  fake_server::response r{code, 11};
  r.set(http::field::content_type, "application/json");
  r.body() = std::move(body);
  return r;
}

rest_config fake_config(const fake_server& server) {
  return rest_config{.server = server.url(), .tls = {.ca_file = cluster->ca_file()}, .bearer_token = "t", .qps = 0};
}

// A coroutine that lists namespaces and reads the first piece of a watch, all with use_awaitable.
asio::awaitable<std::string> list_then_watch(http_client client) {
  auto [e, r] = co_await client.async_request(http::verb::get, "/api/v1/namespaces", {}, {}, asio::use_awaitable);
  if (e) co_return "list failed: " + e.what();
  auto [se, stream] = co_await client.async_open_stream("/api/v1/namespaces?watch=1", {}, asio::use_awaitable);
  if (se) co_return "watch failed: " + se.what();
  auto [re, chunk] = co_await stream->async_read_some(asio::use_awaitable);
  stream->cancel();
  if (re) co_return "read failed: " + re.what();
  co_return chunk.find("\"ADDED\"") != std::string::npos ? "ok" : "unexpected: " + chunk;
}

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

BOOST_AUTO_TEST_SUITE(apiserver_http, *boost::unit_test::precondition(cluster_running))

BOOST_AUTO_TEST_CASE(admin_token_reads_a_namespace) {
  io_threads io;
  auto client = make_client(io, admin_config());
  auto [e, r] = get(client, "/api/v1/namespaces/default");
  BOOST_TEST_REQUIRE(!e, e.what());
  BOOST_TEST(r.status_code == 200u);
  BOOST_TEST(contains(std::string{r.headers[http::field::content_type]}, "application/json"));
  const auto body = boost::json::parse(r.body);
  BOOST_TEST(body.at("kind").as_string() == "Namespace");
  BOOST_TEST(body.at("metadata").at("name").as_string() == "default");

  // The same through the kubeconfig the control plane wrote (certificate-authority-data, token).
  auto config = informer::load_kubeconfig({.files = {cluster->kubeconfig_path()}});
  BOOST_TEST_REQUIRE(config.has_value(), config.error().what());
  auto from_kubeconfig = make_client(io, *config);
  auto [e2, r2] = get(from_kubeconfig, "/api/v1/namespaces/default");
  BOOST_TEST(!e2, e2.what());
  BOOST_TEST(r2.status_code == 200u);
}

BOOST_AUTO_TEST_CASE(works_with_coroutines) {
  io_threads io;
  auto client = make_client(io, admin_config());
  auto outcome = asio::co_spawn(io.ctx, list_then_watch(client), asio::use_future);
  BOOST_TEST_REQUIRE((outcome.wait_for(30s) == std::future_status::ready));
  BOOST_TEST(outcome.get() == "ok");
}

BOOST_AUTO_TEST_CASE(wrong_token_is_unauthorized) {
  io_threads io;
  auto config = admin_config();
  config.bearer_token = "not-a-valid-token";
  auto client = make_client(io, config);
  auto [e, r] = get(client, "/api/v1/namespaces/default");
  BOOST_TEST_MESSAGE("wrong token: " << e.what());
  BOOST_TEST(e.code() == make_error_code(errc::unauthorized), e.what());
  BOOST_TEST(r.status_code == 401u);
  BOOST_TEST(contains(e.detail(), "401 Unauthorized: Unauthorized"), e.detail());
  BOOST_TEST(contains(e.detail(), cluster->apiserver_url() + "/api/v1/namespaces/default"), e.detail());
}

BOOST_AUTO_TEST_CASE(user_without_rbac_rights_is_forbidden) {
  io_threads io;
  auto config = admin_config();
  config.bearer_token = cluster->user_token();
  auto client = make_client(io, config);
  auto [e, r] = get(client, "/api/v1/pods");
  BOOST_TEST(e.code() == make_error_code(errc::forbidden), e.what());
  BOOST_TEST(r.status_code == 403u);
  BOOST_TEST_MESSAGE("forbidden: " << e.what());
  BOOST_TEST(contains(e.detail(), "pods is forbidden: User \"informer-user\""), e.detail());
}

BOOST_AUTO_TEST_CASE(client_certificate_authenticates) {
  io_threads io;
  auto client = make_client(io, rest_config{.server = cluster->apiserver_url(),
                                            .tls = {.ca_file = cluster->ca_file(),
                                                    .cert_file = cluster->admin_cert(),
                                                    .key_file = cluster->admin_key()},
                                            .qps = 0});
  auto [e, r] = get(client, "/api/v1/namespaces/kube-system");
  BOOST_TEST(!e, e.what());
  BOOST_TEST(r.status_code == 200u);
}

BOOST_AUTO_TEST_CASE(unrelated_ca_fails_the_handshake) {
  io_threads io;
  auto config = admin_config();
  config.tls.ca_file.clear();
  config.tls.ca_data = unrelated_ca_pem();
  auto client = make_client(io, config);
  auto [e, r] = get(client, "/api/v1/namespaces/default");
  BOOST_TEST_REQUIRE(static_cast<bool>(e));
  BOOST_TEST_MESSAGE("unrelated CA: " << e.what());
  BOOST_TEST((e.code().category() == asio::error::get_ssl_category()), e.what());
  BOOST_TEST(contains(e.what(), "certificate verify failed"), e.what());
  BOOST_TEST(contains(e.what(), "TLS handshake failed"), e.what());
  BOOST_TEST(contains(e.what(), cluster->apiserver_url()), e.what());
  BOOST_TEST(r.status_code == 0u);
  BOOST_TEST(client.stats().requests_sent == 0u);  // nothing, not even the token, went out
}

BOOST_AUTO_TEST_CASE(an_intermediate_ca_is_a_trust_anchor) {
  // As Go's verifier, which takes any certificate of the CA pool as an anchor: a CA file holding
  // only the intermediate that signed the server's certificate verifies it (OpenSSL's partial
  // chain), as does the root; an unrelated CA does not.
  const auto root = test_cert::make("test-root", true, nullptr);
  const auto intermediate = test_cert::make("test-intermediate", true, &root);
  const auto leaf = test_cert::make("test-server", false, &intermediate);
  fake_server server([](const auto&, int) { return answer(http::status::ok, R"({"kind":"Status"})"); },
                     leaf.cert_pem() + intermediate.cert_pem(), leaf.key_pem());
  io_threads io;
  const auto get_with_ca = [&](const std::string& ca) {
    auto config = fake_config(server);
    config.tls.ca_file.clear();
    config.tls.ca_data = ca;
    auto client = make_client(io, config);
    return get(client, "/version");
  };
  auto [e1, r1] = get_with_ca(intermediate.cert_pem());
  BOOST_TEST(!e1, e1.what());
  BOOST_TEST(r1.status_code == 200u);
  auto [e2, r2] = get_with_ca(root.cert_pem());
  BOOST_TEST(!e2, e2.what());
  auto [e3, r3] = get_with_ca(unrelated_ca_pem());
  BOOST_TEST(contains(e3.what(), "certificate verify failed"), e3.what());
  BOOST_TEST(server.requests() == 2);
}

BOOST_AUTO_TEST_CASE(server_name_is_checked) {
  io_threads io;
  auto config = admin_config();
  config.tls.server_name = "wrong.example.com";
  auto wrong = make_client(io, config);
  auto [e, r] = get(wrong, "/api/v1/namespaces/default");
  BOOST_TEST(contains(e.what(), "certificate verify failed"), e.what());
  BOOST_TEST_MESSAGE("wrong server name: " << e.what());
  BOOST_TEST(contains(e.what(), "hostname mismatch"), e.what());

  config.tls.server_name = "kubernetes.default.svc";  // in the certificate's names
  auto right = make_client(io, config);
  auto [e2, r2] = get(right, "/api/v1/namespaces/default");
  BOOST_TEST(!e2, e2.what());
}

BOOST_AUTO_TEST_CASE(insecure_skip_tls_verify_only_when_set) {
  io_threads io;
  auto config = admin_config();
  config.tls.ca_file.clear();  // the system's trust store does not know the test CA
  auto verifying = make_client(io, config);
  auto [e, r] = get(verifying, "/api/v1/namespaces/default");
  BOOST_TEST(contains(e.what(), "certificate verify failed"), e.what());

  config.tls.insecure_skip_tls_verify = true;
  auto insecure = make_client(io, config);
  auto [e2, r2] = get(insecure, "/api/v1/namespaces/default");
  BOOST_TEST(!e2, e2.what());
  BOOST_TEST(r2.status_code == 200u);
}

BOOST_AUTO_TEST_CASE(keep_alive_reuses_connections) {
  io_threads io;
  auto client = make_client(io, admin_config());
  for (int i = 0; i < 5; ++i) {
    auto [e, r] = get(client, "/api/v1/namespaces/default");
    BOOST_TEST_REQUIRE(!e, e.what());
  }
  auto s = client.stats();
  BOOST_TEST(s.connections_opened == 1u);
  BOOST_TEST(s.connections_reused == 4u);
  BOOST_TEST(s.requests_sent == 5u);
  BOOST_TEST(s.idle_connections == 1u);

  // Concurrent requests each need a connection; afterwards they are pooled and reused.
  std::vector<std::future<request_result>> pending;
  for (int i = 0; i < 6; ++i) {
    pending.push_back(client.async_request(http::verb::get, "/api/v1/namespaces/default", {}, {}, asio::use_future));
  }
  for (auto& f : pending) {
    auto [e, r] = f.get();
    BOOST_TEST(!e, e.what());
  }
  s = client.stats();
  BOOST_TEST(s.connections_opened <= 6u);
  const auto opened = s.connections_opened;
  for (int i = 0; i < 3; ++i) get(client, "/api/v1/namespaces/default");
  BOOST_TEST(client.stats().connections_opened == opened);
}

BOOST_AUTO_TEST_CASE(watch_stream_receives_an_added_event_and_cancels_promptly) {
  io_threads io;
  auto client = make_client(io, admin_config());
  auto opened = client.async_open_stream("/api/v1/namespaces/default/configmaps?watch=1", {}, asio::use_future).get();
  auto& [open_error, stream] = opened;
  BOOST_TEST_REQUIRE(!open_error, open_error.what());
  BOOST_TEST(stream->response().status_code == 200u);

  const std::string name = "watch-me-" + random_suffix();
  auto [ce, cr] = request(client, http::verb::post, "/api/v1/namespaces/default/configmaps",
                          R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
                              R"(","labels":{"test":"watch"}},"data":{"k":"v"}})");
  BOOST_TEST_REQUIRE(!ce, ce.what());
  BOOST_TEST(cr.status_code == 201u);

  // Read until a whole line holds the ADDED event of our configmap.
  std::string received;
  std::optional<boost::json::value> event;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!event && std::chrono::steady_clock::now() < deadline) {
    auto f = stream->async_read_some(asio::use_future);
    BOOST_TEST_REQUIRE((f.wait_for(20s) == std::future_status::ready), "no watch data");
    auto [e, chunk] = f.get();
    BOOST_TEST_REQUIRE(!e, e.what());
    BOOST_TEST_REQUIRE(!chunk.empty());
    received += chunk;
    for (std::size_t eol; (eol = received.find('\n')) != std::string::npos;) {
      auto v = boost::json::parse(received.substr(0, eol));
      received.erase(0, eol + 1);
      if (v.at("type").as_string() == "ADDED" && v.at("object").at("metadata").at("name").as_string() == name) {
        event = std::move(v);
      }
    }
  }
  BOOST_TEST_REQUIRE(event.has_value(), "no ADDED event for " << name);
  BOOST_TEST(event->at("object").at("data").at("k").as_string() == "v");

  // Nothing more is coming: a read waits until cancel() from this thread ends it.
  auto pending = stream->async_read_some(asio::use_future);
  BOOST_TEST((pending.wait_for(300ms) == std::future_status::timeout));
  const auto cancelled_at = std::chrono::steady_clock::now();
  stream->cancel();
  BOOST_TEST_REQUIRE((pending.wait_for(2s) == std::future_status::ready), "cancel did not end the read");
  BOOST_TEST((std::chrono::steady_clock::now() - cancelled_at < 500ms));
  auto [e, chunk] = pending.get();
  BOOST_TEST(e.code() == asio::error::operation_aborted, e.what());
  auto [e2, chunk2] = stream->async_read_some(asio::use_future).get();
  BOOST_TEST(e2.code() == asio::error::operation_aborted, e2.what());
}

BOOST_AUTO_TEST_CASE(watch_of_a_forbidden_resource_fails_at_open) {
  io_threads io;
  auto config = admin_config();
  config.bearer_token = cluster->user_token();
  auto client = make_client(io, config);
  auto [e, stream] = client.async_open_stream("/api/v1/pods?watch=1", {}, asio::use_future).get();
  BOOST_TEST(e.code() == make_error_code(errc::forbidden), e.what());
  BOOST_TEST(!stream);
}

BOOST_AUTO_TEST_CASE(qps_limiter_spaces_requests) {
  io_threads io;
  auto config = admin_config();
  config.qps = 5;
  config.burst = 1;
  // Every limited request is observed, the one let through at once as 0 (client-go's histogram).
  std::atomic<int> observed{0};
  std::atomic<int> observed_zero{0};
  informer::http_client_options options;
  options.metrics.on_rate_limiter_wait = [&](http::verb, std::chrono::nanoseconds wait) {
    ++observed;
    if (wait == std::chrono::nanoseconds::zero()) ++observed_zero;
  };
  auto client = make_client(io, config, options);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) {
    auto [e, r] = get(client, "/api/v1/namespaces/default");
    BOOST_TEST_REQUIRE(!e, e.what());
  }
  const auto took = std::chrono::steady_clock::now() - start;
  BOOST_TEST((took >= 950ms), "6 requests at 5 qps, burst 1 took "
                                  << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  BOOST_TEST(client.stats().throttled == 5u);
  BOOST_TEST(observed.load() == 6);
  BOOST_TEST(observed_zero.load() == 1);
}

BOOST_AUTO_TEST_CASE(retry_after_429_is_honoured) {
  fake_server server([](const auto&, int index) -> std::optional<fake_server::response> {
    if (index == 0) {
      auto r = answer(
          http::status::too_many_requests,
          R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"slow down","reason":"TooManyRequests","code":429})");
      r.set(http::field::retry_after, "1");
      return r;
    }
    return answer(http::status::ok, R"({"kind":"Namespace"})");
  });
  io_threads io;
  auto client = make_client(io, fake_config(server));
  const auto start = std::chrono::steady_clock::now();
  auto [e, r] = get(client, "/api/v1/namespaces/default");
  BOOST_TEST(!e, e.what());
  BOOST_TEST(r.status_code == 200u);
  BOOST_TEST((std::chrono::steady_clock::now() - start >= 950ms));
  BOOST_TEST(client.stats().retries_after_429 == 1u);
  BOOST_TEST(server.requests() == 2);
}

BOOST_AUTO_TEST_CASE(retries_after_429_are_bounded) {
  fake_server server([](const auto&, int) -> std::optional<fake_server::response> {
    auto r = answer(http::status::too_many_requests, "too busy");
    r.set(http::field::retry_after, "0");
    return r;
  });
  io_threads io;
  auto client = make_client(io, fake_config(server), {.max_retries_after_429 = 2});
  auto [e, r] = get(client, "/api/v1/namespaces/default");
  BOOST_TEST(e.code() == make_error_code(errc::too_many_requests), e.what());
  BOOST_TEST(contains(e.detail(), "too busy"), e.detail());  // not a Status: the text is the message
  BOOST_TEST(r.status_code == 429u);
  BOOST_TEST(server.requests() == 3);
}

BOOST_AUTO_TEST_CASE(answer_bodies_are_capped_lists_by_their_own_limit) {
  io_threads io;
  auto client = make_client(io, admin_config(), {.max_body_size = 400, .max_list_body_size = 1 << 20});
  // The OpenAPI document is megabytes: refused, with the limit named, and nothing else is lost.
  auto [e, r] = get(client, "/openapi/v2");
  BOOST_TEST((e.code() == boost::beast::http::error::body_limit), e.what());
  BOOST_TEST(contains(e.detail(), "400 bytes"), e.detail());
  // A list (a few KB) is too large as an ordinary answer, and fits as a list.
  auto [plain, r1] = get(client, "/api/v1/namespaces");
  BOOST_TEST((plain.code() == boost::beast::http::error::body_limit), plain.what());
  auto f = client.async_request(http::verb::get, "/api/v1/namespaces", {}, {},
                                informer::http_request_options{.list = true}, asio::use_future);
  BOOST_TEST_REQUIRE((f.wait_for(60s) == std::future_status::ready));
  auto [listed, r2] = f.get();
  BOOST_TEST(!listed, listed.what());
  BOOST_TEST(contains(r2.body, "NamespaceList"));
}

BOOST_AUTO_TEST_CASE(impersonation_acts_as_the_named_identity) {
  io_threads io;
  // The admin may impersonate; "jane" has no RBAC rights, so the server answers as to her.
  auto as_jane = admin_config();
  as_jane.impersonate = {.user = "jane", .uid = "", .groups = {"dev"}, .extra = {{"reason", {"on call"}}}};
  auto client = make_client(io, as_jane);
  auto [e, r] = get(client, "/api/v1/namespaces/default");
  BOOST_TEST(e.code() == make_error_code(errc::forbidden), e.what());
  BOOST_TEST(contains(e.detail(), "\"jane\""), e.detail());
  // As a member of system:masters, the same request succeeds.
  auto as_master = admin_config();
  as_master.impersonate = {.user = "root-by-proxy", .uid = "", .groups = {"system:masters"}, .extra = {}};
  auto master = make_client(io, as_master);
  auto [e2, r2] = get(master, "/api/v1/namespaces/default");
  BOOST_TEST(!e2, e2.what());
}

BOOST_AUTO_TEST_CASE(header_values_that_would_split_a_header_are_refused) {
  io_threads io;
  auto config = admin_config();
  config.user_agent = "informer\r\nX-Injected: 1";
  auto c = http_client::create(io.ctx.get_executor(), config);
  BOOST_TEST_REQUIRE(c.has_error());
  BOOST_TEST(c.error().code() == make_error_code(errc::invalid_config), c.error().what());
  auto groups_only = admin_config();
  groups_only.impersonate.groups = {"system:masters"};
  BOOST_TEST(http_client::create(io.ctx.get_executor(), groups_only).has_error());

  auto client = make_client(io, admin_config());
  http::fields headers;
  headers.set("X-Note", "a\nb");
  auto f = client.async_request(http::verb::get, "/api/v1/namespaces/default", headers, {}, asio::use_future);
  BOOST_TEST_REQUIRE((f.wait_for(30s) == std::future_status::ready));
  auto [e, r] = f.get();
  BOOST_TEST(e.code() == make_error_code(errc::invalid_argument), e.what());
  BOOST_TEST(client.stats().requests_sent == 0u);
}

BOOST_AUTO_TEST_CASE(request_timeout_is_enforced) {
  fake_server server([](const auto&, int) -> std::optional<fake_server::response> { return std::nullopt; });
  io_threads io;
  auto config = fake_config(server);
  config.timeout = 400ms;
  auto client = make_client(io, config);
  const auto start = std::chrono::steady_clock::now();
  auto [e, r] = get(client, "/api/v1/namespaces/default");
  const auto took = std::chrono::steady_clock::now() - start;
  BOOST_TEST_MESSAGE("timeout: " << e.what());
  BOOST_TEST(e.code() == make_error_code(beast::error::timeout), e.what());
  BOOST_TEST(contains(e.what(), server.url() + "/api/v1/namespaces/default"), e.what());
  BOOST_TEST((took >= 350ms && took < 3s));
}

BOOST_AUTO_TEST_CASE(connection_refused_names_the_url) {
  asio::io_context probe;
  asio::ip::tcp::acceptor acceptor(probe, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = acceptor.local_endpoint().port();
  acceptor.close();  // nothing listens there now
  io_threads io;
  auto config = admin_config();
  config.server = "https://127.0.0.1:" + std::to_string(port);
  auto client = make_client(io, config);
  auto [e, r] = get(client, "/version");
  BOOST_TEST_MESSAGE("refused: " << e.what());
  BOOST_TEST(e.code() == asio::error::connection_refused, e.what());
  BOOST_TEST(contains(e.what(), config.server + "/version"), e.what());
}

namespace {

std::string pb_varint(std::uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>((v & 0x7f) | 0x80));
  out.push_back(static_cast<char>(v));
  return out;
}
std::string pb_bytes(std::uint32_t number, std::string_view bytes) {
  return pb_varint(std::uint64_t{number} << 3 | 2) + pb_varint(bytes.size()) + std::string(bytes);
}

}  // namespace

BOOST_AUTO_TEST_CASE(protobuf_with_fields_the_schemas_lack_falls_back_to_json) {
  // A ConfigMap read from the real server, as protobuf and as JSON. The scripted server plays a
  // newer Kubernetes: its protobuf carries a field (99) the compiled schemas lack. The informer
  // must not cache the object without it: the page fails, the source switches to JSON, and the
  // relist brings the whole object.
  io_threads io;
  auto real = make_client(io, admin_config());
  const std::string name = "newer-" + std::to_string(std::random_device{}() % 100000);
  auto [ce, created] = request(real, http::verb::post, "/api/v1/namespaces/default/configmaps",
                               R"({"metadata":{"name":")" + name + R"("},"data":{"k":"v"}})");
  BOOST_TEST_REQUIRE(!ce, ce.what());
  http::fields as_protobuf;
  as_protobuf.set(http::field::accept, "application/vnd.kubernetes.protobuf");
  auto f = real.async_request(http::verb::get, "/api/v1/namespaces/default/configmaps/" + name, as_protobuf, {},
                              asio::use_future);
  auto [pe, pb] = f.get();
  BOOST_TEST_REQUIRE(!pe, pe.what());
  auto env = informer::codec::unwrap_envelope(pb.body);
  BOOST_TEST_REQUIRE(env.has_value(), env.error().what());
  const std::string item = std::string(env->raw) + pb_varint(99 << 3) + pb_varint(1);
  const std::string protobuf_list = informer::codec::wrap_envelope(
      {.api_version = "v1", .kind = "ConfigMapList", .raw = pb_bytes(1, pb_bytes(2, "1000")) + pb_bytes(2, item)});
  const std::string json_list =
      R"({"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"1000"},"items":[)" + created.body +
      "]}";

  std::mutex accepts_mutex;
  std::vector<std::string> list_accepts;
  fake_server server([&](const http::request<http::string_body>& req, int) -> std::optional<fake_server::response> {
    if (req.target().find("watch=1") != std::string_view::npos) return std::nullopt;  // a quiet watch
    const std::string accept(req[http::field::accept]);
    {
      std::lock_guard lock(accepts_mutex);
      list_accepts.push_back(accept);
    }
    if (!accept.starts_with("application/vnd.kubernetes.protobuf")) return answer(http::status::ok, json_list);
    auto r = answer(http::status::ok, protobuf_list);
    r.set(http::field::content_type, "application/vnd.kubernetes.protobuf");
    return r;
  });
  auto client = make_client(io, fake_config(server));
  auto lw =
      informer::apiserver_lister_watcher::create(client, informer::parse_resource("configmaps").value(),
                                                 {.ns = "default", .encoding = informer::wire_encoding::protobuf});
  BOOST_TEST_REQUIRE(lw.has_value(), lw.error().what());
  std::mutex errors_mutex;
  std::vector<informer::error> errors;
  informer::shared_informer_options o;
  o.watch_error_handler = [&](const informer::error& e) {
    std::lock_guard lock(errors_mutex);
    errors.push_back(e);
  };
  o.reflector.backoff = {.initial = 50ms, .max = 1s, .factor = 2.0, .jitter = 0.0, .reset_after = 1min};
  auto inf = informer::shared_informer::create(*lw, std::move(o));
  inf->run();
  BOOST_TEST_REQUIRE(informer::wait_for_cache_sync({inf}, 20s));
  auto cached = inf->lister().get("default", name);
  BOOST_TEST_REQUIRE(cached != nullptr);
  BOOST_TEST(cached->to_json() == informer::object::parse(created.body).value()->to_json());
  inf->stop();
  std::lock_guard lock(accepts_mutex);
  BOOST_TEST_REQUIRE(list_accepts.size() == 2u);
  BOOST_TEST(list_accepts[0].starts_with("application/vnd.kubernetes.protobuf"), list_accepts[0]);
  BOOST_TEST(list_accepts[1] == "application/json");
  std::lock_guard errors_lock(errors_mutex);
  BOOST_TEST_REQUIRE(errors.size() == 1u);
  BOOST_TEST((errors[0].code() == informer::codec::errc::unknown_field), errors[0].what());
  BOOST_TEST(contains(errors[0].detail(), "k8s.io.api.core.v1.ConfigMap has a field 99"), errors[0].detail());
  request(real, http::verb::delete_, "/api/v1/namespaces/default/configmaps/" + name);
}

BOOST_AUTO_TEST_CASE(invalid_configs_are_refused_at_create) {
  io_threads io;
  auto plain = http_client::create(io.ctx.get_executor(), rest_config{.server = "http://127.0.0.1:8080"});
  BOOST_TEST_REQUIRE(plain.has_error());
  BOOST_TEST(plain.error().code() == make_error_code(errc::invalid_url));
  BOOST_TEST(contains(plain.error().detail(), "only https://"), plain.error().detail());

  auto no_burst = http_client::create(io.ctx.get_executor(), rest_config{.server = "https://h", .qps = 5, .burst = 0});
  BOOST_TEST(no_burst.has_error());

  auto client = make_client(io, admin_config());
  auto bad_path = get(client, "no-slash");
  BOOST_TEST(std::get<0>(bad_path).code() == make_error_code(errc::invalid_argument));
}

// Last: restarts the apiserver under a client that keeps its pool and a watch open.
BOOST_AUTO_TEST_CASE(apiserver_restart_fails_requests_then_recovers) {
  io_threads io;
  auto config = admin_config();
  config.timeout = 3s;
  auto client = make_client(io, config);
  {
    auto [e, r] = get(client, "/api/v1/namespaces/default");
    BOOST_TEST_REQUIRE(!e, e.what());
  }
  auto [open_error, stream] =
      client.async_open_stream("/api/v1/namespaces/default/configmaps?watch=1", {}, asio::use_future).get();
  BOOST_TEST_REQUIRE(!open_error, open_error.what());
  auto watch_read = stream->async_read_some(asio::use_future);

  std::atomic<bool> restarted{false};
  std::string restart_error;
  std::thread restarter([&] {
    try {
      cluster->restart_apiserver();
    } catch (const std::exception& ex) {
      restart_error = ex.what();
    }
    restarted = true;
  });
  int refused = 0;
  std::string refused_text;
  while (!restarted) {
    auto [e, r] = get(client, "/api/v1/namespaces/default");
    if (e.code() == asio::error::connection_refused) {
      ++refused;
      refused_text = e.what();
    }
    std::this_thread::sleep_for(100ms);
  }
  restarter.join();
  BOOST_TEST_REQUIRE(restart_error.empty(), restart_error);
  BOOST_TEST(refused > 0, "no request failed with connection_refused while the apiserver was down");
  BOOST_TEST(contains(refused_text, cluster->apiserver_url()), refused_text);

  informer::error after{errc::api_error, "not tried"};
  for (int i = 0; i < 50 && after; ++i) {
    after = std::get<0>(get(client, "/api/v1/namespaces/default"));
    if (after) std::this_thread::sleep_for(200ms);
  }
  BOOST_TEST(!after, after.what());

  // The watch ended with the old server, whatever it sent first.
  bool ended = false;
  for (int i = 0; i < 100 && !ended; ++i) {
    BOOST_TEST_REQUIRE((watch_read.wait_for(10s) == std::future_status::ready), "the watch did not end");
    auto [e, chunk] = watch_read.get();
    if (e) {
      ended = true;
      BOOST_TEST_MESSAGE("watch ended with: " << e.what());
    } else {
      watch_read = stream->async_read_some(asio::use_future);
    }
  }
  BOOST_TEST(ended);
}

BOOST_AUTO_TEST_SUITE_END()
