#include "apiserver/detail/list_watch_codec.hpp"

#include "informer/client/status.hpp"
#include "informer/codec/protobuf.hpp"
#include "informer/core/key.hpp"

#include "codec/detail/wire.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>

#include <cstdint>
#include <utility>

namespace informer::detail {

namespace json = boost::json;

namespace {

json::parse_options parse_options() {
  json::parse_options o;
  o.max_depth = object::max_depth;  // Kubernetes objects nest deeper than Boost.JSON's default 32
  return o;
}

informer::error malformed(std::string what) { return {errc::malformed_response, std::move(what)}; }

// A codec error as the lister-watcher reports it: oversize frames keep their meaning.
informer::error from_codec(const informer::error& e, std::string_view context) {
  // Protobuf's own limits keep their code: the source then reads the resource as JSON instead.
  if (needs_json(e)) return {e.code(), std::string(context) + ": " + e.detail()};
  const bool too_large = e.code() == make_error_code(codec::errc::frame_too_large);
  return {too_large ? errc::object_too_large : errc::malformed_response, std::string(context) + ": " + e.what()};
}

std::string_view string_at(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view{};
}

std::string_view metadata_string(const json::object& o, std::string_view key) {
  const auto* md = o.if_contains("metadata");
  return md != nullptr && md->is_object() ? string_at(md->get_object(), key) : std::string_view{};
}

// `in` with kind and apiVersion leading, as a GET returns them: filled in where missing, or
// replaced (`replace`, for PartialObjectMetadata).
json::object with_type(json::object in, std::string_view kind, std::string_view api_version, bool replace) {
  if (!replace && !string_at(in, "kind").empty() && !string_at(in, "apiVersion").empty()) return in;
  json::object out(in.storage());
  out.reserve(in.size() + 2);
  out.emplace("kind", kind);
  out.emplace("apiVersion", api_version);
  for (auto& [key, value] : in)
    if (key != "kind" && key != "apiVersion") out.emplace(key, std::move(value));
  return out;
}

detailed_result<object::ptr> build(const json::value& v, const decode_settings& s, std::string_view context) {
  auto obj = object::from_json(v, s.object);
  if (obj) return *obj;
  const bool too_large = obj.error().code() == make_error_code(errc::object_too_large);
  return informer::error{too_large ? errc::object_too_large : errc::malformed_response,
                         std::string(context) + ": " + obj.error().what()};
}

// The cache key an item's metadata gives, or "" when it names no object (or, for a namespaced
// resource, no namespace: the key could not match the cached one).
std::string item_key(const json::object* item, const resource& res) {
  if (item == nullptr) return {};
  const auto name = metadata_string(*item, "name");
  const auto ns = metadata_string(*item, "namespace");
  if (name.empty() || (res.namespaced && ns.empty())) return {};
  return make_key(ns, name);
}

// "item 3 (ns/name) of the list of pods": where an item that cannot be decoded sits, with its key
// when its metadata says it.
std::string item_context(std::size_t index, const std::string& key, std::string_view list) {
  std::string out = "item " + std::to_string(index);
  if (!key.empty()) out += " (" + key + ")";
  return out + " of " + std::string(list);
}

// An item that cannot be decoded is left out of the page when its key is known (the reflector
// keeps its cached state); without a key nothing could protect it, so the page fails. So does an
// item with fields the schemas lack: read as JSON, it would decode.
bool skip_item(object_list& page, std::string key, informer::error e) {
  if (key.empty() || needs_json(e)) return false;
  page.skipped.push_back(skipped_item{.key = std::move(key), .error = std::move(e)});
  return true;
}

std::string item_kind(std::string_view list_kind, const decode_settings& s) {
  constexpr std::string_view suffix = "List";
  if (s.metadata_only || list_kind.size() <= suffix.size() || !list_kind.ends_with(suffix)) return s.res.kind;
  return std::string(list_kind.substr(0, list_kind.size() - suffix.size()));
}

// --- The list and Status messages are read field by field with the codec's wire reader: no
// schema needed. A field of the wrong wire type makes the message malformed.

using codec::detail::wire_field;
using codec::detail::wire_type;

// Calls `f(field)` for each field of `message`; false for bytes that are not a message, or when
// `f` says so.
template <class F>
bool for_each_field(std::string_view message, F&& f) {
  codec::detail::decode_context ctx;
  codec::detail::wire_reader reader(message);
  wire_field field;
  while (!reader.done()) {
    if (!reader.next(field, ctx) || !f(field)) return false;
  }
  return true;
}

bool read_bytes(const wire_field& f, std::string& out) {
  if (f.type != wire_type::length_delimited) return false;
  out = std::string(f.bytes);
  return true;
}

// metav1.Status. With the schemas compiled in, the whole of it (details and causes included, so it
// classifies exactly as the same Status sent as JSON); without, {message = 3, reason = 4, code = 6}.
detailed_result<status> status_from_protobuf(std::string_view raw) {
  if (codec::has_schemas()) {
    auto as_json = codec::message_to_json("k8s.io.apimachinery.pkg.apis.meta.v1.Status", raw);
    if (!as_json) return malformed("the Status of an ERROR watch event: " + as_json.error().what());
    return status::from_json(*as_json);
  }
  status s;
  const bool ok = for_each_field(raw, [&](const wire_field& f) {
    if (f.number == 3) return read_bytes(f, s.message);
    if (f.number == 4) return read_bytes(f, s.reason);
    if (f.number == 6) {
      s.code = static_cast<std::int32_t>(f.value);
      return f.type == wire_type::varint;
    }
    return true;
  });
  if (!ok) return malformed("the Status of an ERROR watch event is not a valid protobuf message");
  return s;
}

detailed_result<object_list> decode_json_list(std::string_view body, const decode_settings& s) {
  boost::system::error_code ec;
  auto doc = json::parse(body, ec, {}, parse_options());
  if (ec) return malformed("the list of " + to_string(s.res) + " is not valid JSON: " + ec.message());
  auto* list = doc.if_object();
  auto* items = list != nullptr ? list->if_contains("items") : nullptr;
  if (items == nullptr || !(items->is_array() || items->is_null()))
    return malformed("the list of " + to_string(s.res) + " has no items array");
  const std::string kind = item_kind(string_at(*list, "kind"), s);
  std::string api_version(string_at(*list, "apiVersion"));
  if (s.metadata_only || api_version.empty()) api_version = s.res.api_version();

  object_list out;
  out.resource_version = std::string(metadata_string(*list, "resourceVersion"));
  out.continue_token = std::string(metadata_string(*list, "continue"));
  if (const auto* md = list->if_contains("metadata"); md != nullptr && md->is_object())
    if (const auto* n = md->get_object().if_contains("remainingItemCount"); n != nullptr && n->is_int64())
      out.remaining_item_count = n->get_int64();
  if (items->is_null()) return out;
  auto& array = items->get_array();
  out.items.reserve(array.size());
  const std::string list_name = "the list of " + to_string(s.res);
  for (std::size_t i = 0; i < array.size(); ++i) {
    if (!array[i].is_object()) return malformed(item_context(i, "", list_name) + " is not an object");
    std::string key = item_key(&array[i].get_object(), s.res);
    const std::string context = item_context(i, key, list_name);
    json::value item = with_type(std::move(array[i].get_object()), kind, api_version, s.metadata_only);
    array[i] = nullptr;  // frees the item's DOM as we go
    auto obj = build(item, s, context);
    if (obj) {
      out.items.push_back(std::move(*obj));
    } else if (!skip_item(out, std::move(key), obj.error())) {
      return obj.error();
    }
  }
  return out;
}

// An item of a protobuf list, or the object of a protobuf watch event, as JSON.
detailed_result<json::value> object_from_protobuf(codec::envelope env, const decode_settings& s,
                                                  const std::string& api_version, const std::string& kind) {
  if (s.metadata_only) {
    env.api_version = api_version;
    env.kind = kind;
    return codec::metadata_to_json(env);
  }
  return codec::to_json(env, {.reject_unknown_fields = true});
}

detailed_result<object_list> decode_protobuf_list(std::string_view body, const decode_settings& s) {
  auto env = codec::unwrap_envelope(body);
  if (!env) return from_codec(env.error(), "the protobuf list of " + to_string(s.res));
  const std::string kind = item_kind(env->kind, s);
  const std::string api_version =
      s.metadata_only || env->api_version.empty() ? s.res.api_version() : std::string(env->api_version);
  object_list out;
  informer::error failure;
  const std::string list_name = "the protobuf list of " + to_string(s.res);
  std::size_t index = 0;
  // A list is {ListMeta metadata = 1; repeated <Kind> items = 2}; ListMeta {resourceVersion = 2,
  // continue = 3, remainingItemCount = 4}.
  const bool ok = for_each_field(env->raw, [&](const wire_field& f) {
    if (f.number == 1) {
      if (f.type != wire_type::length_delimited) return false;
      return for_each_field(f.bytes, [&](const wire_field& m) {
        if (m.number == 2) return read_bytes(m, out.resource_version);
        if (m.number == 3) return read_bytes(m, out.continue_token);
        if (m.number == 4) {
          out.remaining_item_count = static_cast<std::int64_t>(m.value);
          return m.type == wire_type::varint;
        }
        return true;
      });
    }
    if (f.number != 2) return true;
    if (f.type != wire_type::length_delimited) return false;
    const codec::envelope item_env{.api_version = api_version, .kind = kind, .raw = f.bytes};
    const std::size_t i = index++;
    // The key, for the report, from the metadata alone (which may decode when the rest does not).
    auto fail = [&](auto&& error) {
      auto md = codec::metadata_to_json(item_env);
      std::string key = item_key(md && md->is_object() ? &md->get_object() : nullptr, s.res);
      auto e = error(item_context(i, key, list_name));
      if (skip_item(out, std::move(key), e)) return true;
      failure = std::move(e);
      return false;
    };
    auto item = object_from_protobuf(item_env, s, api_version, kind);
    if (!item) return fail([&](const std::string& context) { return from_codec(item.error(), context); });
    auto obj = build(*item, s, "");
    if (!obj) {
      return fail([&](const std::string& context) {
        return informer::error{obj.error().code(), context + obj.error().detail()};
      });
    }
    out.items.push_back(std::move(*obj));
    return true;
  });
  if (failure) return failure;
  if (!ok) return malformed("the protobuf list of " + to_string(s.res) + " is not a valid protobuf message");
  return out;
}

detailed_result<watch_event_type> event_type(std::string_view type) {
  if (type == "ADDED") return watch_event_type::added;
  if (type == "MODIFIED") return watch_event_type::modified;
  if (type == "DELETED") return watch_event_type::deleted;
  if (type == "BOOKMARK") return watch_event_type::bookmark;
  if (type == "ERROR") return watch_event_type::error;
  return malformed("unknown watch event type \"" + std::string(type) + "\"");
}

}  // namespace

bool needs_json(const informer::error& e) noexcept {
  return e.code() == make_error_code(codec::errc::unknown_field) ||
         e.code() == make_error_code(codec::errc::unsupported);
}

bool is_protobuf(std::string_view content_type) noexcept {
  return content_type.starts_with("application/vnd.kubernetes.protobuf");
}

detailed_result<object_list> decode_list(std::string_view content_type, std::string_view body,
                                         const decode_settings& settings) {
  if (is_protobuf(content_type) || body.starts_with(codec::protobuf_magic)) return decode_protobuf_list(body, settings);
  return decode_json_list(body, settings);
}

watch_decoder::watch_decoder(bool protobuf, decode_settings settings)
    : protobuf_(protobuf),
      settings_(std::move(settings)),
      frames_({.max_frame_bytes = settings_.max_frame_bytes}),
      parser_({}, parse_options()) {}

void watch_decoder::feed(std::string_view bytes) {
  if (failure_) return;
  if (protobuf_) {
    frames_.feed(bytes);
    return;
  }
  pending_.erase(0, parsed_);  // once per read, not once per event
  parsed_ = 0;
  pending_.append(bytes);
}

informer::error watch_decoder::fail(informer::error e) {
  failure_ = e;
  pending_.clear();
  parsed_ = 0;
  return e;
}

detailed_result<std::optional<watch_event>> watch_decoder::next() {
  if (failure_) return failure_;
  auto r = protobuf_ ? next_protobuf() : next_json();
  if (!r) return fail(r.error());
  return r;
}

detailed_result<std::optional<watch_event>> watch_decoder::next_json() {
  // Events are JSON objects one after another (the server writes one per line; lines may be split
  // or joined by the transport): parse exactly one value at a time and keep the rest.
  std::size_t& used = parsed_;
  std::optional<json::value> value;
  while (used < pending_.size() && !value) {
    boost::system::error_code ec;
    const std::size_t n = parser_.write_some(pending_.data() + used, pending_.size() - used, ec);
    if (ec) return malformed("a watch event is not valid JSON: " + ec.message());
    if (!in_value_)
      in_value_ = std::string_view(pending_.data() + used, n).find_first_not_of(" \t\r\n") != std::string_view::npos;
    used += n;
    value_bytes_ += n;
    if (value_bytes_ > settings_.max_frame_bytes)
      return informer::error{errc::object_too_large, "a watch event of " + to_string(settings_.res) +
                                                         " exceeds the limit of " +
                                                         std::to_string(settings_.max_frame_bytes) + " bytes"};
    if (parser_.done()) {
      value = parser_.release();
      parser_.reset();  // keeps the options given at construction
      in_value_ = false;
      value_bytes_ = 0;
    }
  }
  if (!value) return std::optional<watch_event>{};

  auto* event = value->if_object();
  auto* obj = event != nullptr ? event->if_contains("object") : nullptr;
  if (obj == nullptr || !obj->is_object()) return malformed("a watch event without an object");
  auto type = event_type(string_at(*event, "type"));
  if (!type) return type.error();
  watch_event out{.type = *type, .obj = nullptr, .resource_version = {}, .error_status = {}};
  switch (*type) {
    case watch_event_type::bookmark:
      out.resource_version = std::string(metadata_string(obj->get_object(), "resourceVersion"));
      break;
    case watch_event_type::error: out.error_status = status::from_json(*obj); break;
    default: {
      const std::string api_version = settings_.res.api_version();
      json::value typed =
          with_type(std::move(obj->get_object()), settings_.res.kind, api_version, settings_.metadata_only);
      auto built = build(typed, settings_, "the object of a " + std::string(to_string(*type)) + " event");
      if (!built) return built.error();
      out.obj = std::move(*built);
      out.resource_version = std::string(out.obj->resource_version());
    }
  }
  return std::optional<watch_event>{std::move(out)};
}

detailed_result<std::optional<watch_event>> watch_decoder::next_protobuf() {
  auto frame = frames_.next();
  if (!frame) return from_codec(frame.error(), "the protobuf watch stream of " + to_string(settings_.res));
  if (!*frame) return std::optional<watch_event>{};
  auto decoded = codec::decode_watch_event(**frame);
  if (!decoded) return from_codec(decoded.error(), "a protobuf watch event of " + to_string(settings_.res));
  auto type = event_type(decoded->type);
  if (!type) return type.error();
  watch_event out{.type = *type, .obj = nullptr, .resource_version = {}, .error_status = {}};
  const std::string context = "the object of a " + std::string(to_string(*type)) + " event";
  switch (*type) {
    case watch_event_type::error: {
      auto s = status_from_protobuf(decoded->object.raw);
      if (!s) return s.error();
      out.error_status = std::move(*s);
      break;
    }
    case watch_event_type::bookmark: {
      auto md = codec::metadata_to_json(decoded->object);
      if (!md) return from_codec(md.error(), context);
      out.resource_version = std::string(metadata_string(md->get_object(), "resourceVersion"));
      break;
    }
    default: {
      const std::string api_version = settings_.res.api_version();
      auto body = object_from_protobuf(decoded->object, settings_, api_version, settings_.res.kind);
      if (!body) return from_codec(body.error(), context);
      auto built = build(*body, settings_, context);
      if (!built) return built.error();
      out.obj = std::move(*built);
      out.resource_version = std::string(out.obj->resource_version());
    }
  }
  return std::optional<watch_event>{std::move(out)};
}

informer::error watch_decoder::finish() const {
  if (failure_) return failure_;
  if (protobuf_) {
    if (auto e = frames_.finish()) return from_codec(e, "the protobuf watch stream of " + to_string(settings_.res));
    return {};
  }
  if (in_value_ || pending_.find_first_not_of(" \t\r\n", parsed_) != std::string::npos)
    return malformed("the watch stream of " + to_string(settings_.res) + " ended inside an event");
  return {};
}

}  // namespace informer::detail
