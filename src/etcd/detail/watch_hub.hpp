// The watches of one client and the Watch streams that carry them (implemented in
// src/etcd/watch.cpp).
//
// One stream at a time accepts new watches (`current_`); creates are sent one at a time and the
// next `created` answer belongs to the oldest create in flight (etcd answers creates in order; this
// also matches a refusal that carries watch id -1). A stream that etcd stops reading (after it
// refused a watch for permissions, etcd 3.4 no longer reads that stream) is retired: it keeps
// delivering to its watches but takes no new ones, and is closed once they are gone. When a stream
// breaks, its watches get a final `failed` update; watches not yet answered when a stream failed to
// connect are retried on the next endpoints (each at most once per endpoint). New watches open a
// new stream.
//
// Thread safety: `add`, `cancel` and `request_progress` may be called from any thread; they post
// to the client's loop (`cancel` may wait for it). Everything else, and all state, belongs to the loop
// thread.
#pragma once

#include "informer/etcd/watch.hpp"

#include "etcd/detail/completion_loop.hpp"
#include "etcd/detail/connection.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

namespace informer::etcd::detail {

struct watch_entry;
class watch_stream;

class watch_hub : public std::enable_shared_from_this<watch_hub> {
public:
  watch_hub(std::shared_ptr<connection> conn, std::shared_ptr<completion_loop> loop);
  ~watch_hub();
  watch_hub(const watch_hub&) = delete;
  watch_hub& operator=(const watch_hub&) = delete;

  /// Any thread: registers a watch and returns its id (from 1).
  std::uint64_t add(std::string key, const watch_options& options, watch_callback callback);
  /// Any thread: cancels watch `id`; nothing if it already ended. With `wait` (and not on the loop
  /// thread), returns once the watch's final update has been delivered.
  void cancel(std::uint64_t id, bool wait);
  /// Any thread: sends a WatchProgressRequest on the current stream.
  void request_progress();
  /// Loop thread, when the client closes: ends every watch with errc::closed, cancels the streams.
  void close_on_loop();

private:
  friend class watch_stream;

  // All below: loop thread only.
  void add_on_loop(std::shared_ptr<watch_entry> entry);
  void cancel_on_loop(std::uint64_t id);
  void assign_waiting();
  void open_stream(std::deque<watch_entry*> entries);
  std::size_t choose_endpoint();
  // Entries that could not get onto a stream: retried on the next endpoint if the failure was a
  // connection failure and they have endpoints left to try, failed otherwise.
  void retry_or_fail(std::deque<watch_entry*> entries, const error& why, bool connect_failure);
  void pump(watch_stream& stream);
  void send_cancel(watch_stream& stream, std::int64_t server_id);
  void on_response(watch_stream& stream, etcdserverpb::WatchResponse& response);
  void on_create_refused(watch_stream& stream, watch_entry* entry,
                         const etcdserverpb::WatchResponse& response);
  void on_stream_end(watch_stream& stream);
  void retire(watch_stream& stream);
  void close_if_idle(watch_stream& stream);
  void maybe_destroy(watch_stream& stream);
  void deliver(watch_entry& entry, watch_update update);
  // Delivers the last update and forgets the entry (unless a stream still refers to it).
  void finish(watch_entry& entry, watch_update update);
  void erase(watch_entry& entry);

  const std::shared_ptr<connection> conn_;
  const std::shared_ptr<completion_loop> loop_;
  std::atomic<std::uint64_t> last_id_{0};

  bool closed_ = false;
  std::unordered_map<std::uint64_t, std::shared_ptr<watch_entry>> entries_;  // live watches
  std::deque<watch_entry*> waiting_;                                         // waiting for a stream
  std::list<std::unique_ptr<watch_stream>> streams_;
  watch_stream* current_ = nullptr;  // the stream that takes new watches, if any
};

}  // namespace informer::etcd::detail
