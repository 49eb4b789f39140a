#include "informer/metrics/endpoint.hpp"

#include "informer/client/shared_informer.hpp"
#include "informer/metrics/adapters.hpp"

#include "io_threads.hpp"
#include "metrics_scrape.hpp"
#include "sample_pods.hpp"
#include "scripted_source.hpp"
#include "wait.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <atomic>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace informer;
using namespace informer::metrics;
using namespace std::chrono_literals;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using informer::testing::eventually;
using informer::testing::fetch;
using informer::testing::io_threads;
using informer::testing::patience;
using informer::testing::samples;
using informer::testing::scripted_source;

BOOST_AUTO_TEST_CASE(serves_metrics_health_and_404) {
  registry r;  // outlives the threads that serve it
  io_threads io;
  r.counter("things_total", "Things.", {"kind"}).with({"a\"b"}).inc(3);
  auto ep = endpoint::create(io.ctx.get_executor(), r);
  BOOST_REQUIRE(ep->port() != 0);

  const auto m = fetch(ep->port(), "/metrics");
  BOOST_TEST(m.status == 200u);
  BOOST_TEST(m.content_type == std::string(prometheus_content_type));
  BOOST_TEST(samples(m.body).at("things_total{kind=\"a\\\"b\"}") == 3.0);

  BOOST_TEST(fetch(ep->port(), "/healthz").status == 200u);
  BOOST_TEST(fetch(ep->port(), "/healthz").body == "ok");
  BOOST_TEST(fetch(ep->port(), "/livez").status == 200u);
  BOOST_TEST(fetch(ep->port(), "/nope").status == 404u);
  BOOST_TEST(fetch(ep->port(), "/metrics", http::verb::post).status == 405u);
  BOOST_TEST(fetch(ep->port(), "/metrics", http::verb::head).status == 200u);
  // No checks: ready.
  BOOST_TEST(fetch(ep->port(), "/readyz").status == 200u);

  ep->stop();
  BOOST_TEST(eventually([&] {
    try {
      fetch(ep->port(), "/healthz");
      return false;
    } catch (const boost::system::system_error&) {
      return true;
    }
  }));
}

BOOST_AUTO_TEST_CASE(keeps_a_connection_alive_across_requests) {
  registry r;  // outlives the threads that serve it
  io_threads io;
  auto ep = endpoint::create(io.ctx.get_executor(), r);
  boost::asio::io_context ctx;
  tcp::socket socket(ctx);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), ep->port()});
  boost::beast::flat_buffer buffer;
  for (int i = 0; i < 3; ++i) {
    http::request<http::empty_body> req{http::verb::get, "/healthz", 11};
    http::write(socket, req);
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    BOOST_TEST(res.result_int() == 200u);
    BOOST_TEST(res.keep_alive());
  }
}

BOOST_AUTO_TEST_CASE(readyz_follows_informer_sync_and_metrics_show_the_informer) {
  registry r;  // outlives the threads that serve it
  io_threads io;
  auto source = std::make_shared<scripted_source>(io.ctx.get_executor());
  for (std::size_t i = 0; i < 5; ++i) source->create(informer::testing::sample_pod_json(i));
  shared_informer_options options;
  options.name = "pods";
  options.reflector.metrics = metrics::reflector_metrics(r, "pods");
  auto inf = shared_informer::create(source, options);
  register_informer_metrics(r, inf);
  auto ep = endpoint::create(io.ctx.get_executor(), r);
  ep->add_readiness_check("ping", [] { return true; });
  ep->add_readiness_check("informer-sync", informer_synced_check(inf));

  const auto before = fetch(ep->port(), "/readyz");
  BOOST_TEST(before.status == 503u);
  BOOST_TEST(before.body.find("[-]informer-sync failed") != std::string::npos, before.body);
  BOOST_TEST(before.body.find("ping") == std::string::npos, before.body);  // passing checks only with ?verbose
  const auto verbose = fetch(ep->port(), "/readyz?verbose");
  BOOST_TEST(verbose.status == 503u);
  BOOST_TEST(verbose.body == "[+]ping ok\n[-]informer-sync failed\nreadyz check failed\n");

  inf->run();
  BOOST_REQUIRE(wait_for_cache_sync({inf}, patience));
  const auto after = fetch(ep->port(), "/readyz");
  BOOST_TEST(after.status == 200u);
  BOOST_TEST(after.body == "ok");
  BOOST_TEST(fetch(ep->port(), "/readyz?verbose").body == "[+]ping ok\n[+]informer-sync ok\nreadyz check passed\n");

  BOOST_REQUIRE(source->wait_for_watches(1, patience));
  source->create(informer::testing::sample_pod_json(5));
  BOOST_REQUIRE(eventually([&] { return inf->get_store()->size() == 6u; }));
  const auto s = samples(fetch(ep->port(), "/metrics").body);
  BOOST_TEST(s.at("reflector_lists_total{name=\"pods\"}") == 1.0);
  BOOST_TEST(s.at("reflector_items_per_list_sum{name=\"pods\"}") == 5.0);
  BOOST_TEST(s.at("reflector_watches_total{name=\"pods\"}") == 1.0);
  BOOST_TEST(s.at("reflector_watch_events_total{name=\"pods\",type=\"ADDED\"}") == 1.0);
  BOOST_TEST(s.at("reflector_last_resource_version{name=\"pods\"}") == static_cast<double>(source->current_revision()));
  BOOST_TEST(s.at("informer_store_size{name=\"pods\"}") == 6.0);
  BOOST_TEST(s.at("informer_synced{name=\"pods\"}") == 1.0);
  BOOST_TEST(s.count("reflector_last_event_age_seconds{name=\"pods\"}") == 1u);

  ep->stop();
  inf->stop();
}

BOOST_AUTO_TEST_CASE(a_throwing_scrape_answers_500_and_the_endpoint_serves_on) {
  registry r;  // outlives the threads that serve it
  io_threads io;
  std::atomic<bool> fail{true};
  r.gauge("flaky", "Throws while `fail`.").set_callback({}, [&]() -> std::optional<double> {
    if (fail.load()) throw std::runtime_error("broken gauge");
    return 1.0;
  });
  auto ep = endpoint::create(io.ctx.get_executor(), r);
  BOOST_TEST(fetch(ep->port(), "/metrics").status == 500u);
  BOOST_TEST(fetch(ep->port(), "/healthz").status == 200u);
  fail = false;
  const auto m = fetch(ep->port(), "/metrics");
  BOOST_TEST(m.status == 200u);
  BOOST_TEST(samples(m.body).at("flaky") == 1.0);
  ep->stop();
}

BOOST_AUTO_TEST_CASE(closes_connections_beyond_the_cap) {
  registry r;  // outlives the threads that serve it
  io_threads io;
  auto ep = endpoint::create(io.ctx.get_executor(), r, {.max_connections = 2});
  boost::asio::io_context ctx;
  const tcp::endpoint where{boost::asio::ip::make_address("127.0.0.1"), ep->port()};
  // Two kept-alive connections, each proven accepted by an answer.
  std::vector<tcp::socket> open;
  for (int i = 0; i < 2; ++i) {
    auto& s = open.emplace_back(ctx);
    s.connect(where);
    http::write(s, http::request<http::empty_body>{http::verb::get, "/healthz", 11});
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(s, buffer, res);
    BOOST_TEST(res.result_int() == 200u);
  }
  // A third is closed without an answer.
  BOOST_CHECK_THROW(fetch(ep->port(), "/healthz"), boost::system::system_error);
  // Once one leaves, there is room again.
  open.front().close();
  BOOST_TEST(eventually([&] {
    try {
      return fetch(ep->port(), "/healthz").status == 200u;
    } catch (const boost::system::system_error&) {
      return false;
    }
  }));
  ep->stop();
}

BOOST_AUTO_TEST_CASE(closes_a_connection_sending_a_body_over_the_limit) {
  registry r;  // outlives the threads that serve it
  io_threads io;
  auto ep = endpoint::create(io.ctx.get_executor(), r);
  boost::asio::io_context ctx;
  tcp::socket socket(ctx);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), ep->port()});
  http::request<http::string_body> req{http::verb::get, "/healthz", 11};
  req.body() = std::string(64 * 1024, 'x');
  req.prepare_payload();
  boost::system::error_code ec;
  http::write(socket, req, ec);  // may fail midway once the server closed
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res, ec);
  BOOST_TEST(static_cast<bool>(ec));
  ep->stop();
}

BOOST_AUTO_TEST_CASE(informer_and_handler_gauges_do_not_own_what_they_show) {
  registry r;
  io_threads io;
  auto source = std::make_shared<scripted_source>(io.ctx.get_executor());
  shared_informer_options options;
  options.name = "pods";
  auto inf = shared_informer::create(source, options);
  register_informer_metrics(r, inf);
  auto reg = inf->add_event_handler({});
  register_handler_metrics(r, "pods", "h", reg);
  std::weak_ptr<shared_informer> weak = inf;
  auto scrape = [&] {
    std::string out;
    r.write_prometheus(out);
    return samples(out);
  };
  BOOST_TEST(scrape().count("informer_handler_pending{name=\"pods\",handler=\"h\"}") == 1u);
  BOOST_TEST(scrape().at("informer_synced{name=\"pods\"}") == 0.0);
  inf->remove_event_handler(reg);
  BOOST_TEST(scrape().count("informer_handler_pending{name=\"pods\",handler=\"h\"}") == 0u);
  inf.reset();
  BOOST_TEST(weak.expired());  // the registry keeps no reference
  const auto after = scrape();
  BOOST_TEST(after.count("informer_synced{name=\"pods\"}") == 0u);
  BOOST_TEST(after.count("informer_store_size{name=\"pods\"}") == 0u);
}

BOOST_AUTO_TEST_CASE(handler_calls_are_timed) {
  registry r;
  io_threads io;
  auto source = std::make_shared<scripted_source>(io.ctx.get_executor());
  shared_informer_options options;
  options.name = "pods";
  auto inf = shared_informer::create(source, options);
  auto reg = inf->add_event_handler({.on_add = [](const informer::object::ptr&, bool) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }});
  register_handler_metrics(r, "pods", "slow", reg);
  source->create(informer::testing::sample_pod_json(0));
  source->create(informer::testing::sample_pod_json(1));
  inf->run();
  const auto count = R"(informer_handler_duration_seconds_count{name="pods",handler="slow"})";
  const auto sum = R"(informer_handler_duration_seconds_sum{name="pods",handler="slow"})";
  const auto scrape = [&] {
    std::string out;
    r.write_prometheus(out);
    return samples(out);
  };
  BOOST_REQUIRE(eventually([&] { return scrape().count(count) == 1u && scrape().at(count) == 2.0; }));
  BOOST_TEST(scrape().at(sum) >= 0.01);  // two calls of at least 5 ms
  inf->stop();
}
