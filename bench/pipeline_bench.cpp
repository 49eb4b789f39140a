// Throughput of the in-process pipeline (issue 12: >= 500,000 deltas/s): a source that hands out
// pre-built objects -> reflector -> DeltaFIFO -> indexer -> one handler that counts. No network and
// no decoding, so the figure is the SDK's own cost per delta. Reports deltas/s for the initial list
// (N adds) and for the watch that follows (M updates of the same pods, labels unchanged, as a
// status change would be).
//
//   pipeline_bench [pods=20000] [updates=200000]
// Profile (valgrind instruments only the pipeline, not the building of the objects):
//   valgrind --tool=callgrind --instr-atstart=no build/rel/bench/pipeline_bench 20000 50000
#include "informer/client/lister_watcher.hpp"
#include "informer/client/shared_informer.hpp"
#include "informer/core/mutex.hpp"

#include "issue12_pod.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

// Streams pre-built events, then waits for cancel(). One reader, as the interface says.
class replay_stream final : public informer::watch_stream {
public:
  replay_stream(boost::asio::any_io_executor executor, std::vector<informer::watch_event> events)
      : executor_(std::move(executor)), events_(std::move(events)) {}

  void cancel() override {
    std::optional<boost::asio::any_completion_handler<next_signature>> pending;
    {
      informer::lock_guard lock(mutex_);
      cancelled_ = true;
      pending.swap(waiting_);
    }
    if (pending)
      boost::asio::post(executor_, boost::asio::append(std::move(*pending),
                                                       informer::error(boost::asio::error::operation_aborted, ""),
                                                       informer::watch_event{}));
  }

protected:
  void next_impl(boost::asio::any_completion_handler<next_signature> handler) override {
    informer::lock_guard lock(mutex_);
    if (cancelled_) {
      boost::asio::post(
          executor_, boost::asio::append(std::move(handler), informer::error(boost::asio::error::operation_aborted, ""),
                                         informer::watch_event{}));
    } else if (next_ < events_.size()) {
      boost::asio::post(executor_,
                        boost::asio::append(std::move(handler), informer::error{}, std::move(events_[next_++])));
    } else {
      waiting_ = std::move(handler);
    }
  }

private:
  boost::asio::any_io_executor executor_;
  informer::mutex mutex_;
  std::vector<informer::watch_event> events_ INFORMER_GUARDED_BY(mutex_);
  std::size_t next_ INFORMER_GUARDED_BY(mutex_) = 0;
  bool cancelled_ INFORMER_GUARDED_BY(mutex_) = false;
  std::optional<boost::asio::any_completion_handler<next_signature>> waiting_ INFORMER_GUARDED_BY(mutex_);
};

// Lists the pods in one page at resourceVersion 1; the first watch replays the updates.
class replay_source final : public informer::lister_watcher {
public:
  replay_source(boost::asio::any_io_executor executor, std::vector<informer::object::ptr> pods,
                std::vector<informer::watch_event> events)
      : executor_(std::move(executor)), pods_(std::move(pods)), events_(std::move(events)) {}

  boost::asio::any_io_executor get_executor() const override { return executor_; }

protected:
  void list_impl(informer::list_options, boost::asio::any_completion_handler<list_signature> handler) override {
    informer::object_list page;
    page.items = pods_;
    page.resource_version = "1";
    boost::asio::post(executor_, boost::asio::append(std::move(handler), informer::error{}, std::move(page)));
  }

  void watch_impl(informer::watch_options, boost::asio::any_completion_handler<watch_signature> handler) override {
    std::shared_ptr<informer::watch_stream> stream =
        std::make_shared<replay_stream>(executor_, std::exchange(events_, {}));
    boost::asio::post(executor_, boost::asio::append(std::move(handler), informer::error{}, std::move(stream)));
  }

private:
  boost::asio::any_io_executor executor_;
  std::vector<informer::object::ptr> pods_;
  std::vector<informer::watch_event> events_;  // only touched on the executor's one thread
};

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 20000;
  const std::size_t m = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 200000;

  std::vector<informer::object::ptr> pods;
  pods.reserve(n);
  for (std::size_t i = 0; i < n; ++i) pods.push_back(bench::issue12_pod(i, i, 1));
  std::vector<informer::watch_event> events;
  events.reserve(m);
  for (std::size_t k = 0; k < m; ++k) {
    const auto version = 2 + k;
    events.push_back({.type = informer::watch_event_type::modified,
                      .obj = bench::issue12_pod((k * 7919) % n, (k * 7919) % n, version),
                      .resource_version = std::to_string(version)});
  }

  boost::asio::io_context io(1);
  auto source = std::make_shared<replay_source>(io.get_executor(), std::move(pods), std::move(events));
  auto informer = informer::shared_informer::create(source, {.name = "pipeline_bench"});
  std::atomic<std::size_t> delivered{0};
  informer->add_event_handler({
      .on_add = [&](const informer::object::ptr&, bool) { delivered.fetch_add(1, std::memory_order_relaxed); },
      .on_update = [&](const informer::object::ptr&,
                       const informer::object::ptr&) { delivered.fetch_add(1, std::memory_order_relaxed); },
  });

  auto work = boost::asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  CALLGRIND_START_INSTRUMENTATION;
  const auto started = clock_type::now();
  informer->run();
  auto wait_for = [&](std::size_t count) {
    while (delivered.load(std::memory_order_relaxed) < count)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    return clock_type::now();
  };
  const auto listed = wait_for(n);
  const auto watched = wait_for(n + m);
  CALLGRIND_STOP_INSTRUMENTATION;
  informer->stop();
  work.reset();
  io.stop();
  runner.join();

  const std::chrono::duration<double> list_time = listed - started;
  const std::chrono::duration<double> watch_time = watched - listed;
  std::printf("%-6s %10s %12s %14s\n", "phase", "deltas", "seconds", "deltas/s");
  std::printf("%-6s %10zu %12.3f %14.0f\n", "list", n, list_time.count(), static_cast<double>(n) / list_time.count());
  std::printf("%-6s %10zu %12.3f %14.0f\n", "watch", m, watch_time.count(),
              static_cast<double>(m) / watch_time.count());
  std::printf("cache size %zu (expected %zu)\n", informer->get_indexer()->size(), n);
  return informer->get_indexer()->size() == n ? 0 : 1;
}
