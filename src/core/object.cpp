#include "informer/core/object.hpp"

#include "core/detail/packed_json.hpp"
#include "informer/core/key.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>

namespace informer {

namespace packed = detail::packed;

struct object_builder {
  // Fills the views of `obj` from its own packed body. Errors name the offending field.
  static error read_metadata(object& obj) {
    const packed::value_ref root(obj.packed_.data());
    if (!root.is_object()) return {errc::not_an_object, "the top-level value is not a JSON object"};

    auto string_field = [](packed::value_ref parent, std::string_view key, std::string_view path,
                           std::string_view& out) -> error {
      const auto v = parent.find(key);
      if (v.is_null()) return {};
      if (!v.is_string()) return {errc::invalid_field, std::string(path) + " is not a string"};
      out = v.as_string();
      return {};
    };
    if (auto e = string_field(root, "apiVersion", "apiVersion", obj.api_version_)) return e;
    if (auto e = string_field(root, "kind", "kind", obj.kind_)) return e;

    const auto meta = root.find("metadata");
    if (meta.is_null()) return {errc::missing_name, "the object has no metadata"};
    if (!meta.is_object()) return {errc::invalid_field, "metadata is not an object"};

    if (auto e = string_field(meta, "name", "metadata.name", obj.name_)) return e;
    if (obj.name_.empty()) return {errc::missing_name, "metadata.name is missing or empty"};
    if (auto e = string_field(meta, "namespace", "metadata.namespace", obj.ns_)) return e;
    if (auto e = string_field(meta, "uid", "metadata.uid", obj.uid_)) return e;
    if (auto e = string_field(meta, "resourceVersion", "metadata.resourceVersion", obj.resource_version_)) return e;
    if (auto e = string_field(meta, "creationTimestamp", "metadata.creationTimestamp", obj.creation_timestamp_))
      return e;
    if (auto e = string_field(meta, "deletionTimestamp", "metadata.deletionTimestamp", obj.deletion_timestamp_))
      return e;

    if (const auto g = meta.find("generation"); !g.is_null()) {
      if (!g.to_int64(obj.generation_)) return {errc::invalid_field, "metadata.generation is not an integer"};
    }

    auto string_map = [](packed::value_ref parent, std::string_view key, std::string_view path,
                         std::vector<label>& out) -> error {
      const auto v = parent.find(key);
      if (v.is_null()) return {};
      if (!v.is_object()) return {errc::invalid_field, std::string(path) + " is not an object"};
      out.reserve(v.size());
      error failure;
      v.for_each_member([&](std::string_view k, packed::value_ref value) {
        if (!value.is_string()) {
          failure = {errc::invalid_field, std::string(path) + "." + std::string(k) + " is not a string"};
          return false;
        }
        out.push_back({k, value.as_string()});
        return true;
      });
      if (failure) return failure;
      std::sort(out.begin(), out.end(), [](const label& a, const label& b) { return a.key < b.key; });
      // JSON objects may repeat a key; the last occurrence wins, as in Kubernetes' decoder.
      auto last = std::unique(out.rbegin(), out.rend(), [](const label& a, const label& b) { return a.key == b.key; });
      out.erase(out.begin(), last.base());
      out.shrink_to_fit();
      return {};
    };
    if (auto e = string_map(meta, "labels", "metadata.labels", obj.labels_)) return e;
    if (auto e = string_map(meta, "annotations", "metadata.annotations", obj.annotations_)) return e;

    if (const auto fin = meta.find("finalizers"); !fin.is_null()) {
      if (!fin.is_array()) return {errc::invalid_field, "metadata.finalizers is not an array"};
      error failure;
      fin.for_each_element([&](packed::value_ref f) {
        if (!f.is_string()) {
          failure = {errc::invalid_field, "metadata.finalizers holds a non-string"};
          return false;
        }
        obj.finalizers_.push_back(f.as_string());
        return true;
      });
      if (failure) return failure;
    }

    if (const auto refs = meta.find("ownerReferences"); !refs.is_null()) {
      if (!refs.is_array()) return {errc::invalid_field, "metadata.ownerReferences is not an array"};
      error failure;
      refs.for_each_element([&](packed::value_ref r) {
        if (!r.is_object()) {
          failure = {errc::invalid_field, "metadata.ownerReferences holds a non-object"};
          return false;
        }
        owner_reference ref;
        for (auto [key, out] : {std::pair{"apiVersion", &ref.api_version}, std::pair{"kind", &ref.kind},
                                std::pair{"name", &ref.name}, std::pair{"uid", &ref.uid}}) {
          if (auto e = string_field(r, key, std::string("metadata.ownerReferences[].") + key, *out)) {
            failure = e;
            return false;
          }
        }
        if (const auto c = r.find("controller"); c.valid() && c.type() == packed::tag::true_) ref.controller = true;
        if (const auto b = r.find("blockOwnerDeletion"); b.valid() && b.type() == packed::tag::true_)
          ref.block_owner_deletion = true;
        obj.owner_references_.push_back(ref);
        return true;
      });
      if (failure) return failure;
    }
    return {};
  }

  // Whether `v` nests deeper than `limit` (the packed codec recurses once per level).
  static bool too_deep(const boost::json::value& v, std::size_t limit) {
    if (limit == 0) return true;
    if (const auto* o = v.if_object()) {
      for (const auto& m : *o)
        if (too_deep(m.value(), limit - 1)) return true;
    } else if (const auto* a = v.if_array()) {
      for (const auto& e : *a)
        if (too_deep(e, limit - 1)) return true;
    }
    return false;
  }

  static detailed_result<object::ptr> build(const boost::json::value& value, std::size_t max_bytes) {
    if (!value.is_object()) return error{errc::not_an_object, "the top-level value is not a JSON object"};
    if (too_deep(value, object::max_depth)) {
      return error{errc::object_too_large,
                   "the object nests deeper than " + std::to_string(object::max_depth) + " levels"};
    }
    auto obj = std::make_shared<object>(object::passkey{});
    packed::encode(value, obj->packed_);
    if (obj->packed_.size() > max_bytes) {
      return error{errc::object_too_large, "the packed body has " + std::to_string(obj->packed_.size()) +
                                               " bytes, over the limit of " + std::to_string(max_bytes)};
    }
    obj->packed_.shrink_to_fit();
    if (auto e = read_metadata(*obj)) return e;
    return object::ptr(std::move(obj));
  }
};

object::~object() {
  if (!packed_.empty()) packed::release_shared(packed::value_ref(packed_.data()));
}

detailed_result<object::ptr> object::parse(std::string_view json_text, const object_options& options) {
  if (json_text.size() > options.max_bytes) {
    return error{errc::object_too_large, "the JSON text has " + std::to_string(json_text.size()) +
                                             " bytes, over the limit of " + std::to_string(options.max_bytes)};
  }
  // The DOM is transient: a monotonic arena sized to the text, dropped once the body is packed.
  boost::json::monotonic_resource arena(json_text.size() * 2 + 1024);
  boost::json::error_code ec;
  boost::json::parse_options limits;
  limits.max_depth = max_depth;
  boost::json::value value = boost::json::parse(json_text, ec, &arena, limits);
  if (ec) return error{errc::invalid_json, ec.message()};
  return object_builder::build(value, options.max_bytes);
}

detailed_result<object::ptr> object::from_json(const boost::json::value& value, const object_options& options) {
  return object_builder::build(value, options.max_bytes);
}

boost::json::value object::body() const { return packed::decode(packed::value_ref(packed_.data())); }

std::string object::to_json() const {
  boost::json::monotonic_resource arena;
  return boost::json::serialize(packed::decode(packed::value_ref(packed_.data()), &arena));
}

std::optional<boost::json::value> object::field(std::string_view dotted_path) const {
  packed::value_ref v(packed_.data());
  while (!dotted_path.empty()) {
    const auto dot = dotted_path.find('.');
    const auto step = dotted_path.substr(0, dot);
    dotted_path = dot == std::string_view::npos ? std::string_view{} : dotted_path.substr(dot + 1);
    if (v.is_object()) {
      v = v.find(step);
    } else if (v.is_array()) {
      std::size_t index = 0;
      auto [end, ec] = std::from_chars(step.data(), step.data() + step.size(), index);
      if (ec != std::errc{} || end != step.data() + step.size()) return std::nullopt;
      v = v.at(index);
    } else {
      return std::nullopt;
    }
    if (!v.valid()) return std::nullopt;
  }
  return packed::decode(v);
}

std::size_t object::memory_usage() const noexcept {
  auto heap = [](const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 : 0; };
  return sizeof(object) + heap(packed_) + labels_.capacity() * sizeof(label) + annotations_.capacity() * sizeof(label) +
         owner_references_.capacity() * sizeof(owner_reference) + finalizers_.capacity() * sizeof(std::string_view);
}

bool same_content(const object& a, const object& b) { return a.packed_ == b.packed_ || a.body() == b.body(); }

}  // namespace informer
