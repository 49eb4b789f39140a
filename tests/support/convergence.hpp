// tests/support/convergence.hpp
//
// The end of every fault scenario: did the informer converge, and is what its handlers saw
// consistent with it?
// - `handler_view` is an event handler that rebuilds the cache from notifications alone (key ->
//   object) and records every inconsistency: an add for a key it already holds, an update or a
//   delete for a key it never got (or whose `old` object is not the one it holds), as lines of
//   text. It can be slow on purpose (a delay per notification), to keep a slow handler in the
//   scenario throughout.
// - `check_convergence` waits until the informer's cache equals a fresh list from the server (same
//   keys and resourceVersions), then until the handler has caught up with the cache, and returns
//   every difference it still finds: keys, resourceVersions, bodies (field by field), the
//   handler's view against the cache, the handler's inconsistencies, and every key that the
//   handler saw added and that is gone from the server without a delete having reached it.
//   Empty means converged.
//
// Thread safety: `handler_view` is thread-safe (its handlers run on the informer's strand, the test
// reads from its own thread). Lock rule: `mutex_` guards the view, the counters and the problems;
// the slow handler sleeps outside it.
#pragma once

#include "informer/client/shared_informer.hpp"
#include "informer/core/key.hpp"
#include "informer/core/mutex.hpp"
#include "informer/core/object.hpp"

#include "json_diff.hpp"
#include "wait.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace informer::testing {

class handler_view {
public:
  /// `delay(n)` is how long the n-th notification takes (a slow handler); empty: no delay.
  explicit handler_view(std::function<std::chrono::nanoseconds(std::uint64_t)> delay = {}) : delay_(std::move(delay)) {}

  /// Adds this view as a handler of `informer`; call once.
  void attach(shared_informer& informer) {
    registration_ = informer.add_event_handler({
        .on_add = [this](const object::ptr& obj, bool) { on_add(obj); },
        .on_update = [this](const object::ptr& old_obj, const object::ptr& new_obj) { on_update(old_obj, new_obj); },
        .on_delete = [this](const deleted_object& d) { on_delete(d); },
    });
  }
  const handler_registration& registration() const { return registration_; }

  /// key -> resourceVersion, as the notifications built it.
  std::map<std::string, std::string> versions() const {
    informer::lock_guard lock(mutex_);
    std::map<std::string, std::string> out;
    for (const auto& [key, obj] : view_) out.emplace(key, std::string(obj->resource_version()));
    return out;
  }
  std::vector<std::string> problems() const {
    informer::lock_guard lock(mutex_);
    return problems_;
  }
  /// Keys ever added, and how many deletes (tombstones among them) reached each.
  std::set<std::string> ever_added() const {
    informer::lock_guard lock(mutex_);
    return ever_added_;
  }
  std::map<std::string, int> deletes() const {
    informer::lock_guard lock(mutex_);
    return deletes_;
  }
  struct totals {
    std::uint64_t adds = 0, updates = 0, deletes = 0, tombstones = 0;
  };
  totals counts() const {
    informer::lock_guard lock(mutex_);
    return totals_;
  }

private:
  void slow() {
    if (!delay_) return;
    std::uint64_t n = 0;
    {
      informer::lock_guard lock(mutex_);
      n = notifications_++;
    }
    std::this_thread::sleep_for(delay_(n));
  }

  void on_add(const object::ptr& obj) {
    slow();
    const auto key = object_key(*obj);
    informer::lock_guard lock(mutex_);
    ++totals_.adds;
    if (view_.contains(key)) problems_.push_back("add for " + key + ", which the handler already holds");
    view_[key] = obj;
    ever_added_.insert(key);
  }

  void on_update(const object::ptr& old_obj, const object::ptr& new_obj) {
    slow();
    const auto key = object_key(*new_obj);
    informer::lock_guard lock(mutex_);
    ++totals_.updates;
    auto it = view_.find(key);
    if (it == view_.end()) {
      problems_.push_back("update for " + key + ", which the handler never got added");
    } else if (it->second->resource_version() != old_obj->resource_version()) {
      problems_.push_back("update for " + key + " from resourceVersion " + std::string(old_obj->resource_version()) +
                          ", but the handler holds " + std::string(it->second->resource_version()));
    }
    view_[key] = new_obj;
  }

  void on_delete(const deleted_object& d) {
    slow();
    informer::lock_guard lock(mutex_);
    ++totals_.deletes;
    if (d.final_state_unknown()) ++totals_.tombstones;
    if (!d.obj()) {
      problems_.push_back("a delete without any object");
      return;
    }
    const auto key = object_key(*d.obj());
    ++deletes_[key];
    if (view_.erase(key) == 0) problems_.push_back("delete for " + key + ", which the handler does not hold");
  }

  std::function<std::chrono::nanoseconds(std::uint64_t)> delay_;
  handler_registration registration_;
  mutable informer::mutex mutex_;
  std::uint64_t notifications_ INFORMER_GUARDED_BY(mutex_) = 0;
  std::map<std::string, object::ptr> view_ INFORMER_GUARDED_BY(mutex_);
  std::set<std::string> ever_added_ INFORMER_GUARDED_BY(mutex_);
  std::map<std::string, int> deletes_ INFORMER_GUARDED_BY(mutex_);
  std::vector<std::string> problems_ INFORMER_GUARDED_BY(mutex_);
  totals totals_ INFORMER_GUARDED_BY(mutex_);
};

namespace detail {

inline std::map<std::string, std::string> cache_versions(const shared_informer& informer) {
  std::map<std::string, std::string> out;
  for (const auto& obj : informer.get_store()->list())
    out.emplace(object_key(*obj), std::string(obj->resource_version()));
  return out;
}

inline std::string describe_key_differences(const std::map<std::string, std::string>& a,
                                            const std::map<std::string, std::string>& b, const std::string& a_name,
                                            const std::string& b_name, std::size_t max_lines = 20) {
  std::string text;
  std::size_t lines = 0;
  const auto line = [&](const std::string& s) {
    if (lines++ < max_lines) text += "\n  " + s;
  };
  for (const auto& [key, rv] : a) {
    auto it = b.find(key);
    if (it == b.end()) {
      line(key + " (" + rv + "): only in " + a_name);
    } else if (it->second != rv) {
      line(key + ": " + a_name + " at " + rv + ", " + b_name + " at " + it->second);
    }
  }
  for (const auto& [key, rv] : b)
    if (!a.contains(key)) line(key + " (" + rv + "): only in " + b_name);
  if (lines > max_lines) text += "\n  ... " + std::to_string(lines - max_lines) + " more";
  return text;
}

}  // namespace detail

/// Waits up to `timeout` for `informer` and `view` to converge on `server_list()` (a fresh list
/// from the server, taken once the writes have stopped; called again while they differ, at most
/// every second); returns what still differs, empty when converged (see the file comment).
inline std::string check_convergence(const shared_informer& informer, const handler_view& view,
                                     const std::function<std::vector<object::ptr>()>& server_list,
                                     std::chrono::nanoseconds timeout) {
  std::vector<object::ptr> listed = server_list();
  std::map<std::string, std::string> server;
  const auto index = [&] {
    server.clear();
    for (const auto& obj : listed) server.emplace(object_key(*obj), std::string(obj->resource_version()));
  };
  index();
  auto last_list = std::chrono::steady_clock::now();
  const bool converged = eventually(
      [&] {
        if (detail::cache_versions(informer) == server && view.versions() == server &&
            view.registration().pending() == 0)
          return true;
        if (std::chrono::steady_clock::now() - last_list > std::chrono::seconds(1)) {
          listed = server_list();
          index();
          last_list = std::chrono::steady_clock::now();
        }
        return false;
      },
      timeout, std::chrono::milliseconds(20));
  std::string out;
  const auto cache = detail::cache_versions(informer);
  if (cache != server) {
    out += "\nthe cache differs from the server:" + detail::describe_key_differences(cache, server, "cache", "server");
  }
  for (const auto& obj : listed) {
    const auto cached = informer.get_store()->get(*obj);
    if (!cached || cached->resource_version() != obj->resource_version()) continue;
    const auto diff = describe_json_differences(cached->body(), obj->body(), "the cache's", "the server's");
    if (!diff.empty()) out += "\n" + object_key(*obj) + " differs from the server:" + diff;
  }
  const auto seen = view.versions();
  if (seen != cache) {
    out += "\nthe handler's view differs from the cache:" +
           detail::describe_key_differences(seen, cache, "handler", "cache");
  }
  for (const auto& p : view.problems()) out += "\nhandler: " + p;
  const auto deletes = view.deletes();
  for (const auto& key : view.ever_added()) {
    if (!server.contains(key) && !deletes.contains(key))
      out += "\n" + key + " is gone from the server but its delete never reached the handler";
  }
  if (!converged && out.empty()) out = "\nthe handler still had notifications pending";
  return out;
}

}  // namespace informer::testing
