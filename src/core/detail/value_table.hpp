// Process-wide table of shared string values, reference-counted.
//
// Objects of one workload repeat most of their strings (images, image digests, mount paths,
// policies, container names); a pod's unique strings (uid, name, IPs, timestamps) are the
// minority. The packed encoder stores a repeated value once here and refers to it by id; each
// object holds one reference per use and drops it when destroyed, so an entry lives exactly as
// long as some object uses it.
//
// Which values to share is learnt per position: the encoder keeps, for every (enclosing key,
// key) pair such as (containers, image) or (metadata, uid), how often a value was already in the
// table. Positions whose values rarely repeat stop being shared after a short trial, so unique
// strings stay inline and cost nothing here.
//
// Thread safety: `session` holds `mutex_` for the encoding of one object, so acquisitions and the
// statistics are serialised; `release` takes it too. `lookup` takes no lock: a reader only asks
// for ids it holds references to (through a live object), which keeps the entry alive and its
// text immutable, and the object's publication orders the entry's write before the read.
#pragma once

#include "informer/core/mutex.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace informer::detail {

class value_table {
public:
  static constexpr std::size_t min_length = 4;  // shorter strings are cheaper inline
  static constexpr std::size_t max_length = 4096;
  static constexpr std::uint32_t chunk_bits = 12;
  static constexpr std::uint32_t chunk_size = 1u << chunk_bits;
  static constexpr std::uint32_t max_chunks = 1024;  // up to 4M distinct live values
  static constexpr std::uint32_t trial = 64;         // values seen before a position is judged

  static value_table& instance();

  /// Holds the table's lock while one object is encoded.
  class session {
  public:
    explicit session(value_table& table) : table_(table), lock_(table.mutex_) {}
    /// The id of `text` with one more reference, or nullopt when the position's values are not
    /// shared (or the table is full). `position` identifies (enclosing key, key).
    // Not analysed: `lock_` holds `table_.mutex_` for the session's whole life, but the analysis
    // tracks only locks held in a function's own scope, not one held by a member.
    std::optional<std::uint32_t> acquire(std::uint64_t position,
                                         std::string_view text) INFORMER_NO_THREAD_SAFETY_ANALYSIS;

  private:
    value_table& table_;
    informer::lock_guard<informer::mutex> lock_;
  };

  /// Drops one reference to each id.
  void release(std::span<const std::uint32_t> ids);
  std::string_view lookup(std::uint32_t id) const noexcept {
    return chunks_[id >> chunk_bits].load(std::memory_order_acquire)[id & (chunk_size - 1)].text;
  }
  /// Live entries.
  std::size_t size() const;
  /// Heap bytes held by the table.
  std::size_t memory_usage() const;

private:
  value_table() = default;

  struct entry {
    std::string_view text;   // points into an allocation owned by the entry (new char[])
    std::uint32_t refs = 0;  // guarded by the table's mutex_
  };
  struct position_stats {
    std::uint32_t seen = 0;
    std::uint32_t repeats = 0;
    bool shared = true;
  };

  mutable informer::mutex mutex_;
  std::unordered_map<std::string_view, std::uint32_t> index_ INFORMER_GUARDED_BY(mutex_);
  std::unordered_map<std::uint64_t, position_stats> positions_ INFORMER_GUARDED_BY(mutex_);
  std::vector<std::uint32_t> free_ids_ INFORMER_GUARDED_BY(mutex_);
  std::uint32_t next_id_ INFORMER_GUARDED_BY(mutex_) = 0;
  std::size_t text_bytes_ INFORMER_GUARDED_BY(mutex_) = 0;
  std::array<std::atomic<entry*>, max_chunks> chunks_{};  // slots: see class comment
  std::vector<std::unique_ptr<entry[]>> chunk_owner_ INFORMER_GUARDED_BY(mutex_);
};

}  // namespace informer::detail
