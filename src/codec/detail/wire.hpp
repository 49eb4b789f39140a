// Private helpers of the protobuf codec: reading the protobuf wire format (no descriptors needed)
// and carrying the field path of a decode, so that an error can say where it happened.
//
// Thread safety: `wire_reader`, `message_fields` and `decode_context` are plain values used by one
// decode on one thread.
#pragma once

#include "informer/codec/errors.hpp"
#include "informer/core/error.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace informer::codec::detail {

enum class wire_type : std::uint8_t {
  varint = 0,
  fixed64 = 1,
  length_delimited = 2,
  start_group = 3,
  end_group = 4,
  fixed32 = 5,
};

const char* wire_type_name(wire_type t) noexcept;

/// One field occurrence in a message.
struct wire_field {
  std::uint32_t number = 0;
  wire_type type = wire_type::varint;
  std::uint64_t value = 0;  ///< varint, fixed64 or fixed32 payload
  std::string_view bytes;   ///< length-delimited payload
};

/// The field path of a decode ("spec.containers[0].ports[1].containerPort") and its first error.
class decode_context {
public:
  /// Records an error at the current path; returns false so callers can `return ctx.fail(...)`.
  bool fail(errc code, std::string_view what);

  void push(std::string_view name) { path_.push_back({name, -1}); }
  void push_index(std::ptrdiff_t index) { path_.push_back({{}, index}); }
  void pop() noexcept { path_.pop_back(); }

  const error& failure() const noexcept { return error_; }

private:
  struct segment {
    std::string_view name;
    std::ptrdiff_t index;
  };
  std::vector<segment> path_;
  error error_;
};

/// Scoped path segment.
class path_segment {
public:
  path_segment(decode_context& ctx, std::string_view name) : ctx_(ctx) { ctx_.push(name); }
  path_segment(decode_context& ctx, std::ptrdiff_t index) : ctx_(ctx) { ctx_.push_index(index); }
  ~path_segment() { ctx_.pop(); }
  path_segment(const path_segment&) = delete;
  path_segment& operator=(const path_segment&) = delete;

private:
  decode_context& ctx_;
};

/// Reads a varint at `pos`; false with `ctx` failed (truncated or longer than 10 bytes) otherwise.
bool read_varint(std::string_view data, std::size_t& pos, std::uint64_t& out, decode_context& ctx);

/// Iterates over the fields of one message, in wire order. Groups (wire types 3 and 4), which
/// Kubernetes never uses, are reported as malformed.
class wire_reader {
public:
  explicit wire_reader(std::string_view data) noexcept : data_(data) {}
  bool done() const noexcept { return pos_ >= data_.size(); }
  /// Reads the next field; false with `ctx` failed on bad data.
  bool next(wire_field& out, decode_context& ctx);

private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

/// All fields of one message, grouped by number (wire order kept within a number), so a renderer
/// can visit them in its own (Go struct) order.
class message_fields {
public:
  /// Parses `data`; false with `ctx` failed on bad data.
  bool parse(std::string_view data, decode_context& ctx);
  /// Every field, by ascending number (occurrences of one number in wire order).
  std::span<const wire_field> all() const noexcept { return fields_; }
  /// The occurrences of field `number` (empty when absent).
  std::span<const wire_field> get(std::uint32_t number) const noexcept;
  /// The last occurrence of `number` (protobuf: the last one wins), or nullptr.
  const wire_field* last(std::uint32_t number) const noexcept {
    auto all = get(number);
    return all.empty() ? nullptr : &all.back();
  }

private:
  std::vector<wire_field> fields_;
};

/// Checks a field's wire type; fails `ctx` naming the expected one otherwise.
bool expect_wire_type(const wire_field& f, wire_type expected, decode_context& ctx);

}  // namespace informer::codec::detail
