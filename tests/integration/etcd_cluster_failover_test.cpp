// The etcd client and the etcd source against a real three-member cluster (etcd_cluster in
// tests/support/control_plane.hpp): the member in use killed under calls and watches and brought
// back, the leader killed under a running informer with writes going on, a member cut off from its
// peers (require-leader), a watch opened while no member has a leader, a frozen member
// (heartbeats), and the bookmarks heartbeats bring. Each scenario prints the failover time it
// measured ("measured: ...").
#include "informer/etcd/generic_source.hpp"

#include "informer/client/shared_informer.hpp"
#include "informer/etcd/client.hpp"

#include "control_plane.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace etcd = informer::etcd;
using informer::testing::etcd_cluster;

namespace {

// Generous bound for "should happen soon": only reached when something is broken.
constexpr auto patience = 30s;

template <class T>
T must(informer::detailed_result<T> r, const char* what = "call") {
  BOOST_REQUIRE_MESSAGE(r.has_value(), what << " failed: " << (r ? std::string{} : r.error().what()));
  return std::move(*r);
}

template <class Predicate>
bool eventually(Predicate done, std::chrono::nanoseconds timeout = patience) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

double seconds_between(std::chrono::steady_clock::time_point t0, std::chrono::steady_clock::time_point t1) {
  return std::chrono::duration<double>(t1 - t0).count();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return seconds_between(t0, std::chrono::steady_clock::now());
}

void report(const char* what, double seconds) { std::printf("measured: %s: %.2f s\n", what, seconds); }

// A short request timeout: a write proposed while the cluster elects a leader waits for its
// deadline (etcd drops the proposal), and the tests measure failover, not that wait.
etcd::client_options options_for(std::vector<std::string> endpoints) {
  return {.endpoints = std::move(endpoints), .dial_timeout = 1s, .request_timeout = 1s};
}

std::shared_ptr<etcd::client> make_client(etcd::client_options options) {
  auto c = etcd::client::connect(std::move(options));
  BOOST_REQUIRE_MESSAGE(c, (c ? "" : c.error().what()));
  return std::make_shared<etcd::client>(std::move(*c));
}

// The endpoints with member `first` in front (the member a fresh client uses).
std::vector<std::string> starting_with(const etcd_cluster& cluster, std::size_t first) {
  auto eps = cluster.endpoints();
  std::rotate(eps.begin(), eps.begin() + static_cast<std::ptrdiff_t>(first), eps.end());
  return eps;
}

// A put that is retried until it succeeds (an election or a failover may refuse a few).
std::int64_t put_until_done(etcd::client& c, const std::string& key, const std::string& value) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    auto r = c.put(key, value);
    if (r) {
      return *r;
    }
    BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "put " << key << ": " << r.error().what());
    std::this_thread::sleep_for(20ms);
  }
}

// What one client-level watch received.
class watch_log {
public:
  etcd::watch_callback callback() {
    return [this](etcd::watch_update u) {
      std::lock_guard lock(mutex_);
      if (u.is_final()) {
        ended_at_ = std::chrono::steady_clock::now();
      }
      updates_.push_back(std::move(u));
    };
  }
  // When the final update came (once ended()).
  std::chrono::steady_clock::time_point ended_at() {
    std::lock_guard lock(mutex_);
    return ended_at_;
  }
  bool created() {
    return any([](const etcd::watch_update& u) { return u.kind == etcd::watch_update_kind::created; });
  }
  bool ended() {
    return any([](const etcd::watch_update& u) { return u.is_final(); });
  }
  etcd::watch_update last() {
    std::lock_guard lock(mutex_);
    return updates_.empty() ? etcd::watch_update{} : updates_.back();
  }
  bool saw_key(const std::string& key) {
    return any([&](const etcd::watch_update& u) {
      return std::any_of(u.events.begin(), u.events.end(), [&](const etcd::event& e) { return e.kv.key == key; });
    });
  }
  std::int64_t last_event_revision() {
    std::lock_guard lock(mutex_);
    std::int64_t rev = 0;
    for (const auto& u : updates_) {
      for (const auto& e : u.events) {
        rev = std::max(rev, e.kv.mod_revision);
      }
    }
    return rev;
  }
  std::size_t progress_count() {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(updates_.begin(), updates_.end(), [](const etcd::watch_update& u) {
      return u.kind == etcd::watch_update_kind::progress;
    }));
  }

private:
  template <class Predicate>
  bool any(Predicate p) {
    std::lock_guard lock(mutex_);
    return std::any_of(updates_.begin(), updates_.end(), p);
  }
  std::mutex mutex_;
  std::vector<etcd::watch_update> updates_;
  std::chrono::steady_clock::time_point ended_at_;
};

// An io_context run by two threads, for informers.
class io_threads {
public:
  io_threads() {
    for (int i = 0; i < 2; ++i) {
      threads_.emplace_back([this] { io.run(); });
    }
  }
  ~io_threads() {
    work_.reset();
    io.stop();
    for (auto& t : threads_) {
      t.join();
    }
  }
  io_threads(const io_threads&) = delete;
  io_threads& operator=(const io_threads&) = delete;

  asio::io_context io;

private:
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io);
  std::vector<std::thread> threads_;
};

std::string config(int n) { return R"({"spec":{"n":)" + std::to_string(n) + "}}"; }

// An informer over `prefix` through `c`, counting its lists.
struct informer_under_test {
  informer_under_test(std::shared_ptr<etcd::client> c, asio::io_context& io, const std::string& prefix) {
    informer::shared_informer_options o;
    o.name = "etcd-cluster-test";
    o.reflector.backoff = {.initial = 50ms, .max = 500ms};
    o.reflector.metrics.on_list = [this](std::size_t, std::chrono::nanoseconds) { ++lists; };
    o.reflector.metrics.on_watch_close = [this](std::size_t) {
      std::lock_guard lock(mutex);
      watch_closes.push_back(std::chrono::steady_clock::now());
    };
    inf = informer::shared_informer::create(
        etcd::make_generic_source(std::move(c), io.get_executor(), {.prefix = prefix}), o);
    inf->run();
    BOOST_REQUIRE(informer::wait_for_cache_sync({inf}, patience));
  }
  ~informer_under_test() { inf->stop(); }
  informer_under_test(const informer_under_test&) = delete;
  informer_under_test& operator=(const informer_under_test&) = delete;

  // Whether the cache holds `name` at `revision` or later.
  bool has(const std::string& name, std::int64_t revision) const {
    auto obj = inf->get_store()->get_by_key(name);
    return obj && std::stoll(std::string{obj->resource_version()}) >= revision;
  }

  // When the first watch that ended at or after `t0` ended, if one did.
  std::optional<std::chrono::steady_clock::time_point> watch_closed_after(std::chrono::steady_clock::time_point t0) {
    std::lock_guard lock(mutex);
    for (auto t : watch_closes) {
      if (t >= t0) {
        return t;
      }
    }
    return std::nullopt;
  }

  std::shared_ptr<informer::shared_informer> inf;
  std::atomic<int> lists{0};
  std::mutex mutex;
  std::vector<std::chrono::steady_clock::time_point> watch_closes;
};

// Name -> resourceVersion: the informer's cache, and what etcd holds under `prefix`.
std::map<std::string, std::string> cached(const informer_under_test& t) {
  std::map<std::string, std::string> out;
  for (const auto& obj : t.inf->get_store()->list()) {
    out[std::string{obj->name()}] = std::string{obj->resource_version()};
  }
  return out;
}
std::map<std::string, std::string> stored(etcd::client& c, const std::string& prefix) {
  std::map<std::string, std::string> out;
  for (const auto& kv : must(c.list_prefix_paged(prefix), "list").kvs) {
    out[kv.key.substr(prefix.size())] = std::to_string(kv.mod_revision);
  }
  return out;
}

// Puts and deletes under a prefix until stopped, through its own client; failed writes (during an
// election or a failover) are simply tried again later.
class writer {
public:
  writer(std::vector<std::string> endpoints, std::string prefix)
      : client_(make_client(options_for(std::move(endpoints)))), prefix_(std::move(prefix)) {
    thread_ = std::thread([this] { run(); });
  }
  ~writer() { stop(); }
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  void stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  int writes() const { return writes_; }

private:
  void run() {
    std::mt19937 random(42);
    for (int n = 0; !stop_; ++n) {
      const std::string key = prefix_ + "k" + std::to_string(random() % 30);
      const bool ok =
          random() % 5 == 0 ? client_->delete_range(key).has_value() : client_->put(key, config(n)).has_value();
      writes_ += ok ? 1 : 0;
      std::this_thread::sleep_for(ok ? 5ms : 50ms);
    }
  }

  std::shared_ptr<etcd::client> client_;
  const std::string prefix_;
  std::atomic<bool> stop_{false};
  std::atomic<int> writes_{0};
  std::thread thread_;
};

// Waits until the informer matches etcd: same names, same resourceVersions.
void require_converged(const informer_under_test& t, etcd::client& c, const std::string& prefix) {
  std::map<std::string, std::string> in_cache;
  std::map<std::string, std::string> in_etcd;
  const bool same = eventually([&] {
    in_etcd = stored(c, prefix);
    in_cache = cached(t);
    return in_cache == in_etcd;
  });
  BOOST_TEST_REQUIRE(same, "cache " << in_cache.size() << " objects, etcd " << in_etcd.size());
}

}  // namespace

BOOST_AUTO_TEST_CASE(calls_and_watches_move_on_when_their_member_is_killed_and_it_comes_back) {
  etcd_cluster cluster;
  auto c = make_client(options_for(cluster.endpoints()));  // member 0 first
  const auto start = must(c->put("/k/a", "1"), "put");
  watch_log log;
  auto handle = c->watch("/k/", {.prefix = true, .start_revision = start + 1}, log.callback());
  BOOST_REQUIRE(eventually([&] { return log.created(); }));

  const auto killed = std::chrono::steady_clock::now();
  cluster.kill_member(0);
  // A write the kill cut mid-call is not retried (it may have been applied): then the next one
  // goes to the next member.
  const auto written = put_until_done(*c, "/k/b", "2");
  report("put on the next member after its member was killed", seconds_since(killed));
  BOOST_REQUIRE(eventually([&] { return log.ended(); }));
  report("watch ended after its member was killed", seconds_between(killed, log.ended_at()));
  BOOST_TEST((log.last().kind == etcd::watch_update_kind::failed));
  BOOST_TEST((log.last().failure == informer::condition::stream_cut), log.last().failure.what());

  // Watched again from the last revision delivered + 1: nothing written meanwhile is lost.
  watch_log again;
  auto handle2 = c->watch("/k/", {.prefix = true, .start_revision = std::max(log.last_event_revision(), start) + 1},
                          again.callback());
  BOOST_REQUIRE(eventually([&] { return again.saw_key("/k/b"); }));
  BOOST_TEST(must(c->get("/k/b"), "get")->mod_revision == written);

  // The member comes back; then the one the client moved to dies: the client moves on again.
  cluster.restart_member(0);
  const auto mid = must(c->put("/k/c", "3"), "put");
  BOOST_REQUIRE(eventually([&] { return again.saw_key("/k/c"); }));
  cluster.kill_member(1);
  cluster.kill_member(1);  // harmless twice
  put_until_done(*c, "/k/d", "4");
  BOOST_TEST(must(c->range("/k/", etcd::prefix_end("/k/")), "range").kvs.size() == 4u);
  BOOST_TEST(mid > written);
}

BOOST_AUTO_TEST_CASE(an_informer_survives_its_leader_killed_and_restarted_without_relisting) {
  etcd_cluster cluster;
  const std::size_t leader = cluster.leader_index();
  const std::string prefix = "/inf/";
  auto c = make_client(options_for(starting_with(cluster, leader)));  // the informer uses the leader
  for (int i = 0; i < 10; ++i) {
    must(c->put(prefix + "k" + std::to_string(i), config(i)), "put");
  }
  io_threads io;
  informer_under_test t(c, io.io, prefix);
  writer w(cluster.endpoints(), prefix);
  BOOST_REQUIRE(eventually([&] { return w.writes() > 20; }));

  const auto killed = std::chrono::steady_clock::now();
  cluster.kill_member(leader);
  auto other = make_client(options_for(starting_with(cluster, (leader + 1) % 3)));
  const auto marker = put_until_done(*other, prefix + "marker", config(-1));
  report("first write accepted after the leader was killed", seconds_since(killed));
  const auto accepted = std::chrono::steady_clock::now();
  BOOST_REQUIRE(eventually([&] { return t.has("marker", marker); }));
  report("informer saw that write, after it was accepted", seconds_since(accepted));
  if (auto closed = t.watch_closed_after(killed)) {
    report("informer's watch ended after the leader was killed", seconds_between(killed, *closed));
  }

  std::this_thread::sleep_for(500ms);
  cluster.restart_member(leader);
  const int before = w.writes();
  BOOST_REQUIRE(eventually([&] { return w.writes() > before + 20; }));
  w.stop();
  require_converged(t, *other, prefix);
  BOOST_TEST(t.lists.load() == 1, "the informer relisted");
}

BOOST_AUTO_TEST_CASE(a_watch_on_a_member_cut_off_from_its_peers_fails_instead_of_stalling) {
  etcd_cluster cluster;
  // No heartbeats here: a member without a leader still answers progress requests itself, so
  // only the require-leader metadata can end this watch.
  auto options = options_for(cluster.endpoints());
  options.watch_progress_interval = 0ms;
  auto c = make_client(options);
  const auto start = must(c->put("/iso/a", "1"), "put");
  watch_log log;
  auto handle = c->watch("/iso/", {.prefix = true, .start_revision = start + 1}, log.callback());
  BOOST_REQUIRE(eventually([&] { return log.created(); }));

  const auto cut = std::chrono::steady_clock::now();
  cluster.pause_member(1);
  cluster.pause_member(2);
  // Three election timeouts (500 ms) without a leader, checked once per election timeout.
  BOOST_REQUIRE_MESSAGE(eventually([&] { return log.ended(); }, 10s), "the watch stalled on a member with no leader");
  report("watch on a member cut off from its peers ended", seconds_between(cut, log.ended_at()));
  BOOST_TEST((log.last().kind == etcd::watch_update_kind::failed));
  BOOST_TEST(log.last().failure.detail().find("no leader") != std::string::npos, log.last().failure.what());
  BOOST_TEST((log.last().failure == informer::condition::stream_cut));

  cluster.resume_member(1);
  cluster.resume_member(2);
  const auto after = put_until_done(*c, "/iso/b", "2");
  watch_log again;
  auto handle2 = c->watch("/iso/", {.prefix = true, .start_revision = start + 1}, again.callback());
  BOOST_REQUIRE(eventually([&] { return again.saw_key("/iso/b"); }));
  // (A put that timed out while there was no quorum may still be applied later, after `after`.)
  BOOST_TEST(again.last_event_revision() >= after);
}

BOOST_AUTO_TEST_CASE(a_watch_opened_while_there_is_no_leader_waits_for_one) {
  // During an election every member refuses new streams ("no leader"); an informer whose watch
  // failed then would relist. The client tries again a tick later instead (with heartbeats on).
  etcd_cluster cluster;
  auto options = options_for({cluster.endpoint(0)});
  options.watch_progress_interval = 1s;  // ticks every 250 ms
  auto c = make_client(options);
  const auto start = must(c->put("/nl/a", "1"), "put");
  cluster.pause_member(1);
  cluster.pause_member(2);
  BOOST_REQUIRE(eventually([&] {
    try {
      cluster.leader_index();
      return false;
    } catch (const std::runtime_error&) {
      return true;  // no member knows a leader
    }
  }));
  watch_log log;
  auto handle = c->watch("/nl/", {.prefix = true, .start_revision = start + 1}, log.callback());
  std::this_thread::sleep_for(500ms);
  BOOST_TEST(!log.ended(), "the watch failed: " << log.last().failure.what());
  const auto resumed = std::chrono::steady_clock::now();
  cluster.resume_member(1);
  cluster.resume_member(2);
  BOOST_REQUIRE(eventually([&] { return log.created() || log.ended(); }));
  BOOST_REQUIRE_MESSAGE(log.created(), "the watch failed: " << log.last().failure.what());
  report("watch opened without a leader was created after the quorum came back", seconds_since(resumed));
  const auto after = put_until_done(*c, "/nl/b", "2");
  BOOST_REQUIRE(eventually([&] { return log.saw_key("/nl/b"); }));
  BOOST_TEST(log.last_event_revision() >= after);
}

BOOST_AUTO_TEST_CASE(heartbeats_find_a_frozen_member_and_the_informer_moves_on) {
  etcd_cluster cluster;
  const std::string prefix = "/hb/";
  auto options = options_for(cluster.endpoints());  // the informer uses member 0
  options.watch_progress_interval = 500ms;
  options.watch_progress_timeout = 1s;
  auto c = make_client(options);
  must(c->put(prefix + "a", config(1)), "put");
  io_threads io;
  informer_under_test t(c, io.io, prefix);
  auto others = make_client(options_for({cluster.endpoint(1), cluster.endpoint(2)}));
  const auto seen = put_until_done(*others, prefix + "b", config(2));
  BOOST_REQUIRE(eventually([&] { return t.has("b", seen); }));

  // Frozen: its connections stay open and nothing comes back, so no stream ends by itself (gRPC's
  // keepalive would take 40 s); the other two keep a quorum.
  const auto frozen = std::chrono::steady_clock::now();
  cluster.pause_member(0);
  const auto after = put_until_done(*others, prefix + "c", config(3));
  report("first write accepted by the other members after the freeze", seconds_since(frozen));
  BOOST_REQUIRE_MESSAGE(eventually([&] { return t.has("c", after); }, 10s), "the informer stayed on the frozen member");
  report("informer saw that write, after the freeze", seconds_since(frozen));
  const auto closed = t.watch_closed_after(frozen);
  BOOST_REQUIRE(closed.has_value());
  report("informer's watch on the frozen member ended", seconds_between(frozen, *closed));

  cluster.resume_member(0);
  put_until_done(*others, prefix + "d", config(4));
  require_converged(t, *others, prefix);
  BOOST_TEST(t.lists.load() == 1, "the informer relisted");
}

BOOST_AUTO_TEST_CASE(heartbeats_bring_caught_up_watches_bookmarks) {
  etcd_cluster cluster;
  auto options = options_for(cluster.endpoints());
  options.watch_progress_interval = 200ms;
  auto c = make_client(options);
  const auto start = must(c->put("/bm/a", "1"), "put");
  watch_log quiet;
  auto handle = c->watch("/bm/", {.prefix = true, .start_revision = start + 1}, quiet.callback());
  BOOST_REQUIRE(eventually([&] { return quiet.progress_count() >= 3; }, 5s));
  BOOST_TEST(quiet.last().revision >= start);
  BOOST_TEST(!quiet.ended());
}
