// tests/support/io_threads.hpp
//
// An io_context run by two threads (so that strands matter), for tests that drive asynchronous
// clients and informers. Declare it before what runs on it, so it is destroyed last.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <thread>
#include <vector>

namespace informer::testing {

struct io_threads {
  io_threads() {
    for (int i = 0; i < 2; ++i) threads.emplace_back([this] { ctx.run(); });
  }
  ~io_threads() {
    work.reset();
    ctx.stop();
    for (auto& t : threads) t.join();
  }
  io_threads(const io_threads&) = delete;
  io_threads& operator=(const io_threads&) = delete;

  boost::asio::io_context ctx;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work = boost::asio::make_work_guard(ctx);
  std::vector<std::thread> threads;
};

}  // namespace informer::testing
