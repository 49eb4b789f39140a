#include "core/detail/key_table.hpp"

#include <cstring>

namespace informer::detail {
namespace {
constexpr std::size_t arena_block = 16 * 1024;
}

key_table& key_table::instance() {
  static key_table* table = new key_table();  // never destroyed: views into it must outlive statics
  return *table;
}

std::optional<std::uint32_t> key_table::intern(std::string_view key, std::uint32_t parent) {
  if (key.size() > max_key_length) return std::nullopt;
  const auto saturated_locked = [&]() INFORMER_REQUIRES_SHARED(mutex_) {
    const auto it = children_.find(parent);
    return it != children_.end() && it->second >= max_children_per_parent;
  };
  {
    informer::shared_lock lock(mutex_);
    if (auto it = index_.find(key); it != index_.end()) return it->second;
    // The common miss at a high-cardinality position is answered without the exclusive lock.
    if (saturated_locked()) return std::nullopt;
  }
  informer::lock_guard lock(mutex_);
  if (auto it = index_.find(key); it != index_.end()) return it->second;
  const std::uint32_t id = size_.load(std::memory_order_relaxed);
  if (id >= capacity || saturated_locked()) return std::nullopt;
  ++children_[parent];

  if (arena_.empty() || arena_used_ + key.size() > arena_block) {
    arena_.push_back(std::make_unique<char[]>(arena_block));
    arena_used_ = 0;
    arena_bytes_ += arena_block;
  }
  char* dst = arena_.back().get() + arena_used_;
  std::memcpy(dst, key.data(), key.size());
  arena_used_ += key.size();
  const std::string_view stored(dst, key.size());

  const std::uint32_t chunk = id >> chunk_bits;
  std::string_view* slots = chunks_[chunk].load(std::memory_order_relaxed);
  if (slots == nullptr) {
    chunk_owner_.push_back(std::make_unique<std::string_view[]>(chunk_size));
    slots = chunk_owner_.back().get();
    chunks_[chunk].store(slots, std::memory_order_release);
  }
  slots[id & (chunk_size - 1)] = stored;
  index_.emplace(stored, id);
  size_.store(id + 1, std::memory_order_release);
  return id;
}

std::size_t key_table::memory_usage() const {
  informer::shared_lock lock(mutex_);
  return arena_bytes_ + chunk_owner_.size() * chunk_size * sizeof(std::string_view) +
         index_.size() * (sizeof(std::string_view) + sizeof(std::uint32_t) + 2 * sizeof(void*)) +
         index_.bucket_count() * sizeof(void*) + children_.size() * (2 * sizeof(std::uint32_t) + 2 * sizeof(void*)) +
         children_.bucket_count() * sizeof(void*);
}

}  // namespace informer::detail
