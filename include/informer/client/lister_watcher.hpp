// informer/client/lister_watcher.hpp
//
// The interface every source implements and the reflector consumes: list one page of a resource,
// and open a watch that streams the changes after a resourceVersion. The API-server source, the
// etcd source and the tests' scripted source all plug in here unchanged.
//
// The operations are asynchronous, in Asio's style: `async_list(options, token)` and
// `async_watch(options, token)` accept any completion token (a callback, `use_awaitable`,
// `use_future`, ...). Implementations run their I/O on `get_executor()`; no thread per watch. A
// completion handler is invoked through its associated executor, never inline from the
// initiating call.
//
// Errors are `informer::error` values: transport failures keep their own categories, server
// answers map to `errc` through `status` (expired, unauthorized, forbidden, ...). A watch that ends
// normally (the server's or the client's timeout) completes `async_next` with
// `errc::end_of_stream`. Sources never rewrite a code to steer the reflector: it asks conditions
// (informer/core/condition.hpp), e.g. `condition::stream_cut` to watch again.
//
// Thread safety: `lister_watcher` implementations are thread-safe. A `watch_stream` serves one
// reader (one outstanding `async_next` at a time); `cancel()` may be called from any thread, after
// which the pending and all later `async_next` complete promptly with
// `boost::asio::error::operation_aborted`.
#pragma once

#include "informer/client/status.hpp"
#include "informer/core/error.hpp"
#include "informer/core/object.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace informer {

/// How a list's `resource_version` is interpreted (Kubernetes' resourceVersionMatch).
enum class resource_version_match { unset, not_older_than, exact };

/// "NotOlderThan", "Exact", or "" for `unset`.
std::string_view to_string(resource_version_match match) noexcept;

struct list_options {
  std::string label_selector;    ///< text form; sent to the server, or applied by the source
  std::string field_selector;    ///< text form
  std::int64_t limit = 0;        ///< page size; 0 = everything in one response
  std::string continue_token{};  ///< from the previous page
  /// "" = most recent (a quorum read); "0" = any (the server's cache); else per `match`.
  std::string resource_version{};
  resource_version_match match = resource_version_match::unset;
};

/// An item of a list page that the source could identify but not read: its cache key
/// (`namespace/name`, informer/core/key.hpp) and why (undecodable, too large, ...).
struct skipped_item {
  std::string key;
  informer::error error;
};

/// One page of a list.
struct object_list {
  std::vector<object::ptr> items;
  /// Items left out of `items` because they could not be decoded, though their key could. The
  /// reflector reports each and keeps the key's cached state instead of treating it as deleted
  /// (`reflector_store::replace_keeping`). An item whose key cannot be read fails the page instead.
  std::vector<skipped_item> skipped{};
  std::string resource_version;  ///< the collection's resourceVersion at the time of the list
  std::string continue_token;    ///< empty on the last page
  /// The server's estimate of the items after this page, when it gives one.
  std::optional<std::int64_t> remaining_item_count{};
};

struct watch_options {
  std::string label_selector{};
  std::string field_selector{};
  std::string resource_version{};  ///< stream the changes after this one
  bool allow_bookmarks = true;
  /// Server-side timeout of the watch; zero leaves it to the server.
  std::chrono::seconds timeout{0};
};

enum class watch_event_type { added, modified, deleted, bookmark, error };

/// "ADDED", "MODIFIED", "DELETED", "BOOKMARK" or "ERROR".
std::string_view to_string(watch_event_type type) noexcept;

struct watch_event {
  watch_event_type type = watch_event_type::added;
  /// The object (for deleted: its last state). Null for bookmark and error events.
  object::ptr obj;
  /// The resourceVersion this event moves the stream to (a bookmark's only content).
  std::string resource_version;
  /// For error events: what the server said.
  informer::status error_status;
};

/// One open watch.
class watch_stream {
public:
  using next_signature = void(informer::error, watch_event);

  virtual ~watch_stream() = default;

  /// Waits for the next event. Errors: `errc::end_of_stream` when the watch ended normally,
  /// `operation_aborted` after `cancel()`, transport and decoding errors otherwise. After any
  /// error the stream is finished.
  template <class CompletionToken>
  auto async_next(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, next_signature>(
        [this](auto handler) { next_impl(std::move(handler)); }, token);
  }

  /// Ends the watch from any thread.
  virtual void cancel() = 0;

protected:
  virtual void next_impl(boost::asio::any_completion_handler<next_signature> handler) = 0;
};

class lister_watcher {
public:
  using list_signature = void(informer::error, object_list);
  using watch_signature = void(informer::error, std::shared_ptr<watch_stream>);

  virtual ~lister_watcher() = default;

  /// The executor the source does its I/O on.
  virtual boost::asio::any_io_executor get_executor() const = 0;

  /// Lists one page.
  template <class CompletionToken>
  auto async_list(list_options options, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, list_signature>(
        [this](auto handler, list_options o) { list_impl(std::move(o), std::move(handler)); }, token,
        std::move(options));
  }

  /// Opens a watch. Errors that the server gives at open time (e.g. `errc::expired` for a
  /// compacted resourceVersion) complete this call; later ones arrive through the stream.
  template <class CompletionToken>
  auto async_watch(watch_options options, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, watch_signature>(
        [this](auto handler, watch_options o) { watch_impl(std::move(o), std::move(handler)); }, token,
        std::move(options));
  }

protected:
  virtual void list_impl(list_options options, boost::asio::any_completion_handler<list_signature> handler) = 0;
  virtual void watch_impl(watch_options options, boost::asio::any_completion_handler<watch_signature> handler) = 0;
};

}  // namespace informer
