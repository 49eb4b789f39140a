#include "informer/core/key.hpp"

#include "informer/core/object.hpp"

namespace informer {

std::string make_key(std::string_view ns, std::string_view name) {
  std::string key;
  key.reserve(ns.size() + name.size() + 1);
  if (!ns.empty()) {
    key.append(ns);
    key.push_back('/');
  }
  key.append(name);
  return key;
}

std::string object_key(const object& obj) { return make_key(obj.ns(), obj.name()); }

detailed_result<key_parts> split_key(std::string_view key) {
  if (key.empty()) return error{errc::invalid_key, "the key is empty"};
  const auto slash = key.find('/');
  if (slash == std::string_view::npos) return key_parts{{}, key};
  if (key.find('/', slash + 1) != std::string_view::npos) {
    return error{errc::invalid_key, "\"" + std::string(key) + "\" has more than one '/'"};
  }
  if (slash == 0 || slash + 1 == key.size()) {
    return error{errc::invalid_key, "\"" + std::string(key) + "\" has an empty namespace or name"};
  }
  return key_parts{key.substr(0, slash), key.substr(slash + 1)};
}

}  // namespace informer
