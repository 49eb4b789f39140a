// informer/etcd/generic_source.hpp
//
// A `lister_watcher` over any etcd key prefix, no Kubernetes involved: each key below the prefix is
// one object, its value decoded as JSON (or by a decoder of your own). Put a shared_informer on it
// to keep an indexed, label-queryable local copy of, say, a configuration store, and to react to
// its changes with event handlers.
//
//   auto etcd = std::make_shared<informer::etcd::client>(informer::etcd::client::connect({}).value());
//   auto configs = informer::etcd::make_generic_source(etcd, io.get_executor(),
//                                                      {.prefix = "/config/services/"});
//   auto inf = informer::shared_informer::create(configs);
//   inf->add_event_handler({.on_update = [](auto& old_obj, auto& new_obj) { ... }});
//   inf->run();
//   ... inf->lister().list(informer::label_selector::parse("team=payments").value()) ...
//
// From key-value to object:
//   - The value is decoded by `decode` (default: JSON text). It must give a JSON object; every
//     other field of it is kept as is (the body, read with `object::body()` / `field()`).
//   - metadata.name (and namespace) come from the key, overriding any in the value, per `layout`:
//       name            the whole rest of the key below the prefix is the name ("/config/a" ->
//                       "a"); a rest holding '/' cannot be a name: reported and skipped;
//       namespace_name  "ns/name" below the prefix -> namespace "ns", name "name"; a rest without
//                       '/' is a cluster-scoped name; more than one '/': reported and skipped.
//   - metadata.resourceVersion is the key's mod_revision.
//   - metadata.labels are the value's own `metadata.labels`, or what `labels` extracts (which
//     replaces them), so label selectors and the informer's label index work on plain JSON too.
// A value that cannot be decoded (invalid JSON, not an object, the decoder's error, labels that
// break Kubernetes' rules) is reported to `on_decode_error`, counted and skipped.
// For paging, revisions, watch events, selectors, errors, threads and lifetimes see
// informer/etcd/source.hpp.
#pragma once

#include "informer/core/labels.hpp"
#include "informer/etcd/source.hpp"

#include <boost/json/value.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace informer::etcd {

enum class key_layout { name, namespace_name };

struct generic_source_options {
  /// Keys starting with this are the objects, e.g. "/config/services/" (end it with '/' unless
  /// you mean a prefix of names).
  std::string prefix{};
  key_layout layout = key_layout::name;
  /// Bytes to JSON; empty: parse the value as JSON text. Gets the full key and the value. Must be
  /// thread-safe; an error (any code) is reported and the key skipped.
  std::function<detailed_result<boost::json::value>(std::string_view key, std::string_view value)> decode{};
  /// The object's labels from the decoded value; empty: the value's own `metadata.labels`. Must be
  /// thread-safe.
  std::function<label_set(std::string_view key, const boost::json::value& value)> labels{};
  /// See `source_options::on_decode_error`.
  std::function<void(const decode_failure&)> on_decode_error{};
  /// See `source_options::watch_buffer_bytes`.
  std::size_t watch_buffer_bytes = std::size_t{64} << 20;
};

/// The decoder a generic source with `options` uses (for reading single keys the same way).
std::shared_ptr<const object_decoder> make_generic_decoder(const generic_source_options& options);

/// A source over `options.prefix` on `etcd`, doing its work on `executor`. Throws
/// std::invalid_argument for a null client or an empty prefix.
std::shared_ptr<source> make_generic_source(std::shared_ptr<client> etcd, boost::asio::any_io_executor executor,
                                            generic_source_options options);

}  // namespace informer::etcd
