// informer/apiserver/lister_watcher.hpp
//
// The API-server source: a `lister_watcher` (client/lister_watcher.hpp) that lists and watches one
// resource through a kube-apiserver, over an `http_client`. Put a `shared_informer` (or a
// `reflector`) on top of it; `apiserver_source_maker` plugs it into an `informer_factory`.
//
//   auto client = informer::http_client::create(ex, config).value();
//   auto pods = informer::apiserver_lister_watcher::create(
//       client, informer::parse_resource("pods").value(), {.ns = "default"}).value();
//   auto informer = informer::shared_informer::create(pods);
//
// Any resource works: core and grouped, namespaced or cluster-scoped, custom resources (describe
// them with a `resource`). Lists send labelSelector, fieldSelector, limit, continue,
// resourceVersion and resourceVersionMatch; watches send watch=1, allowWatchBookmarks,
// timeoutSeconds, resourceVersion and the selectors. Objects from lists get the kind and
// apiVersion a GET would show (list items omit them), so objects from lists and watches look
// alike.
//
// Encodings: JSON, or Kubernetes protobuf for the built-in kinds (lists ask for protobuf and
// accept JSON; watches ask for `;stream=watch` protobuf frames; whichever the server answers is
// decoded). Objects compare equal either way (codec/protobuf.hpp). With `metadata_only` the server
// sends PartialObjectMetadata (client-go's metadata informer): objects hold only kind, apiVersion
// (the resource's, not PartialObjectMetadata's) and metadata; this works for every resource, in
// either encoding, and needs no protobuf schemas. The compiled schemas are Kubernetes 1.20's: an
// object from a newer server may carry protobuf fields they lack, which would be lost without a
// word (and erased by a client writing the object back). So the first such field fails its list
// page or ends its watch (`codec::errc::unknown_field`, naming the message and field number), is
// logged once, and the source asks for JSON from then on: the relist that follows reads every
// field. The cache never holds an object missing fields.
//
// Errors (`informer::error`): those of `http_client` (a non-2xx answer through its Status: 401 ->
// errc::unauthorized, 403 -> forbidden, 410 -> expired, ...; transport and TLS failures keep their
// codes). On a watch: an ERROR event is delivered as `watch_event_type::error` with its
// `error_status` (410 -> errc::expired through `status::to_error`); the end of the body is
// `errc::end_of_stream`; `cancel()` gives `operation_aborted` promptly. Bytes that do not decode
// are `errc::malformed_response`, a watch frame over `max_frame_bytes` or an object over
// `object.max_bytes` is `errc::object_too_large`; either ends the stream with a detail saying what
// and where. In a list page, an item whose key can still be read is left out and named in
// `object_list::skipped` ("item 3 (ns/name) of the list of pods"), so the reflector reports it and
// keeps its cached state; an item without a readable key fails the page: nothing is dropped
// silently, and no live object is taken for deleted.
//
// Cancellation: a list or a watch open whose completion handler has a cancellation slot (e.g.
// `bind_cancellation_slot`, as the reflector uses) completes with `operation_aborted` as soon as
// the slot is signalled; the request itself is left to finish and its answer is discarded. A
// signalled slot of `async_next` ends the whole watch, as `cancel()` does. A watch whose
// connection drops mid-body (the server restarted) ends with the transport's code (Beast's
// `partial_message`, SSL's `stream_truncated`, `eof`, `connection_reset`, ...), all of
// `condition::stream_cut`: the reflector reopens it from its last resourceVersion, which also
// delivers again an event the cut split.
//
// Threads: I/O runs on the client's executor, which `get_executor()` returns; no thread is started.
// Completion handlers run through their associated executor, never inside the initiating call.
//
// Thread safety: `apiserver_lister_watcher` is thread-safe (immutable after `create`). Its
// streams follow the `watch_stream` contract: one `async_next` at a time (a second concurrent one
// completes with `already_started`), `cancel()` from any thread.
//
// Lifetimes: pending operations and open streams keep what they need alive (the client's state,
// the decoder); the executor must outlive them. Dropping a stream cancels it and closes its
// connection, even with an `async_next` pending (which then completes with operation_aborted).
#pragma once

#include "informer/apiserver/http_client.hpp"
#include "informer/client/informer_factory.hpp"
#include "informer/client/lister_watcher.hpp"
#include "informer/core/object.hpp"
#include "informer/core/resource.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace informer {

/// How objects travel between the API server and the client.
enum class wire_encoding {
  json,
  /// Kubernetes protobuf: smaller and faster to decode; built-in kinds only (custom resources are
  /// served as JSON), or any resource with `metadata_only`.
  protobuf,
};

struct apiserver_lister_watcher_options {
  /// Restricts a namespaced resource to one namespace; "" lists and watches all namespaces.
  /// Must be empty for a cluster-scoped resource.
  std::string ns{};
  wire_encoding encoding = wire_encoding::json;
  /// Ask for PartialObjectMetadata: objects carry metadata only (see the file comment).
  bool metadata_only = false;
  /// Limits of the objects built from the server's answers.
  object_options object{};
  /// Largest watch event (JSON text, or protobuf frame) accepted, in bytes.
  std::size_t max_frame_bytes = 16 * 1024 * 1024;
};

class apiserver_lister_watcher final : public lister_watcher {
public:
  /// Checks the combination and builds the source (no request is sent).
  /// Errors: `errc::invalid_argument` when the resource lacks version, plural or kind; a namespace
  /// is given for a cluster-scoped resource; protobuf is asked for a kind that is not built in
  /// (without `metadata_only`) or in a build without the Kubernetes schemas; `max_frame_bytes`
  /// is 0.
  static detailed_result<std::shared_ptr<apiserver_lister_watcher>> create(
      http_client client, resource res, apiserver_lister_watcher_options options = {});

  boost::asio::any_io_executor get_executor() const override;
  const resource& get_resource() const noexcept;
  const apiserver_lister_watcher_options& options() const noexcept;

  struct state;
  // Private: use create().
  struct passkey {
  private:
    passkey() = default;
    friend class apiserver_lister_watcher;
  };
  apiserver_lister_watcher(passkey, std::shared_ptr<const state> s);

protected:
  void list_impl(list_options options, boost::asio::any_completion_handler<list_signature> handler) override;
  void watch_impl(watch_options options, boost::asio::any_completion_handler<watch_signature> handler) override;

private:
  std::shared_ptr<const state> state_;
};

struct apiserver_source_options {
  /// Settings of every source made; `ns` is replaced by each key's namespace.
  apiserver_lister_watcher_options lister_watcher{};
  /// Resources beyond the built-in table (custom resources), matched against a key's resource by
  /// "plural", "version/plural", "group/version/plural" or "plural.group" spelling.
  std::vector<resource> extra_resources{};
};

/// A `source_maker` for `informer_factory::for_resource` that builds `apiserver_lister_watcher`s
/// sharing `client`: `informer_key::resource` is looked up in `extra_resources`, then with
/// `parse_resource`; `informer_key::ns` becomes the namespace; the selectors reach the server
/// through the informer. `client` must run on the factory's executor (create the factory first,
/// then the client on `factory.get_executor()`), since a factory's sources do their I/O there.
/// The maker throws std::invalid_argument for an unknown resource, a client on another executor
/// or a failing `create` (`for_resource` passes it on). Thread-safe.
source_maker apiserver_source_maker(http_client client, apiserver_source_options options = {});

}  // namespace informer
