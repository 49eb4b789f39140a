// informer/etcd/source.hpp
//
// `etcd::source` is a `lister_watcher` over one key prefix of etcd: the list is a consistent,
// paged Range of the prefix at one revision, the watch is an etcd Watch of the prefix from the
// list's revision + 1, and an `object_decoder` turns each key-value into an `informer::object`.
// It is the machinery both etcd sources share; build one through them rather than directly:
//   - informer/etcd/kubernetes_source.hpp: Kubernetes objects in a cluster's etcd, by `resource`;
//   - informer/etcd/generic_source.hpp: any prefix with JSON (or user-decoded) values.
//
//   auto etcd = std::make_shared<informer::etcd::client>(
//       informer::etcd::client::connect({.endpoints = {"http://127.0.0.1:2379"}}).value());
//   auto src = informer::etcd::make_generic_source(etcd, io.get_executor(), {.prefix = "/config/"});
//   auto inf = informer::shared_informer::create(src, {.label_selector = "team=payments"});
//
// Contract (what a reflector sees):
//   - resourceVersion is etcd's revision: an object's is its key's mod_revision, a list's the
//     revision of its snapshot, a deleted object's the revision of the delete.
//   - List: `resource_version` "" or "0" reads the newest revision; a number N reads the prefix
//     exactly at revision N (`errc::expired` once compacted, `errc::resource_version_too_large`
//     for a future one), except that `match = not_older_than` reads the newest revision (failing
//     for an N newer than it). `limit` pages through that one snapshot: the continue token holds
//     the revision and the next key, so every page shows the same revision however many writes
//     happen in between, until etcd compacts it (then `errc::expired`). A continue token given
//     wins over `resource_version`. A page may hold fewer than `limit` items when a selector
//     filters or a value cannot be decoded.
//   - Watch: `resource_version` N streams the changes after revision N; "" and "0" stream the
//     changes from now on (no synthetic ADDED events for the current objects, unlike the API
//     server). The watch is registered with etcd before `async_watch` completes. Events:
//     a put that created the key (create_revision == mod_revision) is ADDED, any other put
//     MODIFIED, a delete DELETED with the deleted object (etcd's prev_kv) carrying the delete's
//     revision. etcd's progress notifications become BOOKMARKs (with `allow_bookmarks`), and so
//     does a response whose every event a selector filtered out, so the reflector's
//     resourceVersion keeps moving. A `timeout` > 0 ends the stream normally after that long.
//     A handler's cancellation slot (as the reflector binds one) cancels a pending open: it
//     completes with `operation_aborted` and the etcd watch is canceled.
//   - Slow readers: etcd's updates wait in the stream until the reader asks for them, up to
//     `source_options::watch_buffer_bytes`. A reader further behind than that ends its stream: the
//     etcd watch is canceled, the waiting updates are dropped, and after the events already decoded
//     the stream ends with `errc::end_of_stream` (a detail saying it fell behind). Nothing is lost:
//     etcd keeps the history, and a watch from the last resourceVersion read (what the reflector
//     does after an end of stream) gets the dropped changes again.
//   - Selectors (etcd has no labels): label and field selectors are applied here, to lists and
//     watches alike, so an informer holds only matching objects; as the API server's watch cache
//     does, a MODIFIED that makes an object stop matching arrives as DELETED (the previous state,
//     at the event's revision) and one that makes it start matching as ADDED.
//   - Values that cannot be decoded (encrypted at rest, an unknown encoding, invalid JSON, ...)
//     are reported to `on_decode_error` and counted (`decode_failures()`), then treated as absent:
//     skipped by lists; in a watch, a put of such a value removes the key's previous, decodable
//     state (DELETED) so the cache agrees with what a relist would show.
//
// Errors: `errc::bad_request` (a malformed selector, resourceVersion or continue token),
// `errc::expired` (a compacted revision: at list, at watch open, or ending the stream;
// `condition::relist_required`, so the reflector relists), the etcd client's errors otherwise
// (informer/etcd/errors.hpp), unchanged. A watch whose connection breaks (etcd restarted:
// `etcd::errc::unavailable` or `deadline_exceeded`) ends with that code, a `condition::stream_cut`:
// the reflector watches again from its last resourceVersion, without a relist (while etcd is still
// down, that watch waits for it; should it fail, the reflector backs off and lists again). A watch
// that etcd ends itself (`errc::forbidden`, `etcd::errc::watch_canceled`) ends with that error.
//
// Threads: no thread of its own. Lists use `client::async_range` (gRPC's shared callback threads
// carry the answer to the handler's executor); watches share the client's watch stream and thread,
// whose callback only queues the raw update; decoding, selector filtering and every completion run
// on the source's executor or the handler's associated executor, never inline in the initiating
// call. A `source` is thread-safe; a watch stream serves one reader at a time, and its `cancel` is
// safe from any thread. Nothing here blocks: dropping a stream cancels its etcd watch without
// waiting for the client's thread (see `watch_handle::detach`).
//
// Lifetimes: the source keeps the client alive. Streams and pending operations keep the decoder and
// hook alive, not the client: when the last owner of the client lets it go, open watches end with
// `errc::closed`. A dropped stream's etcd watch ends later, on the client's thread, which may then
// hold the last reference to the decoder and hook: they must not own the client (its last owner
// must not release it on the client's own thread). The source's executor must outlive every
// pending operation.
#pragma once

#include "informer/client/lister_watcher.hpp"
#include "informer/core/error.hpp"
#include "informer/core/object.hpp"
#include "informer/etcd/client.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace informer::etcd {

/// A value a source could not turn into an object, as `on_decode_error` receives it.
struct decode_failure {
  std::string key{};
  std::int64_t mod_revision = 0;
  /// Why, e.g. `codec::errc::encrypted` for a `k8s:enc:` value; the detail names the key.
  informer::error error{};
};

/// Turns the key-values under a source's prefix into objects. Implementations must be
/// thread-safe: calls come concurrently from the source's executor (watch events) and from the
/// executor associated with each list's completion handler (list pages are decoded there).
class object_decoder {
public:
  virtual ~object_decoder() = default;

  /// The object stored as `kv`, with metadata.resourceVersion set to `resource_version` (the
  /// key's mod_revision, or a delete's revision for the last state of a deleted key).
  virtual detailed_result<object::ptr> decode(const key_value& kv, std::int64_t resource_version) const = 0;

  /// A stand-in for a deleted key whose last value etcd no longer has: an object with only the
  /// name (and namespace) the key implies and `resource_version`.
  virtual detailed_result<object::ptr> placeholder(std::string_view key, std::int64_t resource_version) const = 0;
};

struct source_options {
  /// The key prefix, e.g. "/registry/pods/" or "/config/services/": every key starting with it.
  std::string prefix{};
  /// Required.
  std::shared_ptr<const object_decoder> decoder{};
  /// Called with every value that cannot be decoded, on the thread that decoded it (the source's
  /// or the handler's executor); must be thread-safe and must not throw.
  std::function<void(const decode_failure&)> on_decode_error{};
  /// How much of etcd's updates a watch stream holds for a reader that has not asked for them yet,
  /// about the bytes of their keys and values (one update is always taken, however large). Beyond
  /// it the stream ends with `errc::end_of_stream` (see "Slow readers" above). Must be > 0.
  std::size_t watch_buffer_bytes = std::size_t{64} << 20;
};

class source final : public lister_watcher {
public:
  /// Throws std::invalid_argument for a null client or decoder, an empty prefix, or a zero
  /// `watch_buffer_bytes`.
  static std::shared_ptr<source> create(std::shared_ptr<client> etcd, boost::asio::any_io_executor executor,
                                        source_options options);

  boost::asio::any_io_executor get_executor() const override { return executor_; }

  const std::string& prefix() const noexcept;
  /// Values reported to `on_decode_error` so far (the same key counts each time it is read).
  std::uint64_t decode_failures() const noexcept;

  // Private: use create().
  struct passkey {
  private:
    passkey() = default;
    friend class source;
  };
  struct shared;  // what watch streams share with the source (defined in the source file)
  source(passkey, std::shared_ptr<client> etcd, boost::asio::any_io_executor executor,
         std::shared_ptr<const shared> state);

protected:
  void list_impl(informer::list_options options, boost::asio::any_completion_handler<list_signature> handler) override;
  void watch_impl(informer::watch_options options,
                  boost::asio::any_completion_handler<watch_signature> handler) override;

private:
  const std::shared_ptr<client> etcd_;
  const boost::asio::any_io_executor executor_;
  const std::shared_ptr<const shared> shared_;
};

}  // namespace informer::etcd
