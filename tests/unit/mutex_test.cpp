#include "informer/core/mutex.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <future>
#include <thread>

using namespace std::chrono_literals;

namespace {

// Whether another thread can take `m` right now (a thread may not try_lock a mutex it holds).
template <class Mutex>
bool free_elsewhere(Mutex& m) {
  return std::async(std::launch::async,
                    [&m] {
                      if (!m.try_lock()) return false;
                      m.unlock();
                      return true;
                    })
      .get();
}

bool shareable_elsewhere(informer::shared_mutex& m) {
  return std::async(std::launch::async,
                    [&m] {
                      if (!m.try_lock_shared()) return false;
                      m.unlock_shared();
                      return true;
                    })
      .get();
}

}  // namespace

BOOST_AUTO_TEST_CASE(lock_guard_holds_the_mutex_for_its_scope) {
  informer::mutex m;
  {
    informer::lock_guard lock(m);
    BOOST_TEST(!free_elsewhere(m));
  }
  BOOST_TEST(free_elsewhere(m));
}

BOOST_AUTO_TEST_CASE(unique_lock_releases_and_retakes) {
  informer::mutex m;
  {
    informer::unique_lock lock(m);
    BOOST_TEST(!free_elsewhere(m));
    lock.unlock();
    BOOST_TEST(free_elsewhere(m));
    lock.lock();
    BOOST_TEST(!free_elsewhere(m));
    lock.unlock();
  }  // destroyed unlocked: nothing to release
  BOOST_TEST(free_elsewhere(m));
}

BOOST_AUTO_TEST_CASE(shared_lock_admits_readers_and_keeps_writers_out) {
  informer::shared_mutex m;
  {
    informer::shared_lock lock(m);
    BOOST_TEST(shareable_elsewhere(m));
    BOOST_TEST(!free_elsewhere(m));
  }
  {
    informer::lock_guard lock(m);
    BOOST_TEST(!shareable_elsewhere(m));
  }
  BOOST_TEST(free_elsewhere(m));
}

BOOST_AUTO_TEST_CASE(condition_variable_wakes_a_waiter_whose_predicate_holds) {
  struct {
    informer::mutex m;
    informer::condition_variable cv;
    bool ready INFORMER_GUARDED_BY(m) = false;
  } f;
  std::thread setter([&f] {
    std::this_thread::sleep_for(10ms);
    {
      informer::lock_guard lock(f.m);
      f.ready = true;
    }
    f.cv.notify_all();
  });
  {
    informer::unique_lock lock(f.m);
    f.cv.wait(lock, [&f]() INFORMER_REQUIRES(f.m) { return f.ready; });
    BOOST_TEST(f.ready);
    BOOST_TEST(!free_elsewhere(f.m));  // returns with the lock held
  }
  setter.join();
}

BOOST_AUTO_TEST_CASE(condition_variable_waits_time_out_with_the_lock_held) {
  informer::mutex m;
  informer::condition_variable cv;
  informer::unique_lock lock(m);
  const auto start = std::chrono::steady_clock::now();
  BOOST_TEST(!cv.wait_for(lock, 20ms, [] { return false; }));
  const bool waited = std::chrono::steady_clock::now() - start >= 20ms;
  BOOST_TEST(waited);
  BOOST_TEST(!free_elsewhere(m));
  BOOST_TEST((cv.wait_until(lock, std::chrono::steady_clock::now() + 1ms) == std::cv_status::timeout));
  BOOST_TEST(cv.wait_for(lock, 1ms, [] { return true; }));
}
