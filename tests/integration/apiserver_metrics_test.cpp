// The metrics endpoint over an informer on a real kube-apiserver 1.20: after the informer syncs
// the pods of a namespace, a scrape shows its list and a store size equal to the pods created,
// /readyz passes, and the REST client's requests are counted by code and method.
#include "informer/metrics/endpoint.hpp"

#include "informer/apiserver/lister_watcher.hpp"
#include "informer/apiserver/resource_path.hpp"
#include "informer/client/shared_informer.hpp"
#include "informer/metrics/adapters.hpp"
#include "informer/metrics/http_client_metrics.hpp"

#include "control_plane.hpp"
#include "io_threads.hpp"
#include "metrics_scrape.hpp"
#include "wait.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <chrono>
#include <future>
#include <map>
#include <random>
#include <string>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;
using informer::testing::control_plane;
using informer::testing::fetch;
using informer::testing::io_threads;
using informer::testing::samples;

BOOST_AUTO_TEST_CASE(scrape_shows_the_list_and_store_size_of_a_pod_informer,
                     *boost::unit_test::precondition([](auto) { return control_plane::available(); })) {
  control_plane cluster;
  // Before the threads, so that it outlives whatever runs on them (client hooks, connections).
  informer::metrics::registry registry;
  io_threads io;
  const informer::rest_config config{.server = cluster.apiserver_url(),
                                     .tls = {.ca_file = cluster.ca_file()},
                                     .bearer_token = cluster.admin_token(),
                                     .qps = 0};
  auto client = informer::http_client::create(io.ctx.get_executor(), config,
                                              {.metrics = informer::metrics::rest_client_metrics(registry)});
  BOOST_TEST_REQUIRE(client.has_value(), client.error().what());

  auto post = [&](const std::string& path, const std::string& body) {
    http::fields headers;
    headers.set(http::field::content_type, "application/json");
    auto f = client->async_request(http::verb::post, path, headers, body, asio::use_future);
    BOOST_TEST_REQUIRE((f.wait_for(30s) == std::future_status::ready));
    auto [e, r] = f.get();
    BOOST_TEST_REQUIRE(!e, path << ": " << e.what());
  };
  const std::string ns = "metrics-" + std::to_string(std::random_device{}() % 100000);
  post("/api/v1/namespaces", R"({"metadata":{"name":")" + ns + R"("}})");
  constexpr int pods = 7;
  for (int i = 0; i < pods; ++i) {
    post("/api/v1/namespaces/" + ns + "/pods",
         R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p)" + std::to_string(i) +
             R"("},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}})");
  }

  auto source =
      informer::apiserver_lister_watcher::create(*client, informer::parse_resource("pods").value(), {.ns = ns});
  BOOST_TEST_REQUIRE(source.has_value(), source.error().what());
  informer::shared_informer_options options;
  options.name = "pods";
  options.reflector.metrics = informer::metrics::reflector_metrics(registry, "pods");
  auto inf = informer::shared_informer::create(*source, options);
  informer::metrics::register_informer_metrics(registry, inf);
  auto ep = informer::metrics::endpoint::create(io.ctx.get_executor(), registry);
  ep->add_readiness_check("informer-sync", informer::metrics::informer_synced_check(inf));
  BOOST_TEST(fetch(ep->port(), "/readyz").status == 503u);

  inf->run();
  BOOST_TEST_REQUIRE(informer::wait_for_cache_sync({inf}, 30s));
  BOOST_TEST(fetch(ep->port(), "/readyz").status == 200u);
  // The list (resourceVersion 0) comes from the server's watch cache, which may not have the last
  // pods yet: they then come as watch events.
  BOOST_TEST_REQUIRE(
      informer::testing::eventually([&] { return inf->get_store()->size() == static_cast<std::size_t>(pods); }));
  const auto scrape = fetch(ep->port(), "/metrics");
  BOOST_TEST(scrape.status == 200u);
  const auto s = samples(scrape.body);
  BOOST_TEST(s.at("reflector_lists_total{name=\"pods\"}") == 1.0);
  const double listed = s.at("reflector_items_per_list_sum{name=\"pods\"}");
  const auto added = s.find("reflector_watch_events_total{name=\"pods\",type=\"ADDED\"}");
  BOOST_TEST(listed + (added == s.end() ? 0.0 : added->second) == static_cast<double>(pods));
  BOOST_TEST(s.at("reflector_list_duration_seconds_count{name=\"pods\"}") == 1.0);
  BOOST_TEST(s.at("informer_store_size{name=\"pods\"}") == static_cast<double>(pods));
  BOOST_TEST(s.at("informer_synced{name=\"pods\"}") == 1.0);
  // The namespace and the pods were created, the list and the watch open answered 200.
  BOOST_TEST(s.at("rest_client_requests_total{code=\"201\",method=\"POST\"}") == pods + 1.0);
  BOOST_TEST(s.at("rest_client_requests_total{code=\"200\",method=\"GET\"}") >= 2.0);
  BOOST_TEST(s.at("rest_client_request_duration_seconds_count{verb=\"POST\"}") == pods + 1.0);
  BOOST_TEST_MESSAGE("list took " << s.at("reflector_list_duration_seconds_sum{name=\"pods\"}") << " s");

  ep->stop();
  inf->stop();
}
