// informer/cache/lister.hpp
//
// `lister` is the read side a reconcile function uses: typed-free client-go Lister over an
// informer's cache. `get` finds one object by namespace and name, `list` answers label-selector
// queries from the indexer's label index (reading only the candidates of the selector's most
// selective term; see `indexer`). It copies nothing but shared pointers: the objects are the
// cache's own, immutable, and stay valid for as long as the caller holds them.
//
// Keys: `get` builds `namespace/name` (or `name`), the default key; it does not find objects of
// an indexer built with a different `key_func`.
//
// Errors: none; an absent object is a null pointer. The constructor throws std::invalid_argument for
// a null indexer (a programming error).
//
// Thread safety: thread-safe (the indexer is); copy freely. Lifetimes: a lister shares ownership
// of its indexer, so it stays usable after the informer that filled it is gone (the content then
// no longer changes).
#pragma once

#include "informer/cache/indexer.hpp"
#include "informer/core/label_selector.hpp"
#include "informer/core/object.hpp"

#include <memory>
#include <string_view>
#include <vector>

namespace informer {

class lister {
public:
  /// `store` must not be null.
  explicit lister(std::shared_ptr<const indexer> store);

  /// The namespaced object `ns/name` (`name` alone when `ns` is empty), or null.
  object::ptr get(std::string_view ns, std::string_view name) const;
  /// The cluster-scoped object `name`, or null.
  object::ptr get(std::string_view name) const;

  /// Every cached object whose labels match `selector` (everything by default), any namespace.
  std::vector<object::ptr> list(const label_selector& selector = {}) const;
  /// As above, in namespace `ns` only; an empty `ns` means every namespace.
  std::vector<object::ptr> list(std::string_view ns, const label_selector& selector) const;

  /// The indexer behind this lister, for `by_index` and other queries.
  const indexer& store() const noexcept { return *store_; }

private:
  std::shared_ptr<const indexer> store_;
};

}  // namespace informer
