#include "informer/cache/indexer.hpp"

#include "cache/detail/posting_list.hpp"
#include "informer/core/key.hpp"

#include <algorithm>

namespace informer {
namespace {

using detail::posting_list;
using slot_list = std::vector<std::uint32_t>;

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

using postings_map = std::map<std::string, posting_list, std::less<>>;  // index value -> slots

struct index_data {
  index_func func;
  postings_map postings;
  // For the built-in indexes: true when two objects' values are equal without computing them (the
  // metadata they read is equal), so an update that keeps it builds no value strings.
  bool (*same_values)(const object&, const object&) = nullptr;
};

void posting_insert(postings_map& postings, const std::string& value, std::uint32_t slot) {
  auto entry = postings.find(value);
  if (entry == postings.end()) entry = postings.emplace(value, posting_list{}).first;
  entry->second.insert(slot);
}

void posting_erase(postings_map& postings, std::string_view value, std::uint32_t slot) {
  auto entry = postings.find(value);
  if (entry == postings.end()) return;
  entry->second.erase(slot);
  if (entry->second.empty()) postings.erase(entry);  // no stale values survive their last object
}

std::vector<std::string> namespace_values(const object& obj) { return {std::string(obj.ns())}; }
bool same_namespace(const object& a, const object& b) { return a.ns() == b.ns(); }
bool same_labels(const object& a, const object& b) { return a.labels() == b.labels(); }

std::vector<std::string> label_values(const object& obj) {
  std::vector<std::string> values;
  values.reserve(obj.labels().size());
  for (const auto& l : obj.labels()) {
    std::string v;
    v.reserve(l.key.size() + 1 + l.value.size());
    v.append(l.key).append("=").append(l.value);
    values.push_back(std::move(v));
  }
  return values;
}

// Values of `funcs` for one object, computed before anything is changed so that a throwing index
// function leaves the store untouched. With `other` (the other version of an updated object), an
// index whose values are known to be the same for both is left empty: there is nothing to refile.
std::vector<std::vector<std::string>> compute_values(const std::map<std::string, index_data, std::less<>>& indexes,
                                                     const object& obj, const object* other = nullptr) {
  std::vector<std::vector<std::string>> values;
  values.reserve(indexes.size());
  for (const auto& [name, data] : indexes) {
    if (other && data.same_values && data.same_values(obj, *other)) {
      values.emplace_back();
      continue;
    }
    auto v = data.func(obj);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    values.push_back(std::move(v));
  }
  return values;
}

}  // namespace

struct indexer::state {
  std::vector<object::ptr> slots;             // nullptr marks a free slot
  std::vector<const std::string*> slot_keys;  // key of each used slot (points into `keys`)
  std::vector<std::uint32_t> free_slots;
  std::unordered_map<std::string, std::uint32_t, string_hash, std::equal_to<>> keys;
  std::map<std::string, index_data, std::less<>> indexes;

  std::uint32_t allocate_slot() {
    if (!free_slots.empty()) {
      const auto s = free_slots.back();
      free_slots.pop_back();
      return s;
    }
    slots.emplace_back();
    slot_keys.push_back(nullptr);
    return static_cast<std::uint32_t>(slots.size() - 1);
  }

  void file(std::uint32_t slot, const std::vector<std::vector<std::string>>& values) {
    std::size_t i = 0;
    for (auto& [name, data] : indexes) {
      for (const auto& v : values[i]) posting_insert(data.postings, v, slot);
      ++i;
    }
  }

  // Moves `slot` from the values `before` to the values `after` (both sorted, per index), touching
  // only the values that differ: an update that keeps its labels leaves every posting list alone.
  void refile(std::uint32_t slot, const std::vector<std::vector<std::string>>& before,
              const std::vector<std::vector<std::string>>& after) {
    std::size_t i = 0;
    for (auto& [name, data] : indexes) {
      const auto& old_values = before[i];
      const auto& new_values = after[i];
      ++i;
      auto o = old_values.begin();
      auto n = new_values.begin();
      while (o != old_values.end() || n != new_values.end()) {
        if (n == new_values.end() || (o != old_values.end() && *o < *n)) {
          posting_erase(data.postings, *o++, slot);
        } else if (o == old_values.end() || *n < *o) {
          posting_insert(data.postings, *n++, slot);
        } else {
          ++o;
          ++n;
        }
      }
    }
  }

  void unfile(std::uint32_t slot, const std::vector<std::vector<std::string>>& values) {
    std::size_t i = 0;
    for (auto& [name, data] : indexes) {
      for (const auto& v : values[i]) posting_erase(data.postings, v, slot);
      ++i;
    }
  }

  const index_data* find_index(std::string_view name) const {
    auto it = indexes.find(name);
    return it == indexes.end() ? nullptr : &it->second;
  }

  const posting_list* postings(const index_data& index, std::string_view value) const {
    auto it = index.postings.find(value);
    return it == index.postings.end() ? nullptr : &it->second;
  }

  // Candidates for a selector query: the smallest set of slots that the selector's indexable terms
  // (or the namespace) allow. nullopt means "no indexable term: scan everything".
  std::optional<slot_list> plan(std::string_view ns, const label_selector& selector,
                                std::string* source = nullptr) const {
    std::optional<slot_list> best;
    std::size_t best_size = slots.size() - free_slots.size();
    auto consider = [&](std::vector<const posting_list*> lists, const auto& describe) {
      std::size_t n = 0;
      for (auto* l : lists) n += l ? l->size() : 0;
      if (best && n >= best_size) return;
      if (!best && n > best_size) return;
      slot_list merged;
      merged.reserve(n);
      for (auto* l : lists)
        if (l) l->append_to(merged);
      best = std::move(merged);
      best_size = n;
      if (source) *source = describe();
    };
    if (!ns.empty()) {
      if (const auto* index = find_index(namespace_index))
        consider({postings(*index, ns)}, [&] { return "namespace=" + std::string(ns); });
    }
    const auto* labels = find_index(label_index);
    if (!labels) return best;
    std::string value;
    for (const auto& req : selector.requirements()) {
      if (best && best_size == 0) break;
      switch (req.op) {
        case selector_op::equals:
        case selector_op::in: {
          std::vector<const posting_list*> lists;
          for (const auto& v : req.values) {
            value.assign(req.key).append("=").append(v);
            lists.push_back(postings(*labels, value));
          }
          consider(std::move(lists), [&] {
            if (req.values.size() == 1) return req.key + "=" + req.values[0];
            std::string text = req.key + " in (";
            for (std::size_t i = 0; i < req.values.size(); ++i) text.append(i ? "," : "").append(req.values[i]);
            return text + ")";
          });
          break;
        }
        case selector_op::exists: {
          // Label keys cannot contain '=', so "key=" .. "key>" spans exactly the key's values.
          std::vector<const posting_list*> lists;
          value.assign(req.key).append("=");
          const std::string upper = req.key + ">";
          for (auto it = labels->postings.lower_bound(value); it != labels->postings.end() && it->first < upper; ++it)
            lists.push_back(&it->second);
          consider(std::move(lists), [&] { return req.key; });
          break;
        }
        default: break;
      }
    }
    return best;
  }

  template <class F>
  void for_each_match(std::string_view ns, const label_selector& selector, F&& f) const {
    auto check = [&](const object& obj) { return (ns.empty() || obj.ns() == ns) && selector.matches(obj.labels()); };
    if (auto candidates = plan(ns, selector)) {
      for (auto s : *candidates) {
        const auto& obj = slots[s];
        if (obj && check(*obj)) f(obj);
      }
    } else {
      for (const auto& obj : slots)
        if (obj && check(*obj)) f(obj);
    }
  }
};

indexer::indexer(indexer_options options)
    : key_func_(options.key_func ? std::move(options.key_func) : [](const object& o) { return object_key(o); }),
      state_(std::make_unique<state>()) {
  if (options.index_namespace)
    state_->indexes.emplace(namespace_index, index_data{namespace_values, {}, same_namespace});
  if (options.index_labels) state_->indexes.emplace(label_index, index_data{label_values, {}, same_labels});
  for (auto& [name, func] : options.indexers) state_->indexes.emplace(name, index_data{std::move(func), {}, nullptr});
}

indexer::~indexer() = default;

// The analysis cannot express "guarded by readers_, or by writers_ for the only writer".
indexer::state& indexer::writer_state_locked() INFORMER_NO_THREAD_SAFETY_ANALYSIS { return *state_; }

void indexer::add(object::ptr obj) {
  if (!obj) return;
  informer::lock_guard writer(writers_);
  auto& st = writer_state_locked();
  std::string key = key_func_(*obj);
  auto it = st.keys.find(key);
  const object* stored = it != st.keys.end() ? st.slots[it->second].get() : nullptr;
  const auto new_values = compute_values(st.indexes, *obj, stored);
  std::vector<std::vector<std::string>> old_values;
  if (stored) old_values = compute_values(st.indexes, *stored, obj.get());

  object::ptr previous;  // released after the lock, so a last reference is freed outside it
  informer::unique_lock reader(readers_);
  if (it != st.keys.end()) {
    const auto slot = it->second;
    st.refile(slot, old_values, new_values);
    previous = std::exchange(st.slots[slot], std::move(obj));
  } else {
    const auto slot = st.allocate_slot();
    it = st.keys.emplace(std::move(key), slot).first;
    st.slots[slot] = std::move(obj);
    st.slot_keys[slot] = &it->first;
    st.file(slot, new_values);
  }
  reader.unlock();
}

void indexer::remove(const object& obj) { remove_key(key_func_(obj)); }

bool indexer::remove_key(std::string_view key) {
  informer::lock_guard writer(writers_);
  auto& st = writer_state_locked();
  auto it = st.keys.find(key);
  if (it == st.keys.end()) return false;
  const auto slot = it->second;
  const auto old_values = compute_values(st.indexes, *st.slots[slot]);
  object::ptr previous;
  informer::unique_lock reader(readers_);
  st.unfile(slot, old_values);
  previous = std::move(st.slots[slot]);
  st.slot_keys[slot] = nullptr;
  st.keys.erase(it);
  st.free_slots.push_back(slot);
  reader.unlock();
  return true;
}

void indexer::replace(std::vector<object::ptr> objects, std::string /*resource_version*/) {
  informer::lock_guard writer(writers_);
  auto fresh = std::make_unique<state>();
  for (const auto& [name, data] : writer_state_locked().indexes)
    fresh->indexes.emplace(name, index_data{data.func, {}, data.same_values});
  fresh->keys.reserve(objects.size());
  fresh->slots.reserve(objects.size());
  fresh->slot_keys.reserve(objects.size());
  for (auto& obj : objects) {
    if (!obj) continue;
    std::string key = key_func_(*obj);
    const auto values = compute_values(fresh->indexes, *obj);
    auto it = fresh->keys.find(key);
    if (it != fresh->keys.end()) {  // duplicate key in the list: the later object wins
      const auto slot = it->second;
      fresh->unfile(slot, compute_values(fresh->indexes, *fresh->slots[slot]));
      fresh->slots[slot] = std::move(obj);
      fresh->file(slot, values);
      continue;
    }
    const auto slot = fresh->allocate_slot();
    it = fresh->keys.emplace(std::move(key), slot).first;
    fresh->slots[slot] = std::move(obj);
    fresh->slot_keys[slot] = &it->first;
    fresh->file(slot, values);
  }
  informer::unique_lock reader(readers_);
  std::swap(state_, fresh);
  reader.unlock();
  // `fresh` now holds the old state; it is destroyed here, outside the readers' lock.
}

object::ptr indexer::get_by_key(std::string_view key) const {
  informer::shared_lock reader(readers_);
  auto it = state_->keys.find(key);
  return it == state_->keys.end() ? nullptr : state_->slots[it->second];
}

object::ptr indexer::get(const object& obj) const { return get_by_key(key_func_(obj)); }

std::vector<std::string> indexer::list_keys() const {
  informer::shared_lock reader(readers_);
  std::vector<std::string> keys;
  keys.reserve(state_->keys.size());
  for (const auto& [key, slot] : state_->keys) keys.push_back(key);
  return keys;
}

std::vector<object::ptr> indexer::list() const {
  informer::shared_lock reader(readers_);
  std::vector<object::ptr> out;
  out.reserve(state_->keys.size());
  for (const auto& obj : state_->slots)
    if (obj) out.push_back(obj);
  return out;
}

std::vector<object::ptr> indexer::list(const label_selector& selector) const { return list({}, selector); }

std::vector<object::ptr> indexer::list(std::string_view ns, const label_selector& selector) const {
  std::vector<object::ptr> out;
  informer::shared_lock reader(readers_);
  state_->for_each_match(ns, selector, [&](const object::ptr& obj) { out.push_back(obj); });
  return out;
}

std::size_t indexer::count(std::string_view ns, const label_selector& selector) const {
  std::size_t n = 0;
  informer::shared_lock reader(readers_);
  state_->for_each_match(ns, selector, [&](const object::ptr&) { ++n; });
  return n;
}

query_plan indexer::explain(std::string_view ns, const label_selector& selector) const {
  informer::shared_lock reader(readers_);
  query_plan plan;
  if (auto candidates = state_->plan(ns, selector, &plan.source)) {
    plan.candidates = candidates->size();
  } else {
    plan.source.clear();
    plan.candidates = state_->keys.size();
  }
  return plan;
}

std::size_t indexer::size() const {
  informer::shared_lock reader(readers_);
  return state_->keys.size();
}

result<std::vector<object::ptr>> indexer::by_index(std::string_view name, std::string_view value) const {
  informer::shared_lock reader(readers_);
  const auto* index = state_->find_index(name);
  if (!index) return make_error_code(errc::index_not_found);
  std::vector<object::ptr> out;
  if (const auto* list = state_->postings(*index, value)) {
    out.reserve(list->size());
    const auto& slots = state_->slots;  // (the analysis does not see the lock inside the lambda)
    list->for_each([&](std::uint32_t s) { out.push_back(slots[s]); });
  }
  return out;
}

result<std::vector<std::string>> indexer::index_keys(std::string_view name, std::string_view value) const {
  informer::shared_lock reader(readers_);
  const auto* index = state_->find_index(name);
  if (!index) return make_error_code(errc::index_not_found);
  std::vector<std::string> out;
  if (const auto* list = state_->postings(*index, value)) {
    out.reserve(list->size());
    const auto& keys = state_->slot_keys;  // (as in by_index)
    list->for_each([&](std::uint32_t s) { out.push_back(*keys[s]); });
  }
  return out;
}

result<std::vector<object::ptr>> indexer::index(std::string_view name, const object& obj) const {
  informer::shared_lock reader(readers_);
  const auto* index = state_->find_index(name);
  if (!index) return make_error_code(errc::index_not_found);
  auto values = index->func(obj);
  std::vector<std::uint32_t> slots;
  for (const auto& v : values)
    if (const auto* list = state_->postings(*index, v)) list->append_to(slots);
  std::sort(slots.begin(), slots.end());
  slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
  std::vector<object::ptr> out;
  out.reserve(slots.size());
  for (auto s : slots) out.push_back(state_->slots[s]);
  return out;
}

std::vector<std::string> indexer::list_index_func_values(std::string_view name) const {
  informer::shared_lock reader(readers_);
  std::vector<std::string> out;
  if (const auto* index = state_->find_index(name)) {
    out.reserve(index->postings.size());
    for (const auto& [value, list] : index->postings) out.push_back(value);
  }
  return out;
}

detailed_result<void> indexer::add_indexers(index_funcs funcs) {
  informer::lock_guard writer(writers_);
  auto& st = writer_state_locked();
  for (const auto& [name, func] : funcs) {
    if (st.indexes.count(name) != 0) return error{errc::already_exists, "an index named \"" + name + "\" exists"};
    if (!func) return error{errc::invalid_argument, "the index function of \"" + name + "\" is empty"};
  }
  // Backfill outside the readers' lock: readers keep using the existing indexes meanwhile.
  std::map<std::string, index_data, std::less<>> added;
  for (auto& [name, func] : funcs) {
    index_data data{std::move(func), {}};
    for (std::uint32_t s = 0; s < st.slots.size(); ++s) {
      if (!st.slots[s]) continue;
      auto values = data.func(*st.slots[s]);
      std::sort(values.begin(), values.end());
      values.erase(std::unique(values.begin(), values.end()), values.end());
      for (auto& v : values) data.postings[std::move(v)].insert(s);
    }
    added.emplace(name, std::move(data));
  }
  informer::unique_lock reader(readers_);
  st.indexes.merge(added);
  return {};
}

std::size_t indexer::memory_usage() const {
  informer::shared_lock reader(readers_);
  const auto& st = *state_;
  constexpr std::size_t node = 2 * sizeof(void*);  // per-allocation bookkeeping, roughly
  auto heap = [](const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 : 0; };
  std::size_t bytes = st.slots.capacity() * sizeof(object::ptr) + st.slot_keys.capacity() * sizeof(void*) +
                      st.free_slots.capacity() * sizeof(std::uint32_t) + st.keys.bucket_count() * sizeof(void*);
  for (const auto& [key, slot] : st.keys) bytes += sizeof(std::string) + sizeof(std::uint32_t) + node + heap(key);
  for (const auto& [name, data] : st.indexes) {
    for (const auto& [value, list] : data.postings)
      bytes += sizeof(std::string) + sizeof(posting_list) + 4 * sizeof(void*) + heap(value) + list.memory_usage();
  }
  for (const auto& obj : st.slots)
    if (obj) bytes += obj->memory_usage() + node;  // node: shared control block bookkeeping
  return bytes;
}

}  // namespace informer
