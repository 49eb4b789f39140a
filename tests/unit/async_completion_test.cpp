#include "core/detail/async_completion.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

using informer::detail::async_completion;
using informer::detail::delivery;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

using signature = void(boost::system::error_code, int);
using completion = async_completion<signature>;

// What a handler saw; the tests run the io_context on their own thread, so no lock is needed.
struct outcome {
  int calls = 0;
  boost::system::error_code ec;
  int value = 0;
};

auto recorder(outcome& out) {
  return [&out](boost::system::error_code ec, int value) {
    ++out.calls;
    out.ec = ec;
    out.value = value;
  };
}

}  // namespace

BOOST_AUTO_TEST_CASE(completes_exactly_once) {
  asio::io_context io;
  outcome out;
  auto op = completion::create(recorder(out), io.get_executor());
  BOOST_TEST(!op->completed());
  BOOST_TEST(op->complete({}, 1));
  BOOST_TEST(op->completed());
  BOOST_TEST(!op->complete(asio::error::operation_aborted, 2));
  io.run();
  BOOST_TEST(out.calls == 1);
  BOOST_TEST(out.value == 1);
  BOOST_TEST(!out.ec);
}

BOOST_AUTO_TEST_CASE(never_inline_from_complete) {
  for (const auto how : {delivery::post, delivery::dispatch}) {
    asio::io_context io;
    outcome out;
    // Completed from inside the handler's own executor: post still queues.
    asio::post(io, [&] {
      auto op = completion::create(recorder(out), io.get_executor(), how);
      op->complete({}, 7);
      if (how == delivery::post) BOOST_TEST(out.calls == 0);
    });
    io.run();
    BOOST_TEST(out.calls == 1);
    // Completed from a thread that does not run the executor: queued in both modes.
    io.restart();
    auto op = completion::create(recorder(out), io.get_executor(), how);
    op->complete({}, 8);
    BOOST_TEST(out.calls == 1);
    io.run();
    BOOST_TEST(out.calls == 2);
    BOOST_TEST(out.value == 8);
  }
}

BOOST_AUTO_TEST_CASE(runs_on_the_associated_executor) {
  asio::io_context io;
  auto strand = asio::make_strand(io);
  for (const auto how : {delivery::post, delivery::dispatch}) {
    std::atomic<int> on_strand{0};
    std::atomic<int> calls{0};
    std::vector<std::shared_ptr<completion>> ops;
    for (int i = 0; i < 8; ++i) {
      ops.push_back(completion::create(asio::bind_executor(strand,
                                                           [&](boost::system::error_code, int) {
                                                             ++calls;
                                                             if (strand.running_in_this_thread()) ++on_strand;
                                                           }),
                                       io.get_executor(), how));
    }
    std::thread other([&] {
      for (auto& op : ops) op->complete({}, 0);
    });
    other.join();
    std::thread a([&] { io.run(); });
    std::thread b([&] { io.run(); });
    a.join();
    b.join();
    io.restart();
    BOOST_TEST(calls.load() == 8);
    BOOST_TEST(on_strand.load() == 8);
  }
}

BOOST_AUTO_TEST_CASE(pending_operation_keeps_run_alive) {
  asio::io_context io;
  outcome out;
  auto op = completion::create(recorder(out), io.get_executor());
  auto ran = std::async(std::launch::async, [&] { io.run(); });
  BOOST_TEST((ran.wait_for(100ms) == std::future_status::timeout));  // the work holds run()
  op->complete({}, 3);
  BOOST_TEST((ran.wait_for(10s) == std::future_status::ready));  // and is released after the handler
  BOOST_TEST(out.calls == 1);
  BOOST_TEST(out.value == 3);
}

BOOST_AUTO_TEST_CASE(cancellation_completes_with_operation_aborted) {
  asio::io_context io;
  outcome out;
  asio::cancellation_signal signal;
  auto op = completion::create(asio::bind_cancellation_slot(signal.slot(), recorder(out)), io.get_executor());
  op->cancel_with(asio::error::operation_aborted, -1);
  BOOST_TEST(signal.slot().has_handler());
  signal.emit(asio::cancellation_type::terminal);
  BOOST_TEST(op->completed());
  BOOST_TEST(!op->complete({}, 5));  // the late answer loses
  io.run();
  BOOST_TEST(out.calls == 1);
  BOOST_TEST(out.ec == asio::error::operation_aborted);
  BOOST_TEST(out.value == -1);
  signal.emit(asio::cancellation_type::terminal);  // cleared before the handler ran: nothing happens
  io.restart();
  io.run();
  BOOST_TEST(out.calls == 1);
}

BOOST_AUTO_TEST_CASE(custom_cancel_action_and_slot_cleared_on_normal_completion) {
  asio::io_context io;
  outcome out;
  asio::cancellation_signal signal;
  auto op = completion::create(asio::bind_cancellation_slot(signal.slot(), recorder(out)), io.get_executor());
  asio::cancellation_type seen = asio::cancellation_type::none;
  op->on_cancellation([&seen](asio::cancellation_type t) { seen = t; });
  signal.emit(asio::cancellation_type::partial);
  BOOST_TEST((seen == asio::cancellation_type::partial));
  BOOST_TEST(!op->completed());  // the action decides; this one did not complete
  op->complete({}, 9);
  io.run();
  BOOST_TEST(out.calls == 1);
  BOOST_TEST(out.value == 9);
  // The action was cleared before the handler ran (through any_completion_handler's own slot, so
  // the signal may still hold Asio's forwarding handler; it reaches nothing now).
  signal.emit(asio::cancellation_type::terminal);
  BOOST_TEST((seen == asio::cancellation_type::partial));
}

BOOST_AUTO_TEST_CASE(unconnected_slot_installs_nothing) {
  asio::io_context io;
  outcome out;
  auto op = completion::create(recorder(out), io.get_executor());
  op->cancel_with(asio::error::operation_aborted, 0);
  op->complete({}, 4);
  io.run();
  BOOST_TEST(out.calls == 1);
  BOOST_TEST(out.value == 4);
}

BOOST_AUTO_TEST_CASE(destroyed_uncompleted_releases_handler_and_work) {
  asio::io_context io;
  auto token = std::make_shared<int>(0);
  bool called = false;
  asio::cancellation_signal signal;
  auto op = completion::create(
      asio::bind_cancellation_slot(signal.slot(), [token, &called](boost::system::error_code, int) { called = true; }),
      io.get_executor());
  op->cancel_with(asio::error::operation_aborted, 0);
  BOOST_TEST(token.use_count() == 2);
  op.reset();
  BOOST_TEST(token.use_count() == 1);              // the handler went with it, uninvoked
  signal.emit(asio::cancellation_type::terminal);  // a late signal finds nothing
  BOOST_TEST(io.run() == 0u);                      // no work left behind
  BOOST_TEST(!called);
}

BOOST_AUTO_TEST_CASE(owner_released_after_the_handler) {
  asio::io_context io;
  auto owner = std::make_shared<int>(0);
  std::weak_ptr<int> watch = owner;
  bool alive_in_handler = false;
  auto op = completion::create([&](boost::system::error_code, int) { alive_in_handler = !watch.expired(); },
                               io.get_executor());
  op->complete_releasing(std::move(owner), {}, 0);
  BOOST_TEST(!watch.expired());
  io.run();
  BOOST_TEST(alive_in_handler);
  BOOST_TEST(watch.expired());
}

BOOST_AUTO_TEST_CASE(cancellation_never_runs_the_handler_inside_emit) {
  // The signal is emitted on the handler's executor, where a dispatch would run inline: the
  // handler must still not run inside `emit` (it may destroy or re-emit the signal).
  asio::io_context io;
  outcome out;
  asio::cancellation_signal signal;
  auto op = completion::create(asio::bind_cancellation_slot(signal.slot(), recorder(out)), io.get_executor(),
                               delivery::dispatch);
  op->cancel_with(asio::error::operation_aborted, -1);
  asio::post(io, [&] {
    signal.emit(asio::cancellation_type::terminal);
    BOOST_TEST(out.calls == 0);
  });
  io.run();
  BOOST_TEST(out.calls == 1);
  BOOST_TEST(out.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(a_losing_owner_is_released_through_the_fallback) {
  asio::io_context io;
  outcome out;
  auto op = completion::create(recorder(out), io.get_executor());
  BOOST_TEST(op->complete({}, 1));
  auto owner = std::make_shared<int>(0);
  std::weak_ptr<int> watch = owner;
  BOOST_TEST(!op->complete_releasing(std::move(owner), {}, 2));
  BOOST_TEST(!watch.expired());  // not released on the calling thread
  io.run();
  BOOST_TEST(watch.expired());
  BOOST_TEST(out.calls == 1);
  BOOST_TEST(out.value == 1);
}

BOOST_AUTO_TEST_CASE(a_target_context_shutting_down_first_releases_the_handler_uninvoked) {
  auto io = std::make_unique<asio::io_context>();
  auto token = std::make_shared<int>(0);
  bool called = false;
  auto op = completion::create([token, &called](boost::system::error_code, int) { called = true; }, io->get_executor(),
                               delivery::dispatch, io.get());
  BOOST_TEST(token.use_count() == 2);
  io.reset();                          // never run: the operation is still pending
  BOOST_TEST(token.use_count() == 1);  // released with the context, not later by `op`
  BOOST_TEST(!op->complete({}, 1));    // a late answer posts nothing into the destroyed context
  auto owner = std::make_shared<int>(0);
  std::weak_ptr<int> watch = owner;
  BOOST_TEST(!op->complete_releasing(std::move(owner), {}, 2));
  BOOST_TEST(watch.expired());  // its fallback is gone too: released right here
  BOOST_TEST(!called);
}

BOOST_AUTO_TEST_CASE(a_completion_queued_on_another_fallback_goes_with_its_target) {
  asio::io_context relay;  // stands for the system executor a foreign thread hands completions to
  auto io = std::make_unique<asio::io_context>();
  auto token = std::make_shared<int>(0);
  bool called = false;
  auto op = completion::create(
      asio::bind_executor(io->get_executor(), [token, &called](boost::system::error_code, int) { called = true; }),
      relay.get_executor(), delivery::post, io.get());
  BOOST_TEST(op->complete({}, 1));  // queued on `relay`, not yet in `io`
  io.reset();
  BOOST_TEST(token.use_count() == 1);
  relay.run();  // the queued job finds the call gone and posts nothing
  BOOST_TEST(!called);
}

BOOST_AUTO_TEST_CASE(foreign_completions_racing_the_destruction_of_their_context) {
  // As an etcd Range answered on gRPC's thread while its informer's io_context is destroyed: every
  // handler either runs or is destroyed with the context, and nothing is posted into a context
  // being destroyed (which ThreadSanitizer and AddressSanitizer report).
  constexpr int rounds = 200;
  constexpr int ops = 8;
  for (int round = 0; round < rounds; ++round) {
    auto io = std::make_unique<asio::io_context>();
    auto work = asio::make_work_guard(*io);
    std::thread runner([&] { io->run(); });
    std::atomic<int> ran{0};
    auto alive = std::make_shared<int>(0);
    std::vector<std::shared_ptr<completion>> pending;
    for (int i = 0; i < ops; ++i) {
      pending.push_back(completion::create(
          asio::bind_executor(io->get_executor(), [alive, &ran](boost::system::error_code, int) { ++ran; }),
          asio::system_executor(), i % 2 == 0 ? delivery::post : delivery::dispatch, io.get()));
    }
    std::weak_ptr<int> watch = alive;
    alive.reset();
    std::thread foreign([pending = std::move(pending)]() mutable {
      for (auto& op : pending) {
        op->complete({}, 1);
        op.reset();
      }
    });
    if (round % 2 == 0) std::this_thread::yield();
    work.reset();
    io->stop();
    runner.join();
    io.reset();
    // Run, queued in the context, or still with the operation: every handler went with the context.
    BOOST_TEST(watch.expired());
    foreign.join();
    BOOST_TEST(ran.load() <= ops);
  }
}
