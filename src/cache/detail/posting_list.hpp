// cache/detail/posting_list.hpp
//
// `posting_list` is the set of slot numbers the indexer files under one index value, kept in
// increasing order (the order queries return objects in). It is a sequence of sorted blocks of at
// most `block_capacity` numbers, so an insert or an erase moves the numbers of one block, not of
// the whole set: a value that holds nearly every object (the namespace, `name=user-service`) costs
// the same to update at 100,000 objects as at 1,000 (issue 12). The block directory itself moves
// only when a block splits or goes away, at most once per `block_capacity / 2` changes to a block.
// Filled in order, it takes about four bytes per number, as a flat array does. Blocks keep their
// capacity when numbers leave (a split block keeps room for 256), so a list that shrank may hold up
// to about 16 bytes per remaining number.
//
// Thread safety: none; the indexer's locks guard every list.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace informer::detail {

class posting_list {
public:
  static constexpr std::size_t block_capacity = 256;

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  /// Adds `slot`; returns false when it was there already.
  bool insert(std::uint32_t slot) {
    if (blocks_.empty() || blocks_.back().back() < slot) {  // appending: the common case while filling
      if (blocks_.empty() || blocks_.back().size() == block_capacity) blocks_.emplace_back();
      blocks_.back().push_back(slot);
      ++size_;
      return true;
    }
    const auto b = block_of(slot);
    auto* block = &blocks_[b];
    auto it = std::lower_bound(block->begin(), block->end(), slot);
    if (*it == slot) return false;  // block_of chose a block whose last number is >= slot
    if (block->size() == block_capacity) {
      // Split in halves; the new block holds the upper half and `slot` goes to its half.
      const auto offset = it - block->begin();
      constexpr auto half = static_cast<std::ptrdiff_t>(block_capacity / 2);
      block_type upper(block->begin() + half, block->end());
      // The new block first: should that throw, the list is unchanged.
      blocks_.insert(blocks_.begin() + static_cast<std::ptrdiff_t>(b) + 1, std::move(upper));
      blocks_[b].erase(blocks_[b].begin() + half, blocks_[b].end());
      block = &blocks_[offset >= half ? b + 1 : b];
      it = block->begin() + (offset >= half ? offset - half : offset);
    }
    block->insert(it, slot);
    ++size_;
    return true;
  }

  /// Removes `slot`; returns false when it was not there.
  bool erase(std::uint32_t slot) {
    if (blocks_.empty() || blocks_.back().back() < slot) return false;
    const auto b = block_of(slot);
    auto& block = blocks_[b];
    auto it = std::lower_bound(block.begin(), block.end(), slot);
    if (*it != slot) return false;
    block.erase(it);
    --size_;
    if (block.empty()) {
      blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(b));
    } else if (b + 1 < blocks_.size() && block.size() + blocks_[b + 1].size() <= block_capacity / 2) {
      // Merge with the next block so that erasures cannot leave many nearly empty blocks behind.
      block.insert(block.end(), blocks_[b + 1].begin(), blocks_[b + 1].end());
      blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(b) + 1);
    }
    return true;
  }

  /// Calls `f(slot)` for each slot in increasing order.
  template <class F>
  void for_each(F&& f) const {
    for (const auto& block : blocks_)
      for (auto s : block) f(s);
  }

  /// Appends the slots, in increasing order, to `out`.
  void append_to(std::vector<std::uint32_t>& out) const {
    for (const auto& block : blocks_) out.insert(out.end(), block.begin(), block.end());
  }

  /// Heap bytes held (capacities, not sizes).
  std::size_t memory_usage() const noexcept {
    std::size_t bytes = blocks_.capacity() * sizeof(block_type);
    for (const auto& block : blocks_) bytes += block.capacity() * sizeof(std::uint32_t);
    return bytes;
  }

private:
  using block_type = std::vector<std::uint32_t>;  // sorted, never empty

  // Index of the first block whose last number is >= slot; requires one to exist.
  std::size_t block_of(std::uint32_t slot) const {
    auto it = std::lower_bound(blocks_.begin(), blocks_.end(), slot,
                               [](const block_type& b, std::uint32_t s) { return b.back() < s; });
    return static_cast<std::size_t>(it - blocks_.begin());
  }

  std::vector<block_type> blocks_;  // blocks_[i].back() < blocks_[i + 1].front()
  std::size_t size_ = 0;
};

}  // namespace informer::detail
