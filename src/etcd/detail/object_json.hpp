// Edits of an object's JSON shared by the etcd decoders: etcd values lack the resourceVersion the
// key's revision gives them.
#pragma once

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

}  // namespace informer::etcd::detail
