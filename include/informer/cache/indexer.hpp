// informer/cache/indexer.hpp
//
// `indexer` is the thread-safe object cache that controllers read from: a key -> object store plus
// named indexes (client-go's ThreadSafeStore + Indexer). An index is a function from an object to
// the values it is filed under; `by_index(name, value)` returns the objects filed under a value.
//
// Two indexes are built in (both can be turned off in `indexer_options`):
//   - "namespace": the object's namespace (cluster-scoped objects are filed under "").
//   - "labels": one value `key=value` per label. It serves label-selector queries:
//     `list(selector)` intersects the postings of the selector's `k=v` / `k in (...)` / `k`
//     terms, starting from the smallest, and filters the candidates by the remaining terms, so a
//     query that matches 1% of the cache reads only that 1% (plus whatever the smallest term
//     over-selects). Only a selector without any such term (e.g. only `!=`, `notin`, `!k`) scans.
//
// Postings are sorted lists of 32-bit slot numbers, not key strings: an object costs one slot,
// one key string and about four bytes per index value. An update files only the index values that
// changed (one that keeps its labels touches no posting), and a posting list is kept in blocks, so
// the cost of an update does not grow with the number of objects under a value (issue 12).
//
// Thread safety: every member is thread-safe. Readers (get, list, by_index, ...) share a lock and
// never block each other; writers are serialised among themselves and take the readers' lock
// exclusively only to publish their change, so a reader sees each object either entirely before
// or entirely after an update, never half of one. `replace` and `add_indexers` build their new
// state before taking the readers' lock. Index functions run with the writers' lock held: they
// must not call back into the same indexer, and they must not throw (an exception propagates
// out of the writing call, and the store is left as it was before the call).
#pragma once

#include "informer/cache/known_objects.hpp"
#include "informer/core/error.hpp"
#include "informer/core/label_selector.hpp"
#include "informer/core/mutex.hpp"
#include "informer/core/object.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace informer {

/// Maps an object to the values it is indexed under (possibly none).
using index_func = std::function<std::vector<std::string>(const object&)>;
/// Named index functions.
using index_funcs = std::map<std::string, index_func, std::less<>>;

/// Name of the built-in namespace index.
inline constexpr std::string_view namespace_index = "namespace";
/// Name of the built-in label index; its values are `key=value`.
inline constexpr std::string_view label_index = "labels";

struct indexer_options {
  /// The object's key; defaults to `object_key` (`namespace/name`).
  std::function<std::string(const object&)> key_func;
  bool index_namespace = true;
  bool index_labels = true;
  /// Additional indexes, present from the start.
  index_funcs indexers{};
};

/// How `list(ns, selector)` answers a query (see `indexer::explain`).
struct query_plan {
  /// The term the candidates come from: `namespace=<ns>`, a label term such as `app=web`, or
  /// empty when the query scans every object.
  std::string source;
  /// Objects the query reads and filters.
  std::size_t candidates = 0;
};

class indexer final : public known_objects {
public:
  explicit indexer(indexer_options options = {});
  ~indexer() override;
  indexer(const indexer&) = delete;
  indexer& operator=(const indexer&) = delete;

  // --- writes -------------------------------------------------------------------------------
  /// Inserts or replaces the object under its key (add and update are the same operation).
  void add(object::ptr obj);
  void update(object::ptr obj) { add(std::move(obj)); }
  /// Removes the object stored under `obj`'s key; no-op when absent.
  void remove(const object& obj);
  /// Removes the object under `key`; returns whether one was there.
  bool remove_key(std::string_view key);
  /// Replaces the whole content with `objects` (a later duplicate key wins). Readers see the old
  /// content until the new one is complete. `resource_version` is the list's; kept for callers.
  void replace(std::vector<object::ptr> objects, std::string resource_version = {});

  // --- reads --------------------------------------------------------------------------------
  object::ptr get_by_key(std::string_view key) const override;
  object::ptr get(const object& obj) const;
  std::vector<std::string> list_keys() const override;
  std::vector<object::ptr> list() const;
  /// Objects whose labels match `selector`, answered from the label index when it can.
  std::vector<object::ptr> list(const label_selector& selector) const;
  /// As above, restricted to one namespace.
  std::vector<object::ptr> list(std::string_view ns, const label_selector& selector) const;
  /// Number of objects whose labels match, without copying them out.
  std::size_t count(std::string_view ns, const label_selector& selector) const;
  std::size_t size() const;
  /// How a selector query would be answered, without running it.
  query_plan explain(std::string_view ns, const label_selector& selector) const;

  // --- indexes (client-go's Indexer) --------------------------------------------------------
  /// Objects filed under `value` in index `name`. Errors: `errc::index_not_found`.
  result<std::vector<object::ptr>> by_index(std::string_view name, std::string_view value) const;
  /// Keys of the objects filed under `value` in index `name`. Errors: `errc::index_not_found`.
  result<std::vector<std::string>> index_keys(std::string_view name, std::string_view value) const;
  /// Objects sharing at least one value of index `name` with `obj`. Errors: `errc::index_not_found`.
  result<std::vector<object::ptr>> index(std::string_view name, const object& obj) const;
  /// Every value index `name` holds. Empty when there is no such index.
  std::vector<std::string> list_index_func_values(std::string_view name) const;
  /// Adds indexes, filing every object already present (backfill). Errors:
  /// `errc::already_exists` when a name is taken, `errc::invalid_argument` when a function is empty
  /// (then none of `funcs` is added).
  detailed_result<void> add_indexers(index_funcs funcs);

  /// Bytes used by the store and its indexes, objects included (an estimate from capacities).
  std::size_t memory_usage() const;

  /// The state the indexer publishes; declared here so `detail` helpers can name it.
  struct state;

private:
  // The current state, for a writer: only writers change `state_` or `*state_`, and they hold
  // `writers_` throughout, so `writers_` alone is enough to read it.
  state& writer_state_locked() INFORMER_REQUIRES(writers_);

  std::function<std::string(const object&)> key_func_;
  mutable informer::mutex writers_;         // serialises every write; held while computing a new state
  mutable informer::shared_mutex readers_;  // shared for reads, exclusive to publish
  // Written with writers_ and readers_ held; read with readers_ held, or by writer_state_locked.
  std::unique_ptr<state> state_ INFORMER_GUARDED_BY(readers_) INFORMER_PT_GUARDED_BY(readers_);
};

}  // namespace informer
