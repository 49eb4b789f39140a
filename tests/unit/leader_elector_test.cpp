#include "informer/leaderelection/leader_elector.hpp"

#include <boost/test/unit_test.hpp>

#include "informer/metrics/adapters.hpp"
#include "informer/metrics/registry.hpp"

#include "io_threads.hpp"
#include "test_locks.hpp"

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using informer::leader_elector;
using informer::leader_elector_options;
using informer::lock_record;
using informer::testing::io_threads;
using informer::testing::memory_lock;
using informer::testing::memory_store;
using informer::testing::parked_lock;
using informer::testing::switchable_lock;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto patience = 10s;

// Short durations: a 1 s lease, renewals every 100 ms, leading ends 600 ms without one.
leader_elector_options options_for(std::string identity) {
  return {.identity = std::move(identity), .lease_duration = 1s, .renew_deadline = 600ms, .retry_period = 100ms};
}

bool eventually(const std::function<bool()>& condition, std::chrono::nanoseconds limit = patience) {
  const auto deadline = steady::now() + limit;
  while (!condition()) {
    if (steady::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

struct candidate {
  candidate(std::shared_ptr<informer::resource_lock> lock, leader_elector_options options,
            boost::asio::any_io_executor ex = {}) {
    options.callbacks = {.on_started_leading = [this] { ++started; },
                         .on_stopped_leading = [this] { ++stopped; },
                         .on_new_leader =
                             [this](const std::string& id) {
                               informer::lock_guard lock(mu);
                               new_leaders.push_back(id);
                             }};
    auto e = leader_elector::create(std::move(lock), std::move(options), std::move(ex));
    BOOST_REQUIRE_MESSAGE(e.has_value(), (e ? "" : e.error().what()));
    elector.emplace(std::move(*e));
  }
  std::atomic<int> started{0};
  std::atomic<int> stopped{0};
  informer::mutex mu;
  std::vector<std::string> new_leaders INFORMER_GUARDED_BY(mu);
  std::optional<leader_elector> elector;
};

}  // namespace

BOOST_AUTO_TEST_CASE(refuses_options_client_go_refuses) {
  io_threads io;
  auto lock = std::make_shared<memory_lock>(std::make_shared<memory_store>(), io.ctx.get_executor());
  const auto refused = [&](leader_elector_options o, std::shared_ptr<informer::resource_lock> l) {
    auto e = leader_elector::create(std::move(l), std::move(o), io.ctx.get_executor());
    return !e.has_value() && e.error() == informer::condition::invalid_argument;
  };
  BOOST_TEST(refused(options_for("a"), nullptr));
  BOOST_TEST(refused(options_for(""), lock));
  auto o = options_for("a");
  o.lease_duration = o.renew_deadline;
  BOOST_TEST(refused(o, lock));
  o = options_for("a");
  o.renew_deadline = 120ms;  // not above 1.2 * retry_period
  BOOST_TEST(refused(o, lock));
  o = options_for("a");
  o.retry_period = 0ms;
  BOOST_TEST(refused(o, lock));
  BOOST_TEST(leader_elector::create(lock, options_for("a"), io.ctx.get_executor()).has_value());
}

BOOST_AUTO_TEST_CASE(acquires_a_free_lock_and_renews_it) {
  io_threads io;
  auto store = std::make_shared<memory_store>();
  candidate a(std::make_shared<memory_lock>(store, io.ctx.get_executor()), options_for("a"), io.ctx.get_executor());
  BOOST_TEST(!a.elector->is_leader());
  a.elector->start();
  BOOST_REQUIRE(eventually([&] { return a.elector->is_leader(); }, 2s));
  BOOST_TEST(a.started == 1);
  BOOST_TEST(a.elector->leader() == "a");
  const auto first = *store->snapshot();
  BOOST_TEST(first.holder_identity == "a");
  BOOST_TEST(first.lease_duration.count() == 1);
  BOOST_TEST(first.leader_transitions == 0);

  std::this_thread::sleep_for(1500ms);  // past the renew deadline and the lease: renewals keep it
  BOOST_TEST(a.elector->is_leader());
  const auto later = *store->snapshot();
  BOOST_TEST(later.holder_identity == "a");
  BOOST_TEST((later.acquire_time == first.acquire_time));
  BOOST_TEST((later.renew_time > first.renew_time));
  BOOST_TEST(store->writes >= 5);
  BOOST_TEST(a.stopped == 0);
  informer::lock_guard lock(a.mu);
  BOOST_TEST(a.new_leaders == std::vector<std::string>{"a"});
}

BOOST_AUTO_TEST_CASE(runs_on_its_own_thread_without_an_executor) {
  io_threads io;
  auto store = std::make_shared<memory_store>();
  candidate a(std::make_shared<memory_lock>(store, io.ctx.get_executor()), options_for("a"));
  a.elector->start();
  BOOST_TEST(eventually([&] { return a.elector->is_leader(); }, 2s));
  a.elector.reset();
  BOOST_TEST(a.stopped == 1);
}

BOOST_AUTO_TEST_CASE(stops_leading_within_the_renew_deadline_when_renewals_fail) {
  io_threads io;
  auto store = std::make_shared<memory_store>();
  auto lock = std::make_shared<switchable_lock>(std::make_shared<memory_lock>(store, io.ctx.get_executor()),
                                                io.ctx.get_executor());
  candidate a(lock, options_for("a"), io.ctx.get_executor());
  a.elector->start();
  BOOST_REQUIRE(eventually([&] { return a.elector->is_leader(); }, 2s));
  std::this_thread::sleep_for(300ms);
  const int writes = store->writes;
  lock->set_on(false);
  const auto cut = steady::now();
  BOOST_REQUIRE(eventually([&] { return !a.elector->is_leader(); }, 2s));
  const auto took = steady::now() - cut;
  // The last renewal started at most a retry period (plus its run time) before the cut.
  BOOST_TEST(took <= 600ms + 50ms, "stopped leading "
                                       << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                       << " ms after the cut");
  BOOST_TEST(took >= 600ms - 100ms - 20ms);
  BOOST_TEST(eventually([&] { return a.stopped == 1; }, 1s));
  BOOST_TEST(store->writes == writes);

  // It does not campaign again, even with the store back.
  lock->set_on(true);
  std::this_thread::sleep_for(1500ms);
  BOOST_TEST(!a.elector->is_leader());
  BOOST_TEST(a.started == 1);
}

BOOST_AUTO_TEST_CASE(follower_waits_a_lease_from_its_own_observation_whatever_the_timestamps) {
  io_threads io;
  for (const auto written : {std::chrono::system_clock::time_point{},                       // far in the past
                             std::chrono::system_clock::now() + std::chrono::hours(24)}) {  // in the future
    auto store = std::make_shared<memory_store>();
    {
      informer::lock_guard lock(store->mu);
      store->record = lock_record{.holder_identity = "gone",
                                  .lease_duration = 2s,
                                  .acquire_time = written,
                                  .renew_time = written,
                                  .leader_transitions = 3};
    }
    candidate b(std::make_shared<memory_lock>(store, io.ctx.get_executor()), options_for("b"), io.ctx.get_executor());
    const auto begun = steady::now();
    b.elector->start();
    BOOST_TEST(eventually([&] { return b.elector->leader() == "gone"; }, 1s));
    BOOST_REQUIRE(eventually([&] { return b.elector->is_leader(); }, 5s));
    const auto took = steady::now() - begun;
    // Not before the record's 2 s lease from the first read; then within a jittered retry.
    BOOST_TEST(took >= 2s, std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    BOOST_TEST(took <= 2s + 220ms + 100ms, std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                               << " ms");
    const auto now = *store->snapshot();
    BOOST_TEST(now.holder_identity == "b");
    BOOST_TEST(now.leader_transitions == 4);
  }
}

BOOST_AUTO_TEST_CASE(a_changing_record_keeps_the_follower_waiting) {
  io_threads io;
  auto store = std::make_shared<memory_store>();
  candidate a(std::make_shared<memory_lock>(store, io.ctx.get_executor()), options_for("a"), io.ctx.get_executor());
  a.elector->start();
  BOOST_REQUIRE(eventually([&] { return a.elector->is_leader(); }, 2s));
  candidate b(std::make_shared<memory_lock>(store, io.ctx.get_executor()), options_for("b"), io.ctx.get_executor());
  b.elector->start();
  BOOST_TEST(eventually([&] { return b.elector->leader() == "a"; }, 1s));
  std::this_thread::sleep_for(2500ms);  // two and a half leases
  BOOST_TEST(a.elector->is_leader());
  BOOST_TEST(!b.elector->is_leader());
  BOOST_TEST(b.started == 0);
}

BOOST_AUTO_TEST_CASE(release_on_stop_lets_another_acquire_at_once) {
  io_threads io;
  auto store = std::make_shared<memory_store>();
  auto o = options_for("a");
  o.lease_duration = 5s;
  o.renew_deadline = 4s;
  o.release_on_cancel = true;
  candidate a(std::make_shared<memory_lock>(store, io.ctx.get_executor()), o, io.ctx.get_executor());
  a.elector->start();
  BOOST_REQUIRE(eventually([&] { return a.elector->is_leader(); }, 2s));
  o.identity = "b";
  candidate b(std::make_shared<memory_lock>(store, io.ctx.get_executor()), o, io.ctx.get_executor());
  b.elector->start();
  BOOST_REQUIRE(eventually([&] { return b.elector->leader() == "a"; }, 1s));

  a.elector->stop();
  const auto stopped = steady::now();
  BOOST_TEST(!a.elector->is_leader());
  BOOST_TEST(a.stopped == 1);
  const auto released = *store->snapshot();
  BOOST_TEST(released.holder_identity.empty());
  BOOST_TEST(released.lease_duration.count() == 1);
  BOOST_REQUIRE(eventually([&] { return b.elector->is_leader(); }, 1s));
  BOOST_TEST((steady::now() - stopped) <= 220ms + 100ms);
  BOOST_TEST(store->snapshot()->leader_transitions == 1);
}

BOOST_AUTO_TEST_CASE(no_callback_runs_after_stop_returns) {
  io_threads io;
  for (int round = 0; round < 20; ++round) {
    auto store = std::make_shared<memory_store>();
    std::atomic<bool> returned{false};
    std::atomic<int> late{0};
    auto o = options_for("a");
    o.release_on_cancel = round % 2 == 0;
    const auto check = [&] {
      if (returned) ++late;
    };
    o.callbacks = {.on_started_leading = check, .on_stopped_leading = check, .on_new_leader = [&](auto&) { check(); }};
    auto e =
        leader_elector::create(std::make_shared<memory_lock>(store, io.ctx.get_executor()), o, io.ctx.get_executor());
    BOOST_REQUIRE(e.has_value());
    e->start();
    std::this_thread::sleep_for(std::chrono::milliseconds(round * 3));  // stop at varied points
    e->stop();
    returned = true;
    BOOST_TEST(!e->is_leader());
    std::this_thread::sleep_for(20ms);
    BOOST_TEST(late == 0);
  }
}

BOOST_AUTO_TEST_CASE(metrics_show_leadership_and_transitions) {
  io_threads io;
  auto store = std::make_shared<memory_store>();
  informer::metrics::registry r;
  const auto scrape = [&r] {
    std::string out;
    r.write_prometheus(out);
    return out;
  };
  const auto has = [&](const std::string& line) { return scrape().find(line + "\n") != std::string::npos; };
  {
    candidate a(std::make_shared<memory_lock>(store, io.ctx.get_executor()), options_for("a"), io.ctx.get_executor());
    informer::metrics::register_leader_election_metrics(r, *a.elector, "lock");
    BOOST_TEST(has(R"(leader_election_master_status{name="lock"} 0)"));
    BOOST_TEST(scrape().find("leader_election_transitions{") == std::string::npos);  // nothing read yet
    a.elector->start();
    BOOST_REQUIRE(eventually([&] { return has(R"(leader_election_master_status{name="lock"} 1)"); }, 2s));
    BOOST_TEST(has(R"(leader_election_transitions{name="lock"} 0)"));
    a.elector->stop();
    BOOST_TEST(has(R"(leader_election_master_status{name="lock"} 0)"));
  }
  // A successor takes over: one transition more.
  candidate b(std::make_shared<memory_lock>(store, io.ctx.get_executor()), options_for("b"), io.ctx.get_executor());
  informer::metrics::register_leader_election_metrics(r, *b.elector, "lock");
  b.elector->start();
  BOOST_REQUIRE(eventually([&] { return has(R"(leader_election_master_status{name="lock"} 1)"); }, 5s));
  BOOST_TEST(has(R"(leader_election_transitions{name="lock"} 1)"));
  b.elector.reset();
  BOOST_TEST(scrape().find("leader_election_master_status{") == std::string::npos);  // gone with the elector
}

// A lock call still in flight when stop() returned could complete into an executor its owner has
// destroyed by then: stop() waits for it.
BOOST_AUTO_TEST_CASE(stop_waits_for_a_lock_call_in_flight) {
  io_threads io;
  auto lock = std::make_shared<parked_lock>(io.ctx.get_executor());
  candidate c(lock, options_for("a"), io.ctx.get_executor());
  c.elector->start();
  BOOST_REQUIRE(eventually([&] { return lock->parked() == 1; }));
  std::atomic<bool> returned{false};
  std::thread stopper([&] {
    c.elector->stop();
    returned = true;
  });
  std::this_thread::sleep_for(300ms);
  BOOST_TEST(!returned);
  lock->fail_all();
  stopper.join();
  BOOST_TEST(lock->parked() == 0u);
  BOOST_TEST(c.started == 0);
}

BOOST_AUTO_TEST_CASE(stop_from_a_callback_does_not_wait_for_itself) {
  io_threads io;
  auto store = std::make_shared<memory_store>();
  std::optional<leader_elector> elector;
  std::atomic<int> stopped{0};
  auto o = options_for("a");
  o.release_on_cancel = true;
  o.callbacks = {.on_started_leading = [&] { elector->stop(); }, .on_stopped_leading = [&] { ++stopped; }};
  auto e =
      leader_elector::create(std::make_shared<memory_lock>(store, io.ctx.get_executor()), o, io.ctx.get_executor());
  BOOST_REQUIRE(e.has_value());
  elector.emplace(std::move(*e));
  elector->start();
  BOOST_TEST(eventually([&] { return stopped == 1; }, 2s));
  BOOST_TEST(eventually([&] { return store->snapshot()->holder_identity.empty(); }, 2s));
  BOOST_TEST(!elector->is_leader());
}

BOOST_AUTO_TEST_CASE(of_three_candidates_exactly_one_leads) {
  io_threads io;
  auto store = std::make_shared<memory_store>();
  std::vector<std::unique_ptr<candidate>> candidates;
  for (const auto* id : {"a", "b", "c"}) {
    candidates.push_back(std::make_unique<candidate>(std::make_shared<memory_lock>(store, io.ctx.get_executor()),
                                                     options_for(id), io.ctx.get_executor()));
  }
  for (auto& c : candidates) c->elector->start();
  const auto leaders = [&] {
    int n = 0;
    for (auto& c : candidates) n += c->elector->is_leader() ? 1 : 0;
    return n;
  };
  BOOST_REQUIRE(eventually([&] { return leaders() == 1; }, 2s));
  const auto until = steady::now() + 1500ms;
  while (steady::now() < until) {
    BOOST_TEST_REQUIRE(leaders() == 1);
    std::this_thread::sleep_for(2ms);
  }
  int started = 0;
  for (auto& c : candidates) started += c->started;
  BOOST_TEST(started == 1);
}
