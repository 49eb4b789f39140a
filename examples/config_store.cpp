// etcd as a configuration centre, watched through an informer.
//
// Services publish their configuration under /config/services/<name> as JSON:
//   {"metadata": {"labels": {"team": "payments", "tier": "backend"}},
//    "spec": {"port": 8080, "database": "orders"}}
// A consumer keeps all of it in a local, indexed cache (a shared_informer over the generic etcd
// source): label queries ("every backend of team payments") and an index of its own ("who uses the
// orders database") are answered from memory, and an event handler reacts to every change as etcd
// reports it. This program plays both parts: it publishes a few configurations, starts the
// consumer, checks the cache, changes the configurations and waits for the handler to see each
// change. It clears the /config/services/ prefix first, so run it against a scratch etcd.
//
//   config_store [etcd-endpoint]     (default: $ETCD_ENDPOINT, else http://127.0.0.1:2379)
//
// Exit code 0 when everything the consumer saw was as expected, 1 otherwise.
#include <informer/client/shared_informer.hpp>
#include <informer/core/label_selector.hpp>
#include <informer/etcd/client.hpp>
#include <informer/etcd/generic_source.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::string_view prefix = "/config/services/";

std::string config(std::string_view team, std::string_view tier, int port, std::string_view database) {
  return R"({"metadata":{"labels":{"team":")" + std::string{team} + R"(","tier":")" + std::string{tier} +
         R"("}},"spec":{"port":)" + std::to_string(port) + R"(,"database":")" + std::string{database} + R"("}})";
}

// What the event handler saw, one line per notification, for the main thread to wait on.
class change_log {
public:
  void add(std::string line) {
    std::printf("  handler: %s\n", line.c_str());
    std::lock_guard lock(mutex_);
    lines_.push_back(std::move(line));
    changed_.notify_all();
  }
  bool wait_for(std::size_t count, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return lines_.size() >= count; });
  }
  bool contains(const std::string& line) {
    std::lock_guard lock(mutex_);
    return std::find(lines_.begin(), lines_.end(), line) != lines_.end();
  }

private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
};

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok:    " : "FAILED:", what.c_str());
  failures += ok ? 0 : 1;
}

std::int64_t port_of(const informer::object& obj) {
  auto port = obj.field("spec.port");
  return port && port->is_int64() ? port->as_int64() : -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint = "http://127.0.0.1:2379";
  if (argc > 1) {
    endpoint = argv[1];
  } else if (const char* env = std::getenv("ETCD_ENDPOINT"); env != nullptr && *env != '\0') {
    endpoint = env;
  }
  auto connected = informer::etcd::client::connect({.endpoints = {endpoint}});
  if (!connected) {
    std::fprintf(stderr, "config_store: %s\n", connected.error().what().c_str());
    return 1;
  }
  auto etcd = std::make_shared<informer::etcd::client>(std::move(*connected));

  // The publishers' side: a clean slate, then four services.
  if (auto cleared = etcd->delete_range(prefix, informer::etcd::prefix_end(prefix)); !cleared) {
    std::fprintf(stderr, "config_store: cannot reach etcd at %s: %s\n", endpoint.c_str(),
                 cleared.error().what().c_str());
    return 1;
  }
  etcd->put(std::string{prefix} + "checkout", config("payments", "backend", 8080, "orders")).value();
  etcd->put(std::string{prefix} + "payments-api", config("payments", "backend", 8081, "ledger")).value();
  etcd->put(std::string{prefix} + "search", config("search", "backend", 9200, "catalog")).value();
  etcd->put(std::string{prefix} + "web", config("web", "frontend", 443, "orders")).value();

  // The consumer: one I/O thread runs the source, the informer and the handler.
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });

  auto source = informer::etcd::make_generic_source(etcd, io.get_executor(), {.prefix = std::string{prefix}});
  informer::shared_informer_options options;
  options.name = "service-configs";
  options.indexer.indexers["database"] = [](const informer::object& obj) -> std::vector<std::string> {
    auto db = obj.field("spec.database");
    return db && db->is_string() ? std::vector<std::string>{std::string{db->as_string()}} : std::vector<std::string>{};
  };
  auto configs = informer::shared_informer::create(source, std::move(options));
  change_log log;
  configs->add_event_handler(
      {.on_add = [&](const informer::object::ptr& obj,
                     bool initial) { log.add(std::string{initial ? "listed " : "added "} + std::string{obj->name()}); },
       .on_update =
           [&](const informer::object::ptr& old_obj, const informer::object::ptr& new_obj) {
             log.add("updated " + std::string{new_obj->name()} + " port " + std::to_string(port_of(*old_obj)) + " -> " +
                     std::to_string(port_of(*new_obj)));
           },
       .on_delete = [&](const informer::deleted_object& d) { log.add("deleted " + std::string{d.obj()->name()}); }});
  configs->run();

  const auto started = std::chrono::steady_clock::now();
  check(informer::wait_for_cache_sync({configs}, std::chrono::seconds(10)), "the cache synced");
  check(log.wait_for(4, std::chrono::seconds(10)), "the handler saw the four services");
  auto lister = configs->lister();
  const auto payments = informer::label_selector::parse("team=payments,tier=backend").value();
  check(lister.list(payments).size() == 2, "team=payments,tier=backend: 2 services");
  check(lister.list(informer::label_selector::parse("tier!=backend").value()).size() == 1, "tier!=backend: 1 service");
  auto orders = configs->get_indexer()->by_index("database", "orders");
  check(orders && orders->size() == 2, "the 'database' index: 2 services use orders");

  // The publishers change things; the handler sees each change, the cache follows.
  etcd->put(std::string{prefix} + "checkout", config("payments", "backend", 8443, "orders")).value();
  etcd->put(std::string{prefix} + "recommendations", config("search", "backend", 7000, "catalog")).value();
  etcd->delete_range(std::string{prefix} + "web").value();
  check(log.wait_for(7, std::chrono::seconds(10)), "the handler saw the three changes");
  check(log.contains("updated checkout port 8080 -> 8443"), "checkout moved to port 8443");
  check(log.contains("added recommendations"), "recommendations appeared");
  check(log.contains("deleted web"), "web went away");
  auto checkout = lister.get("checkout");
  check(checkout && port_of(*checkout) == 8443, "the cache holds checkout's new port");
  check(lister.list(informer::label_selector::parse("team=search").value()).size() == 2, "team=search: 2 services");
  orders = configs->get_indexer()->by_index("database", "orders");
  check(orders && orders->size() == 1, "the 'database' index: 1 service uses orders");
  check(source->decode_failures() == 0, "no undecodable configuration");
  std::printf(
      "consumer ran %lld ms\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()));

  configs->stop();
  work.reset();
  io.stop();
  io_thread.join();
  return failures == 0 ? 0 : 1;
}
