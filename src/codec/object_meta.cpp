// The schema-free metadata decoder: metav1.ObjectMeta (and the OwnerReference and
// ManagedFieldsEntry inside it) rendered by hand, following the Go struct tags of Kubernetes 1.20
// (all ObjectMeta fields are omitempty; creationTimestamp is a value struct, so a zero one renders
// as null; the owner reference's apiVersion, kind, name and uid are always present).
#include "informer/codec/protobuf.hpp"

#include "codec/detail/go_json.hpp"
#include "codec/detail/well_known.hpp"
#include "codec/detail/wire.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <algorithm>
#include <utility>
#include <vector>

namespace informer::codec {
namespace {

namespace json = boost::json;
using detail::decode_context;
using detail::message_fields;
using detail::path_segment;
using detail::wire_field;

// A string field: always rendered unless omitempty and empty.
bool put_string(const message_fields& fields, std::uint32_t number, std::string_view key, bool omitempty,
                json::object& out, decode_context& ctx) {
  const wire_field* f = nullptr;
  if (!detail::last_bytes(fields, number, f, ctx)) {
    return false;
  }
  const std::string_view value = f != nullptr ? f->bytes : std::string_view{};
  if (!omitempty || !value.empty()) {
    out.emplace(key, detail::go_text(value));
  }
  return true;
}

// A *bool or *int64 field: rendered when present.
bool put_pointer_varint(const message_fields& fields, std::uint32_t number, std::string_view key, bool is_bool,
                        json::object& out, decode_context& ctx) {
  const wire_field* f = nullptr;
  if (!detail::last_varint(fields, number, f, ctx)) {
    return false;
  }
  if (f != nullptr) {
    if (is_bool) {
      out.emplace(key, f->value != 0);
    } else {
      out.emplace(key, detail::as_int64(f->value));
    }
  }
  return true;
}

bool render_string_map(std::span<const wire_field> entries, json::object& out, decode_context& ctx) {
  std::vector<std::pair<std::string_view, std::string_view>> items;
  items.reserve(entries.size());
  for (const auto& e : entries) {
    message_fields entry;
    const wire_field* key = nullptr;
    const wire_field* value = nullptr;
    if (!detail::expect_wire_type(e, detail::wire_type::length_delimited, ctx) || !entry.parse(e.bytes, ctx) ||
        !detail::last_bytes(entry, 1, key, ctx) || !detail::last_bytes(entry, 2, value, ctx)) {
      return false;
    }
    // An absent key or value is "" (proto3), as a non-null view: Boost.JSON copies keys with
    // memcpy, which a null pointer makes undefined even for zero bytes.
    items.emplace_back(key != nullptr ? key->bytes : std::string_view(""),
                       value != nullptr ? value->bytes : std::string_view(""));
  }
  // Go renders maps sorted by key; a repeated key keeps its last value.
  std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  out.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i + 1 < items.size() && items[i + 1].first == items[i].first) {
      continue;
    }
    out.emplace(detail::go_text(items[i].first), detail::go_text(items[i].second));
  }
  return true;
}

bool render_owner_reference(std::string_view bytes, json::object& out, decode_context& ctx) {
  message_fields fields;
  if (!fields.parse(bytes, ctx)) {
    return false;
  }
  return put_string(fields, 5, "apiVersion", false, out, ctx) && put_string(fields, 1, "kind", false, out, ctx) &&
         put_string(fields, 3, "name", false, out, ctx) && put_string(fields, 4, "uid", false, out, ctx) &&
         put_pointer_varint(fields, 6, "controller", true, out, ctx) &&
         put_pointer_varint(fields, 7, "blockOwnerDeletion", true, out, ctx);
}

bool render_managed_fields_entry(std::string_view bytes, json::object& out, decode_context& ctx) {
  message_fields fields;
  if (!fields.parse(bytes, ctx) || !put_string(fields, 1, "manager", true, out, ctx) ||
      !put_string(fields, 2, "operation", true, out, ctx) || !put_string(fields, 3, "apiVersion", true, out, ctx)) {
    return false;
  }
  const wire_field* f = nullptr;
  if (!detail::last_bytes(fields, 4, f, ctx)) {
    return false;
  }
  if (f != nullptr) {
    path_segment segment(ctx, "time");
    json::value time;
    if (!detail::render_time(f->bytes, time, ctx)) {
      return false;
    }
    out.emplace("time", std::move(time));
  }
  if (!put_string(fields, 6, "fieldsType", true, out, ctx) || !detail::last_bytes(fields, 7, f, ctx)) {
    return false;
  }
  if (f != nullptr) {
    path_segment segment(ctx, "fieldsV1");
    message_fields fields_v1;
    const wire_field* raw = nullptr;
    json::value value;
    if (!fields_v1.parse(f->bytes, ctx) || !detail::last_bytes(fields_v1, 1, raw, ctx) ||
        !detail::render_raw_json(raw != nullptr, raw != nullptr ? raw->bytes : std::string_view{}, value, ctx)) {
      return false;
    }
    out.emplace("fieldsV1", std::move(value));
  }
  return true;
}

template <class Render>
bool put_message_list(const message_fields& fields, std::uint32_t number, std::string_view key, json::object& out,
                      decode_context& ctx, Render render) {
  const auto all = fields.get(number);
  if (all.empty()) {
    return true;
  }
  path_segment segment(ctx, key);
  json::array items;
  items.reserve(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    path_segment index(ctx, static_cast<std::ptrdiff_t>(i));
    json::object item;
    if (!detail::expect_wire_type(all[i], detail::wire_type::length_delimited, ctx) ||
        !render(all[i].bytes, item, ctx)) {
      return false;
    }
    items.emplace_back(std::move(item));
  }
  out.emplace(key, std::move(items));
  return true;
}

bool render_object_meta(std::string_view bytes, json::object& out, decode_context& ctx) {
  message_fields fields;
  if (!fields.parse(bytes, ctx)) {
    return false;
  }
  if (!put_string(fields, 1, "name", true, out, ctx) || !put_string(fields, 2, "generateName", true, out, ctx) ||
      !put_string(fields, 3, "namespace", true, out, ctx) || !put_string(fields, 4, "selfLink", true, out, ctx) ||
      !put_string(fields, 5, "uid", true, out, ctx) || !put_string(fields, 6, "resourceVersion", true, out, ctx)) {
    return false;
  }
  const wire_field* f = nullptr;
  if (!detail::last_varint(fields, 7, f, ctx)) {
    return false;
  }
  if (f != nullptr && f->value != 0) {
    out.emplace("generation", detail::as_int64(f->value));
  }
  for (const auto& [number, key] : {std::pair<std::uint32_t, std::string_view>{8, "creationTimestamp"},
                                    std::pair<std::uint32_t, std::string_view>{9, "deletionTimestamp"}}) {
    if (!detail::last_bytes(fields, number, f, ctx)) {
      return false;
    }
    // creationTimestamp is a value (always rendered, null when zero); deletionTimestamp a pointer.
    if (f != nullptr || number == 8) {
      path_segment segment(ctx, key);
      json::value time;
      if (!detail::render_time(f != nullptr ? f->bytes : std::string_view{}, time, ctx)) {
        return false;
      }
      out.emplace(key, std::move(time));
    }
  }
  if (!put_pointer_varint(fields, 10, "deletionGracePeriodSeconds", false, out, ctx)) {
    return false;
  }
  for (const auto& [number, key] : {std::pair<std::uint32_t, std::string_view>{11, "labels"},
                                    std::pair<std::uint32_t, std::string_view>{12, "annotations"}}) {
    if (const auto entries = fields.get(number); !entries.empty()) {
      path_segment segment(ctx, key);
      json::object map;
      if (!render_string_map(entries, map, ctx)) {
        return false;
      }
      out.emplace(key, std::move(map));
    }
  }
  if (!put_message_list(fields, 13, "ownerReferences", out, ctx, render_owner_reference)) {
    return false;
  }
  if (const auto finalizers = fields.get(14); !finalizers.empty()) {
    path_segment segment(ctx, "finalizers");
    json::array items;
    for (const auto& item : finalizers) {
      if (!detail::expect_wire_type(item, detail::wire_type::length_delimited, ctx)) {
        return false;
      }
      items.emplace_back(detail::go_text(item.bytes));
    }
    out.emplace("finalizers", std::move(items));
  }
  return put_string(fields, 15, "clusterName", true, out, ctx) &&
         put_message_list(fields, 17, "managedFields", out, ctx, render_managed_fields_entry);
}

}  // namespace

detailed_result<json::value> metadata_to_json(const envelope& env) {
  decode_context ctx;
  message_fields fields;
  const wire_field* meta = nullptr;
  if (!fields.parse(env.raw, ctx) || !detail::last_bytes(fields, 1, meta, ctx)) {
    return ctx.failure();
  }
  json::object out;
  if (!env.kind.empty()) {
    out.emplace("kind", env.kind);
  }
  if (!env.api_version.empty()) {
    out.emplace("apiVersion", env.api_version);
  }
  path_segment segment(ctx, "metadata");
  json::object metadata;
  if (!render_object_meta(meta != nullptr ? meta->bytes : std::string_view{}, metadata, ctx)) {
    return ctx.failure();
  }
  out.emplace("metadata", std::move(metadata));
  return json::value(std::move(out));
}

}  // namespace informer::codec
