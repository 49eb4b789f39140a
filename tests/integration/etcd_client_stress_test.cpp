// The etcd client's lifetimes under churn, against a real etcd: clients created and destroyed
// hundreds of times while asynchronous Ranges and watches are still in flight, some of them
// canceled from other threads, with busy threads keeping both cores loaded so that gRPC's threads
// get preempted at awkward moments. What it guards: nothing of a client (a callback-API call, its
// context, the channel, gRPC's callback queue, the completion loop) is released on a gRPC thread or
// used after its release, and every Range and every watch still completes exactly once. Most
// telling under AddressSanitizer (leaks included), but a release on gRPC's thread also crashes a
// plain build. Kept to some seconds in a normal build, as CI runs it.
#include "informer/etcd/client.hpp"

#include "control_plane.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace etcd = informer::etcd;
using informer::testing::etcd_server;

namespace {

constexpr auto patience = 30s;

etcd_server& shared_server() {
  static etcd_server server;
  return server;
}

std::unique_ptr<etcd::client> connect() {
  auto c =
      etcd::client::connect({.endpoints = {shared_server().endpoint()}, .dial_timeout = 2s, .request_timeout = 5s});
  BOOST_REQUIRE_MESSAGE(c, (c ? "" : c.error().what()));
  return std::make_unique<etcd::client>(std::move(*c));
}

// Threads that keep the cores busy for as long as it lives.
class cpu_load {
public:
  explicit cpu_load(int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        std::uint64_t x = 1;
        while (!stop_.load(std::memory_order_relaxed)) {
          for (int k = 0; k < 10000; ++k) {
            x = x * 6364136223846793005u + 1442695040888963407u;
          }
          sink_.store(x, std::memory_order_relaxed);
        }
      });
    }
  }
  ~cpu_load() {
    stop_ = true;
    for (auto& t : threads_) {
      t.join();
    }
  }
  cpu_load(const cpu_load&) = delete;
  cpu_load& operator=(const cpu_load&) = delete;

private:
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> sink_{0};
  std::vector<std::thread> threads_;
};

// An io_context run by two threads, for handlers and for cancellations from other threads.
struct io_threads {
  io_threads() {
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([this] { ctx.run(); });
    }
  }
  ~io_threads() {
    work.reset();
    for (auto& t : threads) {
      t.join();
    }
  }
  io_threads(const io_threads&) = delete;
  io_threads& operator=(const io_threads&) = delete;

  asio::io_context ctx;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(ctx);
  std::vector<std::thread> threads;
};

// Counts completions, for the test thread to wait until every started operation has ended.
class tally {
public:
  void started() { started_.fetch_add(1); }
  void ended() { ended_.fetch_add(1); }
  bool wait_all() {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (ended_.load() != started_.load()) {
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }
  int started_count() const { return started_.load(); }
  int ended_count() const { return ended_.load(); }

private:
  std::atomic<int> started_{0};
  std::atomic<int> ended_{0};
};

void seed(const std::string& prefix) {
  auto c = connect();
  for (int i = 0; i < 5; ++i) {
    BOOST_REQUIRE(c->put(prefix + std::to_string(i), "v"));
  }
}

}  // namespace

// The completion of an async_range, run by an executor that runs work inline (Asio's system
// executor, as use_future's), releases the last owner of the client. gRPC's callback thread must
// not be where that happens: the call's last hold on the channel would destroy the channel there,
// and with it gRPC's callback queue under the very thread that serves it.
BOOST_AUTO_TEST_CASE(a_range_handler_may_release_the_last_owner_of_the_client) {
  seed("/stress/a/");
  cpu_load load(2);
  for (int i = 0; i < 100; ++i) {
    auto owner = connect();
    etcd::client& c = *owner;
    std::promise<informer::error> done;
    c.async_range("/stress/a/", etcd::prefix_end("/stress/a/"), {},
                  asio::bind_executor(asio::system_executor(),
                                      [owner = std::move(owner), &done](informer::error e, etcd::range_result) mutable {
                                        owner.reset();
                                        done.set_value(std::move(e));
                                      }));
    auto f = done.get_future();
    BOOST_REQUIRE_MESSAGE((f.wait_for(patience) == std::future_status::ready), "iteration " << i << ": no completion");
    const informer::error e = f.get();
    BOOST_REQUIRE_MESSAGE(!e, e.what());
  }
}

// As the integration tests do: a Range waited for with use_future, then the client destroyed at
// once, while gRPC's thread that set the future may still be inside the call's callback. Racy by
// nature: it takes many rounds, under load, to hit the window.
BOOST_AUTO_TEST_CASE(a_client_destroyed_as_soon_as_its_range_is_waited_for) {
  seed("/stress/w/");
  cpu_load load(2);
  for (int i = 0; i < 300; ++i) {
    auto c = connect();
    auto [e, r] = c->async_range("/stress/w/", etcd::prefix_end("/stress/w/"), {}, asio::use_future).get();
    BOOST_REQUIRE_MESSAGE(!e, "iteration " << i << ": " << e.what());
  }
}

// Clients come and go while their calls and watches are in flight: a Range waited for with
// use_future right before the client is destroyed (the racy one: the waiter wakes while gRPC's
// thread is still inside the call's callback), Ranges on a strand canceled from the io threads,
// Ranges left to complete after the client is gone, and watches opening, created, canceled from
// another thread, or ended by the client's destruction. Every one completes exactly once.
BOOST_AUTO_TEST_CASE(clients_destroyed_with_ranges_and_watches_in_flight) {
  seed("/stress/b/");
  const std::string prefix = "/stress/b/";
  const std::string end = etcd::prefix_end(prefix);
  cpu_load load(2);
  io_threads io;
  tally ranges;
  tally watches;
  std::atomic<int> failed_ranges{0};
  for (int i = 0; i < 200; ++i) {
    auto c = connect();

    // Watches: one kept until the client goes, one canceled from an io thread.
    auto on_update = [&watches](etcd::watch_update u) {
      if (u.kind == etcd::watch_update_kind::canceled || u.kind == etcd::watch_update_kind::failed) {
        watches.ended();
      }
    };
    watches.started();
    etcd::watch_handle kept = c->watch(prefix, {.prefix = true}, on_update);
    watches.started();
    etcd::watch_handle canceled = c->watch(prefix, {.prefix = true}, on_update);
    asio::post(io.ctx, [h = std::move(canceled)]() mutable { h.cancel(); });

    // Ranges on a strand, canceled from the io threads (a slot is used on its handler's executor).
    auto strand = asio::make_strand(io.ctx);
    auto signals = std::make_shared<std::vector<asio::cancellation_signal>>(2);
    for (auto& signal : *signals) {
      ranges.started();
      c->async_range(prefix, end, {},
                     asio::bind_cancellation_slot(
                         signal.slot(), asio::bind_executor(strand, [&ranges, &failed_ranges, signals](
                                                                        informer::error e, etcd::range_result) {
                           if (e && e.code() != etcd::make_error_code(etcd::errc::canceled)) {
                             failed_ranges.fetch_add(1);
                           }
                           ranges.ended();
                         })));
    }
    asio::post(strand,
               [signals, i] { (*signals)[static_cast<std::size_t>(i % 2)].emit(asio::cancellation_type::terminal); });

    // A Range with no executor of its own, left to complete after the client is gone.
    ranges.started();
    c->async_range(prefix, end, {.limit = 1}, [&ranges, &failed_ranges](informer::error e, etcd::range_result) {
      if (e) {
        failed_ranges.fetch_add(1);
      }
      ranges.ended();
    });

    // The waited-for Range; the client goes as soon as its result is here.
    auto [e, r] = c->async_range(prefix, end, {}, asio::use_future).get();
    BOOST_REQUIRE_MESSAGE(!e, "iteration " << i << ": " << e.what());
    BOOST_REQUIRE(r.kvs.size() == 5u);
    if (i % 2 == 0) {
      kept = etcd::watch_handle{};  // canceled (and waited for) before the client goes
    }
    c.reset();
  }
  BOOST_REQUIRE_MESSAGE(ranges.wait_all(), ranges.ended_count() << " of " << ranges.started_count() << " ranges ended");
  BOOST_REQUIRE_MESSAGE(watches.wait_all(), watches.ended_count()
                                                << " of " << watches.started_count() << " watches ended");
  BOOST_TEST(failed_ranges.load() == 0);
}
