// Private to the API-server lister-watcher: turns list bodies and watch streams, as kube-apiserver
// sends them (JSON, protobuf, PartialObjectMetadata), into `object_list` pages and `watch_event`s.
// No I/O here, so every framing and decoding rule is unit-tested without a server.
//
// Errors: `errc::malformed_response` for bytes that do not decode (the detail says where and why),
// `errc::object_too_large` for a watch frame over the limit or an object over `object_options`.
//
// Thread safety: `decode_list` is a pure function; a `watch_decoder` serves one stream on one
// strand.
#pragma once

#include "informer/client/lister_watcher.hpp"
#include "informer/codec/protobuf.hpp"
#include "informer/core/error.hpp"
#include "informer/core/object.hpp"
#include "informer/core/resource.hpp"

#include <boost/json/stream_parser.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace informer::detail {

/// How the bytes of one resource are turned into objects.
struct decode_settings {
  resource res{};
  /// The server sends PartialObjectMetadata: objects keep kind/apiVersion/metadata only, with
  /// the resource's kind and apiVersion.
  bool metadata_only = false;
  object_options object{};
  /// Largest watch frame (JSON event or protobuf WatchEvent), in bytes.
  std::size_t max_frame_bytes = 16 * 1024 * 1024;
};

/// True for a decoding failure that JSON would not have: protobuf brought a field the compiled
/// schemas lack (`codec::errc::unknown_field`) or a value the codec cannot render
/// (`unsupported`). The source then reads the resource as JSON; such a list item is not skipped.
bool needs_json(const informer::error& e) noexcept;

/// True for a protobuf Content-Type ("application/vnd.kubernetes.protobuf[;...]").
bool is_protobuf(std::string_view content_type) noexcept;

/// Decodes a list response body of either encoding (chosen by `content_type`). Items get the kind
/// and apiVersion of a GET of the same object (the list's kind minus "List", or the resource's).
detailed_result<object_list> decode_list(std::string_view content_type, std::string_view body,
                                         const decode_settings& settings);

/// Splits a watch stream into events, incrementally: feed the bytes as they arrive (any split or
/// coalescing), take the events out. After the first error the decoder stays failed.
class watch_decoder {
public:
  watch_decoder(bool protobuf, decode_settings settings);

  void feed(std::string_view bytes);
  /// The next complete event, or nullopt when more bytes are needed.
  detailed_result<std::optional<watch_event>> next();
  /// At the end of the body: an error when it ended inside an event.
  informer::error finish() const;

private:
  detailed_result<std::optional<watch_event>> next_json();
  detailed_result<std::optional<watch_event>> next_protobuf();
  informer::error fail(informer::error e);

  const bool protobuf_;
  const decode_settings settings_;
  codec::watch_frame_reader frames_;   // protobuf
  boost::json::stream_parser parser_;  // JSON
  std::string pending_;                // JSON bytes fed; those from parsed_ on are not parsed yet
  std::size_t parsed_ = 0;
  std::size_t value_bytes_ = 0;  // JSON bytes of the event being parsed
  bool in_value_ = false;        // a JSON event has started (non-whitespace seen)
  informer::error failure_;
};

}  // namespace informer::detail
