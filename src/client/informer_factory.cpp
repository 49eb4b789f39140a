#include "informer/client/informer_factory.hpp"

#include "informer/core/field_selector.hpp"
#include "informer/core/label_selector.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace informer {

namespace asio = boost::asio;

informer_key canonical(informer_key key) {
  if (auto labels = label_selector::parse(key.label_selector)) key.label_selector = labels->to_string();
  if (auto fields = field_selector::parse(key.field_selector)) key.field_selector = fields->to_string();
  return key;
}

std::string to_string(const informer_key& key) {
  std::string s = key.resource;
  if (!key.ns.empty()) s += " in " + key.ns;
  if (!key.label_selector.empty()) s += " where " + key.label_selector;
  if (!key.field_selector.empty()) s += (key.label_selector.empty() ? " where " : " and ") + key.field_selector;
  if (!key.source_kind.empty()) s += " from " + key.source_kind;
  return s;
}

// The owned io_context and its threads.
// Lock rule: `mutex` guards `running` only; it is a leaf.
struct informer_factory::pool {
  explicit pool(std::size_t count) : context(static_cast<int>(count)), work(asio::make_work_guard(context)) {
    if (count < 1) throw std::invalid_argument("informer_factory: threads must be at least 1");
    try {
      for (std::size_t i = 0; i < count; ++i) {
        threads.emplace_back([this] { serve(); });
        informer::lock_guard lock(mutex);
        ++running;
      }
    } catch (...) {
      wind_down(std::chrono::nanoseconds(0));
      throw;
    }
  }

  ~pool() { wind_down(std::chrono::nanoseconds(0)); }

  void serve() {
    for (;;) {
      try {
        context.run();
        break;
      } catch (...) {
        // A job threw (the informer's own jobs never do): the pool keeps serving the others.
      }
    }
    {
      informer::lock_guard lock(mutex);
      --running;
    }
    idle.notify_all();
  }

  // Lets queued jobs finish for up to `grace`, then stops the context and joins the threads.
  void wind_down(std::chrono::nanoseconds grace) {
    work.reset();
    {
      informer::unique_lock lock(mutex);
      idle.wait_for(lock, grace, [this]() INFORMER_REQUIRES(mutex) { return running == 0; });
    }
    context.stop();
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }

  asio::io_context context;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::vector<std::thread> threads;
  informer::mutex mutex;
  informer::condition_variable idle;  // with mutex: a thread left run()
  std::size_t running INFORMER_GUARDED_BY(mutex) = 0;
};

informer_factory::informer_factory(informer_factory_options options)
    : pool_(options.executor ? nullptr : std::make_shared<pool>(options.threads)),
      executor_(pool_ ? asio::any_io_executor(pool_->context.get_executor()) : options.executor),
      shutdown_grace_(options.shutdown_grace) {}

informer_factory::~informer_factory() { shutdown(); }

std::shared_ptr<shared_informer> informer_factory::for_resource(const informer_key& key,
                                                                const source_maker& make_source,
                                                                shared_informer_options options) {
  const informer_key k = canonical(key);
  {
    informer::lock_guard lock(mutex_);
    if (auto it = informers_.find(k); it != informers_.end()) return it->second;
  }
  if (!make_source) throw std::invalid_argument("informer_factory: empty source maker for " + to_string(k));
  // Built without the lock: `make_source` is user code and may be slow.
  auto source = make_source(k, executor_);
  if (source == nullptr)
    throw std::invalid_argument("informer_factory: the source maker returned null for " + to_string(k));
  if (options.name.empty()) options.name = to_string(k);
  options.label_selector = k.label_selector;
  options.field_selector = k.field_selector;
  // The pool's io_context must outlive every strand and timer of an informer the user keeps.
  if (pool_) options.keep_alive = pool_;
  auto made = shared_informer::create(std::move(source), std::move(options));

  bool run = false;
  std::shared_ptr<shared_informer> result;
  {
    informer::lock_guard lock(mutex_);
    auto [it, inserted] = informers_.try_emplace(k, made);
    result = it->second;
    run = inserted && started_ && !shut_down_;
  }
  // A concurrent caller may have won the race; the loser's informer never ran and is dropped here.
  if (run) result->run();
  return result;
}

void informer_factory::start() {
  std::vector<std::shared_ptr<shared_informer>> to_run;
  {
    informer::lock_guard lock(mutex_);
    if (started_ || shut_down_) return;
    started_ = true;
    for (const auto& [k, inf] : informers_) to_run.push_back(inf);
  }
  for (const auto& inf : to_run) inf->run();
}

void informer_factory::shutdown() {
  std::call_once(shutdown_once_, [this] {
    std::vector<std::shared_ptr<shared_informer>> to_stop;
    {
      informer::lock_guard lock(mutex_);
      shut_down_ = true;
      for (const auto& [k, inf] : informers_) to_stop.push_back(inf);
    }
    for (const auto& inf : to_stop) inf->stop();
    if (pool_) pool_->wind_down(shutdown_grace_);
  });
}

bool informer_factory::wait_for_cache_sync(std::chrono::nanoseconds timeout) const {
  std::vector<std::shared_ptr<shared_informer>> all;
  {
    informer::lock_guard lock(mutex_);
    for (const auto& [k, inf] : informers_) all.push_back(inf);
    if (!started_ && !all.empty()) return false;
  }
  return informer::wait_for_cache_sync(std::span<const std::shared_ptr<shared_informer>>(all), timeout);
}

std::map<informer_key, std::shared_ptr<shared_informer>> informer_factory::informers() const {
  informer::lock_guard lock(mutex_);
  return informers_;
}

boost::asio::any_io_executor informer_factory::get_executor() const { return executor_; }

}  // namespace informer
