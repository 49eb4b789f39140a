#include "informer/etcd/client.hpp"

#include "control_plane.hpp"
#include "loopback_port.hpp"

#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace etcd = informer::etcd;
using informer::testing::etcd_server;

namespace {

// Generous bound for "should happen soon": only reached when something is broken.
constexpr auto patience = 20s;

etcd::client connect(const etcd_server& server, etcd::client_options options = {}) {
  options.endpoints = {server.endpoint()};
  if (server.tls() && options.tls.ca_file.empty()) {
    options.tls = {.ca_file = server.ca_file(), .cert_file = server.cert_file(), .key_file = server.key_file()};
  }
  auto c = etcd::client::connect(std::move(options));
  BOOST_REQUIRE_MESSAGE(c, (c ? "" : c.error().what()));
  return std::move(*c);
}

template <class T>
T must(informer::detailed_result<T> r, const char* what = "call") {
  BOOST_REQUIRE_MESSAGE(r.has_value(), what << " failed: " << (r ? std::string{} : r.error().what()));
  return std::move(*r);
}

void must(informer::detailed_result<void> r, const char* what = "call") {
  BOOST_REQUIRE_MESSAGE(r.has_value(), what << " failed: " << (r ? std::string{} : r.error().what()));
}

// Collects a watch's updates (they arrive on the client's thread) for the test thread to inspect.
class recorder {
public:
  etcd::watch_callback callback() {
    return [this](etcd::watch_update u) {
      std::lock_guard lock(mutex_);
      updates_.push_back(std::move(u));
      changed_.notify_all();
    };
  }

  // Waits until `done(updates)` holds; fails the test on timeout.
  void wait(const std::function<bool(const std::vector<etcd::watch_update>&)>& done, const char* what) {
    std::unique_lock lock(mutex_);
    const bool ok = changed_.wait_for(lock, patience, [&] { return done(updates_); });
    BOOST_REQUIRE_MESSAGE(ok, "timed out waiting for " << what << " (" << updates_.size() << " updates so far)");
  }

  void wait_created() {
    wait(
        [](const auto& us) {
          return std::any_of(us.begin(), us.end(), [](auto& u) { return u.kind == etcd::watch_update_kind::created; });
        },
        "created");
  }

  const etcd::watch_update& wait_final() {
    wait([](const auto& us) { return !us.empty() && us.back().is_final(); }, "the final update");
    std::lock_guard lock(mutex_);
    return updates_.back();
  }

  std::vector<etcd::watch_update> updates() {
    std::lock_guard lock(mutex_);
    return updates_;
  }

  std::vector<etcd::event> events() {
    std::lock_guard lock(mutex_);
    std::vector<etcd::event> out;
    for (const auto& u : updates_) {
      out.insert(out.end(), u.events.begin(), u.events.end());
    }
    return out;
  }

  // Waits until an event with revision >= `revision` arrived.
  void wait_revision(std::int64_t revision) {
    wait(
        [revision](const auto& us) {
          for (const auto& u : us) {
            for (const auto& e : u.events) {
              if (e.kv.mod_revision >= revision) {
                return true;
              }
            }
          }
          return false;
        },
        "events up to a revision");
  }

private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<etcd::watch_update> updates_;
};

std::map<std::string, etcd::key_value> by_key(const std::vector<etcd::key_value>& kvs) {
  std::map<std::string, etcd::key_value> out;
  for (const auto& kv : kvs) {
    out.emplace(kv.key, kv);
  }
  return out;
}

// Runs a shell command; returns its exit code and output.
std::pair<int, std::string> run(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  BOOST_REQUIRE(pipe != nullptr);
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) {
    output.append(buffer, n);
  }
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

void etcdctl(const etcd_server& server, const std::string& args) {
  auto [code, output] = run("ETCDCTL_API=3 etcdctl --endpoints=" + server.endpoint() + " " + args);
  BOOST_REQUIRE_MESSAGE(code == 0, "etcdctl " << args << " failed: " << output);
}

std::string key(const std::string& prefix, int i) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%05d", i);
  return prefix + buffer;
}

}  // namespace

BOOST_AUTO_TEST_CASE(rejects_bad_options) {
  auto none = etcd::client::connect({.endpoints = {}});
  BOOST_REQUIRE(!none);
  BOOST_TEST(none.error().code() == etcd::make_error_code(etcd::errc::invalid_options));
  auto scheme = etcd::client::connect({.endpoints = {"unix:///tmp/etcd.sock"}});
  BOOST_REQUIRE(!scheme);
  BOOST_TEST(scheme.error().what().find("unix") != std::string::npos);
  auto ca = etcd::client::connect({.endpoints = {"https://127.0.0.1:2379"}, .tls = {.ca_file = "/nonexistent/ca.pem"}});
  BOOST_REQUIRE(!ca);
  BOOST_TEST(ca.error().what().find("/nonexistent/ca.pem") != std::string::npos);
  auto half = etcd::client::connect({.tls = {.cert_file = "/x.pem"}});
  BOOST_REQUIRE(!half);
  BOOST_TEST(etcd::prefix_end("/a/") == "/a0");
  BOOST_TEST(etcd::prefix_end("a\xff") == "b");
  BOOST_TEST(etcd::prefix_end("") == std::string(1, '\0'));
}

BOOST_AUTO_TEST_CASE(put_range_delete) {
  etcd_server server;
  auto c = connect(server);
  const auto r1 = must(c.put("/t/a", "1"));
  const auto r2 = must(c.put("/t/b", "2"));
  const auto r3 = must(c.put("/t/c", "3"));
  BOOST_TEST(r1 < r2);
  BOOST_TEST(r2 < r3);
  must(c.put("/u/other", "x"));

  auto a = must(c.get("/t/a"));
  BOOST_REQUIRE(a.has_value());
  BOOST_TEST(a->value == "1");
  BOOST_TEST(a->mod_revision == r1);
  BOOST_TEST(a->create_revision == r1);
  BOOST_TEST(a->version == 1);
  BOOST_TEST(!must(c.get("/t/missing")).has_value());

  auto all = must(c.range("/t/", etcd::prefix_end("/t/")));
  BOOST_REQUIRE(all.kvs.size() == 3u);
  BOOST_TEST(all.kvs[0].key == "/t/a");
  BOOST_TEST(all.kvs[2].key == "/t/c");
  BOOST_TEST(all.count == 3);
  BOOST_TEST(!all.more);
  BOOST_TEST(all.revision >= r3 + 1);

  auto limited = must(c.range("/t/", etcd::prefix_end("/t/"), {.limit = 2, .keys_only = true}));
  BOOST_TEST(limited.kvs.size() == 2u);
  BOOST_TEST(limited.more);
  BOOST_TEST(limited.count == 3);
  BOOST_TEST(limited.kvs[0].value.empty());
  auto counted = must(c.range("/t/", etcd::prefix_end("/t/"), {.count_only = true}));
  BOOST_TEST(counted.kvs.empty());
  BOOST_TEST(counted.count == 3);

  // Reading the past.
  must(c.put("/t/a", "1b"));
  auto old = must(c.get("/t/a", r1));
  BOOST_REQUIRE(old.has_value());
  BOOST_TEST(old->value == "1");

  auto deleted = must(c.delete_range("/t/a", "/t/c", true));
  BOOST_TEST(deleted.deleted == 2);
  BOOST_REQUIRE(deleted.prev_kvs.size() == 2u);
  BOOST_TEST(deleted.prev_kvs[0].value == "1b");
  BOOST_TEST(!must(c.get("/t/a")).has_value());
  BOOST_TEST(must(c.get("/t/c")).has_value());

  // The empty prefix lists the whole store.
  auto everything = must(c.list_prefix_paged("", 1));
  BOOST_REQUIRE(everything.kvs.size() == 2u);
  BOOST_TEST(everything.kvs[0].key == "/t/c");
  BOOST_TEST(everything.kvs[1].key == "/u/other");

  auto future = c.range("/t/", etcd::prefix_end("/t/"), {.revision = deleted.revision + 1000});
  BOOST_REQUIRE(!future);
  BOOST_TEST(future.error().code() == informer::make_error_code(informer::errc::resource_version_too_large));
}

BOOST_AUTO_TEST_CASE(paged_list_is_one_snapshot_while_writes_continue) {
  etcd_server server;
  auto c = connect(server);
  const std::string prefix = "/snap/";
  for (int i = 0; i < 300; ++i) {
    must(c.put(key(prefix, i), "v0-" + std::to_string(i)));
  }

  // A second client keeps writing under the prefix (creates, updates, deletes) all along.
  auto writer_client = connect(server);
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::thread writer([&] {
    for (int n = 0; !stop.load(); ++n) {
      (void)writer_client.put(key(prefix + "new-", n), "x");
      (void)writer_client.put(key(prefix, (n * 7) % 300), "v" + std::to_string(n));
      (void)writer_client.delete_range(key(prefix, (n * 13 + 5) % 300));
      writes += 3;
    }
  });

  std::vector<etcd::key_value> listed;
  int pages = 0;
  auto revision = c.list_prefix_paged(prefix, 7, [&](std::vector<etcd::key_value>&& page) {
    ++pages;
    listed.insert(listed.end(), page.begin(), page.end());
    // Make sure writes land between pages even on a fast machine.
    const int seen = writes.load();
    while (writes.load() < seen + 3 && !stop.load()) {
      std::this_thread::sleep_for(1ms);
    }
  });
  stop = true;
  writer.join();
  BOOST_REQUIRE_MESSAGE(revision, revision.error().what());
  BOOST_TEST(pages > 30);

  for (const auto& kv : listed) {
    BOOST_TEST(kv.mod_revision <= *revision);
  }
  // Exactly what existed at the snapshot's revision, in one unpaged read of that revision.
  auto at_revision = must(c.range(prefix, etcd::prefix_end(prefix), {.revision = *revision}));
  BOOST_TEST(listed.size() == at_revision.kvs.size());
  BOOST_TEST((by_key(listed) == by_key(at_revision.kvs)));
  BOOST_TEST(std::is_sorted(listed.begin(), listed.end(), [](auto& a, auto& b) { return a.key < b.key; }));
  // ...and the store did move on meanwhile.
  auto now = must(c.range(prefix, etcd::prefix_end(prefix), {.count_only = true}));
  BOOST_TEST(now.revision > *revision + 30);

  // The collecting form agrees with itself.
  auto collected = must(c.list_prefix_paged(prefix, 50));
  BOOST_TEST(collected.count == static_cast<std::int64_t>(collected.kvs.size()));
  BOOST_TEST(!collected.more);
}

BOOST_AUTO_TEST_CASE(txn_optimistic_concurrency) {
  etcd_server server;
  auto c = connect(server);
  const auto created = must(c.put_if_mod_revision("/occ/k", "v1", 0), "create-if-absent");
  auto again = c.put_if_mod_revision("/occ/k", "other", 0);
  BOOST_REQUIRE(!again);
  BOOST_TEST(again.error().code() == informer::make_error_code(informer::errc::conflict));

  const auto updated = must(c.put_if_mod_revision("/occ/k", "v2", created), "fresh update");
  BOOST_TEST(updated > created);
  auto stale = c.put_if_mod_revision("/occ/k", "v3", created);
  BOOST_REQUIRE(!stale);
  BOOST_TEST(stale.error().code() == informer::make_error_code(informer::errc::conflict));
  BOOST_TEST_MESSAGE(stale.error().what());
  BOOST_TEST(stale.error().what().find(std::to_string(updated)) != std::string::npos);
  BOOST_TEST(must(c.get("/occ/k"))->value == "v2");

  // The general form: compare on the value, else read.
  etcd::txn_request t;
  t.compares = {etcd::compare::value("/occ/k", etcd::compare_op::equal, "nope")};
  t.success = {etcd::txn_op::put("/occ/k", "never")};
  t.failure = {etcd::txn_op::get("/occ/k"), etcd::txn_op::put("/occ/flag", "1")};
  auto r = must(c.txn(t));
  BOOST_TEST(!r.succeeded);
  BOOST_REQUIRE(r.results.size() == 2u);
  BOOST_TEST((r.results[0].type == etcd::txn_op::kind::range));
  BOOST_REQUIRE(r.results[0].kvs.size() == 1u);
  BOOST_TEST(r.results[0].kvs[0].value == "v2");
  BOOST_TEST((r.results[1].type == etcd::txn_op::kind::put));
  BOOST_TEST(must(c.get("/occ/flag")).has_value());

  etcd::txn_request v;
  v.compares = {etcd::compare::version("/occ/k", etcd::compare_op::equal, 2),
                etcd::compare::create_revision("/occ/k", etcd::compare_op::equal, created)};
  auto del = etcd::txn_op::del("/occ/", etcd::prefix_end("/occ/"));
  del.prev_kv = true;
  v.success = {del};
  auto deleted = must(c.txn(v));
  BOOST_TEST(deleted.succeeded);
  BOOST_REQUIRE(deleted.results.size() == 1u);
  BOOST_TEST(deleted.results[0].count == 2);
  BOOST_TEST(deleted.results[0].kvs.size() == 2u);
}

BOOST_AUTO_TEST_CASE(watch_from_list_revision_misses_nothing_and_duplicates_nothing) {
  etcd_server server;
  auto c = connect(server);
  const std::string prefix = "/w/";
  for (int i = 0; i < 50; ++i) {
    must(c.put(key(prefix, i), "init"));
  }

  // Writes start before the list and go on during the list and while the watch starts.
  auto writer_client = connect(server);
  std::atomic<bool> go{false};
  std::thread writer([&] {
    for (int n = 0; n < 400; ++n) {
      if (n == 100) {
        go = true;
      }
      if (n % 5 == 4) {
        (void)writer_client.delete_range(key(prefix, n % 60));
      } else {
        (void)writer_client.put(key(prefix, n % 60), "n" + std::to_string(n));
      }
    }
  });
  while (!go.load()) {
    std::this_thread::sleep_for(1ms);
  }
  auto list = must(c.list_prefix_paged(prefix, 10));
  recorder rec;
  auto handle = c.watch(prefix, {.prefix = true, .start_revision = list.revision + 1, .prev_kv = true}, rec.callback());
  writer.join();
  const auto last = must(c.range(prefix, etcd::prefix_end(prefix), {.count_only = true})).revision;
  if (last > list.revision) {
    rec.wait_revision(last);
  }

  // Every revision after the list exactly once (only this prefix is written, one key per write).
  std::vector<std::int64_t> revisions;
  auto state = by_key(list.kvs);
  for (const auto& e : rec.events()) {
    revisions.push_back(e.kv.mod_revision);
    if (e.type == etcd::event_type::put) {
      state[e.kv.key] = e.kv;
    } else {
      BOOST_TEST(e.prev_kv.has_value());
      state.erase(e.kv.key);
    }
  }
  std::vector<std::int64_t> expected;
  for (auto r = list.revision + 1; r <= last; ++r) {
    expected.push_back(r);
  }
  BOOST_TEST(revisions == expected, boost::test_tools::per_element());
  // List + events = the store now.
  auto now = must(c.range(prefix, etcd::prefix_end(prefix), {.revision = last}));
  BOOST_TEST((state == by_key(now.kvs)));

  auto updates = rec.updates();
  BOOST_REQUIRE(!updates.empty());
  BOOST_TEST((updates.front().kind == etcd::watch_update_kind::created));
  handle.cancel();
  BOOST_TEST((rec.wait_final().kind == etcd::watch_update_kind::canceled));
}

BOOST_AUTO_TEST_CASE(delete_events_carry_prev_kv) {
  etcd_server server;
  auto c = connect(server);
  recorder rec;
  auto handle = c.watch("/d/a", {.prev_kv = true}, rec.callback());
  rec.wait_created();
  must(c.put("/d/a", "1"));
  must(c.put("/d/b", "other key: not watched"));
  must(c.put("/d/a", "2"));
  const auto deleted_at = must(c.delete_range("/d/a")).revision;
  rec.wait_revision(deleted_at);
  auto events = rec.events();
  BOOST_REQUIRE(events.size() == 3u);
  BOOST_TEST((events[0].type == etcd::event_type::put));
  BOOST_TEST(!events[0].prev_kv.has_value());
  BOOST_TEST(events[1].kv.value == "2");
  BOOST_REQUIRE(events[1].prev_kv.has_value());
  BOOST_TEST(events[1].prev_kv->value == "1");
  BOOST_TEST((events[2].type == etcd::event_type::del));
  BOOST_TEST(events[2].kv.key == "/d/a");
  BOOST_TEST(events[2].kv.mod_revision == deleted_at);
  BOOST_REQUIRE(events[2].prev_kv.has_value());
  BOOST_TEST(events[2].prev_kv->value == "2");
  BOOST_TEST(events[2].prev_kv->mod_revision == events[1].kv.mod_revision);
}

BOOST_AUTO_TEST_CASE(watch_from_compacted_revision_is_expired) {
  etcd_server server;
  auto c = connect(server);
  const auto first = must(c.put("/cmp/a", "1"));
  must(c.put("/cmp/a", "2"));
  const auto last = must(c.put("/cmp/a", "3"));
  must(c.compact(last));

  recorder rec;
  auto handle = c.watch("/cmp/", {.prefix = true, .start_revision = first}, rec.callback());
  const auto& final_update = rec.wait_final();
  BOOST_TEST((final_update.kind == etcd::watch_update_kind::failed));
  BOOST_TEST(final_update.failure.code() == informer::make_error_code(informer::errc::expired));
  BOOST_TEST(final_update.compact_revision == last);
  BOOST_TEST_MESSAGE(final_update.failure.what());

  auto old = c.range("/cmp/a", {}, {.revision = first});
  BOOST_REQUIRE(!old);
  BOOST_TEST(old.error().code() == informer::make_error_code(informer::errc::expired));

  // The other watches of the stream are unaffected.
  recorder fresh;
  auto ok = c.watch("/cmp/", {.prefix = true, .start_revision = last}, fresh.callback());
  fresh.wait_revision(last);
}

BOOST_AUTO_TEST_CASE(cancel_ends_with_a_canceled_update) {
  etcd_server server;
  auto c = connect(server);
  recorder a;
  recorder b;
  auto ha = c.watch("/cx/", {.prefix = true}, a.callback());
  auto hb = c.watch("/cx/", {.prefix = true}, b.callback());
  a.wait_created();
  b.wait_created();
  must(c.put("/cx/1", "x"));
  a.wait([](auto& us) { return us.size() >= 2; }, "an event");
  ha.cancel();
  BOOST_TEST((a.wait_final().kind == etcd::watch_update_kind::canceled));
  const auto rev = must(c.put("/cx/2", "y"));
  b.wait_revision(rev);
  BOOST_TEST(a.events().size() == 1u);  // nothing after the cancel
  ha.cancel();                          // idempotent

  // Canceling from inside the callback, and by dropping the handle.
  recorder inner;
  etcd::watch_handle self;
  std::mutex self_mutex;
  auto cb = inner.callback();
  {
    std::lock_guard lock(self_mutex);
    self = c.watch("/cx/", {.prefix = true}, [&, cb](etcd::watch_update u) {
      const bool event = u.kind == etcd::watch_update_kind::events;
      cb(std::move(u));
      if (event) {
        std::lock_guard inner_lock(self_mutex);
        self.cancel();
      }
    });
  }
  inner.wait_created();
  must(c.put("/cx/3", "z"));
  BOOST_TEST((inner.wait_final().kind == etcd::watch_update_kind::canceled));
  {
    recorder dropped;
    { auto temporary = c.watch("/cx/", {.prefix = true}, dropped.callback()); }
    BOOST_TEST((dropped.wait_final().kind == etcd::watch_update_kind::canceled));
  }
}

BOOST_AUTO_TEST_CASE(fragmented_responses_are_reassembled) {
  etcd_server server;
  auto c = connect(server);
  // Two 700 KB values changed in one transaction: with prev_kv the watch response is ~2.8 MB,
  // above etcd's 1.5 MiB request limit, so etcd splits it into fragments.
  const std::string big_a(700 * 1024, 'a');
  const std::string big_b(700 * 1024, 'b');
  must(c.put("/big/1", big_a));
  must(c.put("/big/2", big_a));
  recorder rec;
  auto handle = c.watch("/big/", {.prefix = true, .prev_kv = true}, rec.callback());
  rec.wait_created();
  etcd::txn_request t;
  t.success = {etcd::txn_op::put("/big/1", big_b), etcd::txn_op::put("/big/2", big_b)};
  const auto rev = must(c.txn(t)).revision;
  rec.wait_revision(rev);
  auto updates = rec.updates();
  BOOST_REQUIRE(updates.size() == 2u);  // created, then one reassembled batch
  BOOST_REQUIRE(updates[1].events.size() == 2u);
  for (const auto& e : updates[1].events) {
    BOOST_TEST(e.kv.value == big_b);
    BOOST_REQUIRE(e.prev_kv.has_value());
    BOOST_TEST(e.prev_kv->value == big_a);
    BOOST_TEST(e.kv.mod_revision == rev);
  }
}

BOOST_AUTO_TEST_CASE(progress_request_gives_a_bookmark) {
  etcd_server server;
  auto c = connect(server);
  recorder rec;
  auto handle = c.watch("/p/", {.prefix = true}, rec.callback());
  rec.wait_created();
  const auto rev = must(c.put("/elsewhere", "x"));  // not watched: the watch stays quiet
  c.request_progress();
  rec.wait([](auto& us) { return us.back().kind == etcd::watch_update_kind::progress; }, "a progress update");
  BOOST_TEST(rec.updates().back().revision >= rev);
}

BOOST_AUTO_TEST_CASE(etcd_restart_breaks_the_watch_and_a_new_one_works) {
  etcd_server server;
  auto c = connect(server);
  recorder rec;
  auto handle = c.watch("/r/", {.prefix = true}, rec.callback());
  rec.wait_created();
  const auto before = must(c.put("/r/a", "1"));
  rec.wait_revision(before);

  server.restart();
  const auto& broken = rec.wait_final();
  BOOST_TEST((broken.kind == etcd::watch_update_kind::failed));
  BOOST_TEST(broken.failure.code() == etcd::make_error_code(etcd::errc::unavailable));
  BOOST_TEST_MESSAGE(broken.failure.what());

  // Unary calls reconnect; a new watch from the last revision seen + 1 resumes without a gap.
  const auto after = must(c.put("/r/b", "2"), "put after restart");
  recorder resumed;
  auto again = c.watch("/r/", {.prefix = true, .start_revision = before + 1}, resumed.callback());
  resumed.wait_revision(after);
  auto events = resumed.events();
  BOOST_REQUIRE(events.size() == 1u);
  BOOST_TEST(events[0].kv.key == "/r/b");
}

BOOST_AUTO_TEST_CASE(tls_with_client_certificates) {
  etcd_server server({.tls = true});
  BOOST_REQUIRE(server.endpoint().starts_with("https://"));
  {
    auto c = connect(server);
    const auto rev = must(c.put("/tls/a", "1"));
    BOOST_TEST(must(c.get("/tls/a"))->value == "1");
    recorder rec;
    auto handle = c.watch("/tls/", {.prefix = true, .start_revision = rev}, rec.callback());
    rec.wait_revision(rev);
  }
  {
    // No client certificate: etcd rejects the handshake.
    auto c = connect(server, {.tls = {.ca_file = server.ca_file()}, .dial_timeout = 1s, .request_timeout = 3s});
    auto r = c.get("/tls/a");
    BOOST_REQUIRE(!r);
    BOOST_TEST_MESSAGE("without a client certificate: " << r.error().what());
    BOOST_TEST(r.error().code() == etcd::make_error_code(etcd::errc::unavailable));
  }
  {
    // A CA that did not sign etcd's certificate.
    const auto dir = server.dir() / "wrong-ca";
    std::filesystem::create_directories(dir);
    auto [code, output] =
        run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
            "-subj /CN=wrong-ca -keyout " +
            (dir / "ca.key").string() + " -out " + (dir / "ca.crt").string());
    BOOST_REQUIRE_MESSAGE(code == 0, output);
    auto c = connect(
        server,
        {.tls = {.ca_file = (dir / "ca.crt").string(), .cert_file = server.cert_file(), .key_file = server.key_file()},
         .dial_timeout = 1s,
         .request_timeout = 3s});
    auto r = c.get("/tls/a");
    BOOST_REQUIRE(!r);
    BOOST_TEST_MESSAGE("with a wrong CA: " << r.error().what());
    BOOST_TEST(r.error().code() == etcd::make_error_code(etcd::errc::unavailable));
  }
}

BOOST_AUTO_TEST_CASE(username_and_password) {
  etcd_server server;
  etcdctl(server, "user add root --new-user-password=s3cret");
  etcdctl(server, "auth enable");

  auto c = connect(server, {.username = "root", .password = "s3cret"});
  const auto rev = must(c.put("/auth/a", "1"), "put with the right password");
  BOOST_TEST(must(c.get("/auth/a"))->value == "1");

  auto wrong = connect(server, {.username = "root", .password = "wrong"});
  auto denied = wrong.get("/auth/a");
  BOOST_REQUIRE(!denied);
  BOOST_TEST(denied.error().code() == informer::make_error_code(informer::errc::unauthorized));
  BOOST_TEST_MESSAGE("wrong password: " << denied.error().what());
  BOOST_TEST(denied.error().what().find("root") != std::string::npos);

  auto anonymous = connect(server);
  auto refused = anonymous.get("/auth/a");
  BOOST_REQUIRE(!refused);
  BOOST_TEST(refused.error().code() == informer::make_error_code(informer::errc::unauthorized));
  BOOST_TEST_MESSAGE("no credentials: " << refused.error().what());

  recorder rec;
  auto handle = c.watch("/auth/", {.prefix = true, .start_revision = rev}, rec.callback());
  rec.wait_revision(rev);
  auto lease = must(c.lease_grant(4));
  must(c.put("/auth/leased", "x", lease.id));
  auto keeper = c.keep_alive(lease.id);

  // etcd's simple tokens die with the process: the client authenticates again by itself, for a
  // watch (etcd refuses its create with "permission denied") as for a unary call.
  server.restart();
  rec.wait_final();
  recorder again;
  auto handle2 = c.watch("/auth/", {.prefix = true}, again.callback());
  again.wait_created();
  auto other = connect(server, {.username = "root", .password = "s3cret"});
  const auto after = must(other.put("/auth/b", "2"));
  again.wait_revision(after);
  BOOST_TEST(must(c.get("/auth/b"), "get after restart (stale token)")->value == "2");
  // The keep-alive, refused with its stale token, authenticated again too: the lease outlives its TTL.
  std::this_thread::sleep_for(6s);
  BOOST_TEST(must(c.get("/auth/leased"), "get of the leased key")->value == "x");
}

BOOST_AUTO_TEST_CASE(lease_keep_alive_and_revoke) {
  etcd_server server;
  auto c = connect(server);
  auto lease = must(c.lease_grant(2));
  BOOST_TEST(lease.ttl >= 2);
  must(c.put("/lease/kept", "x", lease.id));

  std::mutex mutex;
  std::condition_variable ended_cv;
  std::optional<informer::error> ended;
  auto keeper = c.keep_alive(lease.id, {.on_end = [&](const informer::error& why) {
                               std::lock_guard lock(mutex);
                               ended = why;
                               ended_cv.notify_all();
                             }});

  // Without renewals it would be gone after 2 s.
  auto short_lease = must(c.lease_grant(1));
  must(c.put("/lease/lapsed", "y", short_lease.id));
  std::this_thread::sleep_for(4s);
  BOOST_TEST(must(c.get("/lease/kept")).has_value());
  BOOST_TEST(!must(c.get("/lease/lapsed")).has_value());

  must(c.lease_revoke(lease.id));
  BOOST_TEST(!must(c.get("/lease/kept")).has_value());
  {
    std::unique_lock lock(mutex);
    BOOST_REQUIRE(ended_cv.wait_for(lock, patience, [&] { return ended.has_value(); }));
    BOOST_TEST(ended->code() == informer::make_error_code(informer::errc::not_found));
    BOOST_TEST_MESSAGE(ended->what());
  }
  auto gone = c.lease_revoke(lease.id);
  BOOST_REQUIRE(!gone);
  BOOST_TEST(gone.error().code() == informer::make_error_code(informer::errc::not_found));

  // stop() ends a keep-alive with no error.
  auto other = must(c.lease_grant(5));
  std::promise<informer::error> stopped;
  auto stopper = c.keep_alive(other.id, {.on_end = [&](const informer::error& why) { stopped.set_value(why); }});
  stopper.stop();
  auto result = stopped.get_future();
  BOOST_REQUIRE(result.wait_for(patience) == std::future_status::ready);
  BOOST_TEST(!result.get());
}

BOOST_AUTO_TEST_CASE(fails_over_to_the_next_endpoint) {
  etcd_server server;
  const std::string dead = "http://127.0.0.1:" + std::to_string(unused_loopback_port());
  auto c = etcd::client::connect({.endpoints = {dead, server.endpoint()}, .dial_timeout = 1s});
  BOOST_REQUIRE(c);
  const auto rev = must(c->put("/fo/a", "1"), "put with the first endpoint dead");
  BOOST_TEST(must(c->get("/fo/a"))->value == "1");
  recorder rec;
  auto handle = c->watch("/fo/", {.prefix = true, .start_revision = rev}, rec.callback());
  rec.wait_revision(rev);

  // Watches fail over as well when they come first.
  auto w = etcd::client::connect({.endpoints = {dead, server.endpoint()}, .dial_timeout = 1s});
  BOOST_REQUIRE(w);
  recorder first;
  auto h = w->watch("/fo/", {.prefix = true, .start_revision = rev}, first.callback());
  first.wait_revision(rev);

  // All endpoints dead: a clear error, not a hang.
  auto none = etcd::client::connect({.endpoints = {dead}, .dial_timeout = 500ms});
  BOOST_REQUIRE(none);
  auto r = none->get("/fo/a");
  BOOST_REQUIRE(!r);
  BOOST_TEST(r.error().code() == etcd::make_error_code(etcd::errc::unavailable));
  BOOST_TEST_MESSAGE("no endpoint: " << r.error().what());
}

BOOST_AUTO_TEST_CASE(destroying_the_client_ends_watches_and_keep_alives) {
  etcd_server server;
  recorder rec;
  etcd::watch_handle handle;
  std::promise<informer::error> ended;
  etcd::lease_keep_alive keeper;
  {
    auto c = connect(server);
    handle = c.watch("/x/", {.prefix = true}, rec.callback());
    rec.wait_created();
    auto lease = must(c.lease_grant(10));
    keeper = c.keep_alive(lease.id, {.on_end = [&](const informer::error& why) { ended.set_value(why); }});
  }
  const auto& final_update = rec.wait_final();
  BOOST_TEST(final_update.failure.code() == informer::make_error_code(informer::errc::closed));
  auto f = ended.get_future();
  BOOST_REQUIRE(f.wait_for(0s) == std::future_status::ready);
  BOOST_TEST(f.get().code() == informer::make_error_code(informer::errc::closed));
  handle.cancel();  // the client is gone: nothing happens
  keeper.stop();
}
