#include "informer/codec/protobuf.hpp"

#include "codec/detail/wire.hpp"

namespace informer::codec {
namespace {

constexpr std::size_t header_bytes = 4;

// The big-endian length at the start of `header` (at least 4 bytes).
std::size_t frame_length(std::string_view header) {
  return static_cast<std::size_t>(static_cast<std::uint8_t>(header[0])) << 24 |
         static_cast<std::size_t>(static_cast<std::uint8_t>(header[1])) << 16 |
         static_cast<std::size_t>(static_cast<std::uint8_t>(header[2])) << 8 |
         static_cast<std::size_t>(static_cast<std::uint8_t>(header[3]));
}

}  // namespace

watch_frame_reader::watch_frame_reader(watch_frame_reader_options options) : options_(options) {}

void watch_frame_reader::feed(std::string_view bytes) {
  if (failure_) {
    return;
  }
  // Drop what was handed out before growing, so the buffer holds about one frame at a time.
  if (consumed_ > 0) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

detailed_result<std::optional<std::string_view>> watch_frame_reader::next() {
  if (failure_) {
    return failure_;
  }
  const std::string_view rest = std::string_view(buffer_).substr(consumed_);
  if (rest.size() < header_bytes) {
    return std::optional<std::string_view>{};
  }
  const std::size_t length = frame_length(rest);
  if (length > options_.max_frame_bytes) {
    failure_ = error(make_error_code(errc::frame_too_large),
                     "a watch frame announces " + std::to_string(length) + " bytes, more than max_frame_bytes (" +
                         std::to_string(options_.max_frame_bytes) +
                         "); the stream is corrupt or misaligned and must be reopened");
    return failure_;
  }
  if (rest.size() - header_bytes < length) {
    return std::optional<std::string_view>{};
  }
  consumed_ += header_bytes + length;
  return std::optional<std::string_view>{rest.substr(header_bytes, length)};
}

error watch_frame_reader::finish() const {
  if (failure_) {
    return failure_;
  }
  const std::size_t left = buffered();
  if (left == 0) {
    return {};
  }
  if (left < header_bytes) {
    return {make_error_code(errc::truncated),
            "the watch stream ended inside a frame header (" + std::to_string(left) + " of 4 bytes)"};
  }
  const std::string_view rest = std::string_view(buffer_).substr(consumed_);
  const std::size_t length = frame_length(rest);
  return {make_error_code(errc::truncated),
          "the watch stream ended inside a frame: " + std::to_string(left - header_bytes) + " of " +
              std::to_string(length) + " bytes received"};
}

detailed_result<watch_event> decode_watch_event(std::string_view frame) {
  detail::decode_context ctx;
  detail::path_segment segment(ctx, "WatchEvent");
  watch_event event;
  bool has_type = false;
  std::optional<std::string_view> raw;
  detail::wire_reader reader(frame);
  detail::wire_field f;
  while (!reader.done()) {
    if (!reader.next(f, ctx)) {
      return ctx.failure();
    }
    if (f.number == 1) {
      if (!detail::expect_wire_type(f, detail::wire_type::length_delimited, ctx)) {
        return ctx.failure();
      }
      event.type = f.bytes;
      has_type = true;
    } else if (f.number == 2) {
      detail::path_segment object(ctx, "object");
      if (!detail::expect_wire_type(f, detail::wire_type::length_delimited, ctx)) {
        return ctx.failure();
      }
      detail::wire_reader inner(f.bytes);
      detail::wire_field g;
      while (!inner.done()) {
        if (!inner.next(g, ctx)) {
          return ctx.failure();
        }
        if (g.number == 1) {
          if (!detail::expect_wire_type(g, detail::wire_type::length_delimited, ctx)) {
            return ctx.failure();
          }
          raw = g.bytes;
        }
      }
    }
  }
  if (!has_type || event.type.empty()) {
    ctx.fail(errc::malformed, "the event has no type");
    return ctx.failure();
  }
  if (!raw) {
    ctx.fail(errc::malformed, "the " + std::string(event.type) + " event has no object");
    return ctx.failure();
  }
  auto object = unwrap_envelope(*raw);
  if (!object) {
    return error(object.error().code(), "WatchEvent.object: " + object.error().detail());
  }
  event.object = *object;
  return event;
}

}  // namespace informer::codec
