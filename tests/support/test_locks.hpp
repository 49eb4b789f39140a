// tests/support/test_locks.hpp
//
// Locks for leader-election tests: `memory_lock`, a lock record in process memory (shared by the
// candidates of one test through a `memory_store`), and `switchable_lock`, which wraps any lock and,
// while switched off, fails every operation with errc::server_error without touching the store (a
// leader cut off from it), and `parked_lock`, whose operations stay in flight until the test
// completes them (a store that is slow to answer). All complete through
// informer::detail::async_completion, as a real lock does.
//
// Thread safety: all are thread-safe; `memory_store` is read by tests under its own mutex.
#pragma once

#include "informer/core/mutex.hpp"
#include "informer/leaderelection/leader_elector.hpp"

#include "core/detail/async_completion.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace informer::testing {

struct memory_store {
  std::optional<lock_record> snapshot() {
    informer::lock_guard lock(mu);
    return record;
  }
  informer::mutex mu;
  std::optional<lock_record> record INFORMER_GUARDED_BY(mu);
  std::int64_t version INFORMER_GUARDED_BY(mu) = 0;
  std::atomic<int> writes{0};
};

class memory_lock : public resource_lock {
public:
  memory_lock(std::shared_ptr<memory_store> store, boost::asio::any_io_executor executor)
      : store_(std::move(store)), executor_(std::move(executor)) {}

  void async_get(boost::asio::any_completion_handler<get_signature> handler) override {
    auto op = informer::detail::async_completion<get_signature>::create(std::move(handler), executor_);
    informer::lock_guard lock(store_->mu);
    if (!store_->record) {
      op->complete({}, std::nullopt);
    } else {
      op->complete({}, versioned_lock_record{*store_->record, std::to_string(store_->version)});
    }
  }

  void async_create(const lock_record& record, boost::asio::any_completion_handler<write_signature> handler) override {
    auto op = informer::detail::async_completion<write_signature>::create(std::move(handler), executor_);
    informer::lock_guard lock(store_->mu);
    if (store_->record) {
      op->complete(informer::error(errc::conflict, "exists"), {});
      return;
    }
    store_->record = record;
    ++store_->writes;
    op->complete({}, std::to_string(++store_->version));
  }

  void async_update(const lock_record& record, const std::string& version,
                    boost::asio::any_completion_handler<write_signature> handler) override {
    auto op = informer::detail::async_completion<write_signature>::create(std::move(handler), executor_);
    informer::lock_guard lock(store_->mu);
    if (!store_->record || std::to_string(store_->version) != version) {
      op->complete(informer::error(errc::conflict, "version moved on"), {});
      return;
    }
    store_->record = record;
    ++store_->writes;
    op->complete({}, std::to_string(++store_->version));
  }

  std::string describe() const override { return "memory lock"; }

private:
  std::shared_ptr<memory_store> store_;
  boost::asio::any_io_executor executor_;
};

class switchable_lock : public resource_lock {
public:
  switchable_lock(std::shared_ptr<resource_lock> inner, boost::asio::any_io_executor executor)
      : inner_(std::move(inner)), executor_(std::move(executor)) {}

  /// While off, every operation fails.
  void set_on(bool on) { on_.store(on); }

  void async_get(boost::asio::any_completion_handler<get_signature> handler) override {
    if (on_) return inner_->async_get(std::move(handler));
    informer::detail::async_completion<get_signature>::create(std::move(handler), executor_)
        ->complete(cut(), std::nullopt);
  }
  void async_create(const lock_record& record, boost::asio::any_completion_handler<write_signature> handler) override {
    if (on_) return inner_->async_create(record, std::move(handler));
    informer::detail::async_completion<write_signature>::create(std::move(handler), executor_)->complete(cut(), {});
  }
  void async_update(const lock_record& record, const std::string& version,
                    boost::asio::any_completion_handler<write_signature> handler) override {
    if (on_) return inner_->async_update(record, version, std::move(handler));
    informer::detail::async_completion<write_signature>::create(std::move(handler), executor_)->complete(cut(), {});
  }
  std::string describe() const override { return inner_->describe(); }

private:
  static informer::error cut() { return informer::error(errc::server_error, "switched off by the test"); }
  std::shared_ptr<resource_lock> inner_;
  boost::asio::any_io_executor executor_;
  std::atomic<bool> on_{true};
};

/// Every operation waits until `fail_all()`, which completes those parked so far with
/// errc::server_error from the calling thread (as a lock with a thread of its own would).
class parked_lock : public resource_lock {
public:
  explicit parked_lock(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

  std::size_t parked() const {
    lock_guard lock(mutex_);
    return gets_.size() + writes_.size();
  }
  void fail_all() {
    std::vector<std::shared_ptr<get_op>> gets;
    std::vector<std::shared_ptr<write_op>> writes;
    {
      lock_guard lock(mutex_);
      gets.swap(gets_);
      writes.swap(writes_);
    }
    const informer::error cut(errc::server_error, "failed by the test");
    for (auto& op : gets) op->complete(cut, std::nullopt);
    for (auto& op : writes) op->complete(cut, {});
  }

  void async_get(boost::asio::any_completion_handler<get_signature> handler) override {
    auto op = get_op::create(std::move(handler), executor_);
    lock_guard lock(mutex_);
    gets_.push_back(std::move(op));
  }
  void async_create(const lock_record&, boost::asio::any_completion_handler<write_signature> handler) override {
    park_write(std::move(handler));
  }
  void async_update(const lock_record&, const std::string&,
                    boost::asio::any_completion_handler<write_signature> handler) override {
    park_write(std::move(handler));
  }
  std::string describe() const override { return "parked lock"; }

private:
  using get_op = informer::detail::async_completion<get_signature>;
  using write_op = informer::detail::async_completion<write_signature>;
  void park_write(boost::asio::any_completion_handler<write_signature> handler) {
    auto op = write_op::create(std::move(handler), executor_);
    lock_guard lock(mutex_);
    writes_.push_back(std::move(op));
  }
  boost::asio::any_io_executor executor_;
  mutable mutex mutex_;
  std::vector<std::shared_ptr<get_op>> gets_ INFORMER_GUARDED_BY(mutex_);
  std::vector<std::shared_ptr<write_op>> writes_ INFORMER_GUARDED_BY(mutex_);
};

}  // namespace informer::testing
