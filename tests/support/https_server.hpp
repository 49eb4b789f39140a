// tests/support/https_server.hpp
//
// A scripted HTTPS server on 127.0.0.1 for unit tests of the API-server clients without a control
// plane: it makes its own self-signed certificate (P-256, valid for IP 127.0.0.1), which
// `config()` trusts, and answers each request with what `respond(request)` returns. It runs on its
// own thread; the responder runs there too. The requests it saw are recorded.
#pragma once

#include "informer/apiserver/config.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace informer::testing {

class https_server {
public:
  using request = boost::beast::http::request<boost::beast::http::string_body>;
  using response = boost::beast::http::response<boost::beast::http::string_body>;
  using responder = std::function<response(const request&)>;

  explicit https_server(responder respond) : respond_(std::move(respond)) {
    make_certificate();
    tls_.use_certificate(boost::asio::buffer(cert_pem_), boost::asio::ssl::context::pem);
    tls_.use_private_key(boost::asio::buffer(key_pem_), boost::asio::ssl::context::pem);
    acceptor_.open(boost::asio::ip::tcp::v4());
    acceptor_.bind({boost::asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    boost::asio::co_spawn(ctx_, serve(), boost::asio::detached);
    thread_ = std::thread([this] { ctx_.run(); });
  }
  ~https_server() {
    ctx_.stop();
    thread_.join();
  }
  https_server(const https_server&) = delete;
  https_server& operator=(const https_server&) = delete;

  std::string url() const { return "https://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }

  /// Trusts this server's certificate only; no client-side throttling.
  rest_config config() const {
    return rest_config{.server = url(), .tls = {.ca_data = cert_pem_}, .bearer_token = "t", .qps = 0};
  }

  /// Method and target of every request so far, as "GET /api".
  std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  /// The bodies of the requests so far, in order.
  std::vector<std::string> bodies() const {
    std::lock_guard lock(mutex_);
    return bodies_;
  }

  static response answer(boost::beast::http::status code, std::string body) {
    response r{code, 11};
    r.set(boost::beast::http::field::content_type, "application/json");
    r.body() = std::move(body);
    return r;
  }

private:
  static constexpr auto nothrow = boost::asio::as_tuple(boost::asio::use_awaitable);

  static std::string bio_text(BIO* bio) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(n));
  }

  void make_certificate() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("scripted-server"), -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    for (const auto& [nid, value] :
         {std::pair{NID_subject_alt_name, "IP:127.0.0.1"}, std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(x, key, EVP_sha256());
    BIO* cert_bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(cert_bio, x);
    BIO* key_bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    cert_pem_ = bio_text(cert_bio);
    key_pem_ = bio_text(key_bio);
    BIO_free(cert_bio);
    BIO_free(key_bio);
    X509_free(x);
    EVP_PKEY_free(key);
  }

  boost::asio::awaitable<void> serve() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(nothrow);
      if (ec) co_return;
      boost::asio::co_spawn(ctx_, session(std::move(socket)), boost::asio::detached);
    }
  }

  boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket socket) {
    namespace http = boost::beast::http;
    boost::beast::ssl_stream<boost::beast::tcp_stream> stream(std::move(socket), tls_);
    auto [hec] = co_await stream.async_handshake(boost::asio::ssl::stream_base::server, nothrow);
    if (hec) co_return;
    boost::beast::flat_buffer buffer;
    for (;;) {
      request req;
      auto [rec, n] = co_await http::async_read(stream, buffer, req, nothrow);
      if (rec) co_return;
      {
        std::lock_guard lock(mutex_);
        seen_.push_back(std::string{req.method_string()} + " " + std::string{req.target()});
        bodies_.push_back(req.body());
      }
      auto answer = respond_(req);
      answer.keep_alive(req.keep_alive());
      answer.prepare_payload();
      auto [wec, w] = co_await http::async_write(stream, answer, nothrow);
      if (wec) co_return;
    }
  }

  responder respond_;
  std::string cert_pem_;
  std::string key_pem_;
  boost::asio::io_context ctx_;
  boost::asio::ssl::context tls_{boost::asio::ssl::context::tls_server};
  boost::asio::ip::tcp::acceptor acceptor_{ctx_};
  mutable std::mutex mutex_;
  std::vector<std::string> seen_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

}  // namespace informer::testing
