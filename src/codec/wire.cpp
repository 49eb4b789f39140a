#include "codec/detail/wire.hpp"

namespace informer::codec::detail {

const char* wire_type_name(wire_type t) noexcept {
  switch (t) {
    case wire_type::varint: return "varint";
    case wire_type::fixed64: return "fixed64";
    case wire_type::length_delimited: return "length-delimited";
    case wire_type::start_group: return "start-group";
    case wire_type::end_group: return "end-group";
    case wire_type::fixed32: return "fixed32";
  }
  return "invalid";
}

bool decode_context::fail(errc code, std::string_view what) {
  if (error_) {
    return false;  // the first error is the one that explains the others
  }
  std::string detail;
  for (const auto& s : path_) {
    if (s.index >= 0) {
      detail += '[';
      detail += std::to_string(s.index);
      detail += ']';
    } else {
      if (!detail.empty()) {
        detail += '.';
      }
      detail += s.name;
    }
  }
  if (!detail.empty()) {
    detail += ": ";
  }
  detail += what;
  error_ = error(make_error_code(code), std::move(detail));
  return false;
}

bool read_varint(std::string_view data, std::size_t& pos, std::uint64_t& out, decode_context& ctx) {
  std::uint64_t value = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (pos >= data.size()) {
      return ctx.fail(errc::truncated, "data ends inside a varint at byte " + std::to_string(pos));
    }
    const auto byte = static_cast<std::uint8_t>(data[pos++]);
    if (shift == 63 && byte > 1) {
      return ctx.fail(errc::malformed, "varint overflows 64 bits at byte " + std::to_string(pos - 1));
    }
    value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      out = value;
      return true;
    }
  }
  return ctx.fail(errc::malformed, "varint longer than 10 bytes at byte " + std::to_string(pos));
}

bool wire_reader::next(wire_field& out, decode_context& ctx) {
  const std::size_t start = pos_;
  std::uint64_t key = 0;
  if (!read_varint(data_, pos_, key, ctx)) {
    return false;
  }
  const auto number = key >> 3;
  const auto type = static_cast<std::uint8_t>(key & 7);
  if (number == 0 || number > 0x1fffffff) {
    return ctx.fail(errc::malformed,
                    "invalid field number " + std::to_string(number) + " at byte " + std::to_string(start));
  }
  out.number = static_cast<std::uint32_t>(number);
  out.type = static_cast<wire_type>(type);
  out.value = 0;
  out.bytes = {};
  const auto need = [&](std::size_t n) {
    if (data_.size() - pos_ < n) {
      return ctx.fail(errc::truncated, "field " + std::to_string(number) + " at byte " + std::to_string(start) +
                                           " needs " + std::to_string(n) + " bytes, " +
                                           std::to_string(data_.size() - pos_) + " left");
    }
    return true;
  };
  switch (out.type) {
    case wire_type::varint: return read_varint(data_, pos_, out.value, ctx);
    case wire_type::fixed64: {
      if (!need(8)) {
        return false;
      }
      std::uint64_t v = 0;
      for (int i = 7; i >= 0; --i) {
        v = (v << 8) | static_cast<std::uint8_t>(data_[pos_ + static_cast<std::size_t>(i)]);
      }
      out.value = v;
      pos_ += 8;
      return true;
    }
    case wire_type::fixed32: {
      if (!need(4)) {
        return false;
      }
      std::uint64_t v = 0;
      for (int i = 3; i >= 0; --i) {
        v = (v << 8) | static_cast<std::uint8_t>(data_[pos_ + static_cast<std::size_t>(i)]);
      }
      out.value = v;
      pos_ += 4;
      return true;
    }
    case wire_type::length_delimited: {
      std::uint64_t length = 0;
      if (!read_varint(data_, pos_, length, ctx)) {
        return false;
      }
      if (length > data_.size() - pos_) {
        return ctx.fail(errc::truncated, "field " + std::to_string(number) + " at byte " + std::to_string(start) +
                                             " announces " + std::to_string(length) + " bytes, " +
                                             std::to_string(data_.size() - pos_) + " left");
      }
      out.bytes = data_.substr(pos_, static_cast<std::size_t>(length));
      pos_ += static_cast<std::size_t>(length);
      return true;
    }
    case wire_type::start_group:
    case wire_type::end_group: break;
  }
  return ctx.fail(errc::malformed, "field " + std::to_string(number) + " at byte " + std::to_string(start) +
                                       " has unsupported wire type " + std::to_string(type));
}

bool message_fields::parse(std::string_view data, decode_context& ctx) {
  fields_.clear();
  wire_reader reader(data);
  wire_field f;
  while (!reader.done()) {
    if (!reader.next(f, ctx)) {
      return false;
    }
    fields_.push_back(f);
  }
  // Go writes fields in number order, so this is usually already sorted.
  if (!std::is_sorted(fields_.begin(), fields_.end(),
                      [](const wire_field& a, const wire_field& b) { return a.number < b.number; })) {
    std::stable_sort(fields_.begin(), fields_.end(),
                     [](const wire_field& a, const wire_field& b) { return a.number < b.number; });
  }
  return true;
}

std::span<const wire_field> message_fields::get(std::uint32_t number) const noexcept {
  const auto lo = std::lower_bound(fields_.begin(), fields_.end(), number,
                                   [](const wire_field& f, std::uint32_t n) { return f.number < n; });
  auto hi = lo;
  while (hi != fields_.end() && hi->number == number) {
    ++hi;
  }
  return {fields_.data() + (lo - fields_.begin()), static_cast<std::size_t>(hi - lo)};
}

bool expect_wire_type(const wire_field& f, wire_type expected, decode_context& ctx) {
  if (f.type == expected) {
    return true;
  }
  return ctx.fail(errc::malformed, std::string("field ") + std::to_string(f.number) + " has wire type " +
                                       wire_type_name(f.type) + ", expected " + wire_type_name(expected));
}

}  // namespace informer::codec::detail
