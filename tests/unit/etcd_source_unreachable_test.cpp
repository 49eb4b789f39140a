// The etcd source without a working server: what it refuses before asking etcd (bad arguments,
// selectors, resourceVersions, continue tokens), what an unreachable etcd turns into for a list
// and a watch, and a watch open canceled through its handler's cancellation slot.
#include "informer/etcd/generic_source.hpp"
#include "informer/etcd/kubernetes_source.hpp"

#include "informer/etcd/errors.hpp"

#include "loopback_port.hpp"

#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace etcd = informer::etcd;

namespace {

// A client of `endpoint` and a generic source of "/s/" on an io_context run by one thread.
struct harness {
  explicit harness(const std::string& endpoint) {
    auto c = etcd::client::connect({.endpoints = {endpoint}, .dial_timeout = 300ms, .request_timeout = 2s});
    BOOST_REQUIRE_MESSAGE(c, (c ? "" : c.error().what()));
    client = std::make_shared<etcd::client>(std::move(*c));
    source = etcd::make_generic_source(client, io.get_executor(), {.prefix = "/s/"});
  }
  ~harness() {
    source.reset();
    work.reset();
    thread.join();
  }

  std::tuple<informer::error, informer::object_list> list(informer::list_options options) {
    auto f = source->async_list(std::move(options), asio::use_future);
    BOOST_REQUIRE((f.wait_for(20s) == std::future_status::ready));
    return f.get();
  }
  informer::error watch(informer::watch_options options) {
    auto f = source->async_watch(std::move(options), asio::use_future);
    BOOST_REQUIRE((f.wait_for(20s) == std::future_status::ready));
    return std::get<0>(f.get());
  }

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::thread thread{[this] { io.run(); }};
  std::shared_ptr<etcd::client> client;
  std::shared_ptr<etcd::source> source;
};

bool is(const informer::error& e, informer::errc code) { return e.code() == informer::make_error_code(code); }
bool is(const informer::error& e, etcd::errc code) { return e.code() == etcd::make_error_code(code); }

}  // namespace

BOOST_AUTO_TEST_CASE(create_refuses_bad_arguments) {
  loopback_port refused(false);
  harness h(refused.endpoint());
  BOOST_CHECK_THROW(etcd::make_generic_source(nullptr, h.io.get_executor(), {.prefix = "/s/"}), std::invalid_argument);
  BOOST_CHECK_THROW(etcd::make_generic_source(h.client, h.io.get_executor(), {.prefix = ""}), std::invalid_argument);
  BOOST_CHECK_THROW(etcd::source::create(h.client, h.io.get_executor(), {.prefix = "/s/"}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(bad_requests_are_refused_before_asking_etcd) {
  loopback_port refused(false);
  harness h(refused.endpoint());
  BOOST_TEST(is(std::get<0>(h.list({.label_selector = "a in ("})), informer::errc::bad_request));
  BOOST_TEST(is(std::get<0>(h.list({.resource_version = "abc"})), informer::errc::bad_request));
  BOOST_TEST(is(std::get<0>(h.list({.continue_token = "12|/elsewhere/x"})), informer::errc::bad_request));
  BOOST_TEST(is(std::get<0>(h.list({.continue_token = "no bar"})), informer::errc::bad_request));
  BOOST_TEST(is(h.watch({.resource_version = "-3"}), informer::errc::bad_request));
  BOOST_TEST(is(h.watch({.resource_version = "9223372036854775807"}), informer::errc::bad_request));
  BOOST_TEST(is(h.watch({.label_selector = "a in ("}), informer::errc::bad_request));
}

BOOST_AUTO_TEST_CASE(an_unreachable_etcd_fails_lists_and_watch_opens_as_unavailable) {
  loopback_port refused(false);
  harness h(refused.endpoint());
  auto [le, page] = h.list({});
  BOOST_TEST(is(le, etcd::errc::unavailable), le.what());
  BOOST_TEST(page.items.empty());
  const auto we = h.watch({.resource_version = "5"});
  BOOST_TEST(is(we, etcd::errc::unavailable), we.what());
}

BOOST_AUTO_TEST_CASE(a_watch_open_is_canceled_through_its_slot) {
  loopback_port silent(true);
  harness h(silent.endpoint());
  asio::cancellation_signal cancel;
  auto f = h.source->async_watch({}, asio::bind_cancellation_slot(cancel.slot(), asio::use_future));
  std::this_thread::sleep_for(100ms);
  asio::post(h.io, [&] { cancel.emit(asio::cancellation_type::terminal); });
  BOOST_REQUIRE((f.wait_for(5s) == std::future_status::ready));
  BOOST_TEST((std::get<0>(f.get()).code() == asio::error::operation_aborted));
}

BOOST_AUTO_TEST_CASE(a_kubernetes_source_refuses_a_namespace_that_is_not_a_path_segment) {
  loopback_port refused(false);
  harness h(refused.endpoint());
  const auto configmaps = informer::parse_resource("configmaps").value();
  BOOST_CHECK_NO_THROW(
      etcd::make_kubernetes_source(h.client, h.io.get_executor(), {.resource = configmaps, .ns = "a"}));
  for (const char* ns : {"a/b", "..", "kube-system/../default", "x%2F"}) {
    BOOST_CHECK_THROW(etcd::make_kubernetes_source(h.client, h.io.get_executor(), {.resource = configmaps, .ns = ns}),
                      std::invalid_argument);
  }
}
