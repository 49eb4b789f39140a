// Private helpers of the protobuf codec: the apimachinery types whose JSON form comes from a
// hand-written MarshalJSON rather than from their fields (metav1.Time, MicroTime, Duration,
// FieldsV1, intstr.IntOrString, resource.Quantity, raw JSON holders). Shared by the schema-driven
// renderer and the schema-free metadata decoder, so both agree byte for byte.
//
// Each takes the message's bytes (empty for an absent value field, which Go decodes as the zero
// value) and sets `out`, or fails `ctx`.
//
// Thread safety: pure functions.
#pragma once

#include "codec/detail/wire.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <string_view>

namespace informer::codec::detail {

/// A varint field as Go's int32 (protobuf int32 is sign-extended to 64 bits on the wire).
inline std::int64_t as_int32(std::uint64_t v) noexcept {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
}
inline std::int64_t as_int64(std::uint64_t v) noexcept { return static_cast<std::int64_t>(v); }

/// The last occurrence of a length-delimited field (a string, bytes or a message), if any.
bool last_bytes(const message_fields& fields, std::uint32_t number, const wire_field*& out, decode_context& ctx);
/// The last occurrence of a varint field, if any.
bool last_varint(const message_fields& fields, std::uint32_t number, const wire_field*& out, decode_context& ctx);

/// metav1.Time: null when zero (no bytes), else RFC 3339 seconds. Nanoseconds are dropped, as
/// Kubernetes' own protobuf decoder does.
bool render_time(std::string_view bytes, boost::json::value& out, decode_context& ctx);
/// metav1.MicroTime: null when zero, else RFC 3339 with microseconds.
bool render_micro_time(std::string_view bytes, boost::json::value& out, decode_context& ctx);
/// metav1.Duration: Go's duration text ("1m30s").
bool render_duration(std::string_view bytes, boost::json::value& out, decode_context& ctx);
/// intstr.IntOrString: a number or a string, by its type field.
bool render_int_or_string(std::string_view bytes, boost::json::value& out, decode_context& ctx);
/// resource.Quantity: its canonical string ("0" when unset).
bool render_quantity(std::string_view bytes, boost::json::value& out, decode_context& ctx);
/// Raw JSON bytes embedded as a value (FieldsV1.Raw, RawExtension.raw, apiextensions JSON.raw).
/// `present` false or empty bytes render null, as their MarshalJSON does for nil.
bool render_raw_json(bool present, std::string_view bytes, boost::json::value& out, decode_context& ctx);

}  // namespace informer::codec::detail
