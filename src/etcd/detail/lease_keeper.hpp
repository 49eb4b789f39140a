// Keeps one lease alive on the client's loop: a LeaseKeepAlive stream, one renewal per interval,
// the stream reopened after a backoff (on the next endpoint after UNAVAILABLE) when it breaks,
// until stopped, until etcd reports the lease gone (TTL <= 0), or until the client closes.
//
// `lease_keepers` holds the running keepers of a client (each keeper stays registered, and alive,
// until its stream and timer are done) so that the client's close can end them all.
//
// Thread safety: `lease_keeper::start` and `stop` may be called from any thread (they post to the
// loop; `stop` may wait for it); everything else belongs to the loop thread.
#pragma once

#include "informer/etcd/client.hpp"

#include "etcd/detail/completion_loop.hpp"
#include "etcd/detail/connection.hpp"

#include <cstdint>
#include <memory>
#include <unordered_map>

namespace informer::etcd::detail {

class lease_keepers;
class keep_alive_call;

class lease_keeper : public std::enable_shared_from_this<lease_keeper> {
public:
  lease_keeper(std::shared_ptr<connection> conn, std::shared_ptr<completion_loop> loop,
               std::shared_ptr<lease_keepers> registry, std::int64_t lease_id, keep_alive_options options);
  ~lease_keeper();

  /// Any thread: registers with the client and opens the stream.
  void start();
  /// Any thread: ends the keep-alive (on_end gets no error). With `wait` (and not on the loop
  /// thread), returns once on_end has run.
  void stop(bool wait);
  /// Loop thread: ends the keep-alive with `why` (once) and cancels what is pending.
  void end_on_loop(error why);

private:
  friend class keep_alive_call;
  void open_call();
  // The call's Authenticate failed (or was canceled); deletes the call.
  void on_open_failed(std::size_t endpoint, error why);
  void send();
  void on_answer(std::int64_t ttl);
  void on_call_end(const grpc::Status& status, bool answered);
  // One timer at a time: when it fires, renew on the open call, or open a new one.
  void schedule(std::chrono::milliseconds delay);
  void release_if_done();

  const std::shared_ptr<connection> conn_;
  const std::shared_ptr<completion_loop> loop_;
  const std::shared_ptr<lease_keepers> registry_;
  const std::int64_t lease_id_;
  keep_alive_options options_;

  // Loop thread only.
  std::unique_ptr<keep_alive_call> call_;
  loop_timer* timer_ = nullptr;
  bool ended_ = false;
  int failures_ = 0;  // consecutive broken calls, for the backoff
};

/// The running keepers of one client. Loop thread only.
class lease_keepers {
public:
  void add(std::shared_ptr<lease_keeper> keeper) { live_.emplace(keeper.get(), std::move(keeper)); }
  void remove(lease_keeper* keeper) { live_.erase(keeper); }
  /// Ends every keeper with errc::closed.
  void close_on_loop();

private:
  std::unordered_map<lease_keeper*, std::shared_ptr<lease_keeper>> live_;
};

}  // namespace informer::etcd::detail
