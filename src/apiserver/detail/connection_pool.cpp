#include "apiserver/detail/connection_pool.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <cerrno>
#include <utility>

#include <sys/socket.h>

namespace informer::detail {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

namespace {

// True when an idle connection has nothing to read and no end of file: an idle HTTP/1.1 connection
// that became readable was closed by the server (FIN or a TLS close_notify).
bool still_open(connection& c) {
  if (c.buffer.size() != 0 || !c.tcp().socket().is_open()) return false;
  char byte = 0;
  const auto n = ::recv(c.tcp().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

void connection::expires_at(clock::time_point deadline) {
  if (deadline == clock::time_point::max()) {
    tcp().expires_never();
  } else {
    tcp().expires_at(deadline);
  }
}

void release(connection_ptr c) {
  if (!c) return;
  auto strand = c->strand;
  asio::post(strand, [c = std::move(c)]() mutable { c.reset(); });
}

connection_pool::connection_pool(asio::any_io_executor executor, asio::ssl::context tls,
                                 connection_pool_options options)
    : executor_(std::move(executor)), options_(options), tls_(std::make_shared<asio::ssl::context>(std::move(tls))) {}

connection_pool::~connection_pool() { close_idle(); }

connection_ptr connection_pool::make_connection() {
  std::shared_ptr<asio::ssl::context> tls;
  {
    informer::lock_guard lock(mutex_);
    tls = tls_;
  }
  return std::make_unique<connection>(asio::make_strand(executor_), std::move(tls));
}

void connection_pool::replace_tls(asio::ssl::context tls) {
  auto next = std::make_shared<asio::ssl::context>(std::move(tls));
  std::vector<connection_ptr> all;
  {
    informer::lock_guard lock(mutex_);
    tls_ = std::move(next);
    all = std::exchange(idle_, {});
  }
  for (auto& c : all) release(std::move(c));
}

connection_ptr connection_pool::take_idle() {
  std::vector<connection_ptr> dropped;
  connection_ptr found;
  {
    informer::lock_guard lock(mutex_);
    const auto now = clock::now();
    while (!idle_.empty() && !found) {
      connection_ptr c = std::move(idle_.back());
      idle_.pop_back();
      if (now - c->idle_since < options_.idle_timeout && still_open(*c)) {
        found = std::move(c);
      } else {
        dropped.push_back(std::move(c));
      }
    }
  }
  stale_ += dropped.size();
  for (auto& c : dropped) release(std::move(c));
  if (found) ++reused_;
  return found;
}

void connection_pool::put_idle(connection_ptr c) {
  c->idle_since = clock::now();
  connection_ptr dropped;
  {
    informer::lock_guard lock(mutex_);
    // One made before a new client certificate is not kept (see `replace_tls`).
    if (idle_.size() < options_.max_idle && c->tls_context == tls_) {
      idle_.push_back(std::move(c));
    } else {
      dropped = std::move(c);
    }
  }
  release(std::move(dropped));
}

void connection_pool::close_idle() {
  std::vector<connection_ptr> all;
  {
    informer::lock_guard lock(mutex_);
    all = std::exchange(idle_, {});
  }
  for (auto& c : all) release(std::move(c));
}

std::size_t connection_pool::idle_count() const {
  informer::lock_guard lock(mutex_);
  return idle_.size();
}

}  // namespace informer::detail
