// Private to the API-server rooms: the keep-alive connections of one `http_client`. Each TLS
// connection has its own strand; idle ones wait in a small pool, most recently used first, and are
// checked before reuse (closed by the server, or idle too long: dropped and counted stale).
//
// Thread safety: `connection_pool` is thread-safe. A `connection` is used by one operation at a
// time, on its strand, except the liveness peek of an idle one (nobody else uses it then).
// Lifetimes: connections are destroyed on their strands (`release`), after whatever their last
// operation left queued there; the executor must outlive them.
#pragma once

#include "apiserver/detail/tls_connect.hpp"

#include "informer/core/mutex.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace informer::detail {

/// One TLS connection and its read buffer.
struct connection {
  connection(const boost::asio::any_io_executor& strand_executor, std::shared_ptr<boost::asio::ssl::context> tls)
      : tls_context(std::move(tls)), strand(strand_executor), stream(strand_executor, *tls_context) {}

  boost::beast::tcp_stream& tcp() { return boost::beast::get_lowest_layer(stream); }

  /// The stream's deadline: `time_point::max()` for none.
  void expires_at(std::chrono::steady_clock::time_point deadline);

  // The context the stream was made with (the pool's may be replaced meanwhile).
  std::shared_ptr<boost::asio::ssl::context> tls_context;
  boost::asio::any_io_executor strand;
  tls_stream stream;
  boost::beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point idle_since{};
};
using connection_ptr = std::unique_ptr<connection>;

/// Destroys `c` on its strand, after anything queued there for it (a cancelled timer's handler).
void release(connection_ptr c);

struct connection_pool_options {
  /// Idle connections kept; more are released when returned.
  std::size_t max_idle = 16;
  /// An idle connection older than this is dropped instead of reused.
  std::chrono::nanoseconds idle_timeout = std::chrono::seconds(90);
};

class connection_pool {
public:
  /// New connections run on strands of `executor` and share `tls` (not modified afterwards).
  connection_pool(boost::asio::any_io_executor executor, boost::asio::ssl::context tls,
                  connection_pool_options options);

  /// New connections use `tls` from now on (a new client certificate); the idle ones are
  /// released. Connections in use keep the context they were made with.
  void replace_tls(boost::asio::ssl::context tls);
  ~connection_pool();  // releases the idle connections
  connection_pool(const connection_pool&) = delete;
  connection_pool& operator=(const connection_pool&) = delete;

  /// A new, unconnected connection on its own strand (see `tls_connect`).
  connection_ptr make_connection();

  /// The most recently used idle connection that is still open, or null; drops the ones that
  /// are not (counted stale).
  connection_ptr take_idle();

  /// Returns a connection whose last answer left it reusable.
  void put_idle(connection_ptr c);

  /// Releases every idle connection.
  void close_idle();

  std::size_t idle_count() const;

  /// Counts a connection found unusable other than by `take_idle` (closed under a request).
  void count_stale() { ++stale_; }

  std::uint64_t reused() const { return reused_.load(); }
  std::uint64_t stale() const { return stale_.load(); }

private:
  const boost::asio::any_io_executor executor_;
  const connection_pool_options options_;
  std::atomic<std::uint64_t> reused_{0};
  std::atomic<std::uint64_t> stale_{0};

  mutable informer::mutex mutex_;
  std::vector<connection_ptr> idle_ INFORMER_GUARDED_BY(mutex_);  // most recently used last
  std::shared_ptr<boost::asio::ssl::context> tls_ INFORMER_GUARDED_BY(mutex_);
};

}  // namespace informer::detail
