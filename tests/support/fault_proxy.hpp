// tests/support/fault_proxy.hpp
//
// `fault_proxy` is a TCP proxy on loopback that misbehaves on command, for tests that put it
// between the SDK and a real server (kube-apiserver, etcd) and check that the SDK recovers on its
// own. It forwards bytes and knows nothing of HTTP or TLS: a TLS client talks through it to the
// server unchanged (connect to https://127.0.0.1:<port()> and the server's certificate, which
// names 127.0.0.1, still verifies).
//
// Faults, each applied to the live connections and to the ones accepted later, until `resume()`:
// - `drop_all(mode)`: closes every live connection now (RST or FIN); new ones work.
// - `stall(direction)`: connections stay open but no byte is forwarded in that direction (nor
//   read: the kernel buffers fill up as behind a blackhole); new connections are accepted and
//   stalled too, unless `stall_new = false`.
// - `cut_after(bytes, direction, mode)`: each connection forwards `bytes` more bytes in that
//   direction, then is closed: a response cut mid-frame, or with a small count on a fresh
//   connection, a reset in the middle of the TLS handshake.
// - `delay(per_chunk, chunk_bytes)`: every chunk waits `per_chunk` before it is forwarded; with
//   `chunk_bytes` > 0 chunks are at most that large, so the pair sets a bandwidth (throttle).
// - `refuse(mode)`: new connections are accepted and closed at once (RST or FIN).
// - `resume()`: clears every fault; stalled bytes flow again, in order.
// Counters (`counters()`) tell what happened: connections accepted, open, refused, cut, dropped,
// bytes forwarded each way.
//
// When the target refuses a connection (the server is down), the client's connection is reset.
//
// Threads: the proxy runs its own thread and io_context; every connection lives on it. Controls
// are thread-safe and synchronous: when one returns, it has taken effect on the live connections.
// Never call them from the proxy's thread (nothing of the proxy calls back into a test).
// Lock rule: `mutex_` guards the fault settings and the counters, which the proxy's thread reads
// and bumps per chunk; connection state is confined to the proxy's thread and takes no lock.
#pragma once

#include "informer/core/mutex.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace informer::testing {

/// Which way bytes travel: upstream is client -> target, downstream target -> client.
enum class fault_direction { upstream = 1, downstream = 2, both = 3 };

/// How the proxy closes a connection: a TCP reset (SO_LINGER 0) or an orderly FIN.
enum class close_mode { reset, fin };

struct fault_proxy_counters {
  std::size_t accepted = 0;            ///< connections accepted (refused ones included)
  std::size_t open = 0;                ///< connections being proxied now
  std::size_t refused = 0;             ///< closed at once by `refuse`, or because the target refused
  std::size_t cut = 0;                 ///< closed by `cut_after`
  std::size_t dropped = 0;             ///< closed by `drop_all`
  std::uint64_t bytes_upstream = 0;    ///< forwarded client -> target
  std::uint64_t bytes_downstream = 0;  ///< forwarded target -> client
};

class fault_proxy {
public:
  /// Listens on 127.0.0.1 (a free port) and forwards to `target_host` (an IP address, or
  /// "localhost") : `target_port`. Throws boost::system::system_error if it cannot listen.
  fault_proxy(const std::string& target_host, std::uint16_t target_port)
      : target_(boost::asio::ip::make_address(target_host == "localhost" ? "127.0.0.1" : target_host), target_port),
        acceptor_(io_, {boost::asio::ip::address_v4::loopback(), 0}) {
    boost::asio::co_spawn(io_, accept_loop(), boost::asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  /// As above, for a URL "scheme://host:port[/...]" (e.g. the API server's or etcd's).
  explicit fault_proxy(std::string_view url) : fault_proxy(host_of(url), port_of(url)) {}

  ~fault_proxy() {
    on_proxy_thread([this] {
      stopping_ = true;
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      while (!live_.empty()) close(*live_.begin(), close_mode::fin);
    });
    work_.reset();  // the loops end once their sockets and timers are closed
    thread_.join();
  }
  fault_proxy(const fault_proxy&) = delete;
  fault_proxy& operator=(const fault_proxy&) = delete;

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  /// `url` with its host and port replaced by the proxy's: "https://127.0.0.1:<port()>".
  std::string url_for(std::string_view url) const {
    const auto scheme_end = url.find("://");
    const auto scheme = scheme_end == std::string_view::npos ? std::string_view{"https"} : url.substr(0, scheme_end);
    const auto rest = scheme_end == std::string_view::npos ? url : url.substr(scheme_end + 3);
    const auto slash = rest.find('/');
    const auto path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(port()) + std::string(path);
  }

  /// Closes every live connection.
  void drop_all(close_mode mode = close_mode::reset) {
    on_proxy_thread([this, mode] {
      while (!live_.empty()) {
        close(*live_.begin(), mode);
        informer::lock_guard lock(mutex_);
        ++counters_.dropped;
      }
    });
  }

  /// Forwards nothing more in `direction` on the live connections and, with `stall_new`, on new ones.
  void stall(fault_direction direction = fault_direction::both, bool stall_new = true) {
    on_proxy_thread([this, direction, stall_new] {
      {
        informer::lock_guard lock(mutex_);
        if (stall_new) stall_new_ = direction;
      }
      for (const auto& c : live_) {
        if (has(direction, fault_direction::upstream)) c->up.stalled = true;
        if (has(direction, fault_direction::downstream)) c->down.stalled = true;
      }
    });
  }

  /// Each live and new connection is closed after `bytes` more bytes in `direction`.
  void cut_after(std::size_t bytes, fault_direction direction = fault_direction::downstream,
                 close_mode mode = close_mode::reset) {
    on_proxy_thread([this, bytes, direction, mode] {
      {
        informer::lock_guard lock(mutex_);
        cut_ = cut_setting{bytes, direction, mode};
      }
      for (const auto& c : live_) arm_cut(*c, cut_setting{bytes, direction, mode});
    });
  }

  /// Every chunk waits `per_chunk` before it is forwarded; `chunk_bytes` > 0 caps a chunk's size.
  void delay(std::chrono::nanoseconds per_chunk, std::size_t chunk_bytes = 0) {
    informer::lock_guard lock(mutex_);
    delay_ = per_chunk;
    chunk_bytes_ = chunk_bytes;
  }

  /// New connections are accepted and closed at once.
  void refuse(close_mode mode = close_mode::reset) {
    informer::lock_guard lock(mutex_);
    refuse_ = mode;
  }

  /// Clears every fault; stalled connections forward what they hold and go on.
  void resume() {
    on_proxy_thread([this] {
      {
        informer::lock_guard lock(mutex_);
        stall_new_.reset();
        cut_.reset();
        refuse_.reset();
        delay_ = {};
        chunk_bytes_ = 0;
      }
      for (const auto& c : live_) {
        for (pump* p : {&c->up, &c->down}) {
          p->stalled = false;
          p->budget.reset();
          p->wake.cancel();
        }
      }
    });
  }

  fault_proxy_counters counters() const {
    informer::lock_guard lock(mutex_);
    return counters_;
  }

private:
  using tcp = boost::asio::ip::tcp;
  static constexpr auto tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

  struct cut_setting {
    std::size_t bytes = 0;
    fault_direction direction = fault_direction::downstream;
    close_mode mode = close_mode::reset;
  };

  // One direction of a connection. Confined to the proxy's thread.
  struct pump {
    explicit pump(boost::asio::io_context& io, fault_direction d) : direction(d), wake(io), pause(io) {}
    fault_direction direction;
    bool stalled = false;
    std::optional<std::size_t> budget;  // bytes left before a cut
    close_mode cut_mode = close_mode::reset;
    boost::asio::steady_timer wake;   // a stalled pump sleeps on it; resume or close cancels it
    boost::asio::steady_timer pause;  // per-chunk delay
    std::array<char, 16384> buffer{};
  };

  struct connection {
    explicit connection(boost::asio::io_context& io)
        : client(io), server(io), up(io, fault_direction::upstream), down(io, fault_direction::downstream) {}
    tcp::socket client;
    tcp::socket server;
    pump up;
    pump down;
    bool closed = false;
  };

  static bool has(fault_direction set, fault_direction d) { return (static_cast<int>(set) & static_cast<int>(d)) != 0; }

  static std::string host_of(std::string_view url) {
    auto rest = url.substr(url.find("://") == std::string_view::npos ? 0 : url.find("://") + 3);
    rest = rest.substr(0, rest.find('/'));
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) throw std::invalid_argument("fault_proxy: no port in " + std::string(url));
    return std::string(rest.substr(0, colon));
  }
  static std::uint16_t port_of(std::string_view url) {
    auto rest = url.substr(url.find("://") == std::string_view::npos ? 0 : url.find("://") + 3);
    rest = rest.substr(0, rest.find('/'));
    return static_cast<std::uint16_t>(std::stoi(std::string(rest.substr(rest.rfind(':') + 1))));
  }

  template <class F>
  void on_proxy_thread(F f) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  static void close_socket(tcp::socket& s, close_mode mode) {
    boost::system::error_code ignored;
    if (mode == close_mode::reset) s.set_option(boost::asio::socket_base::linger(true, 0), ignored);
    s.close(ignored);
  }

  void close(const std::shared_ptr<connection>& c, close_mode mode) {
    if (c->closed) return;
    c->closed = true;
    close_socket(c->client, mode);
    close_socket(c->server, mode);
    for (pump* p : {&c->up, &c->down}) {
      p->wake.cancel();
      p->pause.cancel();
    }
    if (live_.erase(c) > 0) {
      informer::lock_guard lock(mutex_);
      --counters_.open;
    }
  }

  static void arm_cut(connection& c, const cut_setting& cut) {
    for (pump* p : {&c.up, &c.down}) {
      if (!has(cut.direction, p->direction)) continue;
      p->budget = cut.bytes;
      p->cut_mode = cut.mode;
    }
  }

  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto c = std::make_shared<connection>(io_);
      auto [ec] = co_await acceptor_.async_accept(c->client, tuple);
      if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      if (ec) continue;
      std::optional<close_mode> refuse;
      {
        informer::lock_guard lock(mutex_);
        ++counters_.accepted;
        refuse = refuse_;
        if (refuse) ++counters_.refused;
      }
      if (refuse) {
        close_socket(c->client, *refuse);
        continue;
      }
      boost::asio::co_spawn(io_, serve(std::move(c)), boost::asio::detached);
    }
  }

  boost::asio::awaitable<void> serve(std::shared_ptr<connection> c) {
    auto [ec] = co_await c->server.async_connect(target_, tuple);
    if (stopping_) {
      close_socket(c->client, close_mode::fin);
      co_return;
    }
    if (ec) {
      close_socket(c->client, close_mode::reset);
      informer::lock_guard lock(mutex_);
      ++counters_.refused;
      co_return;
    }
    {
      informer::lock_guard lock(mutex_);
      ++counters_.open;
      if (stall_new_) {
        c->up.stalled = has(*stall_new_, fault_direction::upstream);
        c->down.stalled = has(*stall_new_, fault_direction::downstream);
      }
      if (cut_) arm_cut(*c, *cut_);
    }
    live_.insert(c);
    boost::asio::co_spawn(io_, forward(c, c->up, c->client, c->server), boost::asio::detached);
    boost::asio::co_spawn(io_, forward(c, c->down, c->server, c->client), boost::asio::detached);
  }

  // Sleeps while the pump is stalled; false once the connection is closed.
  boost::asio::awaitable<bool> wait_while_stalled(const std::shared_ptr<connection>& c, pump& p) {
    while (p.stalled && !c->closed) {
      p.wake.expires_at(boost::asio::steady_timer::time_point::max());
      co_await p.wake.async_wait(tuple);
    }
    co_return !c->closed;
  }

  boost::asio::awaitable<void> forward(std::shared_ptr<connection> c, pump& p, tcp::socket& from, tcp::socket& to) {
    for (;;) {
      if (!co_await wait_while_stalled(c, p)) co_return;
      std::size_t limit = p.buffer.size();
      {
        informer::lock_guard lock(mutex_);
        if (chunk_bytes_ > 0 && chunk_bytes_ < limit) limit = chunk_bytes_;
      }
      auto [read_error, n] = co_await from.async_read_some(boost::asio::buffer(p.buffer.data(), limit), tuple);
      if (read_error || c->closed) {
        close(c, close_mode::fin);  // the other side sees the end as this side showed it
        co_return;
      }
      // A stall asked while the read was pending holds the bytes it brought.
      if (!co_await wait_while_stalled(c, p)) co_return;
      std::chrono::nanoseconds delay{};
      {
        informer::lock_guard lock(mutex_);
        delay = delay_;
      }
      if (delay.count() > 0) {
        p.pause.expires_after(delay);
        co_await p.pause.async_wait(tuple);
        if (c->closed) co_return;
      }
      std::size_t send = n;
      bool cut = false;
      if (p.budget) {
        if (n >= *p.budget) {
          send = *p.budget;
          cut = true;
        } else {
          *p.budget -= n;
        }
      }
      if (send > 0) {
        auto [write_error, written] =
            co_await boost::asio::async_write(to, boost::asio::buffer(p.buffer.data(), send), tuple);
        {
          informer::lock_guard lock(mutex_);
          (p.direction == fault_direction::upstream ? counters_.bytes_upstream : counters_.bytes_downstream) += written;
        }
        if (write_error || c->closed) {
          close(c, close_mode::fin);
          co_return;
        }
      }
      if (cut) {
        {
          informer::lock_guard lock(mutex_);
          ++counters_.cut;
        }
        close(c, p.cut_mode);
        co_return;
      }
    }
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ = boost::asio::make_work_guard(io_);
  const tcp::endpoint target_;
  tcp::acceptor acceptor_;
  std::set<std::shared_ptr<connection>> live_;  // proxy thread only
  bool stopping_ = false;                       // proxy thread only
  std::thread thread_;

  mutable informer::mutex mutex_;
  fault_proxy_counters counters_ INFORMER_GUARDED_BY(mutex_);
  std::optional<fault_direction> stall_new_ INFORMER_GUARDED_BY(mutex_);
  std::optional<cut_setting> cut_ INFORMER_GUARDED_BY(mutex_);
  std::optional<close_mode> refuse_ INFORMER_GUARDED_BY(mutex_);
  std::chrono::nanoseconds delay_ INFORMER_GUARDED_BY(mutex_){};
  std::size_t chunk_bytes_ INFORMER_GUARDED_BY(mutex_) = 0;
};

}  // namespace informer::testing
