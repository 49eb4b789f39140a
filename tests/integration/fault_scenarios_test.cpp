// Fault injection against the real kube-apiserver: an informer of ConfigMaps reaches the server
// through a fault proxy (tests/support/fault_proxy.hpp; the SDK's TLS runs through it, to
// 127.0.0.1 so the server's certificate still verifies), while a writer thread creates, updates
// and deletes ConfigMaps straight against the server and the informer's handler is slow on
// purpose. Each scenario breaks something (the connection mid-watch, a silent watch, a list cut
// mid-page, the API server or etcd killed and restarted), lets the informer recover on its own,
// and ends with the convergence check (tests/support/convergence.hpp): cache == a fresh list
// from the server, bodies included, and the handler's view consistent with it.
//
// Timing is random and reproducible: the seed comes from INFORMER_FAULT_SEED, or is drawn and
// printed (the log says how to replay it; every failure names it). scripts/fault-soak.sh N runs
// this file for N seeds.
#include "informer/apiserver/lister_watcher.hpp"
#include "informer/apiserver/rest_client.hpp"
#include "informer/client/shared_informer.hpp"
#include "informer/codec/protobuf.hpp"
#include "informer/core/condition.hpp"
#include "informer/core/mutex.hpp"

#include <boost/test/unit_test.hpp>

#include "control_plane.hpp"
#include "convergence.hpp"
#include "fault_proxy.hpp"
#include "io_threads.hpp"
#include "wait.hpp"

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using informer::object;
using informer::testing::close_mode;
using informer::testing::control_plane;
using informer::testing::eventually;
using informer::testing::fault_direction;
using informer::testing::fault_proxy;

namespace {

constexpr auto converge_timeout = 30s;
constexpr auto liveness = 3s;

std::uint64_t the_seed() {
  static const std::uint64_t seed = [] {
    if (const char* s = std::getenv("INFORMER_FAULT_SEED"); s != nullptr && *s != '\0')
      return static_cast<std::uint64_t>(std::strtoull(s, nullptr, 10));
    return static_cast<std::uint64_t>(std::random_device{}()) << 32 | std::random_device{}();
  }();
  return seed;
}

template <class Future>
auto wait(Future f) {
  BOOST_TEST_REQUIRE((f.wait_for(60s) == std::future_status::ready), "request did not complete");
  return f.get();
}

// As `wait`, for the writer's thread (Boost.Test's assertions are not thread-safe): the error of
// a request that did not complete in time is a timeout.
template <class Future>
informer::error writer_wait(Future f) {
  if (f.wait_for(60s) != std::future_status::ready)
    return informer::error{make_error_code(asio::error::timed_out), "the write did not complete"};
  return std::get<0>(f.get());
}

// The control plane and a client that talks to it directly (the writer's and the check's).
struct world {
  world()
      : direct(informer::http_client::create(io.ctx.get_executor(), {.server = cp.apiserver_url(),
                                                                     .tls = {.ca_file = cp.ca_file()},
                                                                     .bearer_token = cp.admin_token(),
                                                                     .qps = 0})
                   .value()) {}
  control_plane cp;  // first: destroyed after the clients
  informer::testing::io_threads io;
  informer::http_client direct;
};

world* the_world = nullptr;

struct world_fixture {
  world_fixture() {
    if (!control_plane::available()) return;
    the_world = new world();
    BOOST_TEST_MESSAGE("fault scenarios: seed " << the_seed() << " (INFORMER_FAULT_SEED=" << the_seed()
                                                << " replays it)");
  }
  ~world_fixture() { delete the_world; }
};

bool world_running(boost::unit_test::test_unit_id) { return the_world != nullptr; }

const informer::resource& config_maps() {
  static const auto r = informer::parse_resource("configmaps").value();
  return r;
}

std::string config_map(const std::string& name, const std::string& value) {
  // Some bulk, so that a small page spans a few TLS records and a cut lands mid-page.
  return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
         R"(","labels":{"app":"faults"},"annotations":{"note":"a note to make the object longer than a line"}},)" +
         R"("data":{"value":")" + value + R"(","padding":")" + std::string(300, 'p') + R"("}})";
}

// Counts list calls that carry a continue token, then hands them on.
class page_counting_source final : public informer::lister_watcher {
public:
  explicit page_counting_source(std::shared_ptr<informer::lister_watcher> inner) : inner_(std::move(inner)) {}
  asio::any_io_executor get_executor() const override { return inner_->get_executor(); }
  std::size_t continued() const { return continued_.load(); }

protected:
  void list_impl(informer::list_options options, asio::any_completion_handler<list_signature> handler) override {
    if (!options.continue_token.empty()) ++continued_;
    inner_->async_list(std::move(options), std::move(handler));
  }
  void watch_impl(informer::watch_options options, asio::any_completion_handler<watch_signature> handler) override {
    inner_->async_watch(std::move(options), std::move(handler));
  }

private:
  std::shared_ptr<informer::lister_watcher> inner_;
  std::atomic<std::size_t> continued_{0};
};

struct scenario_options {
  std::int64_t page_size = 500;
  bool initial_list_from_cache = true;
};

// One scenario: its namespace, proxy, informer (through the proxy), slow handler and writer.
class scenario {
public:
  scenario(const std::string& name, scenario_options options = {})
      : name_(name),
        ns_("faults-" + name),
        rng_(the_seed() ^ std::hash<std::string>{}(name)),
        proxy_(the_world->cp.apiserver_url()) {
    BOOST_TEST_MESSAGE(name << ": seed " << the_seed());
    auto& w = *the_world;
    informer::rest_client namespaces(w.direct, informer::parse_resource("namespaces").value());
    auto [e, created] =
        wait(namespaces.async_create(json::parse(R"({"metadata":{"name":")" + ns_ + R"("}})"), {}, asio::use_future));
    BOOST_TEST_REQUIRE(!e, e.what());

    via_proxy_ = std::make_unique<informer::http_client>(
        informer::http_client::create(w.io.ctx.get_executor(), {.server = proxy_.url_for(w.cp.apiserver_url()),
                                                                .tls = {.ca_file = w.cp.ca_file()},
                                                                .bearer_token = w.cp.admin_token(),
                                                                .timeout = 5s,
                                                                .qps = 0})
            .value());
    encoding_ = informer::codec::has_schemas() && rng_() % 2 == 0 ? informer::wire_encoding::protobuf
                                                                  : informer::wire_encoding::json;
    auto lw =
        informer::apiserver_lister_watcher::create(*via_proxy_, config_maps(), {.ns = ns_, .encoding = encoding_});
    BOOST_TEST_REQUIRE(lw.has_value(), lw.error().what());
    source_ = std::make_shared<page_counting_source>(*lw);
    auto direct_lw =
        informer::apiserver_lister_watcher::create(w.direct, config_maps(), {.ns = ns_, .encoding = encoding_});
    BOOST_TEST_REQUIRE(direct_lw.has_value(), direct_lw.error().what());
    direct_source_ = *direct_lw;

    informer::reflector_options reflector;
    reflector.page_size = options.page_size;
    reflector.initial_list_from_cache = options.initial_list_from_cache;
    reflector.watch_liveness_timeout = liveness;
    reflector.backoff = {.initial = 50ms, .max = 1s, .factor = 2.0, .jitter = 0.5, .reset_after = 10s};
    informer_ = informer::shared_informer::create(
        source_, {.name = name, .reflector = reflector, .watch_error_handler = [this](const informer::error& e) {
                    informer::lock_guard lock(errors_mutex_);
                    errors_.push_back(e);
                  }});
    // The slow handler: 0 to 3 ms per notification, reproducibly.
    const std::uint64_t delay_seed = rng_();
    view_ = std::make_unique<informer::testing::handler_view>([delay_seed](std::uint64_t n) {
      std::mt19937_64 r(delay_seed + n);
      return std::chrono::microseconds(r() % 3000);
    });
    view_->attach(*informer_);
  }

  ~scenario() {
    stop_writer();
    informer_->stop();
  }

  std::mt19937_64& rng() { return rng_; }
  fault_proxy& proxy() { return proxy_; }
  informer::shared_informer& informer() { return *informer_; }
  std::shared_ptr<informer::shared_informer> shared_informer() const { return informer_; }
  const page_counting_source& source() const { return *source_; }
  std::size_t writes() const { return writes_.load(); }
  std::size_t error_count() const {
    informer::lock_guard lock(errors_mutex_);
    return errors_.size();
  }
  std::uint64_t tombstones() const { return view_->counts().tombstones; }

  std::chrono::milliseconds random_ms(int lo, int hi) {
    return std::chrono::milliseconds(std::uniform_int_distribution<int>(lo, hi)(rng_));
  }

  /// Creates `n` ConfigMaps before the informer lists.
  void populate(int n) {
    for (int i = 0; i < n; ++i) create_one();
  }

  void start(bool wait_for_sync = true) {
    informer_->run();
    if (wait_for_sync) BOOST_TEST_REQUIRE(informer::wait_for_cache_sync({informer_}, converge_timeout));
  }

  /// Writes in the background until `stop_writer` (or the end of the scenario).
  void start_writer() {
    writer_ = std::thread([this, seed = rng_()] {
      std::mt19937_64 r(seed);
      while (!stop_.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5 + r() % 30));
        const auto choice = r() % 10;
        if (names_.empty() || (choice < 5 && names_.size() < 40)) {
          create_one();
        } else if (choice < 8) {
          const auto& name = names_[r() % names_.size()];
          informer::rest_client cms(the_world->direct, config_maps(), ns_);
          auto patch = R"({"data":{"value":")" + std::to_string(r()) + R"("}})";
          if (!writer_wait(cms.async_patch(name, informer::patch_type::merge_patch, patch, {}, asio::use_future)))
            ++writes_;
        } else {
          const auto at = r() % names_.size();
          informer::rest_client cms(the_world->direct, config_maps(), ns_);
          const auto e = writer_wait(cms.async_delete(names_[at], {}, asio::use_future));
          if (!e || e == informer::condition::not_found) names_.erase(names_.begin() + static_cast<std::ptrdiff_t>(at));
          if (!e) ++writes_;
        }
      }
    });
  }

  void stop_writer() {
    stop_.store(true);
    if (writer_.joinable()) writer_.join();
  }

  /// Liveness reports (a watch that heard nothing for the timeout) seen by the error handler.
  std::size_t silent_watch_reports() const {
    informer::lock_guard lock(errors_mutex_);
    std::size_t n = 0;
    for (const auto& e : errors_)
      if (e.code() == asio::error::timed_out && e.detail().find("received nothing") != std::string::npos) ++n;
    return n;
  }

  /// Stops the writer and requires the informer and its handler to converge on the server.
  void require_converged() {
    stop_writer();
    const auto started = std::chrono::steady_clock::now();
    const auto report = informer::testing::check_convergence(
        *informer_, *view_,
        [this] {
          auto [e, list] = wait(direct_source_->async_list({}, asio::use_future));
          BOOST_TEST_REQUIRE(!e, e.what());
          return list.items;
        },
        converge_timeout);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    const auto counts = view_->counts();
    const auto n = proxy_.counters();
    std::size_t errors = 0;
    std::string first_errors;
    {
      informer::lock_guard lock(errors_mutex_);
      errors = errors_.size();
      for (std::size_t i = 0; i < errors_.size() && i < 3; ++i) first_errors += "\n  " + errors_[i].what();
    }
    BOOST_TEST_MESSAGE(name_ << ": " << (encoding_ == informer::wire_encoding::json ? "json" : "protobuf") << ", "
                             << writes_.load() << " writes, handler saw " << counts.adds << " adds, " << counts.updates
                             << " updates, " << counts.deletes << " deletes (" << counts.tombstones << " tombstones); "
                             << errors << " list/watch errors; proxy: " << n.accepted << " connections, " << n.dropped
                             << " dropped, " << n.cut << " cut, " << n.refused << " refused; converged " << took.count()
                             << " ms after the writes stopped" << first_errors);
    BOOST_TEST(report.empty(), name_ << " (INFORMER_FAULT_SEED=" << the_seed() << ") did not converge:" << report);
  }

private:
  void create_one() {
    informer::rest_client cms(the_world->direct, config_maps(), ns_);
    const auto name = "cm-" + std::to_string(next_name_++);
    if (!writer_wait(cms.async_create(json::parse(config_map(name, "v0")), {}, asio::use_future))) {
      names_.push_back(name);
      ++writes_;
    }
  }

  std::string name_;
  std::string ns_;
  std::mt19937_64 rng_;
  fault_proxy proxy_;
  informer::wire_encoding encoding_ = informer::wire_encoding::json;
  std::unique_ptr<informer::http_client> via_proxy_;
  std::shared_ptr<page_counting_source> source_;
  std::shared_ptr<informer::lister_watcher> direct_source_;
  std::shared_ptr<informer::shared_informer> informer_;
  std::unique_ptr<informer::testing::handler_view> view_;

  mutable informer::mutex errors_mutex_;
  std::vector<informer::error> errors_ INFORMER_GUARDED_BY(errors_mutex_);

  // The writer's own (touched by the writer thread, or before it starts).
  std::thread writer_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> writes_{0};
  std::vector<std::string> names_;
  int next_name_ = 0;
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(world_fixture);

BOOST_AUTO_TEST_SUITE(fault_scenarios, *boost::unit_test::precondition(world_running))

BOOST_AUTO_TEST_CASE(connection_dropped_mid_watch) {
  scenario s("dropped");
  s.populate(10);
  s.start();
  s.start_writer();
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(s.random_ms(300, 1200));
    s.proxy().drop_all(s.rng()() % 2 ? close_mode::reset : close_mode::fin);
  }
  // Then reconnections reset in the middle of the TLS handshake for a while.
  std::this_thread::sleep_for(s.random_ms(200, 800));
  const std::size_t handshake_budget = 40 + s.rng()() % 1500;
  s.proxy().cut_after(handshake_budget, fault_direction::downstream, close_mode::reset);
  s.proxy().drop_all();
  std::this_thread::sleep_for(s.random_ms(800, 1500));
  s.proxy().resume();
  std::this_thread::sleep_for(s.random_ms(300, 1000));
  s.require_converged();
  BOOST_TEST(s.proxy().counters().dropped >= 3u);
}

BOOST_AUTO_TEST_CASE(stalled_watch_is_recovered_by_the_liveness_timeout) {
  scenario s("stalled");
  s.populate(10);
  s.start();
  s.start_writer();
  std::this_thread::sleep_for(s.random_ms(200, 800));
  // The connections open now go silent both ways and stay open; new ones work.
  const auto stalled_at = std::chrono::steady_clock::now();
  s.proxy().stall(fault_direction::both, /*stall_new=*/false);
  BOOST_TEST_REQUIRE(eventually([&] { return s.silent_watch_reports() > 0; }, 15s, 20ms),
                     "the stalled watch was never given up (INFORMER_FAULT_SEED=" << the_seed() << ")");
  const auto detected = std::chrono::steady_clock::now() - stalled_at;
  BOOST_TEST((detected >= liveness - 100ms));
  BOOST_TEST((detected < liveness + 5s));
  std::this_thread::sleep_for(s.random_ms(500, 1500));
  s.require_converged();  // still stalled: recovery owes nothing to resume()
  s.proxy().resume();
}

BOOST_AUTO_TEST_CASE(response_cut_mid_list_with_continue_tokens) {
  scenario s("cutlist", {.page_size = 20, .initial_list_from_cache = false});
  s.populate(60);  // 40-60 KB: pages of 20 span several TLS records, so a cut lands inside a body
  // Every connection is cut past the TLS handshake and the first page, well short of the whole
  // list: each list dies mid-page. (A cut inside the first record of an answer on a reused
  // connection is retried by the HTTP client on a new one, as nothing of it was received.)
  const std::size_t budget = 24000 + s.rng()() % 12000;
  const auto mode = s.rng()() % 2 ? close_mode::reset : close_mode::fin;
  BOOST_TEST_MESSAGE("cutlist: budget " << budget << (mode == close_mode::reset ? " reset" : " fin"));
  s.proxy().cut_after(budget, fault_direction::downstream, mode);
  s.start(/*wait_for_sync=*/false);
  s.start_writer();
  // Usually every list dies mid-page and the informer cannot sync. But when a cut lands in the
  // first TLS record of a page's answer on a reused connection, the client sends that request
  // again on a fresh connection, with a fresh budget, which may carry the rest of the list: the
  // informer then syncs, and the cuts hit its watch (reopened without a report) instead.
  BOOST_TEST_REQUIRE(eventually(
      [&] { return s.proxy().counters().cut >= 3 && (s.error_count() >= 2 || s.informer().has_synced()); }, 20s, 10ms));
  BOOST_TEST(s.source().continued() > 0u);
  s.proxy().resume();
  BOOST_TEST_REQUIRE(informer::wait_for_cache_sync({s.shared_informer()}, converge_timeout));
  std::this_thread::sleep_for(s.random_ms(300, 1000));
  s.require_converged();
}

// Disconnected for longer than the API server's watch cache remembers (100 events per resource
// by default in 1.20): the watch from the last version is refused as too old, the informer
// relists, and what was deleted meanwhile reaches the handler as tombstones.
BOOST_AUTO_TEST_CASE(disconnected_past_the_watch_cache_window) {
  scenario s("longcut");
  s.populate(20);
  s.start();
  s.start_writer();
  std::this_thread::sleep_for(s.random_ms(200, 600));
  s.proxy().refuse();
  s.proxy().drop_all();
  const auto before = s.writes();
  BOOST_TEST_REQUIRE(eventually([&] { return s.writes() >= before + 150; }, 30s, 20ms));
  s.proxy().resume();
  std::this_thread::sleep_for(s.random_ms(300, 1000));
  s.require_converged();
  BOOST_TEST(s.tombstones() > 0u);
}

// Every fault in turn at random moments for a few seconds, on top of the writes and the slow
// handler.
BOOST_AUTO_TEST_CASE(random_faults) {
  scenario s("random");
  s.populate(15);
  s.start();
  s.start_writer();
  const auto until = std::chrono::steady_clock::now() + 8s;
  std::string plan;
  while (std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(s.random_ms(100, 700));
    const auto pick = s.rng()() % 6;
    const auto hold = s.random_ms(200, 4000);
    switch (pick) {
      case 0:
        plan += " drop";
        s.proxy().drop_all(s.rng()() % 2 ? close_mode::reset : close_mode::fin);
        break;
      case 1: {
        const auto direction = static_cast<fault_direction>(1 + s.rng()() % 3);
        const bool stall_new = s.rng()() % 2 == 0;
        plan += " stall(" + std::to_string(hold.count()) + "ms)";
        s.proxy().stall(direction, stall_new);
        std::this_thread::sleep_for(hold);
        break;
      }
      case 2: {
        const std::size_t bytes = 40 + s.rng()() % 20000;
        plan += " cut(" + std::to_string(bytes) + ")";
        s.proxy().cut_after(bytes, static_cast<fault_direction>(1 + s.rng()() % 3));
        std::this_thread::sleep_for(hold);
        break;
      }
      case 3: {
        const auto per_chunk = s.random_ms(1, 30);
        const std::size_t chunk = 256 + s.rng()() % 4096;
        plan += " slow(" + std::to_string(per_chunk.count()) + "ms/" + std::to_string(chunk) + ")";
        s.proxy().delay(per_chunk, chunk);
        std::this_thread::sleep_for(hold);
        break;
      }
      case 4:
        plan += " refuse(" + std::to_string(hold.count()) + "ms)";
        s.proxy().refuse();
        std::this_thread::sleep_for(hold);
        break;
      default: plan += " calm"; break;
    }
    s.proxy().resume();
  }
  BOOST_TEST_MESSAGE("random: faults" << plan);
  std::this_thread::sleep_for(s.random_ms(300, 1000));
  s.require_converged();
}

BOOST_AUTO_TEST_CASE(apiserver_killed_and_restarted) {
  scenario s("apiserver");
  s.populate(10);
  s.start();
  s.start_writer();
  std::this_thread::sleep_for(s.random_ms(200, 1000));
  the_world->cp.restart_apiserver();
  std::this_thread::sleep_for(s.random_ms(500, 1500));
  s.require_converged();
}

BOOST_AUTO_TEST_CASE(etcd_killed_and_restarted) {
  scenario s("etcd");
  s.populate(10);
  s.start();
  s.start_writer();
  std::this_thread::sleep_for(s.random_ms(200, 1000));
  the_world->cp.restart_etcd();
  std::this_thread::sleep_for(s.random_ms(500, 1500));
  s.require_converged();
}

BOOST_AUTO_TEST_SUITE_END()
