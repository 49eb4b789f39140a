#include "informer/client/informer_factory.hpp"

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

namespace {

std::string cm(const std::string& name) {
  return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"ns","name":")" + name +
         R"(","labels":{"app":"web"}},"data":{"k":"v"}})";
}

// Makes scripted sources (each seeded with two objects) and remembers them by key.
class source_registry {
public:
  source_maker maker() {
    return [this](const informer_key& key, const boost::asio::any_io_executor& executor) {
      auto s = std::make_shared<scripted_source>(executor);
      s->create(cm("a"));
      s->create(cm("b"));
      std::lock_guard lock(mutex_);
      made_[key] = s;
      return std::shared_ptr<lister_watcher>(s);
    };
  }
  std::shared_ptr<scripted_source> get(const informer_key& key) const {
    std::lock_guard lock(mutex_);
    auto it = made_.find(key);
    return it == made_.end() ? nullptr : it->second;
  }
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return made_.size();
  }

private:
  mutable std::mutex mutex_;
  std::map<informer_key, std::shared_ptr<scripted_source>> made_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(canonical_key_normalises_selectors) {
  const auto k = canonical({.resource = "v1/pods",
                            .label_selector = "tier in (b, a), app=web",
                            .field_selector = "spec.nodeName=n1,metadata.name=x"});
  BOOST_TEST(k.label_selector == "app=web,tier in (a,b)");
  BOOST_TEST(k.field_selector == "metadata.name=x,spec.nodeName=n1");
  // Text that does not parse is kept; the source will reject it.
  BOOST_TEST(canonical({.resource = "v1/pods", .label_selector = "a in"}).label_selector == "a in");
  BOOST_TEST(to_string(informer_key{.resource = "v1/pods",
                                    .ns = "ns",
                                    .label_selector = "app=web",
                                    .field_selector = "spec.nodeName=n1",
                                    .source_kind = "etcd"}) ==
             "v1/pods in ns where app=web and spec.nodeName=n1 from etcd");
}

BOOST_AUTO_TEST_CASE(one_informer_per_key) {
  source_registry sources;
  informer_factory factory;
  const informer_key web{
      .resource = "v1/configmaps", .ns = "ns", .label_selector = "app=web,tier=a", .source_kind = "scripted"};
  auto a = factory.for_resource(web, sources.maker());
  auto same = factory.for_resource(
      {.resource = "v1/configmaps", .ns = "ns", .label_selector = "tier = a, app=web", .source_kind = "scripted"},
      sources.maker());
  auto other_selector = factory.for_resource(
      {.resource = "v1/configmaps", .ns = "ns", .label_selector = "app=db", .source_kind = "scripted"},
      sources.maker());
  auto other_ns = factory.for_resource(
      {.resource = "v1/configmaps", .ns = "other", .label_selector = "app=web,tier=a", .source_kind = "scripted"},
      sources.maker());
  auto other_source = factory.for_resource(
      {.resource = "v1/configmaps", .ns = "ns", .label_selector = "app=web,tier=a", .source_kind = "etcd"},
      sources.maker());
  auto other_fields = factory.for_resource({.resource = "v1/configmaps",
                                            .ns = "ns",
                                            .label_selector = "app=web,tier=a",
                                            .field_selector = "metadata.name=a",
                                            .source_kind = "scripted"},
                                           sources.maker());
  BOOST_TEST(a == same);
  BOOST_TEST(a != other_selector);
  BOOST_TEST(a != other_ns);
  BOOST_TEST(a != other_source);
  BOOST_TEST(a != other_fields);
  BOOST_TEST(sources.count() == 5u);
  BOOST_TEST(factory.informers().size() == 5u);
  BOOST_TEST(a->name() == to_string(canonical(web)));
}

BOOST_AUTO_TEST_CASE(start_runs_existing_and_later_informers) {
  source_registry sources;
  informer_factory factory;
  auto first = factory.for_resource({.resource = "v1/configmaps"}, sources.maker());
  BOOST_TEST(!factory.wait_for_cache_sync(20ms));  // not started
  factory.start();
  factory.start();  // idempotent
  BOOST_TEST(factory.wait_for_cache_sync(patience));
  BOOST_TEST(first->get_store()->size() == 2u);

  auto later = factory.for_resource({.resource = "v1/secrets"}, sources.maker());
  BOOST_TEST(wait_for_cache_sync({later}, patience));
  BOOST_TEST(factory.wait_for_cache_sync(patience));

  // The selector of the key reaches the source.
  auto selected = factory.for_resource({.resource = "v1/pods", .label_selector = "app=web"}, sources.maker());
  BOOST_TEST(wait_for_cache_sync({selected}, patience));
  auto source = sources.get(canonical({.resource = "v1/pods", .label_selector = "app=web"}));
  BOOST_REQUIRE(source != nullptr);
  BOOST_TEST(source->list_requests().front().label_selector == "app=web");
  factory.shutdown();
  factory.shutdown();  // idempotent
  BOOST_TEST(first->stopped());
  BOOST_TEST(later->stopped());
}

BOOST_AUTO_TEST_CASE(shutdown_with_events_in_flight_is_clean_and_prompt) {
  source_registry sources;
  std::atomic<int> calls{0};
  std::atomic<bool> writing{true};
  std::vector<std::jthread> writers;
  {
    informer_factory factory({.threads = 2});
    std::vector<std::shared_ptr<shared_informer>> informers;
    for (const char* resource : {"v1/configmaps", "v1/secrets", "v1/pods"}) {
      auto inf = factory.for_resource({.resource = resource}, sources.maker());
      // One quick and one slow handler each: the slow ones fall behind and keep deep buffers.
      inf->add_event_handler({.on_add = [&calls](const object::ptr&, bool) { ++calls; }});
      inf->add_event_handler({.on_add = [&calls](const object::ptr&, bool) {
        ++calls;
        std::this_thread::sleep_for(1ms);
      }});
      informers.push_back(inf);
    }
    factory.start();
    BOOST_REQUIRE(factory.wait_for_cache_sync(patience));
    for (const auto& inf : informers) {
      auto source = sources.get(canonical({.resource = std::string(inf->name())}));
      BOOST_REQUIRE(source != nullptr);
      BOOST_REQUIRE(source->wait_for_watches(1, patience));
      writers.emplace_back([source, &writing] {
        for (int i = 0; writing.load(); ++i) source->create(cm("w" + std::to_string(i)));
      });
    }
    BOOST_REQUIRE(eventually([&] { return calls.load() > 500; }));

    const auto started = std::chrono::steady_clock::now();
    factory.shutdown();
    const auto took = std::chrono::steady_clock::now() - started;
    BOOST_TEST_MESSAGE("shutdown took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                        << " ms");
    BOOST_TEST((took < 3s));
    for (const auto& inf : informers) BOOST_TEST(inf->stopped());

    // No handler runs after shutdown returns, though the sources keep changing.
    const int after = calls.load();
    std::this_thread::sleep_for(100ms);
    BOOST_TEST(calls.load() == after);

    // Informers made after shutdown never run.
    auto late = factory.for_resource({.resource = "v1/nodes"}, sources.maker());
    BOOST_TEST(!wait_for_cache_sync({late}, 50ms));
  }
  writing = false;
  writers.clear();
}

BOOST_AUTO_TEST_CASE(runs_on_a_user_supplied_executor) {
  boost::asio::io_context context;
  auto work = boost::asio::make_work_guard(context);
  std::jthread runner([&] { context.run(); });
  source_registry sources;
  {
    informer_factory factory({.executor = context.get_executor()});
    BOOST_TEST((factory.get_executor() == boost::asio::any_io_executor(context.get_executor())));
    auto inf = factory.for_resource({.resource = "v1/configmaps"}, sources.maker());
    factory.start();
    BOOST_TEST(factory.wait_for_cache_sync(patience));
    BOOST_TEST((inf->get_executor() == boost::asio::any_io_executor(context.get_executor())));
    factory.shutdown();
    BOOST_TEST(inf->stopped());
  }
  // The user's context is still the user's: it keeps running until they stop it.
  BOOST_TEST(!context.stopped());
  work.reset();
  runner.join();
}

BOOST_AUTO_TEST_CASE(misuse_is_rejected) {
  BOOST_CHECK_THROW(informer_factory({.threads = 0}), std::invalid_argument);
  informer_factory factory({.threads = 1});
  BOOST_CHECK_THROW(factory.for_resource({.resource = "x"}, source_maker{}), std::invalid_argument);
  BOOST_CHECK_THROW(factory.for_resource({.resource = "x"},
                                         [](const informer_key&, const boost::asio::any_io_executor&) {
                                           return std::shared_ptr<lister_watcher>();
                                         }),
                    std::invalid_argument);
  BOOST_TEST(factory.informers().empty());
}
