// Small helpers the examples share: waiting for futures and conditions, printed checks, an
// io_context run by a few threads, stopping on SIGINT/SIGTERM, and comparing two informers'
// caches object by object. Examples only: not part of the SDK.
#pragma once

#include <informer/apiserver/kubeconfig.hpp>
#include <informer/client/shared_informer.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace example {

using clock_type = std::chrono::steady_clock;

inline double ms_since(clock_type::time_point start) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
}

/// Prints `ok:`/`FAILED:` and what was checked; counts the failures.
class checks {
public:
  bool operator()(bool ok, const std::string& what) {
    std::printf("  %s %s\n", ok ? "ok:    " : "FAILED:", what.c_str());
    failures_ += ok ? 0 : 1;
    return ok;
  }
  int failures() const noexcept { return failures_; }

private:
  int failures_ = 0;
};

/// The result of `f`; exits the program when it does not complete within a minute (a demo has no
/// better answer to a server that stopped answering).
template <class Future>
auto wait(Future f, const char* program) {
  if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    std::fprintf(stderr, "%s: a request did not complete within 60 s\n", program);
    std::exit(1);
  }
  return f.get();
}

/// Polls `pred` until it holds or `timeout` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = clock_type::now() + timeout;
  while (!pred()) {
    if (clock_type::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

/// key -> resourceVersion of an informer's cache.
inline std::map<std::string, std::string> versions(const informer::shared_informer& inf) {
  std::map<std::string, std::string> out;
  for (const auto& obj : inf.get_store()->list()) {
    out[std::string(obj->ns()) + "/" + std::string(obj->name())] = std::string(obj->resource_version());
  }
  return out;
}

/// Both caches hold the same keys at the same resourceVersions with equal bodies.
inline bool same_objects(const informer::shared_informer& a, const informer::shared_informer& b) {
  if (versions(a) != versions(b)) return false;
  for (const auto& obj : a.get_store()->list()) {
    const auto other = b.get_store()->get(*obj);
    if (!other || obj->body() != other->body()) return false;
  }
  return true;
}

/// True when `obj`'s `status.conditions` holds `type` with status "True" (a Pod's or Node's Ready).
inline bool condition_true(const informer::object& obj, std::string_view type) {
  const auto conditions = obj.field("status.conditions");
  if (!conditions || !conditions->is_array()) return false;
  for (const auto& c : conditions->as_array()) {
    const auto* t = c.is_object() ? c.as_object().if_contains("type") : nullptr;
    if (t && t->is_string() && t->as_string() == type) {
      const auto* status = c.as_object().if_contains("status");
      return status && *status == "True";
    }
  }
  return false;
}

/// The kubeconfig at `path`, or exits with a message.
inline informer::rest_config load_config(const char* path, const char* program) {
  auto config = informer::load_kubeconfig({.files = {path}});
  if (!config) {
    std::fprintf(stderr, "%s: %s\n", program, config.error().what().c_str());
    std::exit(1);
  }
  return std::move(*config);
}

/// An io_context run by `threads` threads until destruction.
class io_pool {
public:
  explicit io_pool(int threads = 2) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~io_pool() {
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }
  io_pool(const io_pool&) = delete;
  io_pool& operator=(const io_pool&) = delete;

  boost::asio::io_context& context() noexcept { return io_; }
  boost::asio::any_io_executor get_executor() { return io_.get_executor(); }

private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ = boost::asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
};

inline std::atomic<bool> stop_requested{false};

/// Blocks until SIGINT or SIGTERM arrives (or `stop_requested` is set by the program).
inline void wait_for_stop_signal() {
  std::signal(SIGINT, [](int) { stop_requested = true; });
  std::signal(SIGTERM, [](int) { stop_requested = true; });
  while (!stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

}  // namespace example
