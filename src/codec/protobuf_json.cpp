// The schema-driven renderer: a Kubernetes protobuf message to the JSON kube-apiserver would send,
// walking the wire format against the message's plan (detail/schema.hpp). The rules are those of
// Go's encoding/json applied to the struct that Kubernetes' protobuf decoder would have produced:
//   - a field absent from the wire decodes to Go's zero value (nil for pointers, slices and maps);
//   - omitempty drops false, 0, "", nil and empty slices/maps/strings, and nil pointers, but never
//     a value struct (so a zero metav1.Time field renders as null);
//   - a Go field without omitempty renders its zero value ("", 0, false, null);
//   - an embedded struct without a JSON name (TypeMeta, VolumeSource, ...) is inlined.
#include "informer/codec/protobuf.hpp"

#include "codec/detail/go_json.hpp"
#include "codec/detail/schema.hpp"
#include "codec/detail/well_known.hpp"
#include "codec/detail/wire.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <bit>
#include <utility>
#include <vector>

namespace informer::codec {
namespace {

namespace json = boost::json;
namespace pb = google::protobuf;
using detail::decode_context;
using detail::field_plan;
using detail::go_kind;
using detail::message_fields;
using detail::message_plan;
using detail::path_segment;
using detail::special;
using detail::wire_field;
using detail::wire_type;

// Protobuf's own default recursion limit; deeper nesting is hostile or corrupt data.
constexpr int max_depth = 100;

wire_type wire_type_of(pb::FieldDescriptor::Type t) {
  switch (t) {
    case pb::FieldDescriptor::TYPE_FIXED64:
    case pb::FieldDescriptor::TYPE_SFIXED64:
    case pb::FieldDescriptor::TYPE_DOUBLE: return wire_type::fixed64;
    case pb::FieldDescriptor::TYPE_FIXED32:
    case pb::FieldDescriptor::TYPE_SFIXED32:
    case pb::FieldDescriptor::TYPE_FLOAT: return wire_type::fixed32;
    case pb::FieldDescriptor::TYPE_STRING:
    case pb::FieldDescriptor::TYPE_BYTES:
    case pb::FieldDescriptor::TYPE_MESSAGE: return wire_type::length_delimited;
    case pb::FieldDescriptor::TYPE_GROUP: return wire_type::start_group;
    default: return wire_type::varint;
  }
}

// What omitempty drops for a Go value of this kind (pointers and interfaces are decided by presence).
bool is_empty_value(go_kind kind, const json::value& v) {
  switch (kind) {
    case go_kind::string: return v.is_string() && v.get_string().empty();
    case go_kind::integer:
    case go_kind::unsigned_integer:
    case go_kind::floating:
      return (v.is_int64() && v.get_int64() == 0) || (v.is_uint64() && v.get_uint64() == 0) ||
             (v.is_double() && v.get_double() == 0);
    case go_kind::boolean: return v.is_bool() && !v.get_bool();
    case go_kind::bytes:
    case go_kind::slice:
    case go_kind::map:
      return v.is_null() || (v.is_array() && v.get_array().empty()) || (v.is_object() && v.get_object().empty()) ||
             (v.is_string() && v.get_string().empty());
    default: return false;
  }
}

class renderer {
public:
  renderer(const detail::schema& s, bool reject_unknown_fields)
      : schema_(s), reject_unknown_fields_(reject_unknown_fields) {}

  decode_context ctx;

  // A message value: a JSON object of its fields, or its special form. Empty bytes give the Go
  // zero value of the type.
  bool value(const message_plan& m, std::string_view bytes, json::value& out) {
    if (++depth_ > max_depth) {
      return ctx.fail(errc::malformed, "messages nested more than " + std::to_string(max_depth) + " deep");
    }
    const bool ok = value_at_depth(m, bytes, out);
    --depth_;
    return ok;
  }

  // The fields of a struct message into `out` (also used to inline an embedded struct). `top`
  // is the envelope of a top-level object, whose TypeMeta takes the envelope's kind/apiVersion.
  bool fields(const message_plan& m, std::string_view bytes, json::object& out, const envelope* top) {
    message_fields wire;
    if (!wire.parse(bytes, ctx)) {
      return false;
    }
    // Rendering only the known fields would drop the others without a word (and a client writing
    // the object back would erase them): fail instead, so the caller can read it as JSON.
    auto known = m.known_numbers.begin();
    for (const auto& w : reject_unknown_fields_ ? wire.all() : std::span<const wire_field>{}) {
      while (known != m.known_numbers.end() && *known < w.number) ++known;
      if (known == m.known_numbers.end() || *known != w.number) {
        return ctx.fail(errc::unknown_field, m.descriptor->full_name() + " has a field " + std::to_string(w.number) +
                                                 " that the compiled Kubernetes 1.20 schemas lack (a newer server?)");
      }
    }
    for (const auto& f : m.fields) {
      if (!field(f, wire, out, top)) {
        return false;
      }
    }
    return true;
  }

  // A top-level object: kind and apiVersion from the envelope, then the body.
  bool object(const message_plan& m, const envelope& env, json::value& out) {
    if (m.kind != special::none) {
      return ctx.fail(errc::unsupported, m.descriptor->full_name() + " is not an object kind");
    }
    json::object o;
    const bool has_type_meta = std::any_of(m.fields.begin(), m.fields.end(), [&](const field_plan& f) {
      return f.proto == nullptr && f.inlined && f.go_type == schema_.type_meta();
    });
    if (!has_type_meta) {
      put_type_meta(env, o);
    }
    if (!fields(m, env.raw, o, &env)) {
      return false;
    }
    // A list response always carries `items`, [] when empty (the server builds it non-nil);
    // protobuf cannot tell an empty list from an absent one.
    if (m.descriptor->name().ends_with("List")) {
      if (auto* items = o.if_contains("items"); items != nullptr && items->is_null()) {
        *items = json::array();
      }
    }
    out = std::move(o);
    return true;
  }

private:
  static void put_type_meta(const envelope& env, json::object& out) {
    if (!env.kind.empty()) {
      out.emplace("kind", detail::go_text(env.kind));
    }
    if (!env.api_version.empty()) {
      out.emplace("apiVersion", detail::go_text(env.api_version));
    }
  }

  bool value_at_depth(const message_plan& m, std::string_view bytes, json::value& out) {
    switch (m.kind) {
      case special::none: {
        json::object o;
        if (!fields(m, bytes, o, nullptr)) {
          return false;
        }
        out = std::move(o);
        return true;
      }
      case special::time: return detail::render_time(bytes, out, ctx);
      case special::micro_time: return detail::render_micro_time(bytes, out, ctx);
      case special::duration: return detail::render_duration(bytes, out, ctx);
      case special::int_or_string: return detail::render_int_or_string(bytes, out, ctx);
      case special::quantity: return detail::render_quantity(bytes, out, ctx);
      case special::fields_v1:
      case special::json_raw: {
        message_fields wire;
        const wire_field* raw = nullptr;
        return wire.parse(bytes, ctx) && detail::last_bytes(wire, 1, raw, ctx) &&
               detail::render_raw_json(raw != nullptr, raw != nullptr ? raw->bytes : std::string_view{}, out, ctx);
      }
      case special::raw_extension: {
        message_fields wire;
        const wire_field* raw = nullptr;
        if (!wire.parse(bytes, ctx) || !detail::last_bytes(wire, 1, raw, ctx)) {
          return false;
        }
        if (raw != nullptr && raw->bytes.starts_with(protobuf_magic)) {
          return embedded_object(raw->bytes, out);
        }
        return detail::render_raw_json(raw != nullptr, raw != nullptr ? raw->bytes : std::string_view{}, out, ctx);
      }
      case special::unknown: {
        message_fields wire;
        const wire_field* raw = nullptr;
        const wire_field* content_type = nullptr;
        if (!wire.parse(bytes, ctx) || !detail::last_bytes(wire, 2, raw, ctx) ||
            !detail::last_bytes(wire, 4, content_type, ctx)) {
          return false;
        }
        if (content_type != nullptr && !content_type->bytes.empty() && content_type->bytes != "application/json") {
          return ctx.fail(errc::unsupported, "runtime.Unknown holds " + std::string(content_type->bytes) +
                                                 ", which Kubernetes cannot render as JSON either");
        }
        return detail::render_raw_json(raw != nullptr, raw != nullptr ? raw->bytes : std::string_view{}, out, ctx);
      }
      case special::schema_or_array: {
        message_fields wire;
        if (!wire.parse(bytes, ctx)) {
          return false;
        }
        if (const auto schemas = wire.get(2); !schemas.empty()) {
          json::array a;
          for (std::size_t i = 0; i < schemas.size(); ++i) {
            path_segment index(ctx, static_cast<std::ptrdiff_t>(i));
            json::value item;
            if (!detail::expect_wire_type(schemas[i], wire_type::length_delimited, ctx) ||
                !value(*m.schema_props, schemas[i].bytes, item)) {
              return false;
            }
            a.push_back(std::move(item));
          }
          out = std::move(a);
          return true;
        }
        return optional_schema(wire, 1, *m.schema_props, out);
      }
      case special::schema_or_bool: {
        message_fields wire;
        const wire_field* allows = nullptr;
        if (!wire.parse(bytes, ctx) || !detail::last_varint(wire, 1, allows, ctx)) {
          return false;
        }
        if (wire.last(2) != nullptr) {
          return optional_schema(wire, 2, *m.schema_props, out);
        }
        out = allows != nullptr && allows->value != 0;
        return true;
      }
      case special::schema_or_string_array: {
        message_fields wire;
        if (!wire.parse(bytes, ctx)) {
          return false;
        }
        if (const auto property = wire.get(2); !property.empty()) {
          json::array a;
          for (const auto& p : property) {
            if (!detail::expect_wire_type(p, wire_type::length_delimited, ctx)) {
              return false;
            }
            a.emplace_back(detail::go_text(p.bytes));
          }
          out = std::move(a);
          return true;
        }
        return optional_schema(wire, 1, *m.schema_props, out);
      }
      case special::group_version: {
        message_fields wire;
        const wire_field* group = nullptr;
        const wire_field* version = nullptr;
        if (!wire.parse(bytes, ctx) || !detail::last_bytes(wire, 1, group, ctx) ||
            !detail::last_bytes(wire, 2, version, ctx)) {
          return false;
        }
        std::string text(version != nullptr ? version->bytes : std::string_view{});
        if (group != nullptr && !group->bytes.empty()) {
          text = std::string(group->bytes) + "/" + text;
        }
        out = detail::go_text(text);
        return true;
      }
      case special::slice_wrapper: {
        message_fields wire;
        if (!wire.parse(bytes, ctx)) {
          return false;
        }
        return list(*m.descriptor->field(0), nullptr, wire.get(1), out);
      }
      case special::unsupported: break;
    }
    return ctx.fail(errc::unsupported,
                    "no JSON rendering known for " + m.descriptor->full_name() +
                        " (a Go type with a custom MarshalJSON, or missing from the JSON field table)");
  }

  bool optional_schema(const message_fields& wire, std::uint32_t number, const message_plan& props, json::value& out) {
    const wire_field* schema = nullptr;
    if (!detail::last_bytes(wire, number, schema, ctx)) {
      return false;
    }
    if (schema == nullptr) {
      out = nullptr;
      return true;
    }
    return value(props, schema->bytes, out);
  }

  // A RawExtension holding a protobuf object (`k8s\0...`): rendered as the server would embed it.
  bool embedded_object(std::string_view bytes, json::value& out) {
    auto env = unwrap_envelope(bytes);
    if (!env) {
      return ctx.fail(errc::malformed, "embedded object: " + env.error().what());
    }
    auto plan = schema_.find_kind(env->api_version, env->kind);
    if (!plan) {
      return ctx.fail(errc::unknown_kind, "embedded object: " + plan.error().detail());
    }
    if (++depth_ > max_depth) {
      return ctx.fail(errc::malformed, "objects nested more than " + std::to_string(max_depth) + " deep");
    }
    const bool ok = object(**plan, *env, out);
    --depth_;
    return ok;
  }

  // A Go field not in the protobuf message: its zero value (or, for TypeMeta, the envelope's).
  bool absent_go_field(const field_plan& f, json::object& out, const envelope* top) {
    if (f.inlined) {
      if (f.go_type == schema_.type_meta()) {
        if (top != nullptr) {
          put_type_meta(*top, out);
        }
        return true;
      }
      return f.kind == go_kind::pointer || f.go_type == nullptr || fields(*f.go_type, {}, out, nullptr);
    }
    json::value v;
    switch (f.kind) {
      case go_kind::string: v = ""; break;
      case go_kind::integer:
      case go_kind::unsigned_integer:
      case go_kind::floating: v = 0; break;
      case go_kind::boolean: v = false; break;
      case go_kind::structure:
        if (f.go_type != nullptr) {
          if (!value(*f.go_type, {}, v)) {
            return false;
          }
        } else {
          v = json::object();
        }
        break;
      default: v = nullptr; break;
    }
    if (f.omitempty && (f.kind == go_kind::pointer || f.kind == go_kind::interface || is_empty_value(f.kind, v))) {
      return true;
    }
    out.emplace(f.json_name, std::move(v));
    return true;
  }

  bool field(const field_plan& f, const message_fields& wire, json::object& out, const envelope* top) {
    if (f.proto == nullptr) {
      return absent_go_field(f, out, top);
    }
    const pb::FieldDescriptor& fd = *f.proto;
    path_segment segment(ctx, f.inlined ? std::string_view(fd.name()) : std::string_view(f.json_name));
    const auto occurrences = wire.get(static_cast<std::uint32_t>(fd.number()));
    const bool present = !occurrences.empty();
    json::value v;
    if (fd.is_map()) {
      if (!map(fd, f.message, occurrences, v)) {
        return false;
      }
    } else if (fd.is_repeated()) {
      if (!list(fd, f.message, occurrences, v)) {
        return false;
      }
    } else if (fd.type() == pb::FieldDescriptor::TYPE_MESSAGE) {
      std::string merged;
      std::string_view bytes;
      if (!message_bytes(occurrences, merged, bytes)) {
        return false;
      }
      if (f.inlined) {
        return (!present && f.kind == go_kind::pointer) || fields(*f.message, bytes, out, nullptr);
      }
      if (!present && f.kind != go_kind::structure) {
        v = nullptr;  // a nil pointer, slice or map
      } else if (!value(*f.message, bytes, v)) {
        return false;
      }
    } else if (!present) {
      v = f.kind == go_kind::pointer || f.kind == go_kind::bytes ? json::value(nullptr) : zero(fd);
    } else if (!scalar(fd, occurrences.back(), v)) {
      return false;
    }
    if (f.omitempty) {
      const bool by_presence = f.kind == go_kind::pointer || f.kind == go_kind::interface;
      if (by_presence ? !present : is_empty_value(f.kind, v)) {
        return true;
      }
    }
    out.emplace(f.json_name, std::move(v));
    return true;
  }

  // A singular message field's bytes; several occurrences merge, as protobuf concatenation does.
  bool message_bytes(std::span<const wire_field> occurrences, std::string& merged, std::string_view& bytes) {
    for (const auto& o : occurrences) {
      if (!detail::expect_wire_type(o, wire_type::length_delimited, ctx)) {
        return false;
      }
    }
    if (occurrences.size() == 1) {
      bytes = occurrences[0].bytes;
    } else if (occurrences.size() > 1) {
      for (const auto& o : occurrences) {
        merged.append(o.bytes);
      }
      bytes = merged;
    }
    return true;
  }

  static json::value zero(const pb::FieldDescriptor& fd) {
    switch (fd.type()) {
      case pb::FieldDescriptor::TYPE_STRING:
      case pb::FieldDescriptor::TYPE_BYTES: return json::string();
      case pb::FieldDescriptor::TYPE_BOOL: return false;
      default: return std::int64_t{0};
    }
  }

  bool scalar(const pb::FieldDescriptor& fd, const wire_field& w, json::value& out) {
    if (!detail::expect_wire_type(w, wire_type_of(fd.type()), ctx)) {
      return false;
    }
    out = scalar_value(fd.type(), w.value, w.bytes);
    return true;
  }

  static json::value scalar_value(pb::FieldDescriptor::Type type, std::uint64_t v, std::string_view bytes) {
    switch (type) {
      case pb::FieldDescriptor::TYPE_INT32:
      case pb::FieldDescriptor::TYPE_ENUM: return detail::as_int32(v);
      case pb::FieldDescriptor::TYPE_SFIXED32: return static_cast<std::int64_t>(static_cast<std::int32_t>(v));
      case pb::FieldDescriptor::TYPE_UINT32:
      case pb::FieldDescriptor::TYPE_FIXED32: return static_cast<std::int64_t>(static_cast<std::uint32_t>(v));
      case pb::FieldDescriptor::TYPE_SINT32: {
        const auto u = static_cast<std::uint32_t>(v);
        return static_cast<std::int64_t>(static_cast<std::int32_t>((u >> 1) ^ (0u - (u & 1))));
      }
      case pb::FieldDescriptor::TYPE_SINT64: return static_cast<std::int64_t>((v >> 1) ^ (0 - (v & 1)));
      case pb::FieldDescriptor::TYPE_UINT64:
      case pb::FieldDescriptor::TYPE_FIXED64:
        return v > static_cast<std::uint64_t>(INT64_MAX) ? json::value(v) : json::value(static_cast<std::int64_t>(v));
      case pb::FieldDescriptor::TYPE_BOOL: return v != 0;
      case pb::FieldDescriptor::TYPE_FLOAT:
        return detail::float32_value(std::bit_cast<float>(static_cast<std::uint32_t>(v)));
      case pb::FieldDescriptor::TYPE_DOUBLE: return detail::float64_value(std::bit_cast<double>(v));
      case pb::FieldDescriptor::TYPE_STRING: return json::string(detail::go_text(bytes));
      case pb::FieldDescriptor::TYPE_BYTES: return json::string(detail::base64_encode(bytes));
      default: return static_cast<std::int64_t>(v);  // int64, sfixed64
    }
  }

  // A repeated field: null when empty (Go's nil slice), else the elements; numeric elements may
  // come packed.
  bool list(const pb::FieldDescriptor& fd, const message_plan* element, std::span<const wire_field> occurrences,
            json::value& out) {
    if (occurrences.empty()) {
      out = nullptr;
      return true;
    }
    json::array a;
    a.reserve(occurrences.size());
    const auto expected = wire_type_of(fd.type());
    for (std::size_t i = 0; i < occurrences.size(); ++i) {
      const auto& o = occurrences[i];
      path_segment index(ctx, static_cast<std::ptrdiff_t>(a.size()));
      if (element != nullptr) {
        json::value item;
        if (!detail::expect_wire_type(o, wire_type::length_delimited, ctx) || !value(*element, o.bytes, item)) {
          return false;
        }
        a.push_back(std::move(item));
      } else if (o.type == wire_type::length_delimited && expected != wire_type::length_delimited) {
        if (!unpack(fd, o.bytes, expected, a)) {
          return false;
        }
      } else {
        json::value item;
        if (!scalar(fd, o, item)) {
          return false;
        }
        a.push_back(std::move(item));
      }
    }
    out = std::move(a);
    return true;
  }

  bool unpack(const pb::FieldDescriptor& fd, std::string_view bytes, wire_type expected, json::array& out) {
    std::size_t pos = 0;
    while (pos < bytes.size()) {
      std::uint64_t v = 0;
      if (expected == wire_type::varint) {
        if (!detail::read_varint(bytes, pos, v, ctx)) {
          return false;
        }
      } else {
        const std::size_t width = expected == wire_type::fixed64 ? 8 : 4;
        if (bytes.size() - pos < width) {
          return ctx.fail(errc::truncated, "packed repeated field ends inside an element");
        }
        for (std::size_t i = width; i-- > 0;) {
          v = (v << 8) | static_cast<std::uint8_t>(bytes[pos + i]);
        }
        pos += width;
      }
      out.push_back(scalar_value(fd.type(), v, {}));
    }
    return true;
  }

  // A map field: null when empty (Go's nil map), else an object sorted by key as Go writes it.
  bool map(const pb::FieldDescriptor& fd, const message_plan* value_plan, std::span<const wire_field> entries,
           json::value& out) {
    if (entries.empty()) {
      out = nullptr;
      return true;
    }
    const pb::FieldDescriptor& key_fd = *fd.message_type()->map_key();
    const pb::FieldDescriptor& value_fd = *fd.message_type()->map_value();
    std::vector<std::pair<std::string, json::value>> items;
    items.reserve(entries.size());
    for (const auto& e : entries) {
      message_fields entry;
      if (!detail::expect_wire_type(e, wire_type::length_delimited, ctx) || !entry.parse(e.bytes, ctx)) {
        return false;
      }
      json::value key = zero(key_fd);
      if (const auto* k = entry.last(1); k != nullptr && !scalar(key_fd, *k, key)) {
        return false;
      }
      std::string name = key.is_string() ? std::string(key.get_string()) : json::serialize(key);
      path_segment segment(ctx, name);
      json::value v;
      const auto values = entry.get(2);
      if (value_plan != nullptr) {
        std::string merged;
        std::string_view bytes;
        if (!message_bytes(values, merged, bytes) || !value(*value_plan, bytes, v)) {
          return false;
        }
      } else if (values.empty()) {
        v = zero(value_fd);
      } else if (!scalar(value_fd, values.back(), v)) {
        return false;
      }
      items.emplace_back(std::move(name), std::move(v));
    }
    std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    json::object o;
    o.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i + 1 < items.size() && items[i + 1].first == items[i].first) {
        continue;  // a repeated key keeps its last value
      }
      o.emplace(items[i].first, std::move(items[i].second));
    }
    out = std::move(o);
    return true;
  }

  const detail::schema& schema_;
  const bool reject_unknown_fields_;
  int depth_ = 0;
};

}  // namespace

bool has_schemas() noexcept {
  try {
    return detail::schema::instance().has_value();
  } catch (...) {
    return false;
  }
}

detailed_result<json::value> to_json(const envelope& env, const to_json_options& options) {
  const auto& s = detail::schema::instance();
  if (!s) {
    return s.error();
  }
  auto plan = (*s)->find_kind(env.api_version, env.kind);
  if (!plan) {
    return plan.error();
  }
  renderer r(**s, options.reject_unknown_fields);
  json::value out;
  if (!r.object(**plan, env, out)) {
    const auto& e = r.ctx.failure();
    return error(e.code(), std::string(env.api_version) + " " + std::string(env.kind) + ": " + e.detail());
  }
  return out;
}

detailed_result<json::value> message_to_json(std::string_view message_name, std::string_view bytes,
                                             const to_json_options& options) {
  const auto& s = detail::schema::instance();
  if (!s) {
    return s.error();
  }
  const auto* plan = (*s)->find(message_name);
  if (plan == nullptr) {
    return error(make_error_code(errc::unknown_kind), "no protobuf message named " + std::string(message_name));
  }
  renderer r(**s, options.reject_unknown_fields);
  json::value out;
  if (!r.value(*plan, bytes, out)) {
    return r.ctx.failure();
  }
  return out;
}

}  // namespace informer::codec
