// tests/support/metrics_scrape.hpp
//
// A client's view of a metrics endpoint: one blocking HTTP/1.1 request over loopback (`fetch`)
// and the sample values of a Prometheus text scrape (`samples`), for tests of
// informer/metrics/endpoint.hpp.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>

namespace informer::testing {

struct http_reply {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

/// One request on a connection of its own to 127.0.0.1:`port`.
inline http_reply fetch(std::uint16_t port, const std::string& target,
                        boost::beast::http::verb verb = boost::beast::http::verb::get) {
  namespace http = boost::beast::http;
  boost::asio::io_context ctx;
  boost::asio::ip::tcp::socket socket(ctx);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  http::request<http::empty_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(socket, req);
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  if (verb == http::verb::head) parser.skip(true);
  http::read(socket, buffer, parser);
  auto res = parser.release();
  return {res.result_int(), std::string(res[http::field::content_type]), res.body()};
}

/// Sample values of a scrape by series as written (`name{labels}`); fails the test on a malformed
/// line.
inline std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto nl = text.find('\n', start);
    BOOST_REQUIRE(nl != std::string::npos);
    const std::string line = text.substr(start, nl - start);
    start = nl + 1;
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) continue;
    const auto sp = line.rfind(' ');
    BOOST_REQUIRE(sp != std::string::npos && sp > 0);
    const std::string value = line.substr(sp + 1);
    out[line.substr(0, sp)] = value == "+Inf" ? HUGE_VAL : std::stod(value);
  }
  return out;
}

}  // namespace informer::testing
