// What the etcd decoders share: edits of an object's JSON (etcd values lack the resourceVersion the
// key's revision gives them), the JSON decode path, and error texts that name the key.
#pragma once

#include "informer/core/error.hpp"
#include "informer/core/object.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <array>
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

namespace informer::etcd::detail {

/// Sets `metadata.resourceVersion` of `body` to `revision` (as a string, as the API server does).
/// With `go_order`, the field goes where Go's ObjectMeta puts it (after name, generateName,
/// namespace, selfLink and uid), so the text equals the server's for protobuf-decoded objects;
/// otherwise it is appended. False when `body` is not an object or its metadata not an object
/// (`metadata` is created when absent).
inline bool set_resource_version(boost::json::value& body, std::int64_t revision, bool go_order) {
  auto* object = body.if_object();
  if (object == nullptr) {
    return false;
  }
  auto& metadata_value = (*object)["metadata"];
  if (metadata_value.is_null()) {
    metadata_value = boost::json::object{};
  }
  auto* metadata = metadata_value.if_object();
  if (metadata == nullptr) {
    return false;
  }
  std::string text = std::to_string(revision);
  if (!go_order || metadata->contains("resourceVersion")) {
    (*metadata)["resourceVersion"] = std::move(text);
    return true;
  }
  static constexpr std::array<std::string_view, 5> before{"name", "generateName", "namespace", "selfLink", "uid"};
  boost::json::object ordered(metadata->storage());
  ordered.reserve(metadata->size() + 1);
  bool placed = false;
  for (auto& [key, value] : *metadata) {
    if (!placed && std::find(before.begin(), before.end(), std::string_view{key}) == before.end()) {
      ordered.emplace("resourceVersion", text);
      placed = true;
    }
    ordered.emplace(key, std::move(value));
  }
  if (!placed) {
    ordered.emplace("resourceVersion", std::move(text));
  }
  *metadata = std::move(ordered);
  return true;
}

/// `e` with a detail that names the etcd key and its mod_revision.
inline informer::error keyed(std::string_view key, std::int64_t mod_revision, const informer::error& e) {
  return {e.code(),
          "etcd key '" + std::string{key} + "' (mod_revision " + std::to_string(mod_revision) + "): " + e.detail()};
}

/// Checks that `body` is an object with object metadata and sets its resourceVersion (see
/// `set_resource_version`). Errors (not keyed): `errc::not_an_object`, `errc::invalid_field` for
/// metadata that is not an object.
inline informer::error prepare_body(boost::json::value& body, std::int64_t revision, bool go_order) {
  if (!body.is_object()) {
    return {informer::errc::not_an_object, "the value is not a JSON object"};
  }
  if (!set_resource_version(body, revision, go_order)) {
    return {informer::errc::invalid_field, "metadata is not an object"};
  }
  return {};
}

/// The JSON object stored as `text` under `key`, prepared as `prepare_body` does (appending the
/// resourceVersion). Errors, keyed: `errc::invalid_json`, and those of `prepare_body`.
inline detailed_result<boost::json::value> parse_body(std::string_view key, std::int64_t mod_revision,
                                                      std::string_view text, std::int64_t revision) {
  boost::system::error_code ec;
  boost::json::value body = boost::json::parse(text, ec);
  if (ec) {
    return keyed(key, mod_revision,
                 informer::error{informer::errc::invalid_json, "the value is not valid JSON: " + ec.message()});
  }
  if (auto e = prepare_body(body, revision, false)) {
    return keyed(key, mod_revision, e);
  }
  return body;
}

/// The object for a prepared `body`; errors of `object::from_json`, keyed.
inline detailed_result<object::ptr> keyed_object(std::string_view key, std::int64_t mod_revision,
                                                 const boost::json::value& body) {
  auto obj = object::from_json(body);
  if (!obj) {
    return keyed(key, mod_revision, obj.error());
  }
  return std::move(*obj);
}

}  // namespace informer::etcd::detail
