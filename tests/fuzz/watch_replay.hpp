// The watch-stream fuzz targets' common property: a stream decodes to the same events and the
// same verdict whether its bytes arrive at once or in pieces (the decoder promises any split).
#pragma once

#include "apiserver/detail/list_watch_codec.hpp"

#include <cstddef>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

namespace informer::fuzz {

/// Everything the decoder produced from `stream` fed in pieces of `piece` bytes (0: all at
/// once), as text: each event's type, resourceVersion, object JSON and status, then whether the
/// stream failed (not why: an oversize event that is also invalid JSON further on fails as
/// oversize when fed in pieces, as invalid when parsed at once).
inline std::string replay_watch(bool protobuf, const detail::decode_settings& settings, std::string_view stream,
                                std::size_t piece) {
  detail::watch_decoder decoder(protobuf, settings);
  if (piece == 0) piece = stream.size() + 1;
  std::string out;
  for (std::size_t at = 0; at < stream.size(); at += piece) {
    decoder.feed(stream.substr(at, piece));
    for (;;) {
      auto event = decoder.next();
      if (!event) return out + "error";
      if (!*event) break;
      const watch_event& e = **event;
      out += std::string(to_string(e.type)) + " " + e.resource_version + " ";
      out += e.obj ? e.obj->to_json() : "-";
      out += " " + std::to_string(e.error_status.code) + " " + e.error_status.reason + "\n";
    }
  }
  const auto end = decoder.finish();
  return out + (end ? "error" : "ok");
}

/// Checks that feeding `stream` at once and in pieces of a size derived from its length gives
/// the same result.
inline void check_any_split(bool protobuf, const detail::decode_settings& settings, std::string_view stream) {
  const std::string whole = replay_watch(protobuf, settings, stream, 0);
  const std::string pieces = replay_watch(protobuf, settings, stream, 1 + stream.size() % 61);
  check(whole == pieces, "the stream decodes differently when fed in pieces");
}

}  // namespace informer::fuzz
