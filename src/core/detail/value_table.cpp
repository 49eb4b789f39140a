#include "core/detail/value_table.hpp"

#include <cstring>

namespace informer::detail {

value_table& value_table::instance() {
  static value_table* table = new value_table();  // never destroyed: objects may outlive statics
  return *table;
}

std::optional<std::uint32_t> value_table::session::acquire(std::uint64_t position, std::string_view text) {
  if (text.size() < min_length || text.size() > max_length) return std::nullopt;
  auto& t = table_;
  auto& stats = t.positions_[position];
  if (!stats.shared) return std::nullopt;

  auto found = t.index_.find(text);
  if (stats.seen < trial) {
    ++stats.seen;
    if (found != t.index_.end()) ++stats.repeats;
    // Judge the position once: share it only if at least a third of its values repeated.
    if (stats.seen == trial && stats.repeats * 3 < stats.seen) {
      stats.shared = false;
      return std::nullopt;
    }
  }
  if (found != t.index_.end()) {
    auto& e = t.chunks_[found->second >> chunk_bits].load(std::memory_order_relaxed)[found->second & (chunk_size - 1)];
    ++e.refs;
    return found->second;
  }

  std::uint32_t id;
  if (!t.free_ids_.empty()) {
    id = t.free_ids_.back();
    t.free_ids_.pop_back();
  } else {
    if (t.next_id_ >= chunk_size * max_chunks) return std::nullopt;
    id = t.next_id_++;
  }
  const std::uint32_t chunk = id >> chunk_bits;
  entry* slots = t.chunks_[chunk].load(std::memory_order_relaxed);
  if (slots == nullptr) {
    t.chunk_owner_.push_back(std::make_unique<entry[]>(chunk_size));
    slots = t.chunk_owner_.back().get();
    t.chunks_[chunk].store(slots, std::memory_order_release);
  }
  char* copy = new char[text.size()];
  std::memcpy(copy, text.data(), text.size());
  auto& e = slots[id & (chunk_size - 1)];
  e.text = std::string_view(copy, text.size());
  e.refs = 1;
  t.index_.emplace(e.text, id);
  t.text_bytes_ += text.size();
  return id;
}

void value_table::release(std::span<const std::uint32_t> ids) {
  if (ids.empty()) return;
  informer::lock_guard lock(mutex_);
  for (const auto id : ids) {
    auto& e = chunks_[id >> chunk_bits].load(std::memory_order_relaxed)[id & (chunk_size - 1)];
    if (--e.refs != 0) continue;
    index_.erase(e.text);
    text_bytes_ -= e.text.size();
    delete[] e.text.data();
    e.text = {};
    free_ids_.push_back(id);
  }
}

std::size_t value_table::size() const {
  informer::lock_guard lock(mutex_);
  return index_.size();
}

std::size_t value_table::memory_usage() const {
  informer::lock_guard lock(mutex_);
  constexpr std::size_t node = sizeof(std::string_view) + sizeof(std::uint32_t) + 2 * sizeof(void*);
  return text_bytes_ + index_.size() * (node + 16) + index_.bucket_count() * sizeof(void*) +
         chunk_owner_.size() * chunk_size * sizeof(entry) + free_ids_.capacity() * sizeof(std::uint32_t) +
         positions_.size() * (sizeof(position_stats) + 8 + 2 * sizeof(void*));
}

}  // namespace informer::detail
