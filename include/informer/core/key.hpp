// informer/core/key.hpp
//
// The cache key of an object, as client-go's MetaNamespaceKeyFunc makes it: `namespace/name` for
// namespaced objects and `name` for cluster-scoped ones; and its inverse.
//
// Thread safety: pure functions.
#pragma once

#include "informer/core/error.hpp"

#include <string>
#include <string_view>

namespace informer {

class object;

/// `namespace/name`, or `name` when `ns` is empty.
std::string make_key(std::string_view ns, std::string_view name);

/// The key of `obj` (see `make_key`).
std::string object_key(const object& obj);

/// A key split back into its parts; `ns` is empty for cluster-scoped keys.
struct key_parts {
  std::string_view ns;
  std::string_view name;
};

/// Splits `key`. Errors: `errc::invalid_key` when the key is empty, has more than one '/', or has
/// an empty namespace or name around the '/'.
detailed_result<key_parts> split_key(std::string_view key);

}  // namespace informer
