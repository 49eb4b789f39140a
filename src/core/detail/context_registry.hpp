// Private to the library: work that waits outside an execution context (on gRPC's threads, on an
// etcd client's thread) and will post into that context when it completes.
//
// Asio destroys the pending handlers of its own I/O objects when their context shuts down, and
// nothing posts into the context afterwards. Work completed from a foreign thread has no such
// guarantee: its post may race with the context's destructor, or come after it. An object that
// registers here (`context_registry::add`) is told, while the context shuts down (its services
// still running), to post nothing more and to release what belongs to the context, uninvoked
// (`orphanable::orphan`). `orphan` must not return while a post of that object into the context is
// still under way, and must not wait for anything that waits for the context.
//
// Thread safety: `add` may be called from any thread; `orphan` is called on the thread destroying
// the context, never under the registry's lock.
#pragma once

#include "informer/core/mutex.hpp"

#include <boost/asio/execution_context.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace informer::detail {

class orphanable {
public:
  /// The context is shutting down: post nothing more into it, and release (without invoking) the
  /// handlers and outstanding work that belong to it. Called at most once.
  virtual void orphan() = 0;

protected:
  ~orphanable() = default;
};

class context_registry final : public boost::asio::execution_context::service {
public:
  static inline boost::asio::execution_context::id id;

  explicit context_registry(boost::asio::execution_context& context)
      : boost::asio::execution_context::service(context) {}

  /// Registers `object` with `context`'s registry (created on first use). An object whose context
  /// already shut down is orphaned at once.
  static void add(boost::asio::execution_context& context, const std::shared_ptr<orphanable>& object) {
    boost::asio::use_service<context_registry>(context).add(object);
  }

  void add(const std::shared_ptr<orphanable>& object) {
    {
      informer::lock_guard lock(mutex_);
      if (!shut_down_) {
        if (objects_.size() >= prune_at_) {
          std::erase_if(objects_, [](const std::weak_ptr<orphanable>& w) { return w.expired(); });
          prune_at_ = std::max<std::size_t>(64, 2 * objects_.size());
        }
        objects_.push_back(object);
        return;
      }
    }
    object->orphan();
  }

private:
  void shutdown() override {
    std::vector<std::weak_ptr<orphanable>> objects;
    {
      informer::lock_guard lock(mutex_);
      shut_down_ = true;
      objects.swap(objects_);
    }
    for (const auto& weak : objects) {
      if (auto object = weak.lock()) {
        object->orphan();
      }
    }
  }

  informer::mutex mutex_;
  std::vector<std::weak_ptr<orphanable>> objects_ INFORMER_GUARDED_BY(mutex_);
  std::size_t prune_at_ INFORMER_GUARDED_BY(mutex_) = 64;
  bool shut_down_ INFORMER_GUARDED_BY(mutex_) = false;
};

}  // namespace informer::detail
