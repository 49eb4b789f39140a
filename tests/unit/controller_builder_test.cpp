#include "informer/controller/builder.hpp"

#include "informer/metrics/registry.hpp"

#include "scripted_source.hpp"
#include "wait.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace informer;
using namespace std::chrono_literals;
using informer::testing::eventually;
using informer::testing::patience;
using informer::testing::scripted_source;
using steady = std::chrono::steady_clock;

namespace {

// Threads running one io_context for the sources, the informers and the handlers. Declare it
// before the informers and controllers of a test so that it outlives them.
class executor_pool {
public:
  executor_pool() : work_(boost::asio::make_work_guard(context_)) {
    for (int i = 0; i < 3; ++i) threads_.emplace_back([this] { context_.run(); });
  }
  ~executor_pool() {
    work_.reset();
    context_.stop();
    for (auto& t : threads_) t.join();
  }
  boost::asio::any_io_executor executor() { return context_.get_executor(); }

private:
  boost::asio::io_context context_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

resource config_map_kind() { return parse_resource("configmaps").value(); }

std::string cm(const std::string& name, int generation = 1, const std::string& label = "a",
               const std::string& note = "x") {
  return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"ns","name":")" + name +
         R"(","generation":)" + std::to_string(generation) + R"(,"labels":{"l":")" + label +
         R"("},"annotations":{"n":")" + note + R"("}},"data":{"k":"v"}})";
}

// An owner reference in JSON.
std::string ref(const std::string& api_version, const std::string& kind, const std::string& name, bool controller) {
  return R"({"apiVersion":")" + api_version + R"(","kind":")" + kind + R"(","name":")" + name + R"(","uid":"u-)" +
         name + R"(","controller":)" + (controller ? "true" : "false") + "}";
}

std::string pod(const std::string& name, const std::string& refs) {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"ns","name":")" + name +
         R"(","ownerReferences":[)" + refs + R"(]},"spec":{}})";
}

// A Secret naming the primary objects it concerns in annotation "targets" (comma-separated).
std::string secret(const std::string& name, const std::string& targets) {
  return R"({"apiVersion":"v1","kind":"Secret","metadata":{"namespace":"ns","name":")" + name +
         R"(","annotations":{"targets":")" + targets + R"("}}})";
}

shared_informer_options fast_options(const std::string& name) {
  shared_informer_options o;
  o.name = name;
  o.reflector.backoff = {.initial = 100ms, .max = 1s, .factor = 2.0, .jitter = 0.0, .reset_after = 2min};
  return o;
}

// The keys reconciled, in order, for the test thread to check.
class reconcile_log {
public:
  void record(const std::string& key) {
    std::lock_guard lock(mu_);
    keys_.push_back(key);
  }
  int count(const std::string& key) const {
    std::lock_guard lock(mu_);
    return static_cast<int>(std::count(keys_.begin(), keys_.end(), key));
  }
  bool wait_count(const std::string& key, int n) const {
    return eventually([&] { return count(key) >= n; });
  }
  std::vector<std::string> keys() const {
    std::lock_guard lock(mu_);
    return keys_;
  }
  reconcile_fn recorder() {
    return [this](const std::string& key) -> result<reconcile_result> {
      record(key);
      return reconcile_result{};
    };
  }

private:
  mutable std::mutex mu_;
  std::vector<std::string> keys_;
};

// A primary (ConfigMaps) and an owned (Pods) source with their informers.
struct fixture {
  executor_pool pool;
  std::shared_ptr<scripted_source> primary_source = std::make_shared<scripted_source>(pool.executor());
  std::shared_ptr<scripted_source> owned_source = std::make_shared<scripted_source>(pool.executor());
  std::shared_ptr<shared_informer> primary = shared_informer::create(primary_source, fast_options("configmaps"));
  std::shared_ptr<shared_informer> owned = shared_informer::create(owned_source, fast_options("pods"));
  reconcile_log log;

  ~fixture() {
    primary->stop();
    owned->stop();
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(primary_events_enqueue_the_object_key) {
  fixture f;
  f.primary_source->create(cm("a"));
  f.primary_source->create(cm("b"));
  auto c = controller_builder().named("primary").for_resource(f.primary, config_map_kind()).build(f.log.recorder());
  BOOST_REQUIRE(c->run());
  BOOST_TEST(c->has_synced());
  BOOST_REQUIRE(f.log.wait_count("ns/a", 1));
  BOOST_REQUIRE(f.log.wait_count("ns/b", 1));
  f.primary_source->update(cm("a", 2));
  BOOST_REQUIRE(f.log.wait_count("ns/a", 2));
  f.primary_source->remove("ns/b");
  BOOST_REQUIRE(f.log.wait_count("ns/b", 2));
  c->stop();
  BOOST_TEST(!c->has_synced());
  BOOST_TEST(c->run().error() == make_error_code(errc::closed));
}

BOOST_AUTO_TEST_CASE(caches_sync_before_the_first_reconcile) {
  fixture f;
  for (int i = 0; i < 20; ++i) f.primary_source->create(cm("c" + std::to_string(i)));
  f.owned_source->create(pod("p", ref("v1", "ConfigMap", "c0", true)));
  // The owned informer's first two lists fail: it syncs only after its backoff (100 + 200 ms),
  // long after the primary's keys are queued.
  f.owned_source->fail_next_list(informer::error(errc::server_error, "not yet"), 2);
  std::atomic<int> early{0};
  std::atomic<int> calls{0};
  auto c = controller_builder()
               .for_resource(f.primary, config_map_kind())
               .owns(f.owned)
               .workers(3)
               .build([&](const std::string&) -> result<reconcile_result> {
                 if (!f.owned->has_synced() || f.primary->get_store()->size() != 20u) ++early;
                 ++calls;
                 return reconcile_result{};
               });
  const auto start = steady::now();
  BOOST_REQUIRE(c->run());
  BOOST_TEST((steady::now() - start >= 250ms));  // run() waited for the owned informer
  BOOST_TEST(f.owned->has_synced());
  BOOST_REQUIRE(eventually([&] { return calls.load() >= 20; }));
  BOOST_TEST(early.load() == 0);
}

BOOST_AUTO_TEST_CASE(run_gives_up_after_the_sync_timeout_and_stop_interrupts_the_wait) {
  fixture f;
  f.primary_source->fail_next_list(informer::error(errc::server_error, "down"), 1000);
  auto c =
      controller_builder().for_resource(f.primary, config_map_kind()).cache_sync_timeout(100ms).build(f.log.recorder());
  auto r = c->run();
  BOOST_REQUIRE(!r);
  BOOST_TEST(r.error() == make_error_code(boost::system::errc::timed_out));
  BOOST_TEST(!c->has_synced());

  auto waiting =
      controller_builder().for_resource(f.primary, config_map_kind()).cache_sync_timeout(1h).build(f.log.recorder());
  auto running = std::async(std::launch::async, [&] { return waiting->run(); });
  BOOST_TEST((running.wait_for(100ms) == std::future_status::timeout));
  waiting->stop();
  BOOST_REQUIRE((running.wait_for(patience) == std::future_status::ready));
  BOOST_TEST(running.get().error() == make_error_code(errc::closed));
}

BOOST_AUTO_TEST_CASE(owned_objects_enqueue_their_controller_owner_only) {
  fixture f;
  auto c = controller_builder().for_resource(f.primary, config_map_kind()).owns(f.owned).build(f.log.recorder());
  BOOST_REQUIRE(c->run());
  // None of these enqueues anything: an owner that is not the controller, a controller of another
  // kind, of another group with the same kind, no owner at all.
  f.owned_source->create(pod("p1", ref("v1", "ConfigMap", "not-controller", false)));
  f.owned_source->create(pod("p2", ref("apps/v1", "Deployment", "other-kind", true)));
  f.owned_source->create(pod("p3", ref("example.com/v1", "ConfigMap", "other-group", true)));
  f.owned_source->create(pod("p4", ""));
  // This one does (the version of the apiVersion does not matter); events of one informer are
  // handled in order, so once it is reconciled the others were handled.
  f.owned_source->create(
      pod("p5", ref("v1", "ConfigMap", "not-controller-either", false) + "," + ref("v2", "ConfigMap", "owner", true)));
  BOOST_REQUIRE(f.log.wait_count("ns/owner", 1));
  BOOST_TEST(f.log.keys() == std::vector<std::string>{"ns/owner"}, boost::test_tools::per_element());

  // A change of controller owner reconciles both the old and the new one.
  f.owned_source->update(pod("p5", ref("v1", "ConfigMap", "new-owner", true)));
  BOOST_REQUIRE(f.log.wait_count("ns/new-owner", 1));
  BOOST_REQUIRE(f.log.wait_count("ns/owner", 2));

  // A delete reconciles the owner.
  f.owned_source->remove("ns/p5");
  BOOST_REQUIRE(f.log.wait_count("ns/new-owner", 2));
}

BOOST_AUTO_TEST_CASE(tombstones_of_owned_and_primary_objects_enqueue_keys) {
  fixture f;
  f.primary_source->create(cm("gone"));
  f.owned_source->create(pod("p", ref("v1", "ConfigMap", "owner", true)));
  auto c = controller_builder().for_resource(f.primary, config_map_kind()).owns(f.owned).build(f.log.recorder());
  BOOST_REQUIRE(c->run());
  BOOST_REQUIRE(f.log.wait_count("ns/owner", 1));
  BOOST_REQUIRE(f.log.wait_count("ns/gone", 1));
  BOOST_REQUIRE(f.owned_source->wait_for_watches(1, patience));
  BOOST_REQUIRE(f.primary_source->wait_for_watches(1, patience));

  // Each watch fails with 410; while the reflector backs off, the object is deleted and the history
  // compacted past the deletion: the relist finds it gone and the informer delivers a tombstone.
  for (const auto& [source, key] : {std::pair{f.owned_source, "ns/p"}, std::pair{f.primary_source, "ns/gone"}}) {
    source->send_error(status{.code = 410, .reason = "Expired", .message = "too old resource version"});
    source->remove(key);
    source->compact(source->current_revision());
  }
  BOOST_REQUIRE(f.log.wait_count("ns/owner", 2));
  BOOST_REQUIRE(f.log.wait_count("ns/gone", 2));
}

BOOST_AUTO_TEST_CASE(watches_map_objects_to_keys) {
  fixture f;
  auto secrets_source = std::make_shared<scripted_source>(f.pool.executor());
  auto secrets = shared_informer::create(secrets_source, fast_options("secrets"));
  auto c = controller_builder()
               .for_resource(f.primary, config_map_kind())
               .watches(secrets,
                        [](const object& s) {
                          std::vector<std::string> keys;
                          const auto targets = std::string(s.annotations().get("targets").value_or(""));
                          std::size_t start = 0;
                          while (start < targets.size()) {
                            const auto comma = targets.find(',', start);
                            const auto end = comma == std::string::npos ? targets.size() : comma;
                            keys.push_back(make_key(s.ns(), targets.substr(start, end - start)));
                            start = end + 1;
                          }
                          return keys;
                        })
               .build(f.log.recorder());
  BOOST_REQUIRE(c->run());
  secrets_source->create(secret("s", "a,b"));
  BOOST_REQUIRE(f.log.wait_count("ns/a", 1));
  BOOST_REQUIRE(f.log.wait_count("ns/b", 1));
  // An update maps the old and the new object.
  secrets_source->update(secret("s", "c"));
  BOOST_REQUIRE(f.log.wait_count("ns/c", 1));
  BOOST_REQUIRE(f.log.wait_count("ns/a", 2));
  BOOST_REQUIRE(f.log.wait_count("ns/b", 2));
  secrets_source->remove("ns/s");
  BOOST_REQUIRE(f.log.wait_count("ns/c", 2));
  c->stop();
  secrets->stop();
}

BOOST_AUTO_TEST_CASE(predicates_filter_each_kind_of_event) {
  const auto a = object::parse(cm("a", 1, "a", "x")).value();
  const auto same = object::parse(cm("a", 1, "a", "x")).value();
  const auto new_generation = object::parse(cm("a", 2, "a", "x")).value();
  const auto new_label = object::parse(cm("a", 1, "b", "x")).value();
  const auto new_note = object::parse(cm("a", 1, "a", "y")).value();

  const auto generation = predicates::generation_changed();
  BOOST_TEST(!generation.on_update({.old_obj = a, .new_obj = same}));
  BOOST_TEST(!generation.on_update({.old_obj = a, .new_obj = new_label}));
  BOOST_TEST(generation.on_update({.old_obj = a, .new_obj = new_generation}));
  // Other events are left alone.
  BOOST_TEST(!generation.on_create);
  BOOST_TEST(!generation.on_delete);
  BOOST_TEST(!generation.on_generic);

  const auto labels = predicates::labels_changed();
  BOOST_TEST(!labels.on_update({.old_obj = a, .new_obj = new_generation}));
  BOOST_TEST(labels.on_update({.old_obj = a, .new_obj = new_label}));

  const auto annotations = predicates::annotations_changed();
  BOOST_TEST(!annotations.on_update({.old_obj = a, .new_obj = new_label}));
  BOOST_TEST(annotations.on_update({.old_obj = a, .new_obj = new_note}));

  const auto labelled_b = predicates::filter([](const object& o) { return o.labels().get("l") == "b"; });
  BOOST_TEST(!labelled_b.on_create({.obj = a}));
  BOOST_TEST(labelled_b.on_create({.obj = new_label}));
  BOOST_TEST(labelled_b.on_update({.old_obj = a, .new_obj = new_label}));  // the new object decides
  BOOST_TEST(!labelled_b.on_update({.old_obj = new_label, .new_obj = a}));
  BOOST_TEST(labelled_b.on_delete({.obj = new_label}));
  BOOST_TEST(!labelled_b.on_generic({.obj = a}));

  const auto either = predicates::any_of({labels, annotations});
  BOOST_TEST(!either.on_update({.old_obj = a, .new_obj = new_generation}));
  BOOST_TEST(either.on_update({.old_obj = a, .new_obj = new_label}));
  BOOST_TEST(either.on_update({.old_obj = a, .new_obj = new_note}));
  BOOST_TEST(either.on_create({.obj = a}));  // neither filters creates
  BOOST_TEST(!predicates::any_of({}).on_create({.obj = a}));
}

BOOST_AUTO_TEST_CASE(watch_and_global_predicates_apply_to_the_events) {
  fixture f;
  f.primary_source->create(cm("a"));
  f.primary_source->create(cm("skip-me"));
  auto c = controller_builder()
               .for_resource(f.primary, config_map_kind(), {predicates::generation_changed()})
               .owns(f.owned, {predicate{.on_delete = [](const delete_event&) { return false; }}})
               .with_event_filter(predicates::filter([](const object& o) { return !o.name().starts_with("skip"); }))
               .build(f.log.recorder());
  BOOST_REQUIRE(c->run());
  BOOST_REQUIRE(f.log.wait_count("ns/a", 1));
  // One worker hands keys out in the order they were queued, and one informer's events are
  // handled in order: once the last key of a step is reconciled, the filtered events were handled.
  f.primary_source->update(cm("a", 1, "b"));  // same generation: filtered
  f.primary_source->create(cm("b"));
  BOOST_REQUIRE(f.log.wait_count("ns/b", 1));
  BOOST_TEST(f.log.count("ns/a") == 1);
  f.primary_source->update(cm("a", 2));  // new generation
  BOOST_REQUIRE(f.log.wait_count("ns/a", 2));

  // The global filter applies to the owned watch too; the owned watch ignores deletes.
  f.owned_source->create(pod("p1", ref("v1", "ConfigMap", "skip-owner", true)));
  f.owned_source->create(pod("skip-p", ref("v1", "ConfigMap", "o1", true)));
  f.owned_source->create(pod("p2", ref("v1", "ConfigMap", "o2", true)));
  BOOST_REQUIRE(f.log.wait_count("ns/o2", 1));
  BOOST_TEST(f.log.count("ns/o1") == 0);          // the pod's name is filtered
  BOOST_TEST(f.log.count("ns/skip-owner") == 1);  // the filter tests the pod, not the key
  f.owned_source->remove("ns/p2");
  f.owned_source->create(pod("p3", ref("v1", "ConfigMap", "o3", true)));
  BOOST_REQUIRE(f.log.wait_count("ns/o3", 1));
  BOOST_TEST(f.log.count("ns/o2") == 1);

  // Generic events pass through the primary's and the global predicates' on_generic.
  c->trigger(object::parse(cm("skip-generic")).value());
  c->trigger(object::parse(cm("generic")).value());
  BOOST_REQUIRE(f.log.wait_count("ns/generic", 1));
  BOOST_TEST(f.log.count("ns/skip-generic") == 0);
  BOOST_TEST(f.log.count("ns/skip-me") == 0);
}

BOOST_AUTO_TEST_CASE(reconcile_outcomes_requeue_and_retry) {
  fixture f;
  f.primary_source->create(cm("error"));
  f.primary_source->create(cm("requeue"));
  f.primary_source->create(cm("later"));
  std::mutex mu;
  std::map<std::string, std::vector<steady::time_point>> calls;
  auto c = controller_builder()
               .for_resource(f.primary, config_map_kind())
               .workers(2)
               .with_rate_limiter(std::make_shared<exponential_rate_limiter>(
                   exponential_rate_limiter_options{.base_delay = 1ms, .max_delay = 1s}))
               .build([&](const std::string& key) -> result<reconcile_result> {
                 std::size_t n;
                 {
                   std::lock_guard lock(mu);
                   calls[key].push_back(steady::now());
                   n = calls[key].size();
                 }
                 if (n > 1) return reconcile_result{};
                 if (key == "ns/error") return make_error_code(errc::server_error);
                 if (key == "ns/requeue") return reconcile_result{.requeue = true};
                 return reconcile_result{.requeue_after = 200ms};
               });
  BOOST_REQUIRE(c->run());
  const auto count = [&](const std::string& key) {
    std::lock_guard lock(mu);
    return calls[key].size();
  };
  BOOST_REQUIRE(
      eventually([&] { return count("ns/error") == 2 && count("ns/requeue") == 2 && count("ns/later") == 2; }));
  std::this_thread::sleep_for(300ms);  // nothing more: the second reconciles succeeded
  std::lock_guard lock(mu);
  BOOST_TEST(calls["ns/error"].size() == 2u);
  BOOST_TEST(calls["ns/requeue"].size() == 2u);
  BOOST_TEST(calls["ns/later"].size() == 2u);
  BOOST_TEST((calls["ns/later"][1] - calls["ns/later"][0] >= 200ms));
}

BOOST_AUTO_TEST_CASE(workers_never_reconcile_one_key_at_once) {
  fixture f;
  for (int i = 0; i < 4; ++i) f.primary_source->create(cm("k" + std::to_string(i)));
  std::mutex mu;
  std::map<std::string, int> in_flight;
  int overlaps = 0;
  int most_at_once = 0;
  int running = 0;
  std::atomic<int> total{0};
  auto c = controller_builder()
               .for_resource(f.primary, config_map_kind())
               .workers(4)
               .build([&](const std::string& key) -> result<reconcile_result> {
                 {
                   std::lock_guard lock(mu);
                   if (++in_flight[key] > 1) ++overlaps;
                   most_at_once = std::max(most_at_once, ++running);
                 }
                 std::this_thread::sleep_for(2ms);
                 {
                   std::lock_guard lock(mu);
                   --in_flight[key];
                   --running;
                 }
                 ++total;
                 return reconcile_result{};
               });
  BOOST_REQUIRE(c->run());
  for (int round = 2; round < 30; ++round)
    for (int i = 0; i < 4; ++i) f.primary_source->update(cm("k" + std::to_string(i), round));
  // Four distinct keys are reconciled at least once each; the updates may all collapse into keys
  // still queued (a loaded machine), so no more than that is certain. Then wait for the queue to
  // settle, so that the updates arriving meanwhile were reconciled too.
  BOOST_REQUIRE(eventually([&] { return total.load() >= 4; }));
  auto& queue = c->get_controller().queue();
  BOOST_REQUIRE(eventually([&] {
    const int before = total.load();
    std::this_thread::sleep_for(20ms);
    return queue.len() == 0 && queue.progress().keys == 0 && total.load() == before;
  }));
  c->stop();
  std::lock_guard lock(mu);
  BOOST_TEST(overlaps == 0);
  BOOST_TEST(most_at_once > 1);  // the workers did run side by side
}

BOOST_AUTO_TEST_CASE(factory_keys_share_informers_and_metrics_count_reconciles) {
  executor_pool pool;
  std::mutex mu;
  std::map<std::string, std::shared_ptr<scripted_source>> sources;
  const source_maker maker = [&](const informer_key& key, const boost::asio::any_io_executor& ex) {
    auto s = std::make_shared<scripted_source>(ex);
    if (key.resource == "v1/configmaps") s->create(cm("a"));
    std::lock_guard lock(mu);
    sources[key.resource] = s;
    return std::shared_ptr<lister_watcher>(s);
  };
  metrics::registry registry;
  informer_factory factory({.executor = pool.executor()});
  auto c = controller_builder(factory, maker)
               .named("factory")
               .for_resource({.resource = "v1/configmaps", .ns = "ns"})
               .owns({.resource = "v1/pods", .ns = "ns"})
               .with_metrics(registry)
               .build([&](const std::string& key) -> result<reconcile_result> {
                 if (key == "ns/bad") return make_error_code(errc::invalid);
                 return reconcile_result{};
               });
  BOOST_TEST(factory.informers().size() == 2u);
  BOOST_TEST(c->informers().front() == factory.for_resource({.resource = "v1/configmaps", .ns = "ns"}, maker));
  BOOST_REQUIRE(c->run());
  c->enqueue("ns/bad");
  std::string text;
  BOOST_REQUIRE(eventually([&] {
    text.clear();
    registry.write_prometheus(text);
    return text.find(R"(controller_runtime_reconcile_total{controller="factory",result="success"} 1)") !=
               std::string::npos &&
           text.find(R"(controller_runtime_reconcile_errors_total{controller="factory"} 1)") != std::string::npos;
  }));
  BOOST_TEST(text.find(R"(workqueue_adds_total{name="factory"})") != std::string::npos);
  BOOST_TEST(text.find(R"(controller_runtime_reconcile_time_seconds_count{controller="factory"})") !=
             std::string::npos);
  c->stop();
  factory.shutdown();
}

BOOST_AUTO_TEST_CASE(build_refuses_incomplete_descriptions) {
  executor_pool pool;
  auto inf = shared_informer::create(std::make_shared<scripted_source>(pool.executor()));
  const auto ok = [](const std::string&) -> result<reconcile_result> { return reconcile_result{}; };
  BOOST_CHECK_THROW(controller_builder().owns(inf).build(ok), std::invalid_argument);
  BOOST_CHECK_THROW(controller_builder().for_resource(inf, config_map_kind()).for_resource(inf, config_map_kind()),
                    std::invalid_argument);
  BOOST_CHECK_THROW(controller_builder().for_resource({.resource = "v1/configmaps"}), std::invalid_argument);
  BOOST_CHECK_THROW(controller_builder().for_resource(inf, config_map_kind()).build({}), std::invalid_argument);
  BOOST_CHECK_THROW(controller_builder().for_resource(inf, config_map_kind()).workers(0).build(ok),
                    std::invalid_argument);
  BOOST_CHECK_THROW(controller_builder().for_resource(nullptr, config_map_kind()), std::invalid_argument);
  BOOST_CHECK_THROW(controller_builder().for_resource(inf, config_map_kind()).watches(inf, {}), std::invalid_argument);
  informer_factory factory({.executor = pool.executor()});
  const source_maker maker = [](const informer_key&, const boost::asio::any_io_executor& ex) {
    return std::shared_ptr<lister_watcher>(std::make_shared<scripted_source>(ex));
  };
  BOOST_CHECK_THROW(controller_builder(factory, maker).for_resource({.resource = "example.com/v1/widgets"}),
                    std::invalid_argument);
  factory.shutdown();
}
