// Process-wide table of interned JSON map keys, shared by every packed object body.
//
// Kubernetes objects repeat the same keys over and over ("metadata", "containerPort", the "f:..."
// keys of managedFields); storing each once and referring to it by a small id is the largest single
// saving of the compact body. The table only grows, so it is bounded: keys longer than
// `max_key_length` or arriving after `capacity` ids are in use are not interned (the packed body
// then keeps them inline). Interned strings live until the process exits, so views into them never
// dangle.
//
// Not every position holds a fixed vocabulary: the keys of a ConfigMap's `data`, of annotations, or
// managedFields' `k:{"uid":"..."}` entries under `f:ownerReferences` vary without bound, and
// interning them would fill the table under churn. So the table learns per parent (the key of the
// map that holds the key): once `max_children_per_parent` distinct keys have been interned under
// one parent, later new keys under it stay inline (keys already interned are still found).
//
// Thread safety: `intern` is thread-safe (shared lock on the hit path, exclusive on insert).
// `lookup` takes no lock: an id is only ever read after the packed body holding it was published
// to the reading thread, which orders the slot write before the read.
#pragma once

#include "informer/core/mutex.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace informer::detail {

class key_table {
public:
  static constexpr std::size_t max_key_length = 64;
  static constexpr std::uint32_t chunk_bits = 10;
  static constexpr std::uint32_t chunk_size = 1u << chunk_bits;
  static constexpr std::uint32_t max_chunks = 256;
  static constexpr std::uint32_t capacity = chunk_size * max_chunks;
  static constexpr std::uint32_t max_children_per_parent = 512;
  /// Parent ids for keys that have no interned parent.
  static constexpr std::uint32_t root_parent = 0xfffffffe;
  static constexpr std::uint32_t inline_parent = 0xffffffff;

  static key_table& instance();

  /// The id of `key`, interning it if needed; nullopt when it is too long, the table is full, or
  /// `parent` (the id of the key whose map holds `key`, or `root_parent`/`inline_parent`) has had
  /// its share of distinct keys.
  std::optional<std::uint32_t> intern(std::string_view key, std::uint32_t parent);
  /// The key of an id that `intern` returned.
  std::string_view lookup(std::uint32_t id) const noexcept {
    return chunks_[id >> chunk_bits].load(std::memory_order_acquire)[id & (chunk_size - 1)];
  }
  std::uint32_t size() const noexcept { return size_.load(std::memory_order_acquire); }
  /// Heap bytes held by the table (strings, slots and the hash index).
  std::size_t memory_usage() const;

private:
  key_table() = default;

  mutable informer::shared_mutex mutex_;
  // The hash index (views into arena_) and the arena of key characters.
  std::unordered_map<std::string_view, std::uint32_t> index_ INFORMER_GUARDED_BY(mutex_);
  std::vector<std::unique_ptr<char[]>> arena_ INFORMER_GUARDED_BY(mutex_);
  std::size_t arena_used_ INFORMER_GUARDED_BY(mutex_) = 0;   // bytes used in arena_.back()
  std::size_t arena_bytes_ INFORMER_GUARDED_BY(mutex_) = 0;  // total bytes allocated in arena_
  // Keys interned so far under each parent, up to max_children_per_parent.
  std::unordered_map<std::uint32_t, std::uint32_t> children_ INFORMER_GUARDED_BY(mutex_);
  // Slots: written under mutex_, read without it (see the class comment).
  std::array<std::atomic<std::string_view*>, max_chunks> chunks_{};
  std::vector<std::unique_ptr<std::string_view[]>> chunk_owner_ INFORMER_GUARDED_BY(mutex_);
  std::atomic<std::uint32_t> size_{0};
};

}  // namespace informer::detail
