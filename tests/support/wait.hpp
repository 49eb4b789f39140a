// tests/support/wait.hpp
//
// Polling with a deadline, for tests that wait for something asynchronous to happen: the test
// passes as soon as the condition holds and fails only when it never does within the bound.
#pragma once

#include <chrono>
#include <thread>

namespace informer::testing {

/// Generous bound for "should happen soon": only reached when something is broken.
inline constexpr std::chrono::seconds patience{10};

/// Polls `pred` every `interval` until it returns true (-> true) or `timeout` passes (-> the
/// predicate's last answer).
template <class Pred>
bool eventually(Pred pred, std::chrono::nanoseconds timeout = patience,
                std::chrono::nanoseconds interval = std::chrono::milliseconds(2)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(interval);
  }
  return pred();
}

}  // namespace informer::testing
