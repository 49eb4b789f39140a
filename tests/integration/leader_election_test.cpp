#include "informer/leaderelection/leader_elector.hpp"

#include <boost/test/unit_test.hpp>

#include "control_plane.hpp"
#include "shared_control_plane.hpp"
#include "io_threads.hpp"
#include "test_locks.hpp"

#include "informer/apiserver/lease_lock.hpp"
#include "informer/etcd/lease_lock.hpp"

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using informer::leader_elector;
using informer::testing::cluster;
using informer::testing::cluster_fixture;
using informer::testing::cluster_running;
using informer::testing::control_plane;
using informer::testing::io_threads;
using informer::testing::switchable_lock;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto lease = 2s;
constexpr auto renew_deadline = 1500ms;
constexpr auto retry = 250ms;
// A candidate's wait between tries is at most retry * 2.2; a round trip to either server on
// loopback is a few milliseconds, given a generous allowance here.
constexpr auto max_try_gap = retry * 22 / 10;
constexpr auto round_trips = 300ms;

long long ms(steady::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

bool eventually(const std::function<bool()>& condition, steady::duration limit) {
  const auto deadline = steady::now() + limit;
  while (!condition()) {
    if (steady::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// Makes the lock of one candidate on the store under test, named `name`.
using lock_factory = std::function<std::shared_ptr<informer::resource_lock>(const std::string& name)>;

struct candidate {
  std::shared_ptr<switchable_lock> lock;
  std::optional<leader_elector> elector;
  std::atomic<int> started{0};
  std::atomic<int> stopped{0};
};

// Candidates for one lock, and a sampler that checks every millisecond that at most one leads.
class election {
public:
  election(io_threads& io, const lock_factory& make, const std::string& name, int n) {
    for (int i = 0; i < n; ++i) {
      auto c = std::make_unique<candidate>();
      c->lock = std::make_shared<switchable_lock>(make(name), io.ctx.get_executor());
      auto* self = c.get();
      auto e = leader_elector::create(c->lock,
                                      {.identity = name + "-" + std::to_string(i),
                                       .lease_duration = lease,
                                       .renew_deadline = renew_deadline,
                                       .retry_period = retry,
                                       .release_on_cancel = true,
                                       .callbacks = {.on_started_leading = [self] { ++self->started; },
                                                     .on_stopped_leading = [self] { ++self->stopped; }}},
                                      io.ctx.get_executor());
      BOOST_REQUIRE_MESSAGE(e.has_value(), (e ? "" : e.error().what()));
      c->elector.emplace(std::move(*e));
      candidates_.push_back(std::move(c));
    }
    sampler_ = std::thread([this] {
      while (!done_) {
        max_leaders_ = std::max(max_leaders_.load(), leaders());
        ++samples_;
        std::this_thread::sleep_for(1ms);
      }
    });
    for (auto& c : candidates_) c->elector->start();
  }

  ~election() {
    for (auto& c : candidates_) c->elector->stop();
    done_ = true;
    sampler_.join();
    BOOST_TEST(max_leaders_ <= 1, "two candidates led at once");
    BOOST_TEST(samples_ > 100);
  }

  int leaders() const {
    int n = 0;
    for (const auto& c : candidates_) n += c->elector->is_leader() ? 1 : 0;
    return n;
  }

  // The one leader (-1 if none or several).
  int leader() const {
    int found = -1;
    for (std::size_t i = 0; i < candidates_.size(); ++i) {
      if (!candidates_[i]->elector->is_leader()) continue;
      if (found >= 0) return -1;
      found = static_cast<int>(i);
    }
    return found;
  }

  candidate& operator[](int i) { return *candidates_[static_cast<std::size_t>(i)]; }
  int max_leaders() const { return max_leaders_; }

private:
  std::vector<std::unique_ptr<candidate>> candidates_;
  std::thread sampler_;
  std::atomic<bool> done_{false};
  std::atomic<int> max_leaders_{0};
  std::atomic<int> samples_{0};
};

// Exactly one of `n` leads, and keeps leading while nothing fails.
void elects_exactly_one(io_threads& io, const lock_factory& make, const std::string& name, int n) {
  election e(io, make, name, n);
  BOOST_REQUIRE(eventually([&] { return e.leader() >= 0; }, lease + max_try_gap + round_trips));
  const int leader = e.leader();
  std::this_thread::sleep_for(2 * lease);
  BOOST_TEST(e.leader() == leader);
  BOOST_TEST(e[leader].started == 1);
  int started = 0;
  for (int i = 0; i < n; ++i) started += e[i].started;
  BOOST_TEST(started == 1);
  BOOST_TEST(e.max_leaders() == 1);
}

// A leader cut off from the store stops within renew_deadline; another takes over within about a
// lease and a retry; then a clean stop of that one hands over within a retry.
void survives_a_blocked_leader_and_a_clean_stop(io_threads& io, const lock_factory& make, const std::string& name) {
  election e(io, make, name, 3);
  BOOST_REQUIRE(eventually([&] { return e.leader() >= 0; }, lease + max_try_gap + round_trips));
  const int first = e.leader();
  std::this_thread::sleep_for(2 * retry);

  e[first].lock->set_on(false);
  const auto cut = steady::now();
  BOOST_REQUIRE(eventually([&] { return !e[first].elector->is_leader(); }, 2 * renew_deadline));
  const auto deposed = steady::now() - cut;
  BOOST_TEST(deposed <= renew_deadline, "the cut leader led on for " << ms(deposed) << " ms");
  BOOST_REQUIRE(eventually([&] { return e.leader() >= 0; }, 3 * lease));
  const auto taken = steady::now() - cut;
  const int second = e.leader();
  BOOST_TEST(second != first);
  BOOST_TEST(e[first].stopped == 1);
  // The followers saw the last renewal within a try gap of it, wait a lease from then, and try
  // again within a gap.
  BOOST_TEST(taken <= lease + 2 * max_try_gap + round_trips, "taken over " << ms(taken) << " ms after the cut");
  BOOST_TEST(taken >= lease - retry, "taken over " << ms(taken) << " ms after the cut");
  BOOST_TEST_MESSAGE(name << ": deposed after " << ms(deposed) << " ms, taken over after " << ms(taken) << " ms");

  const auto stop_began = steady::now();
  e[second].elector->stop();
  const auto stop_took = steady::now() - stop_began;
  BOOST_TEST(e[second].stopped == 1);
  BOOST_REQUIRE(eventually([&] { return e.leader() >= 0; }, 2 * lease));
  const auto handed = steady::now() - stop_began;
  const int third = e.leader();
  BOOST_TEST((third != first && third != second));
  BOOST_TEST(handed <= max_try_gap + round_trips, "handed over " << ms(handed) << " ms after stop");
  BOOST_TEST_MESSAGE(name << ": stop took " << ms(stop_took) << " ms, handed over after " << ms(handed) << " ms");
}

lock_factory lease_locks(io_threads& io) {
  return [&io](const std::string& name) -> std::shared_ptr<informer::resource_lock> {
    auto http = informer::http_client::create(io.ctx.get_executor(),
                                              informer::rest_config{.server = cluster->apiserver_url(),
                                                                    .tls = {.ca_file = cluster->ca_file()},
                                                                    .bearer_token = cluster->admin_token(),
                                                                    .qps = 0});
    BOOST_REQUIRE_MESSAGE(http.has_value(), (http ? "" : http.error().what()));
    return std::make_shared<informer::lease_lock>(*http, "default", name);
  };
}

// One etcd client per candidate, as separate processes would have; kept until the test ends.
struct etcd_clients {
  lock_factory factory() {
    return [this](const std::string& name) -> std::shared_ptr<informer::resource_lock> {
      auto c = informer::etcd::client::connect({.endpoints = {cluster->etcd_endpoint()}, .request_timeout = 1s});
      BOOST_REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().what()));
      clients.push_back(std::make_unique<informer::etcd::client>(std::move(*c)));
      return std::make_shared<informer::etcd::lease_lock>(*clients.back(), "/leader-election-test/" + name);
    };
  }
  std::vector<std::unique_ptr<informer::etcd::client>> clients;
};

// The lock's operations, waited for.
std::tuple<informer::error, std::optional<informer::versioned_lock_record>> get(informer::resource_lock& lock) {
  std::promise<std::tuple<informer::error, std::optional<informer::versioned_lock_record>>> done;
  lock.async_get([&](informer::error e, std::optional<informer::versioned_lock_record> r) {
    done.set_value({std::move(e), std::move(r)});
  });
  return done.get_future().get();
}

std::tuple<informer::error, std::string> write(informer::resource_lock& lock, const informer::lock_record& record,
                                               const std::optional<std::string>& version) {
  std::promise<std::tuple<informer::error, std::string>> done;
  auto handler = [&](informer::error e, std::string v) { done.set_value({std::move(e), std::move(v)}); };
  if (version) {
    lock.async_update(record, *version, std::move(handler));
  } else {
    lock.async_create(record, std::move(handler));
  }
  return done.get_future().get();
}

// The record a lock stores reads back equal (times at microsecond precision), and writes are
// conditional on the version.
void stores_the_record_conditionally(informer::resource_lock& lock) {
  const auto now = std::chrono::floor<std::chrono::microseconds>(std::chrono::system_clock::now());
  const informer::lock_record record{.holder_identity = "a",
                                     .lease_duration = 7s,
                                     .acquire_time = now - 1h,
                                     .renew_time = now,
                                     .leader_transitions = 4};
  auto [none_error, none] = get(lock);
  BOOST_TEST_REQUIRE(!none_error, none_error.what());
  BOOST_TEST(!none.has_value());

  auto [created_error, created] = write(lock, record, std::nullopt);
  BOOST_TEST_REQUIRE(!created_error, created_error.what());
  auto [again_error, again] = write(lock, record, std::nullopt);
  BOOST_TEST((again_error == informer::condition::conflict), again_error.what());

  auto [read_error, read] = get(lock);
  BOOST_TEST_REQUIRE(!read_error, read_error.what());
  BOOST_TEST_REQUIRE(read.has_value());
  BOOST_TEST((read->record == record));
  BOOST_TEST(read->version == created);

  auto next = record;
  next.holder_identity = "b";
  next.renew_time = now + 1s;
  auto [updated_error, updated] = write(lock, next, created);
  BOOST_TEST_REQUIRE(!updated_error, updated_error.what());
  BOOST_TEST(updated != created);
  auto [stale_error, stale] = write(lock, record, created);
  BOOST_TEST((stale_error == informer::condition::conflict), stale_error.what());
  auto [last_error, last] = get(lock);
  BOOST_TEST_REQUIRE(last.has_value());
  BOOST_TEST((last->record == next));
}

}  // namespace

// The control plane's etcd serves the etcd lock, its kube-apiserver the Lease lock.
BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

BOOST_AUTO_TEST_SUITE(leader_election, *boost::unit_test::precondition(cluster_running))

BOOST_AUTO_TEST_CASE(lease_lock_two_candidates) {
  io_threads io;
  elects_exactly_one(io, lease_locks(io), "two", 2);
}

BOOST_AUTO_TEST_CASE(lease_lock_three_candidates_blocked_leader_and_clean_stop) {
  io_threads io;
  survives_a_blocked_leader_and_a_clean_stop(io, lease_locks(io), "three");
}

BOOST_AUTO_TEST_CASE(etcd_lock_two_candidates) {
  etcd_clients clients;  // outlive the locks
  io_threads io;
  elects_exactly_one(io, clients.factory(), "two", 2);
}

BOOST_AUTO_TEST_CASE(etcd_lock_three_candidates_blocked_leader_and_clean_stop) {
  etcd_clients clients;
  io_threads io;
  survives_a_blocked_leader_and_a_clean_stop(io, clients.factory(), "three");
}

BOOST_AUTO_TEST_CASE(lease_lock_stores_the_record_conditionally) {
  io_threads io;
  auto lock = lease_locks(io)("record");
  stores_the_record_conditionally(*lock);
}

BOOST_AUTO_TEST_CASE(etcd_lock_stores_the_record_conditionally) {
  etcd_clients clients;
  io_threads io;
  auto lock = clients.factory()("record");
  stores_the_record_conditionally(*lock);
}

BOOST_AUTO_TEST_SUITE_END()
