#include "codec/detail/well_known.hpp"

#include "codec/detail/go_json.hpp"

#include <boost/json/parse.hpp>

#include <string>

namespace informer::codec::detail {
namespace {

// The seconds and nanos of a metav1.Timestamp-shaped message (Time and MicroTime).
bool read_timestamp(std::string_view bytes, std::int64_t& seconds, std::int64_t& nanos, decode_context& ctx) {
  message_fields fields;
  if (!fields.parse(bytes, ctx)) {
    return false;
  }
  const wire_field* f = nullptr;
  if (!last_varint(fields, 1, f, ctx)) {
    return false;
  }
  seconds = f != nullptr ? as_int64(f->value) : 0;
  if (!last_varint(fields, 2, f, ctx)) {
    return false;
  }
  nanos = f != nullptr ? as_int32(f->value) : 0;
  return true;
}

}  // namespace

bool last_bytes(const message_fields& fields, std::uint32_t number, const wire_field*& out, decode_context& ctx) {
  out = fields.last(number);
  return out == nullptr || expect_wire_type(*out, wire_type::length_delimited, ctx);
}

bool last_varint(const message_fields& fields, std::uint32_t number, const wire_field*& out, decode_context& ctx) {
  out = fields.last(number);
  return out == nullptr || expect_wire_type(*out, wire_type::varint, ctx);
}

namespace {

// metav1.Time (RFC 3339, seconds) and MicroTime (microseconds) share their encoding: a Timestamp
// message, empty for Go's zero time (rendered null).
bool render_timestamp(std::string_view bytes, bool micro, boost::json::value& out, decode_context& ctx) {
  // Kubernetes writes a zero Time as an empty message; an explicit 0 is the Unix epoch.
  if (bytes.empty()) {
    out = nullptr;
    return true;
  }
  std::int64_t seconds = 0;
  std::int64_t nanos = 0;
  if (!read_timestamp(bytes, seconds, nanos, ctx)) {
    return false;
  }
  if (is_go_zero_time(seconds, micro ? nanos : 0)) {
    out = nullptr;
  } else {
    out = micro ? format_micro_time(seconds, nanos) : format_time(seconds);
  }
  return true;
}

}  // namespace

bool render_time(std::string_view bytes, boost::json::value& out, decode_context& ctx) {
  return render_timestamp(bytes, false, out, ctx);
}

bool render_micro_time(std::string_view bytes, boost::json::value& out, decode_context& ctx) {
  return render_timestamp(bytes, true, out, ctx);
}

bool render_duration(std::string_view bytes, boost::json::value& out, decode_context& ctx) {
  message_fields fields;
  const wire_field* f = nullptr;
  if (!fields.parse(bytes, ctx) || !last_varint(fields, 1, f, ctx)) {
    return false;
  }
  out = format_duration(f != nullptr ? as_int64(f->value) : 0);
  return true;
}

bool render_int_or_string(std::string_view bytes, boost::json::value& out, decode_context& ctx) {
  message_fields fields;
  const wire_field* type = nullptr;
  const wire_field* int_value = nullptr;
  const wire_field* string_value = nullptr;
  if (!fields.parse(bytes, ctx) || !last_varint(fields, 1, type, ctx) || !last_varint(fields, 2, int_value, ctx) ||
      !last_bytes(fields, 3, string_value, ctx)) {
    return false;
  }
  const std::int64_t t = type != nullptr ? as_int64(type->value) : 0;
  if (t == 0) {
    out = int_value != nullptr ? as_int32(int_value->value) : 0;
  } else if (t == 1) {
    out = go_text(string_value != nullptr ? string_value->bytes : std::string_view(""));
  } else {
    return ctx.fail(errc::unsupported, "IntOrString has type " + std::to_string(t) +
                                           " (0 = int, 1 = string); Kubernetes refuses to render it");
  }
  return true;
}

bool render_quantity(std::string_view bytes, boost::json::value& out, decode_context& ctx) {
  message_fields fields;
  const wire_field* f = nullptr;
  if (!fields.parse(bytes, ctx) || !last_bytes(fields, 1, f, ctx)) {
    return false;
  }
  // Kubernetes writes Quantity.String(), already canonical; a zero Quantity renders as "0".
  out = (f == nullptr || f->bytes.empty()) ? boost::json::string_view("0") : go_text(f->bytes);
  return true;
}

bool render_raw_json(bool present, std::string_view bytes, boost::json::value& out, decode_context& ctx) {
  if (!present || bytes.empty()) {
    out = nullptr;
    return true;
  }
  boost::system::error_code ec;
  out = boost::json::parse(bytes, ec);
  if (ec) {
    return ctx.fail(errc::malformed, "embedded JSON is invalid: " + ec.message());
  }
  return true;
}

}  // namespace informer::codec::detail
