// The API-server lister-watcher under shared informers, against a real kube-apiserver 1.20 (one
// control plane for the file): create/update/delete in order for Pods, Deployments, ConfigMaps and
// custom resources, in JSON and protobuf; selectors and namespaces; bookmarks; a relist after
// etcd compaction with tombstones; a restarted API server; 401/403/TLS failures reported without
// a tight loop; metadata-only informers.
#include "informer/apiserver/lister_watcher.hpp"
#include "informer/core/log.hpp"

#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "control_plane.hpp"
#include "io_threads.hpp"
#include "informer/apiserver/resource_path.hpp"
#include "informer/client/informer_factory.hpp"
#include "informer/client/shared_informer.hpp"
#include "informer/etcd/client.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;
using informer::errc;
using informer::http_client;
using informer::object;
using informer::shared_informer;
using informer::testing::control_plane;

namespace {

// One control plane for the file. Secrets bypass the watch cache, so that a watch from a
// compacted revision reaches etcd and fails with 410 (the cache would answer from its window).
control_plane* cluster = nullptr;

struct cluster_fixture {
  cluster_fixture() {
    if (control_plane::available()) cluster = new control_plane({.apiserver_args = {"--watch-cache-sizes=secrets#0"}});
  }
  ~cluster_fixture() { delete cluster; }
};

bool cluster_running(boost::unit_test::test_unit_id) { return cluster != nullptr; }

using informer::testing::io_threads;

informer::rest_config admin_config() {
  return {.server = cluster->apiserver_url(),
          .tls = {.ca_file = cluster->ca_file()},
          .bearer_token = cluster->admin_token(),
          .qps = 0};
}

http_client make_client(io_threads& io, const informer::rest_config& config = admin_config()) {
  auto c = http_client::create(io.ctx.get_executor(), config);
  BOOST_TEST_REQUIRE(c.has_value(), "http_client::create failed: " << c.error().what());
  return *c;
}

std::string random_suffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng() % 1000000000);
}

template <class Pred>
bool eventually(Pred pred, std::chrono::nanoseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// Writes through the API (the objects the informers must see).
class api {
public:
  explicit api(http_client client) : client_(std::move(client)) {}

  json::value call(http::verb method, const std::string& path, const std::string& body = {},
                   std::string_view content_type = "application/json") {
    http::fields headers;
    if (!body.empty()) headers.set(http::field::content_type, content_type);
    auto f = client_.async_request(method, path, headers, body, asio::use_future);
    BOOST_TEST_REQUIRE((f.wait_for(30s) == std::future_status::ready), "request did not complete: " << path);
    auto [e, r] = f.get();
    BOOST_TEST_REQUIRE(!e, to_string(method) << " " << path << ": " << e.what());
    return json::parse(r.body);
  }
  json::value create(const std::string& collection, const std::string& body) {
    return call(http::verb::post, collection, body);
  }
  json::value label(const std::string& path, const std::string& key, const std::string& value) {
    return call(http::verb::patch, path, R"({"metadata":{"labels":{")" + key + R"(":")" + value + R"("}}})",
                "application/merge-patch+json");
  }
  void remove(const std::string& path) { call(http::verb::delete_, path); }
  std::string namespace_() {
    const std::string ns = "t-" + random_suffix();
    create("/api/v1/namespaces", R"({"metadata":{"name":")" + ns + R"("}})");
    return ns;
  }

private:
  http_client client_;
};

std::string rv_of(const json::value& v) { return std::string(v.at("metadata").at("resourceVersion").as_string()); }

// What the handlers of one registration saw, in order: "add <name> <rv>", "update <name> <rv>",
// "delete <name> <rv>" (a tombstone: "delete? <name> <rv of the last known state>").
class recorder {
public:
  informer::resource_event_handlers handlers() {
    return {.on_add = [this](const object::ptr& o, bool) { record("add", *o); },
            .on_update = [this](const object::ptr&, const object::ptr& o) { record("update", *o); },
            .on_delete =
                [this](const informer::deleted_object& d) {
                  record(d.final_state_unknown() ? "delete?" : "delete", *d.obj());
                }};
  }
  std::vector<std::string> for_name(const std::string& name) const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [entry, n] : entries_)
      if (n == name) out.push_back(entry);
    return out;
  }
  std::vector<std::string> names() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.second);
    return out;
  }

private:
  void record(const char* what, const object& o) {
    std::lock_guard lock(mutex_);
    entries_.emplace_back(std::string(what) + " " + std::string(o.name()) + " " + std::string(o.resource_version()),
                          std::string(o.name()));
  }
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, std::string>> entries_;  // (entry, name)
};

// Counts the failures an informer reports.
struct error_log {
  void operator()(const informer::error& e) {
    std::lock_guard lock(mutex);
    errors.push_back(e);
  }
  std::vector<informer::error> snapshot() const {
    std::lock_guard lock(mutex);
    return errors;
  }
  mutable std::mutex mutex;
  std::vector<informer::error> errors;
};

std::shared_ptr<informer::apiserver_lister_watcher> make_source(const http_client& client, const informer::resource& r,
                                                                informer::apiserver_lister_watcher_options o = {}) {
  auto lw = informer::apiserver_lister_watcher::create(client, r, std::move(o));
  BOOST_TEST_REQUIRE(lw.has_value(), lw.error().what());
  return *lw;
}

std::shared_ptr<shared_informer> start(std::shared_ptr<informer::lister_watcher> source, recorder& rec,
                                       informer::shared_informer_options o = {}) {
  auto inf = shared_informer::create(std::move(source), std::move(o));
  inf->add_event_handler(rec.handlers());
  inf->run();
  BOOST_TEST_REQUIRE(informer::wait_for_cache_sync({inf}, 30s), "the informer did not sync");
  return inf;
}

// The objects of one kind used by the create/update/delete test.
struct kind_case {
  std::string resource;
  std::function<std::string(const std::string& name)> body;
};

const std::vector<kind_case>& kind_cases() {
  static const std::vector<kind_case> cases{
      {"pods",
       [](const std::string& n) {
         return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + n +
                R"(","labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"busybox:1.36","ports":[{"containerPort":80}]}]}})";
       }},
      {"apps/v1/deployments",
       [](const std::string& n) {
         return R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":")" + n +
                R"("},"spec":{"replicas":2,"selector":{"matchLabels":{"app":")" + n +
                R"("}},"template":{"metadata":{"labels":{"app":")" + n +
                R"("}},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}})";
       }},
      {"configmaps",
       [](const std::string& n) {
         return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + n + R"("},"data":{"k":"v"}})";
       }},
  };
  return cases;
}

struct encoding_case {
  informer::wire_encoding encoding;
  const char* name;
};
std::ostream& operator<<(std::ostream& os, const encoding_case& e) { return os << e.name; }
const encoding_case encodings[] = {{informer::wire_encoding::json, "json"},
                                   {informer::wire_encoding::protobuf, "protobuf"}};

// A source in front of another that can end the open watch (as the server's timeout would) and
// hold the next watch opens until released: the test writes and compacts meanwhile.
class gated_source final : public informer::lister_watcher {
  using handler_type = asio::any_completion_handler<watch_signature>;

public:
  explicit gated_source(std::shared_ptr<informer::lister_watcher> inner) : inner_(std::move(inner)) {}

  asio::any_io_executor get_executor() const override { return inner_->get_executor(); }

  void hold_and_end_watch() {
    std::shared_ptr<informer::watch_stream> open;
    {
      std::lock_guard lock(mutex_);
      held_ = true;
      open = std::exchange(open_, nullptr);
      if (open) ended_ = true;
    }
    if (open) open->cancel();
  }
  bool waiting() const {
    std::lock_guard lock(mutex_);
    return pending_.has_value();
  }
  void release() {
    std::optional<std::pair<informer::watch_options, handler_type>> pending;
    {
      std::lock_guard lock(mutex_);
      held_ = false;
      pending.swap(pending_);
    }
    if (pending) forward(std::move(pending->first), std::move(pending->second));
  }

protected:
  void list_impl(informer::list_options o, asio::any_completion_handler<list_signature> h) override {
    inner_->async_list(std::move(o), std::move(h));
  }
  void watch_impl(informer::watch_options o, handler_type h) override {
    {
      std::lock_guard lock(mutex_);
      if (held_) {
        pending_.emplace(std::move(o), std::move(h));
        return;
      }
    }
    forward(std::move(o), std::move(h));
  }

private:
  // The stream handed out: a cancel by hold_and_end_watch() reads as the server's end of stream.
  class stream final : public informer::watch_stream {
  public:
    stream(std::shared_ptr<informer::watch_stream> inner, gated_source& gate) : inner_(std::move(inner)), gate_(gate) {}
    void cancel() override { inner_->cancel(); }

  protected:
    void next_impl(asio::any_completion_handler<next_signature> h) override {
      inner_->async_next([this, h = std::move(h)](informer::error e, informer::watch_event ev) mutable {
        {
          std::lock_guard lock(gate_.mutex_);
          if (e.code() == asio::error::operation_aborted && std::exchange(gate_.ended_, false))
            e = informer::error(errc::end_of_stream, "ended by the test");
        }
        auto ex = asio::get_associated_executor(h, gate_.get_executor());
        asio::dispatch(ex, asio::append(std::move(h), std::move(e), std::move(ev)));
      });
    }

  private:
    std::shared_ptr<informer::watch_stream> inner_;
    gated_source& gate_;
  };

  void forward(informer::watch_options o, handler_type h) {
    inner_->async_watch(std::move(o),
                        [this, h = std::move(h)](informer::error e, std::shared_ptr<informer::watch_stream> s) mutable {
                          std::shared_ptr<informer::watch_stream> wrapped;
                          if (s) {
                            wrapped = std::make_shared<stream>(std::move(s), *this);
                            std::lock_guard lock(mutex_);
                            open_ = wrapped;
                          }
                          auto ex = asio::get_associated_executor(h, get_executor());
                          asio::dispatch(ex, asio::append(std::move(h), std::move(e), std::move(wrapped)));
                        });
  }

  std::shared_ptr<informer::lister_watcher> inner_;
  mutable std::mutex mutex_;
  bool held_ = false;
  bool ended_ = false;
  std::shared_ptr<informer::watch_stream> open_;
  std::optional<std::pair<informer::watch_options, handler_type>> pending_;
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

BOOST_AUTO_TEST_SUITE(apiserver_informer, *boost::unit_test::precondition(cluster_running))

BOOST_DATA_TEST_CASE(informer_sees_create_update_delete_in_order, boost::unit_test::data::make(encodings), enc) {
  io_threads io;
  auto client = make_client(io);
  api server(client);
  for (const auto& kc : kind_cases()) {
    BOOST_TEST_CONTEXT(kc.resource << " as " << enc.name) {
      const auto res = informer::parse_resource(kc.resource).value();
      const std::string ns = server.namespace_();
      const std::string collection = informer::resource_path(res, ns);
      // One object before the informer starts: it arrives through the list.
      auto before = server.create(collection, kc.body("before"));

      recorder rec;
      auto inf = start(make_source(client, res, {.ns = ns, .encoding = enc.encoding}), rec);
      BOOST_TEST(rec.for_name("before") == std::vector<std::string>{"add before " + rv_of(before)});
      // The listed object is the one a GET returns (kind and apiVersion included).
      auto cached = inf->get_store()->get_by_key(ns + "/before");
      BOOST_TEST_REQUIRE(cached != nullptr);
      auto got = object::from_json(server.call(http::verb::get, collection + "/before")).value();
      BOOST_TEST(same_content(*cached, *got), cached->to_json() << "\nvs GET\n" << got->to_json());

      auto created = server.create(collection, kc.body("x"));
      auto updated = server.label(collection + "/x", "step", "2");
      server.remove(collection + "/x");
      const std::vector<std::string> expected_prefix{"add x " + rv_of(created), "update x " + rv_of(updated)};
      BOOST_TEST_REQUIRE(eventually([&] {
                           auto seen = rec.for_name("x");
                           return !seen.empty() && seen.back().starts_with("delete x");
                         }),
                         "no delete seen; events: " << rec.for_name("x").size());
      auto seen = rec.for_name("x");
      BOOST_TEST_REQUIRE(seen.size() >= 3u);
      BOOST_TEST(seen[0] == expected_prefix[0]);
      BOOST_TEST(seen[1] == expected_prefix[1]);
      // A pod's deletion first sets its deletionTimestamp (an update), then removes it.
      for (std::size_t i = 2; i + 1 < seen.size(); ++i) BOOST_TEST(seen[i].starts_with("update x "), seen[i]);
      BOOST_TEST(inf->get_store()->get_by_key(ns + "/x") == nullptr);
      inf->stop();
    }
  }
}

BOOST_AUTO_TEST_CASE(custom_resources) {
  io_threads io;
  auto client = make_client(io);
  api server(client);
  const std::string group = "g" + random_suffix() + ".example.com";
  server.create(
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
      R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",)"
      R"("metadata":{"name":"crontabs.)" +
          group + R"("},"spec":{"group":")" + group +
          R"(","scope":"Namespaced","names":{"plural":"crontabs","singular":"crontab","kind":"CronTab"},)"
          R"("versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object",)"
          R"("x-kubernetes-preserve-unknown-fields":true}}}]}})");
  const informer::resource crontabs{.group = group, .version = "v1", .plural = "crontabs", .kind = "CronTab"};
  const std::string ns = server.namespace_();
  const std::string collection = informer::resource_path(crontabs, ns);
  // The CRD serves once established.
  BOOST_TEST_REQUIRE(eventually([&] {
    auto f = client.async_request(http::verb::get, collection, {}, {}, asio::use_future);
    return !std::get<0>(f.get());
  }));

  // Protobuf is refused for a kind the codec does not know (the server would send JSON anyway).
  BOOST_TEST(
      informer::apiserver_lister_watcher::create(client, crontabs, {.encoding = informer::wire_encoding::protobuf})
          .has_error());

  const auto body = [&](const std::string& n) {
    return R"({"apiVersion":")" + group + R"(/v1","kind":"CronTab","metadata":{"name":")" + n +
           R"("},"spec":{"cronSpec":"* * * * */5","image":"my-cron"}})";
  };
  auto before = server.create(collection, body("before"));
  recorder rec;
  auto inf = start(make_source(client, crontabs, {.ns = ns}), rec);
  // The first list reads at resourceVersion "0" (the server's watch cache, which for a just-served
  // CRD may lag the create): the object arrives by the list or by the watch right after it.
  informer::object::ptr cached;
  BOOST_TEST_REQUIRE(eventually([&] { return (cached = inf->get_store()->get_by_key(ns + "/before")) != nullptr; }));
  BOOST_TEST(cached->kind() == "CronTab");
  BOOST_TEST(cached->api_version() == group + "/v1");
  BOOST_TEST(cached->field("spec.image")->as_string() == "my-cron");

  auto created = server.create(collection, body("x"));
  auto updated = server.label(collection + "/x", "step", "2");
  server.remove(collection + "/x");
  BOOST_TEST_REQUIRE(eventually([&] { return rec.for_name("x").size() == 3u; }));
  auto seen = rec.for_name("x");
  BOOST_TEST(seen[0] == "add x " + rv_of(created));
  BOOST_TEST(seen[1] == "update x " + rv_of(updated));
  BOOST_TEST(seen[2].starts_with("delete x "));

  // Metadata only, over protobuf: works for custom resources too (PartialObjectMetadata).
  recorder meta_rec;
  auto meta = start(
      make_source(client, crontabs, {.ns = ns, .encoding = informer::wire_encoding::protobuf, .metadata_only = true}),
      meta_rec);
  auto m = meta->get_store()->get_by_key(ns + "/before");
  BOOST_TEST_REQUIRE(m != nullptr);
  BOOST_TEST(m->kind() == "CronTab");
  BOOST_TEST(!m->field("spec").has_value());
  BOOST_TEST(m->resource_version() == rv_of(before));
  meta->stop();
  inf->stop();
}

BOOST_AUTO_TEST_CASE(label_selector_informer_sees_only_matches) {
  io_threads io;
  auto client = make_client(io);
  api server(client);
  const auto cms = informer::parse_resource("configmaps").value();
  const std::string ns = server.namespace_();
  const std::string collection = informer::resource_path(cms, ns);
  const auto cm = [](const std::string& n, const std::string& app) {
    return R"({"metadata":{"name":")" + n + R"(","labels":{"app":")" + app + R"("}}})";
  };
  server.create(collection, cm("web-1", "web"));
  server.create(collection, cm("db-1", "db"));

  recorder rec;
  auto inf = start(make_source(client, cms, {.ns = ns}), rec, {.label_selector = "app=web"});
  BOOST_TEST(inf->get_store()->list().size() == 1u);
  server.create(collection, cm("web-2", "web"));
  server.create(collection, cm("db-2", "db"));
  server.label(collection + "/db-1", "app", "web");  // enters the selection
  server.label(collection + "/web-1", "app", "db");  // leaves it
  BOOST_TEST_REQUIRE(
      eventually([&] { return !rec.for_name("web-1").empty() && rec.for_name("web-1").back().starts_with("delete"); }));
  BOOST_TEST_REQUIRE(
      eventually([&] { return rec.for_name("db-1").size() == 1u && rec.for_name("web-2").size() == 1u; }));
  BOOST_TEST(rec.for_name("db-2").empty());
  BOOST_TEST(rec.for_name("db-1")[0].starts_with("add db-1"));
  std::vector<std::string> keys;
  for (const auto& o : inf->get_store()->list()) keys.emplace_back(o->name());
  std::sort(keys.begin(), keys.end());
  BOOST_TEST((keys == std::vector<std::string>{"db-1", "web-2"}));
  inf->stop();
}

BOOST_AUTO_TEST_CASE(namespace_scoped_informer_and_all_namespaces) {
  io_threads io;
  auto client = make_client(io);
  api server(client);
  const auto cms = informer::parse_resource("configmaps").value();
  const std::string a = server.namespace_();
  const std::string b = server.namespace_();
  server.create(informer::resource_path(cms, a), R"({"metadata":{"name":"in-a"}})");
  recorder rec_a, rec_all;
  auto only_a = start(make_source(client, cms, {.ns = a}), rec_a);
  auto all = start(make_source(client, cms), rec_all);
  server.create(informer::resource_path(cms, b), R"({"metadata":{"name":"in-b"}})");
  server.create(informer::resource_path(cms, a), R"({"metadata":{"name":"in-a-2"}})");
  BOOST_TEST_REQUIRE(
      eventually([&] { return rec_a.for_name("in-a-2").size() == 1u && rec_all.for_name("in-b").size() == 1u; }));
  BOOST_TEST(rec_a.for_name("in-b").empty());
  for (const auto& o : only_a->get_store()->list()) BOOST_TEST(o->ns() == a);
  BOOST_TEST(all->get_store()->get_by_key(b + "/in-b") != nullptr);
  BOOST_TEST(all->get_store()->get_by_key(a + "/in-a") != nullptr);
  only_a->stop();
  all->stop();
}

BOOST_AUTO_TEST_CASE(paged_lists_and_watch_stream_behaviour) {
  io_threads io;
  auto client = make_client(io);
  api server(client);
  const auto cms = informer::parse_resource("configmaps").value();
  const std::string ns = server.namespace_();
  for (int i = 0; i < 5; ++i)
    server.create(informer::resource_path(cms, ns), R"({"metadata":{"name":"p)" + std::to_string(i) + R"("}})");
  auto lw = make_source(client, cms, {.ns = ns, .encoding = informer::wire_encoding::protobuf});

  // limit/continue: three pages, all items, one snapshot.
  informer::list_options o{.label_selector = {}, .field_selector = {}, .limit = 2};
  std::vector<std::string> names;
  int pages = 0;
  for (;;) {
    auto [e, page] = lw->async_list(o, asio::use_future).get();
    BOOST_TEST_REQUIRE(!e, e.what());
    ++pages;
    if (!page.continue_token.empty()) BOOST_TEST(page.remaining_item_count.has_value());
    for (const auto& item : page.items) {
      names.emplace_back(item->name());
      BOOST_TEST(item->kind() == "ConfigMap");
    }
    if (page.continue_token.empty()) break;
    o.continue_token = page.continue_token;
  }
  BOOST_TEST(pages == 3);
  BOOST_TEST(names.size() == 5u);

  // A list whose handler's cancellation slot fires completes at once with operation_aborted.
  asio::cancellation_signal signal;
  auto cancelled = lw->async_list({}, asio::bind_cancellation_slot(signal.slot(), asio::use_future));
  signal.emit(asio::cancellation_type::terminal);
  BOOST_TEST_REQUIRE((cancelled.wait_for(1s) == std::future_status::ready));
  BOOST_TEST((std::get<0>(cancelled.get()).code() == asio::error::operation_aborted));

  // A server-side timeout ends the watch with end_of_stream.
  auto [we, stream] =
      lw->async_watch({.resource_version = "", .allow_bookmarks = false, .timeout = 1s}, asio::use_future).get();
  BOOST_TEST_REQUIRE(!we, we.what());
  informer::error end;
  while (!end) end = std::get<0>(stream->async_next(asio::use_future).get());
  BOOST_TEST((end.code() == make_error_code(errc::end_of_stream)), end.what());

  // cancel() ends a waiting async_next promptly.
  auto [we2, quiet] = lw->async_watch({.resource_version = "", .allow_bookmarks = false}, asio::use_future).get();
  BOOST_TEST_REQUIRE(!we2, we2.what());
  // The initial ADDED events of a watch without resourceVersion come first; read past them.
  for (int i = 0; i < 5; ++i) BOOST_TEST(!std::get<0>(quiet->async_next(asio::use_future).get()));
  auto pending = quiet->async_next(asio::use_future);
  std::this_thread::sleep_for(100ms);  // let the read be outstanding
  const auto cancelled_at = std::chrono::steady_clock::now();
  quiet->cancel();
  BOOST_TEST_REQUIRE((pending.wait_for(2s) == std::future_status::ready));
  BOOST_TEST((std::get<0>(pending.get()).code() == asio::error::operation_aborted));
  BOOST_TEST((std::chrono::steady_clock::now() - cancelled_at < 1s));
  BOOST_TEST((std::get<0>(quiet->async_next(asio::use_future).get()).code() == asio::error::operation_aborted));

  // Dropping the stream with an async_next pending cancels it too: the read completes at once
  // instead of keeping the connection open until the server's timeout.
  auto [we3, dropped] = lw->async_watch({.resource_version = "", .allow_bookmarks = false}, asio::use_future).get();
  BOOST_TEST_REQUIRE(!we3, we3.what());
  for (int i = 0; i < 5; ++i) BOOST_TEST(!std::get<0>(dropped->async_next(asio::use_future).get()));
  auto orphan = dropped->async_next(asio::use_future);
  std::this_thread::sleep_for(100ms);
  dropped.reset();
  BOOST_TEST_REQUIRE((orphan.wait_for(2s) == std::future_status::ready));
  BOOST_TEST((std::get<0>(orphan.get()).code() == asio::error::operation_aborted));

  // So does the handler's cancellation slot.
  auto [we4, slotted] = lw->async_watch({.resource_version = "", .allow_bookmarks = false}, asio::use_future).get();
  BOOST_TEST_REQUIRE(!we4, we4.what());
  for (int i = 0; i < 5; ++i) BOOST_TEST(!std::get<0>(slotted->async_next(asio::use_future).get()));
  asio::cancellation_signal next_signal;
  auto signalled = slotted->async_next(asio::bind_cancellation_slot(next_signal.slot(), asio::use_future));
  std::this_thread::sleep_for(100ms);
  next_signal.emit(asio::cancellation_type::terminal);
  BOOST_TEST_REQUIRE((signalled.wait_for(2s) == std::future_status::ready));
  BOOST_TEST((std::get<0>(signalled.get()).code() == asio::error::operation_aborted));
}

BOOST_AUTO_TEST_CASE(bookmarks_advance_the_resource_version) {
  io_threads io;
  auto client = make_client(io);
  api server(client);
  const auto cms = informer::parse_resource("configmaps").value();
  const std::string quiet = server.namespace_();
  const std::string busy = server.namespace_();

  // Straight from the source: a watch that allows bookmarks gets one before its timeout
  // (kube-apiserver sends them from its watch cache, 2 s before the deadline).
  auto lw = make_source(client, cms, {.ns = quiet});
  auto [e, stream] =
      lw->async_watch({.resource_version = "0", .allow_bookmarks = true, .timeout = 4s}, asio::use_future).get();
  BOOST_TEST_REQUIRE(!e, e.what());
  server.create(informer::resource_path(cms, busy), R"({"metadata":{"name":"elsewhere"}})");
  std::optional<informer::watch_event> bookmark;
  for (;;) {
    auto [ne, ev] = stream->async_next(asio::use_future).get();
    if (ne) break;
    if (ev.type == informer::watch_event_type::bookmark) bookmark = std::move(ev);
  }
  BOOST_TEST_REQUIRE(bookmark.has_value(), "no bookmark within the watch's 4 s");
  BOOST_TEST(bookmark->obj == nullptr);
  BOOST_TEST(!bookmark->resource_version.empty());

  // Through an informer: writes elsewhere move its resourceVersion on without events or lists.
  std::atomic<int> lists{0};
  recorder rec;
  informer::shared_informer_options o;
  o.reflector.min_watch_timeout = 4s;
  o.reflector.metrics.on_list = [&](std::size_t, std::chrono::nanoseconds) { ++lists; };
  auto inf = start(make_source(client, cms, {.ns = quiet}), rec, std::move(o));
  const auto synced_rv = std::stoll(inf->last_sync_resource_version());
  auto elsewhere = server.create(informer::resource_path(cms, busy), R"({"metadata":{"name":"later"}})");
  const auto target = std::stoll(rv_of(elsewhere));
  BOOST_TEST(target > synced_rv);
  BOOST_TEST(eventually([&] { return std::stoll(inf->last_sync_resource_version()) >= target; }, 15s),
             "resourceVersion stayed at " << inf->last_sync_resource_version() << ", wanted " << target);
  BOOST_TEST(lists.load() == 1);
  BOOST_TEST(rec.names().empty());
  inf->stop();
}

BOOST_AUTO_TEST_CASE(relist_after_compaction_delivers_tombstones) {
  io_threads io;
  auto client = make_client(io);
  api server(client);
  const auto secrets = informer::parse_resource("secrets").value();
  const std::string ns = server.namespace_();
  const std::string collection = informer::resource_path(secrets, ns);
  const auto secret = [](const std::string& n) {
    return R"({"metadata":{"name":")" + n + R"("},"stringData":{"k":"v"}})";
  };
  auto a = server.create(collection, secret("a"));
  server.create(collection, secret("b"));

  auto gate = std::make_shared<gated_source>(make_source(client, secrets, {.ns = ns}));
  recorder rec;
  error_log errors;
  std::atomic<int> lists{0};
  informer::shared_informer_options o;
  o.watch_error_handler = std::ref(errors);
  o.reflector.metrics.on_list = [&](std::size_t, std::chrono::nanoseconds) { ++lists; };
  auto inf = start(gate, rec, std::move(o));
  // An event through the watch, so that ending it reads as a normal end (not a watch that failed
  // at once).
  server.create(collection, secret("c"));
  BOOST_TEST_REQUIRE(eventually([&] { return rec.for_name("c").size() == 1u; }));

  gate->hold_and_end_watch();
  BOOST_TEST_REQUIRE(eventually([&] { return gate->waiting(); }), "the reflector did not reopen its watch");
  server.remove(collection + "/a");
  auto b2 = server.label(collection + "/b", "step", "2");
  auto d = server.create(collection, secret("d"));

  auto etcd = informer::etcd::client::connect({.endpoints = {cluster->etcd_endpoint()}});
  BOOST_TEST_REQUIRE(etcd.has_value(), etcd.error().what());
  auto head = etcd->range("/registry/secrets/" + ns + "/", std::string("/registry/secrets/") + ns + "0");
  BOOST_TEST_REQUIRE(head.has_value(), head.error().what());
  auto compacted = etcd->compact(head->revision);
  BOOST_TEST_REQUIRE(compacted.has_value(), compacted.error().what());

  // Straight from the source: a watch from before the compaction gets 410, at open or as an
  // ERROR event (kube-apiserver 1.20 sends the event).
  auto direct = make_source(client, secrets, {.ns = ns});
  auto [oe, old] = direct->async_watch({.resource_version = rv_of(a)}, asio::use_future).get();
  informer::error expired = oe;
  if (!oe) {
    auto [ne, ev] = old->async_next(asio::use_future).get();
    BOOST_TEST_REQUIRE(!ne, ne.what());
    BOOST_TEST_REQUIRE((ev.type == informer::watch_event_type::error));
    BOOST_TEST(ev.obj == nullptr);
    expired = ev.error_status.to_error();
    BOOST_TEST_MESSAGE("ERROR event: " << expired.what());
  }
  BOOST_TEST((expired.code() == make_error_code(errc::expired)), expired.what());

  gate->release();

  BOOST_TEST_REQUIRE(
      eventually([&] { return !rec.for_name("a").empty() && rec.for_name("a").back().starts_with("delete"); }),
      "no delete for a");
  // Deleted while away: a tombstone with the last state the informer knew.
  BOOST_TEST(rec.for_name("a").back() == "delete? a " + rv_of(a));
  BOOST_TEST_REQUIRE(eventually([&] { return rec.for_name("d").size() == 1u && rec.for_name("b").size() == 2u; }));
  BOOST_TEST(rec.for_name("b").back() == "update b " + rv_of(b2));
  BOOST_TEST(rec.for_name("d")[0] == "add d " + rv_of(d));
  BOOST_TEST(lists.load() >= 2);
  bool saw_expired = false;
  for (const auto& e : errors.snapshot()) saw_expired |= e.code() == make_error_code(errc::expired);
  BOOST_TEST(saw_expired, "no 410 reported");
  inf->stop();
}

BOOST_DATA_TEST_CASE(an_object_too_large_to_decode_is_reported_and_keeps_its_cached_state,
                     boost::unit_test::data::make(encodings), enc) {
  // The informer accepts objects up to 4 KiB. b grows past that: the watch event fails, the
  // relist leaves b out and names it, and the cache keeps b's last state; no handler sees a delete.
  io_threads io;
  auto client = make_client(io);
  api server(client);
  const auto configmaps = informer::parse_resource("configmaps").value();
  const std::string ns = server.namespace_();
  const std::string collection = informer::resource_path(configmaps, ns);
  const auto configmap = [](const std::string& n, std::size_t size) {
    return R"({"metadata":{"name":")" + n + R"("},"data":{"k":")" + std::string(size, 'x') + R"("}})";
  };
  server.create(collection, configmap("a", 10));
  auto b = server.create(collection, configmap("b", 10));

  recorder rec;
  error_log errors;
  informer::shared_informer_options o;
  o.watch_error_handler = std::ref(errors);
  o.reflector.backoff = {.initial = 50ms, .max = 1s, .factor = 2.0, .jitter = 0.0, .reset_after = 1min};
  auto inf = start(make_source(client, configmaps, {.ns = ns, .encoding = enc.encoding, .object = {.max_bytes = 4096}}),
                   rec, std::move(o));
  server.call(http::verb::put, collection + "/b", configmap("b", 8192));
  BOOST_TEST_REQUIRE(eventually([&] {
                       for (const auto& e : errors.snapshot())
                         if (e.code() == make_error_code(errc::object_too_large) &&
                             e.detail().find("(" + ns + "/b)") != std::string::npos &&
                             e.detail().find("cached state") != std::string::npos)
                           return true;
                       return false;
                     }),
                     "the relist did not report b");
  // The watch runs again after the relist: a later change arrives.
  server.create(collection, configmap("c", 10));
  BOOST_TEST_REQUIRE(eventually([&] { return rec.for_name("c").size() == 1u; }));
  BOOST_TEST(rec.for_name("b") == std::vector<std::string>{"add b " + rv_of(b)}, boost::test_tools::per_element());
  auto cached = inf->lister().get(ns, "b");
  BOOST_TEST_REQUIRE(cached != nullptr);
  BOOST_TEST(cached->resource_version() == rv_of(b));
  BOOST_TEST(inf->get_store()->size() == 3u);
  inf->stop();
}

namespace {

// Runs an informer whose every list fails, for `window`, and returns what its error hook saw.
std::vector<informer::error> failures_over(const std::shared_ptr<informer::lister_watcher>& source,
                                           std::chrono::milliseconds window) {
  auto log = std::make_shared<error_log>();
  informer::shared_informer_options o;
  o.watch_error_handler = [log](const informer::error& e) { (*log)(e); };
  o.reflector.backoff = {.initial = 250ms, .max = 30s, .factor = 2.0, .jitter = 0.5, .reset_after = 2min};
  auto inf = shared_informer::create(source, std::move(o));
  inf->run();
  std::this_thread::sleep_for(window);  // the observation window itself
  BOOST_TEST(!inf->has_synced());
  inf->stop();
  return log->snapshot();
}

// With the backoff above (>= 250, 500, 1000, 2000 ms between attempts), a 3 s window holds at
// most 4 attempts; a tight loop would make hundreds.
constexpr auto failure_window = 3000ms;
constexpr std::size_t max_attempts = 4;

}  // namespace

namespace {

// The SDK's log lines while it lives (the logger restored after).
struct log_capture {
  log_capture() : level(informer::get_log_level()) {
    informer::set_log_level(informer::log_level::info);
    sink = informer::set_log_sink([this](const informer::log_record& r) {
      std::lock_guard lock(mutex);
      lines.push_back(std::string(r.component) + ": " + std::string(r.message));
    });
  }
  ~log_capture() {
    informer::set_log_sink(sink);
    informer::set_log_level(level);
  }
  std::vector<std::string> taken() {
    std::lock_guard lock(mutex);
    return lines;
  }
  // The lines mentioning `text`, none of which may hold `secret`.
  std::vector<std::string> lines_with(const std::string& text, const std::string& secret) {
    std::vector<std::string> out;
    for (const auto& line : taken()) {
      BOOST_TEST(line.find(secret) == std::string::npos, "a log line holds the token: " << line);
      if (line.find(text) != std::string::npos) out.push_back(line);
    }
    return out;
  }
  informer::log_level level;
  informer::log_sink sink;
  std::mutex mutex;
  std::vector<std::string> lines;
};

}  // namespace

BOOST_AUTO_TEST_CASE(wrong_token_is_reported_with_backoff) {
  io_threads io;
  auto config = admin_config();
  config.bearer_token = "not-a-valid-token";
  auto client = make_client(io, config);
  log_capture logs;
  auto errors = failures_over(make_source(client, informer::parse_resource("pods").value()), failure_window);
  // Readable in the log, without the token.
  // The reflector's lines (the HTTP client also notes each 401, at info).
  const auto logged = logs.lines_with("reflector: informer: unauthorized (401)", config.bearer_token);
  BOOST_TEST(logged.size() == errors.size());
  if (!logged.empty()) BOOST_TEST_MESSAGE("logged: " << logged.front());
  for (const auto& line : logged) BOOST_TEST(line.find("GET https://") != std::string::npos, line);
  BOOST_TEST_MESSAGE("401: " << (errors.empty() ? std::string("none") : errors.front().what()));
  BOOST_TEST(errors.size() >= 2u);
  BOOST_TEST(errors.size() <= max_attempts);
  for (const auto& e : errors) BOOST_TEST((e.code() == make_error_code(errc::unauthorized)), e.what());
  BOOST_TEST(client.stats().requests_sent == errors.size());
}

BOOST_AUTO_TEST_CASE(rbac_denial_is_reported_with_backoff) {
  io_threads io;
  auto config = admin_config();
  config.bearer_token = cluster->user_token();
  auto client = make_client(io, config);
  log_capture logs;
  auto errors = failures_over(
      make_source(client, informer::parse_resource("apps/v1/deployments").value(), {.ns = "default"}), failure_window);
  const auto logged = logs.lines_with("deployments.apps is forbidden", config.bearer_token);
  BOOST_TEST(logged.size() == errors.size());
  if (!logged.empty()) BOOST_TEST_MESSAGE("logged: " << logged.front());
  BOOST_TEST_MESSAGE("403: " << (errors.empty() ? std::string("none") : errors.front().what()));
  BOOST_TEST(errors.size() >= 2u);
  BOOST_TEST(errors.size() <= max_attempts);
  for (const auto& e : errors) {
    BOOST_TEST((e.code() == make_error_code(errc::forbidden)), e.what());
    BOOST_TEST(e.detail().find("deployments.apps is forbidden") != std::string::npos, e.detail());
  }
  BOOST_TEST(client.stats().requests_sent == errors.size());
}

BOOST_AUTO_TEST_CASE(unverifiable_server_certificate_is_refused) {
  io_threads io;
  auto config = admin_config();
  config.tls.ca_file.clear();  // the system's trust store does not know the test CA
  auto client = make_client(io, config);
  auto errors = failures_over(make_source(client, informer::parse_resource("configmaps").value()), failure_window);
  BOOST_TEST_REQUIRE(!errors.empty());
  BOOST_TEST_MESSAGE("TLS: " << errors.front().what());
  BOOST_TEST(errors.size() <= max_attempts);
  for (const auto& e : errors) BOOST_TEST(e.what().find("certificate verify failed") != std::string::npos, e.what());
  BOOST_TEST(client.stats().requests_sent == 0u);  // nothing, not even the token, went out
}

BOOST_DATA_TEST_CASE(metadata_only_informer_sees_names_and_labels, boost::unit_test::data::make(encodings), enc) {
  io_threads io;
  auto client = make_client(io);
  api server(client);
  const auto cms = informer::parse_resource("configmaps").value();
  const std::string ns = server.namespace_();
  const std::string collection = informer::resource_path(cms, ns);
  server.create(collection, R"({"metadata":{"name":"listed","labels":{"app":"web"}},"data":{"secret":"s"}})");
  recorder rec;
  auto inf = start(make_source(client, cms, {.ns = ns, .encoding = enc.encoding, .metadata_only = true}), rec);
  auto watched =
      server.create(collection, R"({"metadata":{"name":"watched","labels":{"app":"db"}},"data":{"secret":"s"}})");
  BOOST_TEST_REQUIRE(eventually([&] { return rec.for_name("watched").size() == 1u; }));
  for (const char* name : {"listed", "watched"}) {
    auto o = inf->get_store()->get_by_key(ns + "/" + name);
    BOOST_TEST_REQUIRE(o != nullptr);
    BOOST_TEST(o->kind() == "ConfigMap");
    BOOST_TEST(o->api_version() == "v1");
    BOOST_TEST(o->labels().size() == 1u);
    std::vector<std::string> keys;
    const auto body = o->body();
    for (const auto& [k, v] : body.as_object()) keys.emplace_back(k);
    BOOST_TEST((keys == std::vector<std::string>{"kind", "apiVersion", "metadata"}), o->to_json());
  }
  BOOST_TEST((inf->get_store()->get_by_key(ns + "/watched")->labels().get("app") == "db"));
  BOOST_TEST(inf->get_store()->get_by_key(ns + "/watched")->resource_version() == rv_of(watched));
  inf->stop();
}

BOOST_AUTO_TEST_CASE(factory_source_maker) {
  informer::informer_factory factory({.threads = 2});
  auto client = http_client::create(factory.get_executor(), admin_config()).value();
  const informer::resource crd_like{.group = "", .version = "v1", .plural = "configmaps", .kind = "ConfigMap"};
  auto maker =
      informer::apiserver_source_maker(client, {.lister_watcher = {.encoding = informer::wire_encoding::protobuf}});
  api server(client);
  const std::string ns = server.namespace_();
  server.create(informer::resource_path(crd_like, ns), R"({"metadata":{"name":"via-factory","labels":{"x":"1"}}})");
  auto inf = factory.for_resource({.resource = "configmaps", .ns = ns, .label_selector = "x=1"}, maker);
  BOOST_TEST(factory.for_resource({.resource = "configmaps", .ns = ns, .label_selector = "x = 1"}, maker) == inf);
  factory.start();
  BOOST_TEST_REQUIRE(factory.wait_for_cache_sync(30s));
  BOOST_TEST(inf->get_store()->get_by_key(ns + "/via-factory") != nullptr);
  BOOST_CHECK_THROW(factory.for_resource({.resource = "nosuchthings"}, maker), std::invalid_argument);
  io_threads other;
  auto elsewhere = informer::apiserver_source_maker(make_client(other));
  BOOST_CHECK_THROW(factory.for_resource({.resource = "secrets"}, elsewhere), std::invalid_argument);
  factory.shutdown();
}

// Last: it restarts the API server under running informers (one per encoding; a restart takes
// seconds, so both share it).
BOOST_AUTO_TEST_CASE(informers_recover_from_an_apiserver_restart) {
  io_threads io;
  auto client = make_client(io);
  api server(client);
  const auto cms = informer::parse_resource("configmaps").value();
  const std::string ns = server.namespace_();
  const std::string collection = informer::resource_path(cms, ns);
  server.create(collection, R"({"metadata":{"name":"before"}})");
  struct watcher {
    recorder rec;
    error_log errors;
    std::shared_ptr<shared_informer> inf;
  };
  std::vector<std::unique_ptr<watcher>> watchers;
  for (const auto& enc : encodings) {
    auto w = std::make_unique<watcher>();
    informer::shared_informer_options o;
    o.watch_error_handler = std::ref(w->errors);
    w->inf = start(make_source(client, cms, {.ns = ns, .encoding = enc.encoding}), w->rec, std::move(o));
    watchers.push_back(std::move(w));
  }
  server.create(collection, R"({"metadata":{"name":"watched"}})");
  for (auto& w : watchers) BOOST_TEST_REQUIRE(eventually([&] { return w->rec.for_name("watched").size() == 1u; }));

  const auto restart_began = std::chrono::steady_clock::now();
  cluster->restart_apiserver();
  BOOST_TEST_MESSAGE(
      "restart took "
      << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - restart_began).count()
      << " ms");
  server.remove(collection + "/before");
  auto after = server.create(collection, R"({"metadata":{"name":"after"}})");
  auto relabelled = server.label(collection + "/watched", "step", "2");

  // Converged: each cache holds exactly what the server lists, at the same versions.
  const auto converged = [&](const shared_informer& inf) {
    auto listed = server.call(http::verb::get, collection);
    std::map<std::string, std::string> want, have;
    for (const auto& item : listed.at("items").as_array())
      want[std::string(item.at("metadata").at("name").as_string())] = rv_of(item);
    for (const auto& obj : inf.get_store()->list())
      have[std::string(obj->name())] = std::string(obj->resource_version());
    return want == have;
  };
  for (std::size_t i = 0; i < watchers.size(); ++i) {
    BOOST_TEST_CONTEXT(encodings[i].name) {
      auto& w = *watchers[i];
      BOOST_TEST_REQUIRE(eventually([&] { return converged(*w.inf); }, 60s), "no convergence after the restart");
      BOOST_TEST(w.inf->get_store()->get_by_key(ns + "/after")->resource_version() == rv_of(after));
      BOOST_TEST(w.inf->get_store()->get_by_key(ns + "/watched")->resource_version() == rv_of(relabelled));
      BOOST_TEST(w.rec.for_name("before").back().starts_with("delete"));
      BOOST_TEST_MESSAGE("errors reported during the restart: " << w.errors.snapshot().size());
      w.inf->stop();
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
