// informer/client/reflector.hpp
//
// A reflector keeps a store in step with a source: it lists the resource (in pages), hands the
// items to the store with `replace`, then watches from the list's resourceVersion and applies each
// event in order. It is client-go's Reflector:
//   - a watch that ends normally (the server's timeout, or the client's own randomised 5-10
//     minute timeout) is reopened from the last resourceVersion seen, bookmarks included,
//     without relisting;
//   - a watch cut by the network (reset, EOF, timeout) is reopened the same way;
//   - a watch that delivers nothing at all (no event, no bookmark) for `watch_liveness_timeout`
//     is taken for cut (a middlebox or a half-dead peer can keep a connection open while nothing
//     comes through, and TCP alone would wait for hours): it is cancelled, reported to the
//     watch-error handler (asio::error::timed_out) and reopened the same way, without a relist;
//   - "connection refused" or "too many requests" (429) when opening a watch waits a backoff,
//     then watches again from the same resourceVersion: a throttled server gets no full list;
//   - "expired" (410 Gone) at watch open, as an ERROR event or ending the stream, and "too large
//     resource version", force a relist. A relist at a known version is not paged (so the API server answers from
//     its watch cache); if that version is gone too, the reflector lists again at once for the
//     most recent state (resourceVersion "");
//   - an expired continue token during a paged list falls back to a full list;
//   - list items the source could key but not decode (`object_list::skipped`) are each reported
//     to the watch-error handler, and the store keeps their cached state (`replace_keeping`): one
//     bad object neither fails every relist nor reads as a deletion to the handlers;
//   - every failure goes to the watch-error handler and the metrics hooks, then the loop waits an
//     exponential, jittered backoff (see `backoff`) before trying again;
//   - an optional resync period calls the store's `resync` when `should_resync` agrees.
//
// It tells these cases apart by error conditions (informer/core/condition.hpp: `stream_cut`,
// `unreachable`, `throttled`, `relist_required`), whatever source or library raised the code.
//
// The loop is a coroutine on the source's executor: no thread of its own.
//
// Thread safety: `start`, `stop`, `last_sync_resource_version`, `set_watch_error_handler`,
// `join` and `join_for` are thread-safe. The store is called from the source's executor only, one
// call at a time. Lifetimes: the loop keeps the source alive, and the store too when it is given
// as a `shared_ptr`; a store given by reference (and any handler) must outlive the loop: call
// `stop()` and then `join()` (not from the executor's own threads) before destroying it. The loop
// can only end while its executor runs: `join` waits for that, `join_for` gives up after a while
// (safe with a shared store: the loop then ends whenever the executor runs again or is destroyed).
#pragma once

#include "informer/client/backoff.hpp"
#include "informer/client/lister_watcher.hpp"
#include "informer/core/mutex.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace informer {

/// What a reflector writes into; an informer's DeltaFIFO sits behind it.
class reflector_store {
public:
  virtual ~reflector_store() = default;
  virtual void add(object::ptr obj) = 0;
  virtual void update(object::ptr obj) = 0;
  virtual void remove(object::ptr obj) = 0;
  virtual void replace(std::vector<object::ptr> objects, std::string resource_version) = 0;
  /// A relist some of whose items could not be decoded (`object_list::skipped`): as `replace`,
  /// except that the keys in `kept` keep whatever state the store has for them (no deletion, no
  /// update). Returns false, having done nothing, when the store cannot do that (the default):
  /// the reflector then fails the list with the first item's error, as a list whose items could
  /// not even be keyed fails.
  virtual bool replace_keeping(std::vector<object::ptr>& objects, const std::string& resource_version,
                               const std::vector<std::string>& kept) {
    (void)objects, (void)resource_version, (void)kept;
    return false;
  }
  virtual void resync() = 0;
};

/// Optional observation points; each may be empty. Called on the source's executor.
struct reflector_metrics {
  std::function<void(std::size_t items, std::chrono::nanoseconds took)> on_list;
  std::function<void()> on_watch_open;
  std::function<void(std::size_t events)> on_watch_close;
  std::function<void(const informer::error& e)> on_error;
  std::function<void(std::chrono::nanoseconds delay)> on_backoff;
  std::function<void(const std::string& reason)> on_relist;
  /// A watch event arrived (bookmarks and ERROR events included), before it is applied;
  /// `resource_version` is the event's ("" when it carries none).
  std::function<void(watch_event_type type, const std::string& resource_version)> on_event;
};

struct reflector_options {
  /// Used in error texts ("pods in default", ...).
  std::string name = "reflector";
  std::string label_selector{};
  std::string field_selector{};
  /// Page size of lists; 0 lists everything in one response.
  std::int64_t page_size = 500;
  /// The very first list asks for resourceVersion "0" (served from the API server's cache).
  bool initial_list_from_cache = true;
  /// Watches ask the server to end them after a random time in [min, 2*min).
  std::chrono::seconds min_watch_timeout = std::chrono::minutes(5);
  bool allow_bookmarks = true;
  /// A watch silent this long (no event, no bookmark) is cancelled and reopened from the last
  /// resourceVersion (see the file comment); zero disables the check. A healthy idle watch must
  /// hear something within it, so it must exceed the source's heartbeat. kube-apiserver (1.19 and
  /// later, 1.20 included) sends each watch that allows bookmarks one about every minute
  /// (`defaultBookmarkFrequency` in apiserver/pkg/storage/cacher, bucketed to the second; checked
  /// against the real 1.20.2 server: 60 s apart) and 2 s before the watch's own timeout. The
  /// default leaves room for one late bookmark on a busy server. Two cases remain where an idle
  /// but healthy watch is reopened every timeout (one cheap request, never a relist): a resource
  /// whose API-server cache has seen no change since the server started (it sends no bookmark
  /// until then), and the etcd sources, whose bookmarks are etcd's progress notifications (sent
  /// unasked only every 10 minutes) unless the source asks for progress more often.
  std::chrono::nanoseconds watch_liveness_timeout = std::chrono::seconds(90);
  /// Zero disables resync.
  std::chrono::nanoseconds resync_period{0};
  /// Asked before each resync; empty means always.
  std::function<bool()> should_resync{};
  backoff_options backoff{};
  reflector_metrics metrics{};
};

class reflector : public std::enable_shared_from_this<reflector> {
public:
  static std::shared_ptr<reflector> create(std::shared_ptr<lister_watcher> source, reflector_store& store,
                                           reflector_options options = {});
  /// As above; the loop shares ownership of the store until it ends.
  static std::shared_ptr<reflector> create(std::shared_ptr<lister_watcher> source,
                                           std::shared_ptr<reflector_store> store, reflector_options options = {});
  ~reflector();
  reflector(const reflector&) = delete;
  reflector& operator=(const reflector&) = delete;

  /// Starts the list-and-watch loop on the source's executor. Later calls do nothing.
  void start();
  /// Asks the loop to end: cancels the open watch and any backoff wait. Returns at once.
  void stop();
  /// Blocks until the loop has ended (after `stop`). Never call it from the executor's threads.
  void join();
  /// As `join`, giving up after `timeout`; true when the loop has ended.
  bool join_for(std::chrono::nanoseconds timeout);
  bool running() const;

  /// The resourceVersion of the last list or event applied ("" before the first list).
  std::string last_sync_resource_version() const;

  /// Called with every failure (list, watch open, stream error); replaces the previous handler.
  void set_watch_error_handler(std::function<void(const informer::error&)> handler);

  // Private: use create().
  struct passkey {
  private:
    passkey() = default;
    friend class reflector;
  };
  reflector(passkey, std::shared_ptr<lister_watcher> source, reflector_store& store, reflector_options options);

private:
  struct loop;
  friend struct loop;

  std::shared_ptr<lister_watcher> source_;
  reflector_store& store_;
  std::shared_ptr<reflector_store> store_owner_ INFORMER_GUARDED_BY(mutex_);  // handed to the loop at start
  reflector_options options_;

  mutable informer::mutex mutex_;
  informer::condition_variable ended_cv_;
  bool started_ INFORMER_GUARDED_BY(mutex_) = false;
  bool stopping_ INFORMER_GUARDED_BY(mutex_) = false;
  bool ended_ INFORMER_GUARDED_BY(mutex_) = false;
  std::string last_sync_resource_version_ INFORMER_GUARDED_BY(mutex_);
  std::function<void(const informer::error&)> error_handler_ INFORMER_GUARDED_BY(mutex_);
  std::shared_ptr<watch_stream> watch_ INFORMER_GUARDED_BY(mutex_);  // the open watch, to cancel on stop
  std::function<void()> cancel_wait_ INFORMER_GUARDED_BY(mutex_);    // cancels the current backoff / resync wait
};

}  // namespace informer
