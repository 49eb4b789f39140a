// informer/core/labels.hpp
//
// Read-only views of a label (or annotation) map, as selectors and indexes consume them.
// `labels_view` is a non-owning, sorted span of key/value pairs: objects hand one out that stays
// valid as long as the object lives. `label_set` owns its strings, for building labels in user
// code and tests.
//
// Thread safety: both types are immutable after construction; share freely between threads.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace informer {

/// One label: views into storage owned elsewhere.
struct label {
  std::string_view key;
  std::string_view value;
  friend bool operator==(const label&, const label&) = default;
};

/// A sorted, duplicate-free sequence of labels. Lookups are binary searches.
class labels_view {
public:
  labels_view() = default;
  /// `sorted` must be sorted by key with unique keys; the caller keeps the storage alive.
  explicit labels_view(std::span<const label> sorted) noexcept : items_(sorted) {}

  std::optional<std::string_view> get(std::string_view key) const noexcept {
    auto it = std::lower_bound(items_.begin(), items_.end(), key,
                               [](const label& l, std::string_view k) { return l.key < k; });
    if (it == items_.end() || it->key != key) return std::nullopt;
    return it->value;
  }
  bool contains(std::string_view key) const noexcept { return get(key).has_value(); }
  std::size_t size() const noexcept { return items_.size(); }
  bool empty() const noexcept { return items_.empty(); }
  auto begin() const noexcept { return items_.begin(); }
  auto end() const noexcept { return items_.end(); }

  friend bool operator==(const labels_view& a, const labels_view& b) noexcept {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

private:
  std::span<const label> items_;
};

/// An owning label map. Later duplicates of a key replace earlier ones.
class label_set {
public:
  label_set() = default;
  label_set(std::initializer_list<std::pair<std::string_view, std::string_view>> init) {
    for (auto& [k, v] : init) set(k, v);
  }
  label_set(const label_set& other) : owned_(other.owned_) { rebuild(); }
  label_set& operator=(const label_set& other) {
    owned_ = other.owned_;
    rebuild();
    return *this;
  }
  label_set(label_set&&) = default;
  label_set& operator=(label_set&&) = default;

  void set(std::string_view key, std::string_view value) {
    auto it = std::lower_bound(owned_.begin(), owned_.end(), key,
                               [](const auto& p, std::string_view k) { return p.first < k; });
    if (it != owned_.end() && it->first == key) {
      it->second = std::string(value);
    } else {
      owned_.emplace(it, std::string(key), std::string(value));
    }
    rebuild();
  }
  labels_view view() const noexcept { return labels_view(views_); }
  operator labels_view() const noexcept { return view(); }

private:
  void rebuild() {
    views_.clear();
    for (auto& [k, v] : owned_) views_.push_back({k, v});
  }
  std::vector<std::pair<std::string, std::string>> owned_;
  std::vector<label> views_;
};

}  // namespace informer
