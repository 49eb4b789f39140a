// Private to the event recorder (informer/apiserver/event_recorder.hpp): client-go's
// EventCorrelator, deciding for each recorded event what the server gets: a new Event, a patch of
// one written before (aggregation of identical and of similar events), or nothing (spam filter).
// Holds only keys, counts and token buckets; the recorder writes.
//
// Thread safety: not thread-safe; the recorder calls it under its lock.
#pragma once

#include "informer/apiserver/event_recorder.hpp"
#include "informer/core/token_bucket.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace informer::detail {

/// A map of at most `capacity` entries that evicts the least recently used (found or inserted).
template <class Value>
class lru_map {
public:
  explicit lru_map(std::size_t capacity) : capacity_(capacity) {}

  /// The entry under `key`, now the most recent; null when absent.
  Value* find(const std::string& key) {
    const auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }

  /// Sets `key` to `value` as the most recent entry, evicting the oldest when full.
  Value& put(const std::string& key, Value value) {
    if (auto* found = find(key)) return *found = std::move(value);
    if (order_.size() >= capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(key, std::move(value));
    index_.emplace(key, order_.begin());
    return order_.front().second;
  }

  std::size_t size() const noexcept { return order_.size(); }

private:
  using entry = std::pair<std::string, Value>;
  std::size_t capacity_;
  std::list<entry> order_;  // most recent first
  std::unordered_map<std::string, typename std::list<entry>::iterator> index_;
};

/// One event as recorded, before correlation.
struct event_occurrence {
  object_reference involved;
  std::string_view type;  // "Normal" / "Warning"
  std::string reason;
  std::string message;
  std::chrono::system_clock::time_point time;
};

/// What to write for an event.
struct correlated_event {
  /// An Event was written for this key before: patch it (and create it again if it is gone).
  bool patch = false;
  std::string name{};     // the Event's name
  std::string message{};  // the occurrence's, or the combined message
  std::int32_t count = 1;
  std::chrono::system_clock::time_point first_timestamp{};
};

class event_correlator {
public:
  /// Reads the limits and the source from `options` (checked by the recorder).
  explicit event_correlator(const event_recorder_options& options);

  /// The write for `e`, or nullopt when the spam filter drops it. As in client-go, a dropped
  /// occurrence still counts: the next Event written for its key carries it in `count`.
  std::optional<correlated_event> correlate(const event_occurrence& e);

private:
  struct similar_events {
    std::unordered_set<std::string> messages;  // distinct messages, up to the limit
    std::chrono::system_clock::time_point last;
  };
  struct observation {
    std::string name;
    std::int32_t count = 0;
    std::chrono::system_clock::time_point first_timestamp;
  };

  // "<name>.<hex nanoseconds>", the nanoseconds made unique within this correlator.
  std::string event_name(const std::string& involved_name, std::chrono::system_clock::time_point t);

  std::string source_;  // component and host, the start of every key
  std::size_t max_similar_;
  std::chrono::nanoseconds similar_window_;
  token_bucket_options spam_bucket_;
  lru_map<similar_events> similar_;
  lru_map<observation> observed_;
  lru_map<std::unique_ptr<token_bucket>> spam_;  // token_bucket holds a mutex: it does not move
  std::int64_t last_nanos_ = 0;
};

}  // namespace informer::detail
