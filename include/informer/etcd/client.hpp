// informer/etcd/client.hpp
//
// A client for etcd's v3 API over native gRPC: the key-value calls an etcd source needs (Range,
// consistent paged lists, Put, DeleteRange, Txn for optimistic concurrency, Compact), leases with a
// keep-alive, and watches multiplexed over one stream (see informer/etcd/watch.hpp, included at the
// end of this header). Use it to read a Kubernetes cluster's state straight from its etcd, or etcd
// as a configuration store. The API is plain C++: no generated protobuf type appears in it.
//
//   auto c = informer::etcd::client::connect({.endpoints = {"http://127.0.0.1:2379"}}).value();
//   auto rev = c.put("/config/a", "1").value();
//   auto list = c.list_prefix_paged("/config/", 500).value();   // one snapshot, several pages
//
// Connection: `endpoints` are tried in order; a call that finds its endpoint unreachable moves on to
// the next one, and the client then stays with the endpoint that answered. An endpoint that cannot
// connect within `dial_timeout` counts as unreachable. Reads are also retried on the next endpoint
// when the connection drops mid-call, or (with several endpoints) when no answer came within
// `request_timeout` (a frozen member keeps its connection open); writes are not (they may have
// been applied), their UNAVAILABLE or DEADLINE_EXCEEDED is returned, and the next call starts on
// the next endpoint. A member that has lost its leader answers with UNAVAILABLE (etcd's "no
// leader" and "request timed out" errors), so calls move on from it as well; watches require a
// leader (see "Liveness" in informer/etcd/watch.hpp). Endpoints are "http://host:port", "https://host:port" or
// "host:port" (TLS when a CA file is given). With `username`, the client authenticates on first use, sends the token as
// the `token` metadata of every call, and when etcd reports the token invalid or stale (it expired, etcd restarted) it
// authenticates again once and retries the call.
//
// Errors: every call returns `detailed_result<T>`: the value, or an `informer::error` whose code is
// an `informer::errc` where one fits (expired for a compacted revision, unauthorized, conflict, ...)
// or an `informer::etcd::errc` (unavailable, deadline_exceeded, ...); see informer/etcd/errors.hpp.
// The detail text names the call, the endpoint and etcd's message. Nothing here throws except
// `std::bad_alloc`.
//
// Threads: the unary calls (everything but `watch`, `keep_alive` and `async_range`) are synchronous
// and run on the caller's thread. Watches and lease keep-alives are asynchronous and share one
// thread per client, started by the first of them ("the client's thread"); every watch callback and
// keep-alive notification runs there, one at a time. No thread per watch.
//
// `async_range` is the one asynchronous unary call, for code that must not block an executor
// thread on a round trip (the etcd list-watchers, one per informer, list through it). It uses
// gRPC's callback API: the request is sent from the calling thread, the answer arrives on one of
// gRPC's own internal threads, shared by the whole process, which only hands the completion on,
// through Asio's (never-blocking) system executor, to the handler's associated executor: neither
// the handler nor the release of the call runs on gRPC's thread, whatever that executor is (a
// channel released there would tear down gRPC's callback queue under the thread serving it).
// So neither a thread per call nor a thread per informer, and no use of the client's thread (a
// slow list does not delay watch callbacks, nor the reverse).
// Why not the client's completion-queue thread: its callbacks must stay short for every watch of
// the client, and the callback API needs no code of ours to drive a queue.
//
// Thread safety: `client` is thread-safe: any member may be called from any thread concurrently,
// including from watch callbacks (but see `~client`). It is movable, not copyable; a moved-from
// client may only be destroyed or assigned to.
//
// Lifetime: destroying the client ends every watch (its callback gets a final `failed` update with
// `informer::errc::closed`) and every keep-alive (`on_end` with `errc::closed`), waits for those
// calls, and joins the client's thread; so it must not be destroyed from one of its own callbacks.
// Watch and keep-alive handles may outlive the client (their `cancel`/`stop` then do nothing).
#pragma once

#include "informer/core/error.hpp"
#include "informer/etcd/errors.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace informer::etcd {

namespace detail {
struct client_access;
class client_state;
class watch_driver;
class lease_keeper;
}  // namespace detail

// Declared in informer/etcd/watch.hpp.
struct watch_options;
struct watch_update;
class watch_handle;
using watch_callback = std::function<void(watch_update)>;

/// A key and its value as etcd stores them (mvccpb.KeyValue). Keys and values are bytes.
struct key_value {
  std::string key = {};
  std::string value = {};
  std::int64_t create_revision = 0;  ///< revision of the key's last creation
  std::int64_t mod_revision = 0;     ///< revision of its last change (Kubernetes' resourceVersion)
  std::int64_t version = 0;          ///< changes since creation
  std::int64_t lease = 0;            ///< attached lease, 0 for none

  friend bool operator==(const key_value&, const key_value&) = default;
};

/// The end of the key range that holds exactly the keys starting with `prefix` (etcd's "prefix
/// end": the prefix with its last byte below 0xff incremented and what follows dropped). An empty
/// prefix, or one of 0xff bytes only, gives "\0", which etcd reads as "every key >= key".
std::string prefix_end(std::string_view prefix);

// --- Range ---------------------------------------------------------------------------------------

struct range_options {
  std::int64_t limit = 0;     ///< at most this many keys; 0 for no limit
  std::int64_t revision = 0;  ///< read the store as of this revision; 0 for the newest
  bool keys_only = false;     ///< leave values empty
  bool count_only = false;    ///< return only `count`
  bool serializable = false;  ///< member-local read without a quorum round (may be stale)
};

struct range_result {
  std::vector<key_value> kvs = {};  ///< in key order
  bool more = false;                ///< the range holds more keys than `limit` let through
  std::int64_t count = 0;           ///< keys in the range, regardless of `limit`
  std::int64_t revision = 0;        ///< the store's revision the answer reflects (response header)
};

struct delete_result {
  std::int64_t deleted = 0;
  std::vector<key_value> prev_kvs = {};  ///< the deleted pairs, when asked for
  std::int64_t revision = 0;             ///< the revision of the delete (the store's, if nothing was deleted)
};

// --- Txn -----------------------------------------------------------------------------------------

enum class compare_op { equal, not_equal, greater, less };
enum class compare_target { version, create_revision, mod_revision, value, lease };

/// One condition of a transaction: `target` of `key` (or of every key in [key, range_end)) compared
/// with `number` (revisions, version, lease) or `bytes` (value). A key that does not exist has
/// revisions, version and lease 0. Build it with the helpers:
///   compare::mod_revision("/a", compare_op::equal, 42)
struct compare {
  std::string key = {};
  compare_target target = compare_target::mod_revision;
  compare_op op = compare_op::equal;
  std::int64_t number = 0;  ///< for every target but `value`
  std::string bytes = {};   ///< for `value`
  std::string range_end = {};

  static compare version(std::string key, compare_op op, std::int64_t version);
  static compare create_revision(std::string key, compare_op op, std::int64_t revision);
  static compare mod_revision(std::string key, compare_op op, std::int64_t revision);
  static compare value(std::string key, compare_op op, std::string value);
  static compare lease(std::string key, compare_op op, std::int64_t lease);
};

/// One operation of a transaction. Build it with the helpers.
struct txn_op {
  enum class kind { range, put, del };
  kind type = kind::range;
  std::string key = {};
  std::string range_end = {};  ///< range, del: [key, range_end); empty for the key alone
  std::string value = {};      ///< put
  std::int64_t lease = 0;      ///< put
  bool prev_kv = false;        ///< put, del: return the previous pairs
  range_options range = {};    ///< range

  static txn_op get(std::string key, std::string range_end = {}, range_options options = {});
  static txn_op put(std::string key, std::string value, std::int64_t lease = 0);
  static txn_op del(std::string key, std::string range_end = {});
};

/// If every compare holds, `success` is applied, else `failure`; atomically, at one revision.
struct txn_request {
  std::vector<compare> compares = {};
  std::vector<txn_op> success = {};
  std::vector<txn_op> failure = {};
};

/// The answer to one `txn_op`, in the order of the branch that ran.
struct txn_op_result {
  txn_op::kind type = txn_op::kind::range;
  std::vector<key_value> kvs = {};  ///< range: the keys found; put, del with prev_kv: the previous pairs
  bool more = false;                ///< range only
  std::int64_t count = 0;           ///< range: keys in the range; del: keys deleted
};

struct txn_result {
  bool succeeded = false;     ///< the compares held and `success` ran
  std::int64_t revision = 0;  ///< the revision of the transaction (the store's, if it wrote nothing)
  std::vector<txn_op_result> results = {};
};

// --- Leases --------------------------------------------------------------------------------------

struct lease_grant_result {
  std::int64_t id = 0;
  std::int64_t ttl = 0;  ///< seconds, as granted by the server (it may raise a small request)
};

struct keep_alive_options {
  /// Called once, on the client's thread, when the keep-alive ends: with no error after `stop()`,
  /// `informer::errc::not_found` when the lease expired or was revoked, `informer::errc::closed`
  /// when the client was destroyed. May be empty. Must not throw.
  std::function<void(const error&)> on_end = {};
  /// Fixed interval between renewals; zero means a third of the lease's TTL (as etcd's Go client).
  std::chrono::milliseconds interval = std::chrono::milliseconds{0};
};

/// Handle to a running keep-alive (see `client::keep_alive`). Movable; `stop` is thread-safe.
class lease_keep_alive {
public:
  lease_keep_alive() = default;
  lease_keep_alive(lease_keep_alive&&) noexcept = default;
  /// Stops the keep-alive held so far (waiting as the destructor does), then takes `other`'s.
  lease_keep_alive& operator=(lease_keep_alive&& other) noexcept;
  /// Stops the keep-alive and waits until `on_end` has run (except on the client's thread, where it
  /// cannot wait); so do not destroy it while holding a lock `on_end` takes.
  ~lease_keep_alive();

  /// Stops renewing (asynchronously: `on_end` follows on the client's thread). Does not revoke the
  /// lease: it lives on until its TTL runs out. Idempotent; does nothing once the client is gone.
  void stop() noexcept;

private:
  friend class client;
  explicit lease_keep_alive(std::weak_ptr<detail::lease_keeper> keeper) : keeper_(std::move(keeper)) {}
  std::weak_ptr<detail::lease_keeper> keeper_;
};

// --- The client ----------------------------------------------------------------------------------

struct tls_options {
  std::string ca_file = {};    ///< PEM CA bundle to verify the server; empty: the system's roots
  std::string cert_file = {};  ///< PEM client certificate (etcd's --client-cert-auth)
  std::string key_file = {};   ///< PEM private key of `cert_file`
};

struct client_options {
  /// Tried in order on failure; see the file comment for the accepted forms.
  std::vector<std::string> endpoints = {"http://127.0.0.1:2379"};
  /// Used for https:// endpoints, and for scheme-less ones when any file is set.
  tls_options tls = {};
  std::string username = {};  ///< empty: no authentication
  std::string password = {};
  /// How long to wait for a connection to an endpoint before trying the next one.
  std::chrono::milliseconds dial_timeout = std::chrono::seconds{5};
  /// Deadline of each unary call (not of watches or keep-alives).
  std::chrono::milliseconds request_timeout = std::chrono::seconds{10};
  /// HTTP/2 pings on an otherwise quiet connection, so a dead peer breaks the watch stream.
  std::chrono::milliseconds keepalive_time = std::chrono::seconds{30};
  std::chrono::milliseconds keepalive_timeout = std::chrono::seconds{10};
  /// Heartbeat of the watch streams (see "Liveness" in informer/etcd/watch.hpp): every
  /// `watch_progress_interval` each stream that carries watches is asked for progress, and one
  /// that sends nothing within `watch_progress_timeout` of the request is taken as dead. Zero
  /// interval: no heartbeats; zero timeout: the interval.
  std::chrono::milliseconds watch_progress_interval = std::chrono::seconds{10};
  std::chrono::milliseconds watch_progress_timeout = std::chrono::seconds{10};
  /// Largest response accepted; an unpaged Range of a big prefix can be tens of megabytes.
  int max_receive_message_bytes = std::numeric_limits<int>::max();
};

/// An etcd v3 client; see the file comment. Thread-safe.
class client {
public:
  /// Validates `options` and reads the TLS files; does no network I/O (the first call connects).
  /// Fails with `etcd::errc::invalid_options` (no endpoint, a malformed one, an unreadable file, a
  /// key without a certificate).
  static detailed_result<client> connect(client_options options);

  client(client&&) noexcept;
  client& operator=(client&&) noexcept;
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  /// See "Lifetime" in the file comment.
  ~client();

  const client_options& options() const noexcept;

  /// Keys in [key, range_end) (just `key` when range_end is empty; "\0" for every key >= key).
  /// Reading a compacted revision fails with `informer::errc::expired`, a future one with
  /// `errc::resource_version_too_large`.
  detailed_result<range_result> range(std::string_view key, std::string_view range_end = {},
                                      const range_options& options = {});

  using range_signature = void(error, range_result);

  /// `range`, asynchronously, in Asio's style: `token` is a callback `void(informer::error,
  /// range_result)`, `use_awaitable`, `use_future`, ... The completion runs on the handler's
  /// associated executor (Asio's system executor for a handler without one), never inside this
  /// call, and counts as outstanding work on that executor while the call is in flight. Same
  /// errors, token handling and failover to the next endpoint as `range`. Deadline: each step (a
  /// Range or Authenticate on one endpoint) gets its own `request_timeout`, so a call that fails
  /// over or re-authenticates may take several of them in all (the wait for a connection is bounded
  /// by gRPC's connection attempt, `dial_timeout`).
  /// Cancellation: a handler's associated cancellation slot (any type) cancels the call, which then
  /// completes with `etcd::errc::canceled`. The client may be destroyed while calls are in flight;
  /// they still complete. When the handler's executor names its execution context (an io_context's
  /// executor, a strand of one, `any_io_executor`), that context may be destroyed while the call
  /// is in flight: the handler is then destroyed with it, uninvoked, as Asio's own pending
  /// handlers are. With any other executor, the context must outlive the call.
  template <class CompletionToken>
  auto async_range(std::string key, std::string range_end, range_options options, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, range_signature>(
        [this](auto handler, std::string k, std::string e, range_options o) {
          // The handler's execution context, when its executor names one: a call completing after
          // that context shut down then posts nothing into it.
          boost::asio::execution_context* target = nullptr;
          using executor_type = boost::asio::associated_executor_t<decltype(handler)>;
          if constexpr (boost::asio::can_query<const executor_type&, boost::asio::execution::context_t>::value) {
            target = &static_cast<boost::asio::execution_context&>(
                boost::asio::query(boost::asio::get_associated_executor(handler), boost::asio::execution::context));
          }
          async_range_impl(std::move(k), std::move(e), o,
                           boost::asio::any_completion_handler<range_signature>(std::move(handler)), target);
        },
        token, std::move(key), std::move(range_end), options);
  }

  /// The value of one key, or nullopt when it does not exist (at `revision`, 0 for the newest).
  detailed_result<std::optional<key_value>> get(std::string_view key, std::int64_t revision = 0);

  /// Every key under `prefix` in pages of `page_size` (0: one page), all read at the revision of
  /// the first page, so the result is one consistent snapshot however long it takes and however
  /// many writes happen meanwhile; `revision` of the result is that revision (watch from
  /// revision + 1 to follow on), `more` is false and `count` the number of keys. Fails with
  /// `errc::expired` if a compaction passes the snapshot's revision before the last page.
  detailed_result<range_result> list_prefix_paged(std::string_view prefix, std::int64_t page_size = 500);

  /// The same snapshot list, handing each page to `on_page` (on the caller's thread) instead of
  /// collecting them; returns the snapshot's revision. Keeps one page in memory at a time.
  detailed_result<std::int64_t> list_prefix_paged(std::string_view prefix, std::int64_t page_size,
                                                  const std::function<void(std::vector<key_value>&& page)>& on_page);

  /// Sets `key` to `value` (attached to `lease` unless 0); returns the revision of the write.
  detailed_result<std::int64_t> put(std::string_view key, std::string_view value, std::int64_t lease = 0);

  /// Deletes [key, range_end) (just `key` when range_end is empty).
  detailed_result<delete_result> delete_range(std::string_view key, std::string_view range_end = {},
                                              bool prev_kv = false);

  /// Runs a transaction. A failed compare is not an error: see `txn_result::succeeded`.
  detailed_result<txn_result> txn(const txn_request& request);

  /// Optimistic concurrency, as kube-apiserver writes: sets `key` only if its mod_revision is
  /// still `expected_mod_revision` (0: only if the key does not exist) and returns the new
  /// revision; otherwise fails with `informer::errc::conflict`, the detail giving the current one.
  detailed_result<std::int64_t> put_if_mod_revision(std::string_view key, std::string_view value,
                                                    std::int64_t expected_mod_revision);

  /// Drops the history before `revision`: reads and watches at older revisions then fail with
  /// `errc::expired`. `physical` waits until the space is reclaimed.
  detailed_result<void> compact(std::int64_t revision, bool physical = false);

  /// Grants a lease of `ttl_seconds`.
  detailed_result<lease_grant_result> lease_grant(std::int64_t ttl_seconds);

  /// Revokes a lease: every key attached to it is deleted. `errc::not_found` if it does not exist.
  detailed_result<void> lease_revoke(std::int64_t lease_id);

  /// Keeps `lease_id` alive until the handle is stopped or destroyed, the lease is revoked or
  /// expires, or the client is destroyed: renews it every `interval` (a third of its TTL by default)
  /// on the client's thread, over a LeaseKeepAlive stream that is reopened (on the next endpoint if
  /// need be) when it breaks. See `keep_alive_options::on_end`.
  [[nodiscard]] lease_keep_alive keep_alive(std::int64_t lease_id, keep_alive_options options = {});

  /// Starts a watch of `key` (or of a prefix or range, per `options`) on the client's shared watch
  /// stream; `callback` gets its updates on the client's thread. See informer/etcd/watch.hpp for the
  /// updates, the guarantees and the errors. The returned handle cancels the watch when destroyed.
  [[nodiscard]] watch_handle watch(std::string key, const watch_options& options, watch_callback callback);

  /// Asks etcd for a progress notification on the watch stream: every created watch that has
  /// caught up with etcd's history then gets a `progress` update with the store's revision. A watch
  /// still replaying history from before its creation gets none, because etcd releases from before
  /// the fix of etcd issue 15220 (early 2023; Debian's 3.4.23 is one) answer with the store's
  /// revision even to such a watch, and as a bookmark it would skip the events still to come. A
  /// watch has caught up when it started after the store's revision at its creation, once it
  /// delivered an event at or after that revision, or once it got a progress update of its own.
  /// Those releases can also send the reply ahead of an event still queued for a watch in sync
  /// (etcd issue 15220), so a cut right after such a bookmark may skip that event; the client's own
  /// heartbeats (`client_options::watch_progress_interval`) bookmark only what was delivered.
  void request_progress();

private:
  friend struct detail::client_access;
  explicit client(std::unique_ptr<detail::client_state> state);
  void async_range_impl(std::string key, std::string range_end, range_options options,
                        boost::asio::any_completion_handler<range_signature> handler,
                        boost::asio::execution_context* target);
  std::unique_ptr<detail::client_state> state_;
};

}  // namespace informer::etcd

#include "informer/etcd/watch.hpp"
