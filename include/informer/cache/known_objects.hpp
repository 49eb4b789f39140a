// informer/cache/known_objects.hpp
//
// The read side of a store that a DeltaFIFO consults: which keys the consumer already knows, so a
// relist can emit tombstones for the ones that vanished, and a resync can re-deliver them.
// `indexer` implements it.
//
// Thread safety: implementations must be safe to call from any thread.
#pragma once

#include "informer/core/object.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace informer {

class known_objects {
public:
  virtual ~known_objects() = default;
  /// Every key currently stored.
  virtual std::vector<std::string> list_keys() const = 0;
  /// The object stored under `key`, or nullptr.
  virtual object::ptr get_by_key(std::string_view key) const = 0;
};

}  // namespace informer
