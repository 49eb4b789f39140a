// informer/client/informer_factory.hpp
//
// `informer_factory` hands out one `shared_informer` per watched collection, so that every part of
// a program that watches "pods in namespace a with label app=web from the API server" shares one
// list+watch and one cache (client-go's SharedInformerFactory). It owns a small pool of threads
// running one `io_context` (two by default) on which every source, reflector, drain and, unless
// told otherwise, handler runs, or it runs on an executor the user supplies. A hundred informers
// cost no extra threads.
//
// A collection is named by an `informer_key`: resource, namespace, label selector, field selector
// and source kind. Selectors are compared in canonical form (`canonical`), so `b=2,a=1` and
// `a=1, b=2` share an informer.
//
// Lifecycle: `for_resource` creates informers (stopped until `start`); `start` runs them all, and
// every informer created after `start` runs at once; `shutdown` stops every informer (joining
// reflectors and waiting for handler calls in progress), then winds the pool down: it lets queued
// jobs finish for at most `shutdown_grace`, then stops the io_context and joins its threads.
// After `shutdown`, `for_resource` still returns informers but they never run.
//
// Errors: `for_resource` throws std::invalid_argument when `make_source` is empty or returns null,
// the constructor when `threads` is 0 (programming errors). Sources report their failures through each informer's
// hooks.
//
// Thread safety: every member is thread-safe. `shutdown` (and so the destructor) must not be
// called from a handler or from a pool thread: it joins them.
// Lifetimes: informers handed out may outlive the factory; once the factory is gone (its pool
// joined) they no longer change. With a user-supplied executor, that executor must keep running
// until `shutdown` returns.
#pragma once

#include "informer/client/lister_watcher.hpp"
#include "informer/client/shared_informer.hpp"
#include "informer/core/mutex.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <compare>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>  // std::once_flag
#include <string>

namespace informer {

/// Names one watched collection; informers are shared per distinct key.
struct informer_key {
  /// The resource, in any spelling used consistently: "v1/pods", "apps/v1/deployments", ...
  std::string resource;
  /// "" for all namespaces (or a cluster-scoped resource).
  std::string ns{};
  /// Text form; compared after `canonical`.
  std::string label_selector{};
  std::string field_selector{};
  /// Which source serves it, e.g. "apiserver" or "etcd".
  std::string source_kind{};

  friend auto operator<=>(const informer_key&, const informer_key&) = default;
  friend bool operator==(const informer_key&, const informer_key&) = default;
};

/// `key` with its selectors in canonical text form (sorted requirements). A selector that does not
/// parse is kept as written (the source will reject it and report through the informer).
informer_key canonical(informer_key key);

/// "resource[ in ns][ where label_selector][ and field_selector][ from source_kind]", for names.
std::string to_string(const informer_key& key);

/// Builds the source of a key's informer. `executor` is the factory's: the source must do its I/O
/// on it (and return it from `get_executor`).
using source_maker = std::function<std::shared_ptr<lister_watcher>(const informer_key& key,
                                                                   const boost::asio::any_io_executor& executor)>;

struct informer_factory_options {
  /// Threads of the owned pool; at least 1. Ignored when `executor` is given.
  std::size_t threads = 2;
  /// Run everything on this executor instead of an owned pool.
  boost::asio::any_io_executor executor{};
  /// How long `shutdown` lets the owned pool finish queued jobs before stopping it.
  std::chrono::nanoseconds shutdown_grace = std::chrono::seconds(1);
};

class informer_factory {
public:
  /// Starts the pool's threads (unless an executor is given). Throws std::system_error if a thread
  /// cannot be started.
  explicit informer_factory(informer_factory_options options = {});
  /// Calls `shutdown()`.
  ~informer_factory();
  informer_factory(const informer_factory&) = delete;
  informer_factory& operator=(const informer_factory&) = delete;

  /// The informer for `key` (canonicalised): the existing one, or a new one over
  /// `make_source(key, get_executor())` with `options`, whose name (when empty) and selectors are
  /// taken from the key. `options` of a later call for an existing key are ignored (the first
  /// caller configures the informer, as in client-go). Runs the new informer if `start` was called.
  std::shared_ptr<shared_informer> for_resource(const informer_key& key, const source_maker& make_source,
                                                shared_informer_options options = {});

  /// Runs every informer created so far, and from now on every new one. Idempotent; does nothing
  /// after `shutdown`.
  void start();

  /// Stops every informer, then the pool (see the file comment). Idempotent.
  void shutdown();

  /// Waits until every informer created so far has synced; false on timeout, when one stopped
  /// first, or at once when there are informers but `start` was never called.
  bool wait_for_cache_sync(std::chrono::nanoseconds timeout) const;

  /// Every informer created so far, by canonical key.
  std::map<informer_key, std::shared_ptr<shared_informer>> informers() const;

  /// Where sources, reflectors, drains and (by default) handlers run.
  boost::asio::any_io_executor get_executor() const;

private:
  struct pool;

  std::shared_ptr<pool> pool_;  // null with a user-supplied executor; immutable until shutdown
  const boost::asio::any_io_executor executor_;
  const std::chrono::nanoseconds shutdown_grace_;

  mutable informer::mutex mutex_;  // never held while calling an informer or a source
  std::map<informer_key, std::shared_ptr<shared_informer>> informers_ INFORMER_GUARDED_BY(mutex_);
  bool started_ INFORMER_GUARDED_BY(mutex_) = false;
  bool shut_down_ INFORMER_GUARDED_BY(mutex_) = false;
  std::once_flag shutdown_once_;
};

}  // namespace informer
