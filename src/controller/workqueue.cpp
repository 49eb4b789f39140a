#include "informer/controller/workqueue.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <thread>
#include <utility>

namespace informer {

namespace detail {

// A queue's timer, shared between the queue and its pending wait: the wait may complete after
// the queue is gone, and then finds `queue` null.
struct workqueue_timer {
  workqueue_timer(const boost::asio::any_io_executor& executor, workqueue* owner) : queue(owner), timer(executor) {}

  informer::mutex mu;                        // held while a completed wait calls into the queue
  workqueue* queue INFORMER_GUARDED_BY(mu);  // null once the queue is destroyed
  boost::asio::steady_timer timer;           // used under the queue's mu_
};

// The queue as its progress observers see it: null once the queue is destroyed.
struct workqueue_link {
  informer::mutex mu;                              // held while an observer reads the queue
  const workqueue* queue INFORMER_GUARDED_BY(mu);  // null once the queue is destroyed
};

}  // namespace detail

namespace {

using steady = std::chrono::steady_clock;

// now + delay, saturating instead of overflowing for absurdly long delays.
steady::time_point deadline_after(steady::time_point now, std::chrono::nanoseconds delay) {
  if (delay > steady::time_point::max() - now) return steady::time_point::max();
  return now + std::chrono::duration_cast<steady::duration>(delay);
}

// The executor of queues given none: one io_context and thread for the whole process, started on
// first use and never stopped, since a queue (a static one, say) may outlive anything that could
// stop it.
boost::asio::any_io_executor shared_timer_executor() {
  struct shared_context {
    boost::asio::io_context io{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread{[this] { io.run(); }};
  };
  static shared_context* const shared = new shared_context;  // deliberately never destroyed
  return shared->io.get_executor();
}

}  // namespace

workqueue::workqueue(workqueue_options options)
    : limiter_(options.limiter ? std::move(options.limiter) : make_default_controller_rate_limiter()),
      metrics_(std::move(options.metrics)),
      executor_(std::move(options.executor)),
      link_(std::make_shared<detail::workqueue_link>()) {
  informer::lock_guard lock(link_->mu);
  link_->queue = this;
}

workqueue::~workqueue() {
  {
    // Waits for an observer reading the queue right now.
    informer::lock_guard link(link_->mu);
    link_->queue = nullptr;
  }
  shut_down();
  std::shared_ptr<detail::workqueue_timer> timer;
  {
    informer::lock_guard lock(mu_);
    timer = std::move(timer_);
  }
  if (timer) {
    // Waits for a wait completing right now to leave the queue (it only takes mu_ briefly).
    informer::lock_guard link(timer->mu);
    timer->queue = nullptr;
  }
}

void workqueue::add(const std::string& key) {
  {
    informer::lock_guard lock(mu_);
    if (shutting_down_) return;
    add_locked(key, steady::now());
  }
  ready_cv_.notify_one();
}

void workqueue::add_locked(const std::string& key, time_point now) {
  const auto [it, inserted] = dirty_.try_emplace(key, now);
  if (!inserted) return;  // already queued, or already marked for another round
  if (metrics_.on_add) metrics_.on_add(key);
  if (processing_.contains(key)) return;  // done() will queue it
  queue_.push_back(&it->first);
  if (metrics_.on_depth) metrics_.on_depth(queue_.size());
}

void workqueue::add_after(const std::string& key, std::chrono::nanoseconds delay) {
  if (delay <= std::chrono::nanoseconds::zero()) {
    add(key);
    return;
  }
  informer::lock_guard lock(mu_);
  if (shutting_down_) return;
  const auto deadline = deadline_after(steady::now(), delay);
  if (const auto known = waiting_index_.find(key); known != waiting_index_.end()) {
    if (known->second->first <= deadline) return;  // the earlier deadline wins
    // The index's key views the entry's string: drop the index first.
    const auto stale = known->second;
    waiting_index_.erase(known);
    waiting_.erase(stale);
  }
  const auto entry = waiting_.emplace(deadline, key);
  waiting_index_.emplace(entry->second, entry);
  // Only a new earliest deadline changes when the timer should fire.
  if (entry == waiting_.begin()) arm_timer_locked();
}

void workqueue::add_rate_limited(const std::string& key) {
  {
    informer::lock_guard lock(mu_);
    if (shutting_down_) return;
    if (metrics_.on_retry) metrics_.on_retry(key);
  }
  add_after(key, limiter_->when(key));
}

void workqueue::forget(const std::string& key) { limiter_->forget(key); }

int workqueue::num_requeues(const std::string& key) const { return limiter_->num_requeues(key); }

std::optional<std::string> workqueue::get() {
  informer::unique_lock lock(mu_);
  ready_cv_.wait(lock, [this]() INFORMER_REQUIRES(mu_) { return !queue_.empty() || shutting_down_; });
  // A plain shutdown empties the queue, so an empty queue is the only way out.
  if (queue_.empty()) return std::nullopt;

  const std::string* key = queue_.front();
  queue_.pop_front();
  if (metrics_.on_depth) metrics_.on_depth(queue_.size());
  const auto now = steady::now();
  auto node = dirty_.extract(*key);
  if (metrics_.on_queue_latency) metrics_.on_queue_latency(now - node.mapped());
  node.mapped() = now;
  std::string result = node.key();
  processing_.insert(std::move(node));
  return result;
}

void workqueue::done(const std::string& key) {
  bool requeued = false;
  bool drained = false;
  {
    informer::lock_guard lock(mu_);
    const auto it = processing_.find(key);
    if (it == processing_.end()) return;
    if (metrics_.on_work_duration) metrics_.on_work_duration(steady::now() - it->second);
    processing_.erase(it);
    // After a plain shutdown dirty_ is empty, so nothing comes back.
    if (const auto dirty = dirty_.find(key); dirty != dirty_.end()) {
      queue_.push_back(&dirty->first);
      if (metrics_.on_depth) metrics_.on_depth(queue_.size());
      requeued = true;
    }
    drained = draining_ && queue_.empty() && processing_.empty();
  }
  if (requeued) ready_cv_.notify_one();
  if (drained) drained_cv_.notify_all();
}

std::size_t workqueue::len() const {
  informer::lock_guard lock(mu_);
  return queue_.size();
}

bool workqueue::shutting_down() const {
  informer::lock_guard lock(mu_);
  return shutting_down_;
}

void workqueue::begin_shutdown_locked(bool drain) {
  shutting_down_ = true;
  draining_ = drain;
  waiting_.clear();
  waiting_index_.clear();
  // A pending wait would hold its executor's context busy until the last deadline.
  if (timer_) timer_->timer.cancel();
  if (!drain && !queue_.empty()) {
    queue_.clear();
    if (metrics_.on_depth) metrics_.on_depth(0);
  }
  if (!drain) dirty_.clear();
}

void workqueue::shut_down() {
  {
    informer::lock_guard lock(mu_);
    begin_shutdown_locked(false);
  }
  ready_cv_.notify_all();
  drained_cv_.notify_all();
}

void workqueue::shut_down_with_drain() {
  {
    informer::lock_guard lock(mu_);
    begin_shutdown_locked(true);
  }
  // Wakes idle workers so they see the shutdown once the queue is empty.
  ready_cv_.notify_all();

  informer::unique_lock lock(mu_);
  drained_cv_.wait(lock,
                   [this]() INFORMER_REQUIRES(mu_) { return !draining_ || (queue_.empty() && processing_.empty()); });
}

void workqueue::arm_timer_locked() {
  const auto deadline = waiting_.begin()->first;
  if (deadline == time_point::max()) return;  // never due
  if (!timer_) {
    timer_ = std::make_shared<detail::workqueue_timer>(executor_ ? executor_ : shared_timer_executor(), this);
  }
  // Cancels the previous wait, if still pending; one that already fired finds nothing due, or
  // less than it expected, and re-arms: either way no key waits past its deadline.
  timer_->timer.expires_at(deadline);
  timer_->timer.async_wait([timer = timer_](boost::system::error_code ec) {
    if (ec == boost::asio::error::operation_aborted) return;  // re-armed or shut down
    informer::lock_guard link(timer->mu);
    if (timer->queue != nullptr) timer->queue->release_due_keys();
  });
}

void workqueue::release_due_keys() {
  bool added = false;
  {
    informer::lock_guard lock(mu_);
    if (shutting_down_) return;
    const auto now = steady::now();
    while (!waiting_.empty() && waiting_.begin()->first <= now) {
      const auto entry = waiting_.begin();
      waiting_index_.erase(entry->second);
      add_locked(entry->second, now);
      waiting_.erase(entry);
      added = true;
    }
    if (!waiting_.empty()) arm_timer_locked();
  }
  if (added) ready_cv_.notify_all();
}

workqueue_progress workqueue::progress() const {
  const auto now = steady::now();
  informer::lock_guard lock(mu_);
  workqueue_progress p{.keys = processing_.size()};
  for (const auto& [key, since] : processing_) {
    const auto running = std::chrono::duration_cast<std::chrono::nanoseconds>(now - since);
    p.total += running;
    p.longest = std::max(p.longest, running);
  }
  return p;
}

std::function<std::optional<workqueue_progress>()> workqueue::progress_observer() const {
  return [weak = std::weak_ptr<detail::workqueue_link>(link_)]() -> std::optional<workqueue_progress> {
    const auto link = weak.lock();
    if (!link) return std::nullopt;
    informer::lock_guard lock(link->mu);
    if (link->queue == nullptr) return std::nullopt;
    return link->queue->progress();
  };
}

}  // namespace informer
