#include "etcd/detail/completion_loop.hpp"

#include <grpc/support/time.h>

#include <pthread.h>

#include <utility>

namespace informer::etcd::detail {

namespace {

gpr_timespec deadline_after(std::chrono::steady_clock::duration delay) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(delay).count();
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(ns > 0 ? ns : 0, GPR_TIMESPAN));
}

}  // namespace

// Fires at once to run what was posted. A fresh alarm per wakeup: an alarm is only known to be
// reusable once its tag has been consumed, and this keeps the rule obvious.
class completion_loop::wakeup final : public operation {
public:
  explicit wakeup(completion_loop* loop) : loop_(loop) {}
  void arm(grpc::CompletionQueue* queue) { alarm_.Set(queue, gpr_now(GPR_CLOCK_MONOTONIC), this); }
  void complete(bool) override {
    completion_loop* loop = loop_;
    delete this;
    loop->run_posted();
  }

private:
  completion_loop* loop_;
  grpc::Alarm alarm_;
};

void loop_timer::complete(bool ok) {
  auto fn = std::move(fn_);
  delete this;
  fn(ok);
}

completion_loop::~completion_loop() { close({}); }

bool completion_loop::post(std::function<void()> fn) {
  informer::lock_guard lock(mutex_);
  if (closing_ || close_requested_) {
    return false;
  }
  if (!thread_.joinable()) {
    thread_ = std::thread([this] { run(); });
  }
  post_locked(std::move(fn));
  return true;
}

void completion_loop::post_locked(std::function<void()> fn) {
  posted_.push_back(std::move(fn));
  if (!wakeup_pending_) {
    wakeup_pending_ = true;
    ++outstanding_;
    auto* w = new wakeup(this);
    armed_.fetch_add(1, std::memory_order_release);
    w->arm(&queue_);
  }
}

void completion_loop::started() {
  informer::lock_guard lock(mutex_);
  ++outstanding_;
}

loop_timer* completion_loop::start_timer(std::chrono::steady_clock::duration delay, std::function<void(bool)> fn) {
  auto* timer = new loop_timer(std::move(fn));
  started();
  timer->alarm_.Set(&queue_, deadline_after(delay), timer);
  return timer;
}

bool completion_loop::closing() const {
  informer::lock_guard lock(mutex_);
  return closing_;
}

void completion_loop::run() {
  loop_thread_id_.store(std::this_thread::get_id());
  ::pthread_setname_np(::pthread_self(), "informer-etcd");  // for debuggers and top
  void* tag = nullptr;
  bool ok = false;
  while (queue_.Next(&tag, &ok)) {
    armed_.load(std::memory_order_acquire);
    static_cast<operation*>(tag)->complete(ok);
    finished();
  }
}

void completion_loop::run_posted() {
  std::deque<std::function<void()>> batch;
  {
    informer::lock_guard lock(mutex_);
    batch.swap(posted_);
    wakeup_pending_ = false;
  }
  for (auto& fn : batch) {
    fn();
  }
}

void completion_loop::finished() {
  informer::lock_guard lock(mutex_);
  --outstanding_;
  if (closing_ && outstanding_ == 0 && !shut_down_) {
    shut_down_ = true;
    queue_.Shutdown();
  }
}

void completion_loop::close(std::function<void()> on_close) {
  std::thread loop_thread;  // joined unlocked: the loop takes mutex_ until it ends
  {
    informer::lock_guard lock(mutex_);
    if (close_requested_) {
      return;
    }
    close_requested_ = true;
    if (!thread_.joinable()) {
      // Nothing was ever started on the queue.
      closing_ = true;
      shut_down_ = true;
      queue_.Shutdown();
    } else {
      post_locked([this, on_close = std::move(on_close)] {
        if (on_close) {
          on_close();
        }
        informer::lock_guard inner(mutex_);
        closing_ = true;  // finished() for this very task shuts the queue down when it is idle
      });
    }
    loop_thread = std::move(thread_);
  }
  if (loop_thread.joinable()) {
    loop_thread.join();
  } else {
    void* tag = nullptr;
    bool ok = false;
    while (queue_.Next(&tag, &ok)) {
    }
  }
}

}  // namespace informer::etcd::detail
