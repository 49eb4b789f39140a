// informer/core/mutex.hpp
//
// Mutexes, scoped locks and a condition variable that clang's thread-safety analysis can follow
// (see "informer/core/thread_annotations.hpp"). They are thin wrappers over the std types and are
// used the same way:
//
//     mutable informer::mutex mu_;
//     int count_ INFORMER_GUARDED_BY(mu_) = 0;
//     ...
//     informer::lock_guard lock(mu_);          // std::lock_guard
//     informer::unique_lock lock(mu_);         // std::unique_lock: unlock() and lock() again
//     informer::shared_lock lock(shared_mu_);  // std::shared_lock
//     cv_.wait(lock, [&]() INFORMER_REQUIRES(mu_) { return count_ > 0; });
//
// A predicate passed to a wait runs with the lock held; annotate it with INFORMER_REQUIRES so the
// analysis lets it read guarded members.
//
// Thread safety: the mutexes and the condition variable are thread-safe; a scoped lock belongs to
// the thread that made it.
#pragma once

#include "informer/core/thread_annotations.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <utility>

namespace informer {

/// `std::mutex`, annotated as a capability.
class INFORMER_CAPABILITY("mutex") mutex {
public:
  mutex() = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  void lock() INFORMER_ACQUIRE() { native_.lock(); }
  bool try_lock() INFORMER_TRY_ACQUIRE(true) { return native_.try_lock(); }
  void unlock() INFORMER_RELEASE() { native_.unlock(); }

private:
  friend class condition_variable;
  std::mutex native_;
};

/// `std::shared_mutex`, annotated as a capability that can be held exclusively or shared.
class INFORMER_CAPABILITY("shared_mutex") shared_mutex {
public:
  shared_mutex() = default;
  shared_mutex(const shared_mutex&) = delete;
  shared_mutex& operator=(const shared_mutex&) = delete;

  void lock() INFORMER_ACQUIRE() { native_.lock(); }
  bool try_lock() INFORMER_TRY_ACQUIRE(true) { return native_.try_lock(); }
  void unlock() INFORMER_RELEASE() { native_.unlock(); }

  void lock_shared() INFORMER_ACQUIRE_SHARED() { native_.lock_shared(); }
  bool try_lock_shared() INFORMER_TRY_ACQUIRE_SHARED(true) { return native_.try_lock_shared(); }
  void unlock_shared() INFORMER_RELEASE_SHARED() { native_.unlock_shared(); }

private:
  std::shared_mutex native_;
};

/// Holds `Mutex` exclusively for its lifetime (`std::lock_guard`).
template <class Mutex>
class INFORMER_SCOPED_CAPABILITY lock_guard {
public:
  explicit lock_guard(Mutex& m) INFORMER_ACQUIRE(m) : mutex_(m) { mutex_.lock(); }
  ~lock_guard() INFORMER_RELEASE() { mutex_.unlock(); }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;

private:
  Mutex& mutex_;
};

/// Holds `Mutex` exclusively from construction until `unlock()` or its destruction; `lock()`
/// takes it again (`std::unique_lock`, without deferred locking or moves). Condition variables
/// wait on it.
template <class Mutex>
class INFORMER_SCOPED_CAPABILITY unique_lock {
public:
  explicit unique_lock(Mutex& m) INFORMER_ACQUIRE(m) : mutex_(m) { mutex_.lock(); }
  ~unique_lock() INFORMER_RELEASE() {
    if (owns_) mutex_.unlock();
  }
  unique_lock(const unique_lock&) = delete;
  unique_lock& operator=(const unique_lock&) = delete;

  /// Precondition: not held by this lock.
  void lock() INFORMER_ACQUIRE() {
    mutex_.lock();
    owns_ = true;
  }
  /// Precondition: held by this lock.
  void unlock() INFORMER_RELEASE() {
    owns_ = false;
    mutex_.unlock();
  }

private:
  friend class condition_variable;
  Mutex& mutex_;
  bool owns_ = true;
};

/// Holds a `shared_mutex` shared for its lifetime (`std::shared_lock`).
template <class Mutex>
class INFORMER_SCOPED_CAPABILITY shared_lock {
public:
  explicit shared_lock(Mutex& m) INFORMER_ACQUIRE_SHARED(m) : mutex_(m) { mutex_.lock_shared(); }
  ~shared_lock() INFORMER_RELEASE() { mutex_.unlock_shared(); }
  shared_lock(const shared_lock&) = delete;
  shared_lock& operator=(const shared_lock&) = delete;

private:
  Mutex& mutex_;
};

/// `std::condition_variable` for an `informer::unique_lock<informer::mutex>`. Every wait takes
/// the lock held and returns with it held; the analysis sees it held throughout.
class condition_variable {
public:
  void notify_one() noexcept { native_.notify_one(); }
  void notify_all() noexcept { native_.notify_all(); }

  void wait(unique_lock<mutex>& lock) {
    native_lock native(lock);
    native_.wait(native.lock);
  }
  template <class Clock, class Duration>
  std::cv_status wait_until(unique_lock<mutex>& lock, const std::chrono::time_point<Clock, Duration>& deadline) {
    native_lock native(lock);
    return native_.wait_until(native.lock, deadline);
  }
  template <class Rep, class Period>
  std::cv_status wait_for(unique_lock<mutex>& lock, const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until(lock, std::chrono::steady_clock::now() + timeout);
  }

  // The predicate overloads are not analysed: the predicate runs with the caller's mutex held,
  // but its requirement names that mutex through the caller's `this`, which the analysis cannot
  // relate to `lock` here. The caller annotates the predicate instead.
  template <class Predicate>
  void wait(unique_lock<mutex>& lock, Predicate stop_waiting) INFORMER_NO_THREAD_SAFETY_ANALYSIS {
    while (!stop_waiting()) wait(lock);
  }
  template <class Clock, class Duration, class Predicate>
  bool wait_until(unique_lock<mutex>& lock, const std::chrono::time_point<Clock, Duration>& deadline,
                  Predicate stop_waiting) INFORMER_NO_THREAD_SAFETY_ANALYSIS {
    while (!stop_waiting())
      if (wait_until(lock, deadline) == std::cv_status::timeout) return stop_waiting();
    return true;
  }
  template <class Rep, class Period, class Predicate>
  bool wait_for(unique_lock<mutex>& lock, const std::chrono::duration<Rep, Period>& timeout, Predicate stop_waiting) {
    return wait_until(lock, std::chrono::steady_clock::now() + timeout, std::move(stop_waiting));
  }

private:
  // Lends the std::mutex inside `lock` to the std::condition_variable for one wait, without
  // taking ownership: the informer lock holds it before and after.
  struct native_lock {
    explicit native_lock(unique_lock<mutex>& l) : lock(l.mutex_.native_, std::adopt_lock) {}
    ~native_lock() { lock.release(); }
    std::unique_lock<std::mutex> lock;
  };

  std::condition_variable native_;
};

}  // namespace informer
