// The watches of one client, run: a `watch_hub` (the state machine; see watch_hub.hpp) fed from the
// client's loop, with one `watch_call` per stream (src/etcd/watch.cpp) that performs what the hub
// asks over gRPC (authenticating asynchronously when a token is needed, so nothing waits on the
// loop thread) and reports back what etcd said. The driver owns the callbacks and runs them.
//
// Thread safety: `add`, `cancel` and `request_progress` may be called from any thread; they post
// to the client's loop (`cancel` may wait for it). Everything else, and all state, belongs to the
// loop thread.
#pragma once

#include "informer/etcd/watch.hpp"

#include "etcd/detail/completion_loop.hpp"
#include "etcd/detail/connection.hpp"
#include "etcd/detail/watch_hub.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

namespace informer::etcd::detail {

class watch_call;

class watch_driver : public std::enable_shared_from_this<watch_driver> {
public:
  watch_driver(std::shared_ptr<connection> conn, std::shared_ptr<completion_loop> loop);
  ~watch_driver();
  watch_driver(const watch_driver&) = delete;
  watch_driver& operator=(const watch_driver&) = delete;

  /// Any thread: registers a watch and returns its id (from 1).
  std::uint64_t add(std::string key, const watch_options& options, watch_callback callback);
  /// Any thread: cancels watch `id`; nothing if it already ended. With `wait` (and not on the loop
  /// thread), returns once the watch's final update has been delivered.
  void cancel(std::uint64_t id, bool wait);
  /// Any thread: sends a WatchProgressRequest on the current stream.
  void request_progress();
  /// Loop thread, when the client closes: ends every watch with errc::closed, cancels the calls.
  void close_on_loop();

private:
  friend class watch_call;

  // All below: loop thread only.
  void perform(watch_actions actions);
  void open(const open_stream& action);
  void deliver(std::uint64_t id, watch_update update);
  // From a call.
  void on_response(watch_call& call, etcdserverpb::WatchResponse& response);
  void on_end(watch_call& call, const error& why);
  // The call is done with gRPC (its end reported, no operation pending): destroys it.
  void release(watch_call& call);
  std::size_t choose_endpoint();
  // Keeps the heartbeat timer running while the hub wants ticks.
  void arm_ticks();
  void on_tick_timer(bool fired);

  const std::shared_ptr<connection> conn_;
  const std::shared_ptr<completion_loop> loop_;
  std::atomic<std::uint64_t> last_id_{0};

  watch_hub hub_;
  const std::chrono::milliseconds tick_period_;
  loop_timer* tick_timer_ = nullptr;  // armed while the hub wants ticks
  bool closed_ = false;
  std::unordered_map<std::uint64_t, watch_callback> callbacks_;           // live watches
  std::unordered_map<std::uint64_t, std::unique_ptr<watch_call>> calls_;  // by stream
};

}  // namespace informer::etcd::detail
