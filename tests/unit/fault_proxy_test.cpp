// The fault proxy against a local echo server: each fault has the effect the fault scenarios rely
// on, observed from a plain client socket.
#include "fault_proxy.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include "wait.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using informer::testing::close_mode;
using informer::testing::eventually;
using informer::testing::fault_direction;
using informer::testing::fault_proxy;

namespace {

// Echoes every byte back, one coroutine per connection, on its own thread.
class echo_server {
public:
  echo_server() : acceptor_(io_, {asio::ip::address_v4::loopback(), 0}) {
    asio::co_spawn(io_, accept(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~echo_server() {
    io_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

private:
  asio::awaitable<void> accept() {
    for (;;) {
      auto socket = std::make_shared<tcp::socket>(io_);
      auto [ec] = co_await acceptor_.async_accept(*socket, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      asio::co_spawn(io_, echo(socket), asio::detached);
    }
  }
  static asio::awaitable<void> echo(std::shared_ptr<tcp::socket> socket) {
    std::array<char, 4096> buffer{};
    for (;;) {
      auto [ec, n] = co_await socket->async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      auto [write_error, written] =
          co_await asio::async_write(*socket, asio::buffer(buffer.data(), n), asio::as_tuple(asio::use_awaitable));
      if (write_error) co_return;
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

// A blocking client whose reads give up after `read_timeout` (so a stalled proxy fails the read
// instead of hanging the test).
class client {
public:
  explicit client(std::uint16_t port, std::chrono::milliseconds read_timeout = 2000ms) : socket_(io_) {
    socket_.connect({asio::ip::address_v4::loopback(), port});
    timeval tv{};
    tv.tv_sec = read_timeout.count() / 1000;
    tv.tv_usec = (read_timeout.count() % 1000) * 1000;
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send(const std::string& text) { asio::write(socket_, asio::buffer(text)); }
  // Reads exactly `n` bytes; what arrived before an error or timeout otherwise, with the error.
  // Plain recv(2): Asio's blocking read would wait out SO_RCVTIMEO by polling.
  std::string receive(std::size_t n, boost::system::error_code& ec) {
    std::string out;
    ec = {};
    while (out.size() < n) {
      char buffer[4096];
      const auto got = ::recv(socket_.native_handle(), buffer, std::min(sizeof buffer, n - out.size()), 0);
      if (got > 0) {
        out.append(buffer, static_cast<std::size_t>(got));
      } else {
        ec = got == 0 ? boost::system::error_code(asio::error::eof)
                      : boost::system::error_code(errno, boost::system::system_category());
        break;
      }
    }
    return out;
  }
  std::string receive(std::size_t n) {
    boost::system::error_code ec;
    return receive(n, ec);
  }

private:
  asio::io_context io_;
  tcp::socket socket_;
};

bool is_timeout(const boost::system::error_code& ec) {
  return ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::timed_out;
}

struct fixture {
  echo_server echo;
  fault_proxy proxy{"127.0.0.1", echo.port()};
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(forwards_both_ways_and_counts, fixture) {
  client c(proxy.port());
  c.send("hello");
  BOOST_TEST(c.receive(5) == "hello");
  // The proxy counts a chunk once its write has completed, which may be after the client read it.
  auto n = proxy.counters();
  for (int i = 0; i < 500 && (n.bytes_downstream < 5u || n.bytes_upstream < 5u); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    n = proxy.counters();
  }
  BOOST_TEST(n.accepted == 1u);
  BOOST_TEST(n.open == 1u);
  BOOST_TEST(n.bytes_upstream == 5u);
  BOOST_TEST(n.bytes_downstream == 5u);
  BOOST_TEST(proxy.url_for("https://127.0.0.1:6443/api") ==
             "https://127.0.0.1:" + std::to_string(proxy.port()) + "/api");
}

BOOST_FIXTURE_TEST_CASE(drop_all_resets_live_connections_and_new_ones_work, fixture) {
  client c(proxy.port());
  c.send("a");
  BOOST_TEST(c.receive(1) == "a");
  proxy.drop_all(close_mode::reset);
  boost::system::error_code ec;
  c.receive(1, ec);
  BOOST_TEST((ec == asio::error::connection_reset), ec.message());
  BOOST_TEST(proxy.counters().dropped == 1u);
  BOOST_TEST(proxy.counters().open == 0u);
  client d(proxy.port());
  d.send("b");
  BOOST_TEST(d.receive(1) == "b");
}

BOOST_FIXTURE_TEST_CASE(drop_all_with_fin_ends_the_stream, fixture) {
  client c(proxy.port());
  c.send("a");
  BOOST_TEST(c.receive(1) == "a");
  proxy.drop_all(close_mode::fin);
  boost::system::error_code ec;
  c.receive(1, ec);
  BOOST_TEST((ec == asio::error::eof), ec.message());
}

BOOST_FIXTURE_TEST_CASE(stall_holds_bytes_of_live_and_new_connections_until_resume, fixture) {
  client c(proxy.port(), 300ms);
  c.send("x");
  BOOST_TEST(c.receive(1) == "x");
  proxy.stall(fault_direction::downstream);
  c.send("live");
  boost::system::error_code ec;
  BOOST_TEST(c.receive(4, ec).empty());
  BOOST_TEST(is_timeout(ec), ec.message());
  client fresh(proxy.port(), 300ms);  // accepted, but stalled too
  fresh.send("new");
  BOOST_TEST(fresh.receive(3, ec).empty());
  BOOST_TEST(is_timeout(ec), ec.message());
  BOOST_TEST(proxy.counters().open == 2u);
  proxy.resume();
  BOOST_TEST(c.receive(4) == "live");
  BOOST_TEST(fresh.receive(3) == "new");
}

BOOST_FIXTURE_TEST_CASE(an_upstream_stall_forwards_nothing_to_the_target, fixture) {
  client c(proxy.port(), 300ms);
  proxy.stall(fault_direction::upstream);
  c.send("held");
  boost::system::error_code ec;
  BOOST_TEST(c.receive(4, ec).empty());
  BOOST_TEST(proxy.counters().bytes_upstream == 0u);
  proxy.resume();
  BOOST_TEST(c.receive(4) == "held");
}

BOOST_FIXTURE_TEST_CASE(a_stall_of_live_connections_only_spares_new_ones, fixture) {
  client c(proxy.port(), 300ms);
  c.send("x");
  BOOST_TEST(c.receive(1) == "x");
  proxy.stall(fault_direction::both, /*stall_new=*/false);
  client fresh(proxy.port());
  fresh.send("ok");
  BOOST_TEST(fresh.receive(2) == "ok");
  c.send("y");
  boost::system::error_code ec;
  BOOST_TEST(c.receive(1, ec).empty());
  proxy.resume();
}

BOOST_FIXTURE_TEST_CASE(cut_after_closes_a_connection_mid_response, fixture) {
  client c(proxy.port());
  c.send("0123456789");
  BOOST_TEST(c.receive(10) == "0123456789");
  proxy.cut_after(7, fault_direction::downstream);
  c.send("abcdefghijklmnopqrstuvwxyz");
  boost::system::error_code ec;
  BOOST_TEST(c.receive(26, ec) == "abcdefg");
  BOOST_TEST((ec == asio::error::connection_reset), ec.message());
  BOOST_TEST(eventually([&] { return proxy.counters().cut == 1u; }));
  // New connections are cut too, until resume.
  client d(proxy.port());
  d.send("0123456789");
  BOOST_TEST(d.receive(10, ec) == "0123456");
  proxy.resume();
  client e(proxy.port());
  e.send("0123456789");
  BOOST_TEST(e.receive(10) == "0123456789");
}

BOOST_FIXTURE_TEST_CASE(delay_slows_every_chunk, fixture) {
  client c(proxy.port());
  proxy.delay(200ms);
  const auto start = std::chrono::steady_clock::now();
  c.send("slow");
  BOOST_TEST(c.receive(4) == "slow");
  BOOST_TEST((std::chrono::steady_clock::now() - start >= 350ms));  // delayed on the way out and back
  proxy.resume();
  const auto again = std::chrono::steady_clock::now();
  c.send("fast");
  BOOST_TEST(c.receive(4) == "fast");
  BOOST_TEST((std::chrono::steady_clock::now() - again < 350ms));  // the delayed way takes 400 ms
}

BOOST_FIXTURE_TEST_CASE(refuse_closes_new_connections_at_once, fixture) {
  proxy.refuse(close_mode::reset);
  client c(proxy.port());
  boost::system::error_code ec;
  c.receive(1, ec);
  BOOST_TEST((ec == asio::error::connection_reset || ec == asio::error::eof), ec.message());
  BOOST_TEST(proxy.counters().refused == 1u);
  proxy.resume();
  client d(proxy.port());
  d.send("ok");
  BOOST_TEST(d.receive(2) == "ok");
}

BOOST_AUTO_TEST_CASE(a_target_that_refuses_resets_the_client) {
  std::uint16_t dead_port = 0;
  {
    echo_server gone;
    dead_port = gone.port();
  }
  fault_proxy proxy("127.0.0.1", dead_port);
  client c(proxy.port());
  boost::system::error_code ec;
  c.receive(1, ec);
  BOOST_TEST((ec == asio::error::connection_reset || ec == asio::error::eof), ec.message());
  BOOST_TEST(eventually([&] { return proxy.counters().refused == 1u; }));
}
