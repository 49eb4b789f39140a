// The etcd sources' shared machinery and the generic source, against a real etcd: the
// asynchronous Range, paged snapshot lists, watch event mapping, client-side selectors,
// undecodable values, compaction while disconnected, an etcd restart under a running informer,
// canceling a watch while it opens, a watch opening when its executor is destroyed, and readers
// that fall behind a write burst.
#include "informer/etcd/generic_source.hpp"

#include "informer/client/shared_informer.hpp"
#include "informer/core/label_selector.hpp"
#include "informer/etcd/client.hpp"

#include "control_plane.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace etcd = informer::etcd;
namespace json = boost::json;
using informer::testing::etcd_server;

namespace {

// Generous bound for "should happen soon": only reached when something is broken.
constexpr auto patience = 30s;

template <class T>
T must(informer::detailed_result<T> r, const char* what = "call") {
  BOOST_REQUIRE_MESSAGE(r.has_value(), what << " failed: " << (r ? std::string{} : r.error().what()));
  return std::move(*r);
}

void must(informer::detailed_result<void> r, const char* what = "call") {
  BOOST_REQUIRE_MESSAGE(r.has_value(), what << " failed: " << (r ? std::string{} : r.error().what()));
}

bool is(const informer::error& e, informer::errc code) { return e.code() == informer::make_error_code(code); }

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

// One etcd for the whole file (each test uses its own key prefix); started on first use.
etcd_server& shared_server() {
  static etcd_server server;
  return server;
}

// The etcd server, a client, and an io_context run by two threads (so handlers really race).
class harness {
public:
  harness() {
    auto c = etcd::client::connect({.endpoints = {server.endpoint()}, .dial_timeout = 2s, .request_timeout = 5s});
    BOOST_REQUIRE_MESSAGE(c, (c ? "" : c.error().what()));
    client = std::make_shared<etcd::client>(std::move(*c));
    for (int i = 0; i < 2; ++i) {
      threads_.emplace_back([this] { io.run(); });
    }
  }
  ~harness() {
    work_.reset();
    io.stop();
    for (auto& t : threads_) {
      t.join();
    }
  }
  harness(const harness&) = delete;
  harness& operator=(const harness&) = delete;

  std::int64_t put(const std::string& key, const std::string& value) { return must(client->put(key, value), "put"); }
  std::int64_t del(const std::string& key) { return must(client->delete_range(key), "delete").revision; }

  void signal_etcd(int sig) {
    const int pid = std::stoi(server.env("ETCD_PID"));
    BOOST_REQUIRE(::kill(pid, sig) == 0);
  }

  // SIGSTOP takes effect asynchronously (a thread running on another core may still answer a
  // request): returns once every thread of etcd has stopped.
  void freeze_etcd() {
    signal_etcd(SIGSTOP);
    const std::filesystem::path tasks = "/proc/" + server.env("ETCD_PID") + "/task";
    const bool stopped = eventually(
        [&] {
          for (const auto& task : std::filesystem::directory_iterator(tasks)) {
            std::ifstream stat(task.path() / "stat");
            std::string line;
            std::getline(stat, line);
            const auto name_end = line.rfind(')');
            if (name_end == std::string::npos || name_end + 2 >= line.size() || line[name_end + 2] != 'T') {
              return false;
            }
          }
          return true;
        },
        5s);
    if (!stopped) {
      signal_etcd(SIGCONT);
    }
    BOOST_REQUIRE_MESSAGE(stopped, "etcd did not stop");
  }

  std::shared_ptr<etcd::source> generic(etcd::generic_source_options options) {
    return etcd::make_generic_source(client, io.get_executor(), std::move(options));
  }

  etcd_server& server = shared_server();
  asio::io_context io;
  std::shared_ptr<etcd::client> client;

private:
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io);
  std::vector<std::thread> threads_;
};

std::string config(const std::string& team, int port) {
  return R"({"metadata":{"labels":{"team":")" + team + R"("}},"spec":{"port":)" + std::to_string(port) + "}}";
}

std::int64_t port_of(const informer::object& obj) { return obj.field("spec.port").value().to_number<std::int64_t>(); }

std::vector<std::string> sorted_keys(const informer::indexer& store) {
  auto keys = store.list_keys();
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::vector<std::string> names(const std::vector<informer::object::ptr>& objects) {
  std::vector<std::string> out;
  for (const auto& o : objects) {
    out.emplace_back(o->name());
  }
  return out;
}

// What an informer's handlers saw, for the test thread to wait on and inspect.
class recorder {
public:
  informer::resource_event_handlers handlers() {
    return {.on_add = [this](const informer::object::ptr& o, bool) { record("add " + std::string{o->name()}); },
            .on_update = [this](const informer::object::ptr&,
                                const informer::object::ptr& o) { record("update " + std::string{o->name()}); },
            .on_delete =
                [this](const informer::deleted_object& d) {
                  std::lock_guard lock(mutex_);
                  deletes_.push_back(d);
                  log_.push_back(std::string{d.final_state_unknown() ? "tombstone " : "delete "} +
                                 std::string{d.obj() ? d.obj()->name() : "?"});
                  changed_.notify_all();
                }};
  }

  // Waits until `entry` was logged; fails the test on timeout.
  void wait_for(const std::string& entry) {
    std::unique_lock lock(mutex_);
    const bool ok =
        changed_.wait_for(lock, patience, [&] { return std::find(log_.begin(), log_.end(), entry) != log_.end(); });
    BOOST_REQUIRE_MESSAGE(ok, "timed out waiting for '" << entry << "'; log: " << joined_locked());
  }

  bool saw(const std::string& entry) {
    std::lock_guard lock(mutex_);
    return std::find(log_.begin(), log_.end(), entry) != log_.end();
  }

  std::vector<informer::deleted_object> deletes() {
    std::lock_guard lock(mutex_);
    return deletes_;
  }

  std::string joined() {
    std::lock_guard lock(mutex_);
    return joined_locked();
  }

private:
  void record(std::string entry) {
    std::lock_guard lock(mutex_);
    log_.push_back(std::move(entry));
    changed_.notify_all();
  }
  std::string joined_locked() const {
    std::string out;
    for (const auto& l : log_) {
      out += "[" + l + "] ";
    }
    return out;
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> log_;
  std::vector<informer::deleted_object> deletes_;
};

informer::shared_informer_options quick(std::string label_selector = {}) {
  informer::shared_informer_options o;
  o.name = "etcd-test";
  o.label_selector = std::move(label_selector);
  o.reflector.backoff = {.initial = 50ms, .max = 500ms};
  return o;
}

std::tuple<informer::error, informer::object_list> list(etcd::source& src, informer::list_options options) {
  return src.async_list(std::move(options), asio::use_future).get();
}

std::tuple<informer::error, std::shared_ptr<informer::watch_stream>> watch(etcd::source& src,
                                                                           informer::watch_options options) {
  return src.async_watch(std::move(options), asio::use_future).get();
}

std::tuple<informer::error, informer::watch_event> next(informer::watch_stream& stream) {
  auto f = stream.async_next(asio::use_future);
  BOOST_REQUIRE_MESSAGE((f.wait_for(patience) == std::future_status::ready), "no watch event in time");
  return f.get();
}

// Lists and watches through `inner`, except while closed: then calls wait (as if the connection
// were down) until opened again. `break_watch` cancels the open watch.
class gated_source final : public informer::lister_watcher {
public:
  explicit gated_source(std::shared_ptr<etcd::source> inner) : inner_(std::move(inner)) {}

  asio::any_io_executor get_executor() const override { return inner_->get_executor(); }

  void close() { open_ = false; }
  void open() { open_ = true; }
  void break_watch() {
    std::lock_guard lock(mutex_);
    if (auto s = last_.lock()) {
      s->cancel();
    }
  }
  std::size_t calls() const { return calls_; }
  bool watching() {
    std::lock_guard lock(mutex_);
    return !last_.expired();
  }

protected:
  void list_impl(informer::list_options options, asio::any_completion_handler<list_signature> handler) override {
    asio::co_spawn(
        get_executor(),
        [this, options = std::move(options), handler = std::move(handler)]() mutable -> asio::awaitable<void> {
          co_await gate();
          inner_->async_list(std::move(options), std::move(handler));
        },
        asio::detached);
  }

  void watch_impl(informer::watch_options options, asio::any_completion_handler<watch_signature> handler) override {
    asio::co_spawn(
        get_executor(),
        [this, options = std::move(options), handler = std::move(handler)]() mutable -> asio::awaitable<void> {
          co_await gate();
          auto executor = asio::get_associated_executor(handler, get_executor());
          auto slot = asio::get_associated_cancellation_slot(handler);
          inner_->async_watch(
              std::move(options),
              asio::bind_cancellation_slot(
                  slot, asio::bind_executor(executor,
                                            [this, handler = std::move(handler)](
                                                informer::error e, std::shared_ptr<informer::watch_stream> s) mutable {
                                              {
                                                std::lock_guard lock(mutex_);
                                                last_ = s;
                                              }
                                              std::move(handler)(std::move(e), std::move(s));
                                            })));
        },
        asio::detached);
  }

private:
  asio::awaitable<void> gate() {
    ++calls_;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!open_) {
      timer.expires_after(10ms);
      co_await timer.async_wait(asio::use_awaitable);
    }
  }

  const std::shared_ptr<etcd::source> inner_;
  std::atomic<bool> open_{true};
  std::atomic<std::size_t> calls_{0};
  std::mutex mutex_;
  std::weak_ptr<informer::watch_stream> last_;  // guarded by mutex_
};

}  // namespace

BOOST_AUTO_TEST_CASE(async_range_completes_on_the_handlers_executor) {
  harness h;
  for (const char* k : {"/r/a", "/r/b", "/r/c"}) {
    h.put(k, "v");
  }
  auto strand = asio::make_strand(h.io);
  std::promise<std::pair<informer::error, etcd::range_result>> done;
  std::atomic<bool> on_strand{false};
  h.client->async_range("/r/", etcd::prefix_end("/r/"), {.limit = 2},
                        asio::bind_executor(strand, [&](informer::error e, etcd::range_result r) {
                          on_strand = strand.running_in_this_thread();
                          done.set_value({std::move(e), std::move(r)});
                        }));
  auto [e, r] = done.get_future().get();
  BOOST_TEST(!e, e.what());
  BOOST_TEST(on_strand.load());
  BOOST_TEST(r.kvs.size() == 2u);
  BOOST_TEST(r.more);
  BOOST_TEST(r.count == 3);
  BOOST_TEST(r.kvs[0].key == "/r/a");

  // A compacted revision is expired, a future one too large, as in the synchronous call.
  const auto old = h.put("/r/a", "w");
  h.put("/r/a", "x");
  must(h.client->compact(h.put("/r/a", "y")), "compact");
  auto [expired, _] = h.client->async_range("/r/a", "", {.revision = old}, asio::use_future).get();
  BOOST_TEST(is(expired, informer::errc::expired), expired.what());
  auto [future_rev, __] = h.client->async_range("/r/a", "", {.revision = old + 1000}, asio::use_future).get();
  BOOST_TEST(is(future_rev, informer::errc::resource_version_too_large), future_rev.what());

  // Cancellation reaches a call in flight: etcd is frozen (SIGSTOP) so the call cannot finish.
  h.freeze_etcd();
  // (A slot is not thread-safe: the call completes on the strand, where the signal is emitted.)
  asio::cancellation_signal cancel;
  auto pending =
      h.client->async_range("/r/", etcd::prefix_end("/r/"), {},
                            asio::bind_cancellation_slot(cancel.slot(), asio::bind_executor(strand, asio::use_future)));
  std::this_thread::sleep_for(100ms);
  BOOST_TEST((pending.wait_for(0s) == std::future_status::timeout));
  asio::post(strand, [&] { cancel.emit(asio::cancellation_type::terminal); });
  const auto canceled = pending.wait_for(5s);
  h.signal_etcd(SIGCONT);
  BOOST_REQUIRE((canceled == std::future_status::ready));
  auto [c, ___] = pending.get();
  BOOST_TEST((c.code() == etcd::make_error_code(etcd::errc::canceled)), c.what());
}

BOOST_AUTO_TEST_CASE(list_pages_one_snapshot_and_reads_old_revisions) {
  harness h;
  for (const char* name : {"a", "b", "c", "d", "e"}) {
    h.put(std::string{"/s/"} + name, config("x", 1));
  }
  auto src = h.generic({.prefix = "/s/"});
  auto [e1, p1] = list(*src, {.limit = 2});
  BOOST_REQUIRE_MESSAGE(!e1, e1.what());
  BOOST_TEST(names(p1.items) == (std::vector<std::string>{"a", "b"}), boost::test_tools::per_element());
  BOOST_TEST(!p1.continue_token.empty());
  const std::string snapshot = p1.resource_version;

  // Writes between pages do not show: every page reads the first page's revision.
  h.put("/s/0", config("x", 1));
  h.put("/s/c", config("x", 2));
  h.del("/s/d");
  auto [e2, p2] = list(*src, {.limit = 2, .continue_token = p1.continue_token});
  BOOST_REQUIRE_MESSAGE(!e2, e2.what());
  BOOST_TEST(names(p2.items) == (std::vector<std::string>{"c", "d"}), boost::test_tools::per_element());
  BOOST_TEST(port_of(*p2.items[0]) == 1);
  BOOST_TEST(p2.resource_version == snapshot);
  auto [e3, p3] = list(*src, {.limit = 2, .continue_token = p2.continue_token});
  BOOST_REQUIRE_MESSAGE(!e3, e3.what());
  BOOST_TEST(names(p3.items) == (std::vector<std::string>{"e"}), boost::test_tools::per_element());
  BOOST_TEST(p3.continue_token.empty());
  BOOST_TEST(p3.resource_version == snapshot);
  // Each object's resourceVersion is its key's mod_revision.
  BOOST_TEST(p1.items[0]->resource_version() == std::to_string(must(h.client->get("/s/a"))->mod_revision));

  // "" and "0": the newest state; a number: exactly that revision.
  auto [e4, newest] = list(*src, {.resource_version = "0"});
  BOOST_REQUIRE(!e4);
  BOOST_TEST(names(newest.items) == (std::vector<std::string>{"0", "a", "b", "c", "e"}),
             boost::test_tools::per_element());
  BOOST_TEST(std::stoll(newest.resource_version) > std::stoll(snapshot));
  auto [e5, old] = list(*src, {.resource_version = snapshot});
  BOOST_REQUIRE(!e5);
  BOOST_TEST(names(old.items) == (std::vector<std::string>{"a", "b", "c", "d", "e"}), boost::test_tools::per_element());
  BOOST_TEST(old.resource_version == snapshot);
  auto [e6, not_older] =
      list(*src, {.resource_version = snapshot, .match = informer::resource_version_match::not_older_than});
  BOOST_REQUIRE(!e6);
  BOOST_TEST(not_older.resource_version == newest.resource_version);
  const std::string future = std::to_string(std::stoll(newest.resource_version) + 100);
  auto [e7, _7] = list(*src, {.resource_version = future});
  BOOST_TEST(is(e7, informer::errc::resource_version_too_large), e7.what());
  auto [e8, _8] = list(*src, {.resource_version = future, .match = informer::resource_version_match::not_older_than});
  BOOST_TEST(is(e8, informer::errc::resource_version_too_large), e8.what());

  // Malformed input is a bad request.
  auto [e9, _9] = list(*src, {.label_selector = "a in (", .resource_version = {}});
  BOOST_TEST(is(e9, informer::errc::bad_request), e9.what());
  auto [e10, _10] = list(*src, {.continue_token = "12|/elsewhere/x"});
  BOOST_TEST(is(e10, informer::errc::bad_request), e10.what());
  auto [e11, _11] = list(*src, {.resource_version = "abc"});
  BOOST_TEST(is(e11, informer::errc::bad_request), e11.what());

  // Once compacted, the old revision and the old continue token are expired.
  must(h.client->compact(std::stoll(newest.resource_version)), "compact");
  auto [e12, _12] = list(*src, {.resource_version = snapshot});
  BOOST_TEST(is(e12, informer::errc::expired), e12.what());
  auto [e13, _13] = list(*src, {.limit = 2, .continue_token = p1.continue_token});
  BOOST_TEST(is(e13, informer::errc::expired), e13.what());
}

BOOST_AUTO_TEST_CASE(watch_maps_etcd_events) {
  harness h;
  h.put("/w/a", config("x", 1));
  auto src = h.generic({.prefix = "/w/"});
  auto [le, page] = list(*src, {});
  BOOST_REQUIRE(!le);
  auto [we, stream] = watch(*src, {.resource_version = page.resource_version});
  BOOST_REQUIRE_MESSAGE(!we, we.what());

  const auto created = h.put("/w/b", config("x", 2));
  const auto modified = h.put("/w/a", config("y", 3));
  const auto deleted = h.del("/w/b");
  h.put("/elsewhere", "{}");  // outside the prefix: not seen

  auto [e1, added] = next(*stream);
  BOOST_REQUIRE_MESSAGE(!e1, e1.what());
  BOOST_TEST(informer::to_string(added.type) == "ADDED");
  BOOST_TEST(added.obj->name() == "b");
  BOOST_TEST(added.resource_version == std::to_string(created));
  BOOST_TEST(added.obj->resource_version() == std::to_string(created));
  auto [e2, mod] = next(*stream);
  BOOST_REQUIRE(!e2);
  BOOST_TEST(informer::to_string(mod.type) == "MODIFIED");
  BOOST_TEST(mod.obj->labels().get("team").value_or("") == "y");
  BOOST_TEST(mod.resource_version == std::to_string(modified));
  auto [e3, del] = next(*stream);
  BOOST_REQUIRE(!e3);
  BOOST_TEST(informer::to_string(del.type) == "DELETED");
  // The deleted object is its last state, at the revision of the delete.
  BOOST_TEST(del.obj->name() == "b");
  BOOST_TEST(port_of(*del.obj) == 2);
  BOOST_TEST(del.obj->resource_version() == std::to_string(deleted));
  BOOST_TEST(del.resource_version == std::to_string(deleted));

  // A progress notification is a bookmark.
  h.client->request_progress();
  auto [e4, bookmark] = next(*stream);
  BOOST_REQUIRE_MESSAGE(!e4, e4.what());
  BOOST_TEST(informer::to_string(bookmark.type) == "BOOKMARK");
  BOOST_TEST(std::stoll(bookmark.resource_version) >= deleted);
  BOOST_TEST(!bookmark.obj);

  // cancel() ends a pending async_next with operation_aborted, and every later one.
  auto pending = stream->async_next(asio::use_future);
  stream->cancel();
  BOOST_REQUIRE((pending.wait_for(5s) == std::future_status::ready));
  BOOST_TEST((std::get<0>(pending.get()).code() == asio::error::operation_aborted));
  BOOST_TEST((std::get<0>(next(*stream)).code() == asio::error::operation_aborted));

  // A timeout ends the stream normally.
  auto [te, timed] = watch(*src, {.resource_version = std::to_string(deleted), .timeout = 1s});
  BOOST_REQUIRE(!te);
  const auto started = std::chrono::steady_clock::now();
  auto [end, _] = next(*timed);
  BOOST_TEST(is(end, informer::errc::end_of_stream), end.what());
  BOOST_TEST((std::chrono::steady_clock::now() - started >= 900ms));

  // From a compacted revision: expired at open, or the stream ends expired (etcd registers the
  // watch, then reports the compaction); either asks the reflector to relist.
  must(h.client->compact(h.put("/w/c", "{}")), "compact");
  auto [ce, old] = watch(*src, {.resource_version = page.resource_version});
  if (ce) {
    BOOST_TEST(is(ce, informer::errc::expired), ce.what());
  } else {
    const auto e5 = std::get<0>(next(*old));
    BOOST_TEST(is(e5, informer::errc::expired), e5.what());
    BOOST_TEST((e5 == informer::condition::relist_required));
  }
}

BOOST_AUTO_TEST_CASE(informer_follows_creates_updates_and_deletes) {
  harness h;
  h.put("/cfg/a", config("payments", 8080));
  h.put("/cfg/b", config("search", 9090));
  auto inf = informer::shared_informer::create(h.generic({.prefix = "/cfg/"}), quick());
  recorder rec;
  inf->add_event_handler(rec.handlers());
  inf->run();
  BOOST_REQUIRE(informer::wait_for_cache_sync({inf}, patience));
  rec.wait_for("add a");
  rec.wait_for("add b");
  BOOST_TEST(inf->lister().list(must(informer::label_selector::parse("team=payments"))).size() == 1u);

  h.put("/cfg/c", config("payments", 7070));
  rec.wait_for("add c");
  h.put("/cfg/a", config("payments", 8081));
  rec.wait_for("update a");
  const auto deleted = h.del("/cfg/b");
  rec.wait_for("delete b");

  auto store = inf->get_store();
  BOOST_TEST(store->size() == 2u);
  BOOST_TEST(port_of(*store->get_by_key("a")) == 8081);
  BOOST_TEST(store->get_by_key("a")->resource_version() == std::to_string(must(h.client->get("/cfg/a"))->mod_revision));
  BOOST_TEST(!store->get_by_key("b"));
  // The delete carries the object as it was, at the delete's revision.
  const auto d = rec.deletes().at(0);
  BOOST_REQUIRE(!d.final_state_unknown());
  BOOST_TEST(port_of(*d.obj()) == 9090);
  BOOST_TEST(d.obj()->labels().get("team").value_or("") == "search");
  BOOST_TEST(d.obj()->resource_version() == std::to_string(deleted));
  BOOST_TEST(inf->lister().list(must(informer::label_selector::parse("team=payments"))).size() == 2u);
  inf->stop();
}

BOOST_AUTO_TEST_CASE(user_decoder_label_extractor_and_namespace_layout) {
  harness h;
  // Values as "key=value" lines; labels from the `team` line.
  auto decode = [](std::string_view, std::string_view value) -> informer::detailed_result<json::value> {
    json::object spec;
    while (!value.empty()) {
      const auto nl = value.find('\n');
      const auto line = value.substr(0, nl);
      const auto eq = line.find('=');
      if (eq == std::string_view::npos) {
        return informer::error{informer::errc::invalid_field, "line without '=': " + std::string{line}};
      }
      spec[line.substr(0, eq)] = line.substr(eq + 1);
      value = nl == std::string_view::npos ? std::string_view{} : value.substr(nl + 1);
    }
    return json::value{{"spec", std::move(spec)}};
  };
  auto labels = [](std::string_view, const json::value& v) {
    informer::label_set out;
    if (const auto* team = v.at("spec").as_object().if_contains("team")) {
      out.set("team", team->as_string());
    }
    return out;
  };
  h.put("/kv/prod/api", "team=core\nport=80");
  h.put("/kv/prod/web", "team=edge\nport=443");
  h.put("/kv/dev/api", "team=core\nport=8080");
  h.put("/kv/global", "team=core");            // no '/': a cluster-scoped name
  h.put("/kv/prod/broken", "no equals sign");  // the decoder's error: reported, skipped
  std::mutex mutex;
  std::vector<etcd::decode_failure> reported;  // guarded by mutex (the hook runs on the io threads)
  auto src = h.generic({.prefix = "/kv/",
                        .layout = etcd::key_layout::namespace_name,
                        .decode = decode,
                        .labels = labels,
                        .on_decode_error = [&](const etcd::decode_failure& f) {
                          std::lock_guard lock(mutex);
                          reported.push_back(f);
                        }});
  auto inf = informer::shared_informer::create(src, quick());
  inf->run();
  BOOST_REQUIRE(informer::wait_for_cache_sync({inf}, patience));
  const auto core = must(informer::label_selector::parse("team=core"));
  BOOST_TEST(inf->lister().list(core).size() == 3u);
  BOOST_TEST(inf->lister().list("prod", core).size() == 1u);
  const auto api = inf->lister().get("dev", "api");
  BOOST_REQUIRE(api);
  BOOST_TEST(api->field("spec.port").value().as_string() == "8080");
  BOOST_TEST(inf->lister().get("global"));
  {
    std::lock_guard lock(mutex);
    BOOST_TEST_REQUIRE(reported.size() == 1u);
    BOOST_TEST(reported[0].key == "/kv/prod/broken");
    BOOST_TEST(reported[0].error.what().find("line without") != std::string::npos);
  }
  BOOST_TEST(src->decode_failures() == 1u);

  h.put("/kv/dev/api", "team=edge\nport=8081");
  BOOST_REQUIRE(eventually(
      [&] { return inf->lister().list("dev", must(informer::label_selector::parse("team=edge"))).size() == 1; }));
  inf->stop();
}

BOOST_AUTO_TEST_CASE(label_selector_applies_client_side_with_transitions) {
  harness h;
  h.put("/sel/a", config("payments", 1));
  h.put("/sel/b", config("search", 2));
  auto inf = informer::shared_informer::create(h.generic({.prefix = "/sel/"}), quick("team=payments"));
  recorder rec;
  inf->add_event_handler(rec.handlers());
  inf->run();
  BOOST_REQUIRE(informer::wait_for_cache_sync({inf}, patience));
  rec.wait_for("add a");
  BOOST_TEST(sorted_keys(*inf->get_store()) == (std::vector<std::string>{"a"}), boost::test_tools::per_element());

  h.put("/sel/b", config("payments", 3));  // starts matching: ADDED
  rec.wait_for("add b");
  h.put("/sel/a", config("search", 4));  // stops matching: DELETED
  rec.wait_for("delete a");
  h.put("/sel/c", config("search", 5));    // never matches: nothing
  h.put("/sel/b", config("payments", 6));  // still matching: MODIFIED
  rec.wait_for("update b");
  BOOST_TEST(!rec.saw("add c"));
  BOOST_TEST(sorted_keys(*inf->get_store()) == (std::vector<std::string>{"b"}), boost::test_tools::per_element());
  BOOST_TEST(port_of(*inf->get_store()->get_by_key("b")) == 6);
  // The DELETED of an object that left the selector carries its last matching state.
  const auto d = rec.deletes().at(0);
  BOOST_TEST(d.obj()->labels().get("team").value_or("") == "payments");
  BOOST_TEST(port_of(*d.obj()) == 1);
  inf->stop();
}

BOOST_AUTO_TEST_CASE(undecodable_values_are_reported_and_skipped) {
  harness h;
  h.put("/bad/a", config("x", 1));
  h.put("/bad/b", "{not json");
  h.put("/bad/c", "[1,2]");
  h.put("/bad/d", config("x", 4));
  std::mutex mutex;
  std::set<std::string> reported;
  auto src = h.generic({.prefix = "/bad/", .on_decode_error = [&](const etcd::decode_failure& f) {
                          std::lock_guard lock(mutex);
                          reported.insert(f.key + " " + f.error.code().message());
                        }});
  auto inf = informer::shared_informer::create(src, quick());
  recorder rec;
  inf->add_event_handler(rec.handlers());
  inf->run();
  BOOST_REQUIRE(informer::wait_for_cache_sync({inf}, patience));
  BOOST_TEST(sorted_keys(*inf->get_store()) == (std::vector<std::string>{"a", "d"}), boost::test_tools::per_element());
  {
    std::lock_guard lock(mutex);
    BOOST_TEST(reported.size() == 2u);
    BOOST_TEST(reported.begin()->starts_with("/bad/b"));
  }
  BOOST_TEST(src->decode_failures() == 2u);

  // A key turning undecodable leaves the cache (as a relist would show); fixing it brings it back;
  // the rest of the watch goes on.
  h.put("/bad/a", "\x01\x02garbage");
  rec.wait_for("delete a");
  h.put("/bad/b", config("x", 2));
  rec.wait_for("add b");
  h.put("/bad/a", config("x", 5));
  BOOST_REQUIRE(eventually([&] {
    auto a = inf->get_store()->get_by_key("a");
    return a && port_of(*a) == 5;
  }));
  BOOST_TEST(sorted_keys(*inf->get_store()) == (std::vector<std::string>{"a", "b", "d"}),
             boost::test_tools::per_element());
  BOOST_TEST(src->decode_failures() == 3u);
  inf->stop();
}

BOOST_AUTO_TEST_CASE(compaction_while_disconnected_relists_with_tombstones) {
  harness h;
  for (const char* name : {"a", "b", "c"}) {
    h.put(std::string{"/cmp/"} + name, config("x", 1));
  }
  auto gate = std::make_shared<gated_source>(h.generic({.prefix = "/cmp/"}));
  auto inf = informer::shared_informer::create(gate, quick());
  recorder rec;
  inf->add_event_handler(rec.handlers());
  inf->run();
  BOOST_REQUIRE(informer::wait_for_cache_sync({inf}, patience));
  BOOST_REQUIRE(eventually([&] { return gate->watching(); }));

  // "Disconnect": the watch breaks and nothing gets through; meanwhile b is deleted, d created, a
  // changed, and the history compacted past all of it.
  gate->close();
  gate->break_watch();
  const auto calls = gate->calls();
  BOOST_REQUIRE(eventually([&] { return gate->calls() > calls; }));  // the reflector is trying again
  h.del("/cmp/b");
  h.put("/cmp/d", config("x", 1));
  must(h.client->compact(h.put("/cmp/a", config("x", 2))), "compact");
  gate->open();

  // The reflector's watch or list from its old revision is expired: it relists, and the informer
  // turns what the relist lacks into a tombstone.
  rec.wait_for("tombstone b");
  rec.wait_for("add d");
  BOOST_REQUIRE(eventually([&] { return port_of(*inf->get_store()->get_by_key("a")) == 2; }));
  BOOST_TEST(sorted_keys(*inf->get_store()) == (std::vector<std::string>{"a", "c", "d"}),
             boost::test_tools::per_element());
  // It watches again: a new change arrives.
  h.put("/cmp/e", config("x", 1));
  rec.wait_for("add e");
  inf->stop();
}

BOOST_AUTO_TEST_CASE(etcd_restart_under_a_running_informer) {
  harness h;
  h.put("/rs/a", config("x", 1));
  std::atomic<int> errors{0};
  std::atomic<int> lists{0};
  std::atomic<int> watches{0};
  auto options = quick();
  options.watch_error_handler = [&](const informer::error&) { ++errors; };
  options.reflector.metrics.on_list = [&](std::size_t, std::chrono::nanoseconds) { ++lists; };
  options.reflector.metrics.on_watch_open = [&] { ++watches; };
  auto inf = informer::shared_informer::create(h.generic({.prefix = "/rs/"}), options);
  recorder rec;
  inf->add_event_handler(rec.handlers());
  inf->run();
  BOOST_REQUIRE(informer::wait_for_cache_sync({inf}, patience));
  rec.wait_for("add a");
  // An event on the open watch (a watch cut before any event within a second counts as a failure).
  h.put("/rs/w", config("x", 0));
  rec.wait_for("add w");
  BOOST_REQUIRE_EQUAL(lists.load(), 1);
  const int watches_before = watches.load();

  h.server.restart();  // kill + start with the same data: the watch stream breaks
  h.put("/rs/b", config("x", 2));
  h.put("/rs/a", config("x", 3));
  h.del("/rs/a");
  rec.wait_for("add b");
  BOOST_REQUIRE(eventually([&] { return sorted_keys(*inf->get_store()) == std::vector<std::string>{"b", "w"}; }));
  // The break was a cut: the reflector watched again from its last revision, without a relist.
  BOOST_TEST(watches.load() > watches_before);
  BOOST_TEST(lists.load() == 1, "relisted; watch errors reported: " << errors.load());
  BOOST_TEST(!rec.saw("tombstone a"));  // the delete came as a watch event, not from a relist
  // And it keeps watching.
  h.put("/rs/c", config("x", 4));
  rec.wait_for("add c");
  inf->stop();
}

BOOST_AUTO_TEST_CASE(canceling_an_opening_watch_aborts_it) {
  harness h;
  auto src = h.generic({.prefix = "/co/"});
  auto strand = asio::make_strand(h.io);
  // etcd is frozen (SIGSTOP), so the watch cannot be registered while the slot fires.
  h.freeze_etcd();
  asio::cancellation_signal cancel;
  auto pending =
      src->async_watch({}, asio::bind_cancellation_slot(cancel.slot(), asio::bind_executor(strand, asio::use_future)));
  std::this_thread::sleep_for(100ms);
  const bool still_opening = pending.wait_for(0s) == std::future_status::timeout;
  asio::post(strand, [&] { cancel.emit(asio::cancellation_type::terminal); });
  const auto aborted = pending.wait_for(5s);
  h.signal_etcd(SIGCONT);
  BOOST_TEST(still_opening);
  BOOST_REQUIRE((aborted == std::future_status::ready));
  auto [e, stream] = pending.get();
  BOOST_TEST((e.code() == asio::error::operation_aborted), e.what());
  BOOST_TEST(!stream);

  // The source still works: a new watch opens and sees a change.
  auto [we, live] = watch(*src, {});
  BOOST_REQUIRE_MESSAGE(!we, we.what());
  h.put("/co/a", config("x", 1));
  auto [ne, added] = next(*live);
  BOOST_REQUIRE_MESSAGE(!ne, ne.what());
  BOOST_TEST(added.obj->name() == "a");

  // No revision follows the largest one.
  auto [big, none] = watch(*src, {.resource_version = std::to_string(std::numeric_limits<std::int64_t>::max())});
  BOOST_TEST(is(big, informer::errc::bad_request), big.what());
}

// The source's executor stops and is destroyed while a watch still opens, as when an informer is
// stopped after its executor stopped (the reflector's cancellation of the open, posted there, never
// runs). The pending open's handler goes with the executor's context, as Asio's own pending
// handlers do, uninvoked; etcd's answer and the client's end, which come later on the client's
// thread, post nothing into the destroyed context (AddressSanitizer reports it if they do).
BOOST_AUTO_TEST_CASE(a_watch_opening_when_its_executor_is_destroyed_posts_nothing_there) {
  harness h;
  h.put("/gone/a", config("x", 1));                // connected before etcd freezes
  auto io = std::make_unique<asio::io_context>();  // never run, as an executor that has stopped
  auto src = etcd::make_generic_source(h.client, io->get_executor(), {.prefix = "/gone/"});
  // etcd is frozen (SIGSTOP), so the watch is still opening when the executor goes.
  h.freeze_etcd();
  auto owned = std::make_shared<int>(0);
  const std::weak_ptr<int> handler_alive = owned;
  std::atomic<bool> completed{false};
  src->async_watch({}, [owned = std::move(owned), &completed](
                           informer::error, std::shared_ptr<informer::watch_stream>) { completed = true; });
  io.reset();
  src.reset();
  h.signal_etcd(SIGCONT);
  BOOST_TEST(handler_alive.expired());
  // The watch's last update (etcd's answer, or the client's end) runs on the client's thread.
  h.client.reset();
  BOOST_TEST(!completed.load());
}

BOOST_AUTO_TEST_CASE(a_reader_that_falls_behind_ends_its_stream) {
  harness h;
  auto src = h.generic({.prefix = "/fb/", .watch_buffer_bytes = 16 * 1024});
  auto [le, page] = list(*src, {});
  BOOST_REQUIRE(!le);
  auto [we, stream] = watch(*src, {.resource_version = page.resource_version});
  BOOST_REQUIRE_MESSAGE(!we, we.what());

  // Many writes while nobody reads: far more than 16 KiB of updates.
  constexpr int writes = 200;
  const std::string padding(1024, 'p');
  std::int64_t last = 0;
  for (int i = 0; i < writes; ++i) {
    last = h.put("/fb/k" + std::to_string(i), R"({"metadata":{"annotations":{"pad":")" + padding +
                                                  R"("}},"spec":{"port":)" + std::to_string(i) + "}}");
  }
  // Whatever was decoded comes first, in order; then the end, as a cut.
  std::string resume = page.resource_version;
  informer::error end;
  for (int i = 0; i <= writes; ++i) {
    auto [e, ev] = next(*stream);
    if (e) {
      end = e;
      break;
    }
    BOOST_REQUIRE(std::stoll(ev.resource_version) > std::stoll(resume));
    resume = ev.resource_version;
  }
  BOOST_TEST(is(end, informer::errc::end_of_stream), end.what());
  BOOST_TEST(end.what().find("fell behind") != std::string::npos, end.what());
  BOOST_TEST(std::stoll(resume) < last);

  // Nothing is lost: a watch from the last revision read gets the rest from etcd's history.
  auto roomy = h.generic({.prefix = "/fb/"});
  auto [re, rest] = watch(*roomy, {.resource_version = resume});
  BOOST_REQUIRE_MESSAGE(!re, re.what());
  std::int64_t expected = std::stoll(resume) + 1;
  while (expected <= last) {
    auto [e, ev] = next(*rest);
    BOOST_REQUIRE_MESSAGE(!e, e.what());
    BOOST_REQUIRE_EQUAL(std::stoll(ev.resource_version), expected);  // each put is one revision
    ++expected;
  }
}

BOOST_AUTO_TEST_CASE(an_informer_over_a_tiny_buffer_converges_under_a_write_burst) {
  harness h;
  std::atomic<int> watches{0};
  auto options = quick();
  options.reflector.metrics.on_watch_open = [&] { ++watches; };
  // One byte: every update that arrives while another waits ends the stream.
  auto inf = informer::shared_informer::create(h.generic({.prefix = "/tb/", .watch_buffer_bytes = 1}), options);
  inf->run();
  BOOST_REQUIRE(informer::wait_for_cache_sync({inf}, patience));
  BOOST_REQUIRE(eventually([&] { return watches.load() >= 1; }));

  // Four writers, each creating, updating and deleting its own keys as fast as etcd takes them.
  constexpr int writers = 4;
  constexpr int keys = 50;
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&h, w] {
      auto c = etcd::client::connect({.endpoints = {h.server.endpoint()}, .dial_timeout = 2s, .request_timeout = 5s});
      if (!c) {
        return;
      }
      for (int round = 0; round < 3; ++round) {
        for (int k = 0; k < keys; ++k) {
          const std::string key = "/tb/w" + std::to_string(w) + "-" + std::to_string(k);
          if (round == 2 && k % 5 == 0) {
            (void)c->delete_range(key);
          } else {
            (void)c->put(key, config("x", round * 1000 + k));
          }
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }

  // The expected end state, read from etcd itself.
  std::map<std::string, std::int64_t> expected;
  for (const auto& kv : must(h.client->range("/tb/", etcd::prefix_end("/tb/"))).kvs) {
    expected[kv.key.substr(4)] = json::parse(kv.value).at("spec").at("port").to_number<std::int64_t>();
  }
  BOOST_REQUIRE_EQUAL(expected.size(), static_cast<std::size_t>(writers * keys - writers * keys / 5));
  const bool converged = eventually([&] {
    auto store = inf->get_store();
    if (store->size() != expected.size()) {
      return false;
    }
    for (const auto& [name, port] : expected) {
      auto obj = store->get_by_key(name);
      if (!obj || port_of(*obj) != port) {
        return false;
      }
    }
    return true;
  });
  BOOST_TEST(converged, "store size " << inf->get_store()->size() << ", expected " << expected.size());
  BOOST_TEST_MESSAGE("watches opened: " << watches.load());
  inf->stop();
}
