#include "informer/controller/controller.hpp"

#include <exception>
#include <optional>
#include <stdexcept>
#include <utility>

namespace informer {

namespace {

const reconcile_fn& checked(const controller_options& options) {
  if (!options.reconcile) throw std::invalid_argument("controller: reconcile is required");
  if (options.workers < 1) throw std::invalid_argument("controller: workers must be at least 1");
  return options.reconcile;
}

}  // namespace

controller::controller(controller_options options)
    : name_(std::move(options.name)),
      reconcile_(checked(options)),
      metrics_(std::move(options.metrics)),
      worker_count_(options.workers),
      drain_on_stop_(options.drain_on_stop),
      queue_(workqueue_options{
          .limiter = std::move(options.limiter),
          .metrics = std::move(options.queue_metrics),
          .executor = std::move(options.executor),
      }) {}

controller::~controller() { stop(); }

result<void> controller::run() {
  informer::lock_guard lock(lifecycle_mu_);
  if (state_ == state::stopped) return make_error_code(errc::closed);
  if (state_ == state::running) return {};
  workers_.reserve(static_cast<std::size_t>(worker_count_));
  for (int i = 0; i < worker_count_; ++i) workers_.emplace_back([this] { worker_loop(); });
  state_ = state::running;
  return {};
}

void controller::enqueue(const std::string& key) { queue_.add(key); }

void controller::stop() {
  informer::lock_guard lock(lifecycle_mu_);
  if (state_ == state::stopped) return;
  // Draining needs workers to empty the queue; without them it would wait forever.
  if (drain_on_stop_ && state_ == state::running) {
    queue_.shut_down_with_drain();
  } else {
    queue_.shut_down();
  }
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  state_ = state::stopped;
}

void controller::worker_loop() {
  while (auto key = queue_.get()) {
    process(*key);
    queue_.done(*key);
  }
}

void controller::process(const std::string& key) {
  const auto start = std::chrono::steady_clock::now();
  reconcile_result next;
  std::optional<std::string> failure;
  try {
    auto outcome = reconcile_(key);
    if (outcome) {
      next = *outcome;
    } else {
      failure = outcome.error().message();
    }
  } catch (const std::exception& e) {
    failure = std::string("reconcile threw: ") + e.what();
  } catch (...) {
    failure = "reconcile threw a non-standard exception";
  }
  if (metrics_.on_reconcile_latency) metrics_.on_reconcile_latency(std::chrono::steady_clock::now() - start);

  if (failure) {
    if (metrics_.on_error) metrics_.on_error(key, *failure);
    if (metrics_.on_retry) metrics_.on_retry(key);
    queue_.add_rate_limited(key);
  } else if (next.requeue_after > std::chrono::nanoseconds::zero()) {
    queue_.forget(key);
    queue_.add_after(key, next.requeue_after);
  } else if (next.requeue) {
    if (metrics_.on_retry) metrics_.on_retry(key);
    queue_.add_rate_limited(key);
  } else {
    queue_.forget(key);
  }
}

}  // namespace informer
