#include "informer/cache/delta_fifo.hpp"

#include <algorithm>
#include <exception>
#include <iterator>
#include <unordered_set>
#include <utility>

namespace informer {

namespace {

// If `dl[older]` and `dl[older + 1]` are both deletions, drops one: the older is kept unless it is
// a tombstone, since an observed deletion carries the object's real final state. Relists and
// watches may report the same deletion twice, in either order.
void collapse_deletion_pair(delta_list& dl, std::size_t older) {
  if (older + 1 >= dl.size()) return;
  delta& a = dl[older];
  delta& b = dl[older + 1];
  if (a.type != delta_type::deleted || b.type != delta_type::deleted) return;
  if (a.final_state_unknown()) a = std::move(b);
  dl.erase(dl.begin() + static_cast<std::ptrdiff_t>(older) + 1);
}

// What an in-flight key counts as in the known store once processed: its newest object, or
// nothing when its newest delta deletes it.
object::ptr state_after(const delta_list& dl) {
  const delta& newest = dl.back();
  return newest.type == delta_type::deleted ? nullptr : newest.obj();
}

}  // namespace

std::string_view to_string(delta_type type) noexcept {
  switch (type) {
    case delta_type::added: return "Added";
    case delta_type::updated: return "Updated";
    case delta_type::deleted: return "Deleted";
    case delta_type::replaced: return "Replaced";
    case delta_type::sync: return "Sync";
  }
  return "Unknown";
}

std::string delta_key(const delta& d, const key_function& key_func) {
  if (const auto* t = d.tombstone()) return t->key;
  return key_func(*d.obj());
}

delta_fifo::delta_fifo(delta_fifo_options options) : options_(std::move(options)) {}

void delta_fifo::queue_action_locked(delta_type type, std::string key, delta d) {
  d.type = type;
  auto [it, inserted] = items_.try_emplace(std::move(key));
  delta_list& dl = it->second;
  dl.push_back(std::move(d));
  if (dl.size() >= 2) collapse_deletion_pair(dl, dl.size() - 2);
  if (inserted) {
    queue_.push_back(it->first);
    cond_.notify_one();
  }
}

void delta_fifo::add(object::ptr obj) {
  std::string key = options_.key_func(*obj);
  informer::lock_guard lock(mutex_);
  populated_ = true;
  queue_action_locked(delta_type::added, std::move(key), delta{.state = std::move(obj)});
}

void delta_fifo::update(object::ptr obj) {
  std::string key = options_.key_func(*obj);
  informer::lock_guard lock(mutex_);
  populated_ = true;
  queue_action_locked(delta_type::updated, std::move(key), delta{.state = std::move(obj)});
}

void delta_fifo::delete_object(object::ptr obj) {
  std::string key = options_.key_func(*obj);
  informer::lock_guard lock(mutex_);
  populated_ = true;
  if (!items_.contains(key)) {
    bool known = false;
    if (options_.known != nullptr) {
      auto flying = in_flight_.find(key);
      known = flying != in_flight_.end() ? flying->second != nullptr : options_.known->get_by_key(key) != nullptr;
    }
    // Unknown and unqueued: presumably a relist already reported this deletion.
    if (!known) return;
  }
  queue_action_locked(delta_type::deleted, std::move(key), delta{.state = std::move(obj)});
}

void delta_fifo::replace(std::vector<object::ptr> list, std::string /*resource_version*/,
                         const std::vector<std::string>& kept) {
  std::vector<std::string> list_keys;
  list_keys.reserve(list.size());
  for (const auto& obj : list) list_keys.push_back(options_.key_func(*obj));
  // Kept keys count as listed for the tombstones below, so they keep their state.
  std::unordered_set<std::string_view> listed(list_keys.begin(), list_keys.end());
  const std::size_t distinct_listed = listed.size();
  listed.insert(kept.begin(), kept.end());
  const delta_type action = options_.emit_delta_type_replaced ? delta_type::replaced : delta_type::sync;

  informer::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < list.size(); ++i) {
    queue_action_locked(action, list_keys[i], delta{.state = std::move(list[i])});
  }

  std::size_t queued_deletions = 0;
  auto tombstone = [&](const std::string& key, object::ptr last) INFORMER_REQUIRES(mutex_) {
    ++queued_deletions;
    queue_action_locked(delta_type::deleted, key,
                        delta{.state = deleted_final_state_unknown{.key = key, .obj = std::move(last)}});
  };

  // Queued keys the list lacks, unless their deletion is already queued. Appending to existing
  // keys does not reorder the queue, so the map's order does not matter here.
  for (auto& [key, dl] : items_) {
    if (listed.contains(key) || dl.back().type == delta_type::deleted) continue;
    ++queued_deletions;
    dl.push_back(
        delta{.type = delta_type::deleted, .state = deleted_final_state_unknown{.key = key, .obj = dl.back().obj()}});
  }

  if (options_.known != nullptr) {
    // Keys in flight count as stored with their newest state (as if `process` had finished).
    for (const auto& [key, last] : in_flight_) {
      if (last == nullptr || listed.contains(key) || items_.contains(key)) continue;
      tombstone(key, last);
    }
    for (const std::string& key : options_.known->list_keys()) {
      if (listed.contains(key) || items_.contains(key) || in_flight_.contains(key)) continue;
      tombstone(key, options_.known->get_by_key(key));
    }
  }

  if (!populated_) {
    populated_ = true;
    initial_population_count_ = distinct_listed + queued_deletions;
  }
  cond_.notify_all();
}

void delta_fifo::resync() {
  informer::lock_guard lock(mutex_);
  if (options_.known == nullptr) return;
  for (std::string& key : options_.known->list_keys()) {
    // A queued or in-flight key carries a newer state than the store's; re-sending the store's
    // would deliver a stale object after a fresh one.
    if (items_.contains(key) || in_flight_.contains(key)) continue;
    object::ptr obj = options_.known->get_by_key(key);
    if (obj == nullptr) continue;
    queue_action_locked(delta_type::sync, std::move(key), delta{.state = std::move(obj)});
  }
}

void delta_fifo::requeue_locked(const std::string& key, delta_list deltas) {
  populated_ = true;
  auto it = items_.find(key);
  if (it == items_.end()) {
    items_.emplace(key, std::move(deltas));
    queue_.push_back(key);
    return;
  }
  // Newer deltas arrived while processing and already hold the key's place in the queue. No
  // deletion pair can meet at the seam: while the requeued deltas ended in a deletion the key
  // counted as gone, so no deletion could be queued for it before an add or update.
  deltas.insert(deltas.end(), std::make_move_iterator(it->second.begin()), std::make_move_iterator(it->second.end()));
  it->second = std::move(deltas);
}

error_code delta_fifo::pop(const process_function& process) {
  informer::unique_lock lock(mutex_);
  for (;;) {
    if (auto key = take_ready_locked()) return process_locked(std::move(*key), process);
    if (closed_ && queue_.empty()) return errc::closed;
    cond_.wait(lock);
  }
}

std::optional<error_code> delta_fifo::try_pop(const process_function& process) {
  informer::unique_lock lock(mutex_);
  if (auto key = take_ready_locked()) return process_locked(std::move(*key), process);
  if (closed_ && queue_.empty()) return make_error_code(errc::closed);
  return std::nullopt;
}

std::optional<std::string> delta_fifo::take_ready_locked() {
  auto ready = std::find_if(queue_.begin(), queue_.end(),
                            [this](const std::string& k) INFORMER_REQUIRES(mutex_) { return !in_flight_.contains(k); });
  if (ready == queue_.end()) return std::nullopt;
  std::string key = std::move(*ready);
  queue_.erase(ready);
  return key;
}

error_code delta_fifo::process_locked(std::string key, const process_function& process) {
  auto node = items_.extract(key);
  delta_list deltas = std::move(node.mapped());
  const bool is_in_initial_list = !has_synced_locked();
  in_flight_.emplace(key, state_after(deltas));

  // Ends the flight under the lock, whether `process` returned or threw. The caller's scoped
  // lock still owns `mutex_` and releases it after this returns or throws.
  auto finish = [&](bool requeue) INFORMER_ACQUIRE(mutex_) {
    mutex_.lock();
    in_flight_.erase(key);
    if (requeue) requeue_locked(key, std::move(deltas));
    if (initial_population_count_ > 0) --initial_population_count_;
    // Newer deltas or the requeued ones make the key ready again; has_synced may have changed.
    cond_.notify_all();
  };

  mutex_.unlock();
  process_result outcome;
  try {
    outcome = process(key, deltas, is_in_initial_list);
  } catch (...) {
    finish(true);
    throw;
  }
  finish(outcome.requeue);
  return outcome.error;
}

bool delta_fifo::has_synced_locked() const { return populated_ && initial_population_count_ == 0; }

bool delta_fifo::has_synced() const {
  informer::lock_guard lock(mutex_);
  return has_synced_locked();
}

void delta_fifo::close() {
  informer::lock_guard lock(mutex_);
  closed_ = true;
  cond_.notify_all();
}

bool delta_fifo::is_closed() const {
  informer::lock_guard lock(mutex_);
  return closed_;
}

std::vector<std::string> delta_fifo::list_keys() const {
  informer::lock_guard lock(mutex_);
  return {queue_.begin(), queue_.end()};
}

std::optional<delta_list> delta_fifo::get_by_key(std::string_view key) const {
  informer::lock_guard lock(mutex_);
  auto it = items_.find(key);
  if (it == items_.end()) return std::nullopt;
  return it->second;
}

std::size_t delta_fifo::size() const {
  informer::lock_guard lock(mutex_);
  return queue_.size();
}

}  // namespace informer
