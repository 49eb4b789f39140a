#include "scripted_source.hpp"

#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using informer::errc;
using informer::list_options;
using informer::object_list;
using informer::watch_event;
using informer::watch_event_type;
using informer::watch_options;
using informer::watch_stream;
using informer::testing::scripted_source;

namespace informer {
std::ostream& operator<<(std::ostream& os, watch_event_type t) { return os << to_string(t); }
}  // namespace informer

namespace {

// Generous bound for "should happen soon": only reached when something is broken.
constexpr auto patience = 10s;

// An io_context running on its own thread, as the reflector's would.
struct io_thread {
  boost::asio::io_context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work = boost::asio::make_work_guard(ioc);
  std::thread thread{[this] { ioc.run(); }};

  ~io_thread() {
    work.reset();
    ioc.stop();
    thread.join();
  }
};

struct fixture {
  io_thread io;
  scripted_source source{io.ioc.get_executor()};
};

std::string pod(std::string_view name, std::string_view app = "web", int generation = 1) {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + std::string(name) +
         R"(","namespace":"default","labels":{"app":")" + std::string(app) + R"("}},"spec":{"generation":)" +
         std::to_string(generation) + "}}";
}

template <class T>
T await(std::future<T> f) {
  BOOST_REQUIRE_MESSAGE(f.wait_for(patience) == std::future_status::ready, "operation did not complete in time");
  return f.get();
}

std::tuple<informer::error, object_list> list(scripted_source& s, list_options o) {
  return await(s.async_list(std::move(o), boost::asio::use_future));
}

object_list list_ok(scripted_source& s, list_options o) {
  auto [err, page] = list(s, std::move(o));
  BOOST_REQUIRE_MESSAGE(!err, err.what());
  return page;
}

std::tuple<informer::error, std::shared_ptr<watch_stream>> watch(scripted_source& s, watch_options o) {
  return await(s.async_watch(std::move(o), boost::asio::use_future));
}

std::shared_ptr<watch_stream> watch_ok(scripted_source& s, watch_options o) {
  auto [err, stream] = watch(s, std::move(o));
  BOOST_REQUIRE_MESSAGE(!err, err.what());
  BOOST_REQUIRE(stream);
  return stream;
}

std::tuple<informer::error, watch_event> next(watch_stream& w) { return await(w.async_next(boost::asio::use_future)); }

watch_event next_ok(watch_stream& w) {
  auto [err, ev] = next(w);
  BOOST_REQUIRE_MESSAGE(!err, err.what());
  return ev;
}

std::vector<std::string> names(const object_list& l) {
  std::vector<std::string> out;
  for (const auto& o : l.items) out.emplace_back(o->name());
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(mutators_bump_the_revision_and_stamp_the_object) {
  boost::asio::io_context ioc;
  scripted_source source(ioc.get_executor());
  BOOST_TEST((source.get_executor() == boost::asio::any_io_executor(ioc.get_executor())));
  BOOST_TEST(source.current_revision() == 1);

  auto a = source.create(pod("a"));
  BOOST_TEST(a->resource_version() == "2");
  BOOST_TEST(source.current_revision() == 2);
  auto a2 = source.update(pod("a", "web", 2));
  BOOST_TEST(a2->resource_version() == "3");
  BOOST_TEST(source.get("default/a") == a2);
  BOOST_TEST(a2->field("spec.generation")->as_int64() == 2);
  auto gone = source.remove("default/a");
  BOOST_TEST(gone->resource_version() == "4");
  BOOST_TEST(gone->name() == "a");
  BOOST_TEST(!source.get("default/a"));

  BOOST_CHECK_THROW(source.update(pod("a")), std::invalid_argument);
  BOOST_CHECK_THROW(source.remove("default/a"), std::invalid_argument);
  source.create(boost::json::parse(pod("b")));
  BOOST_CHECK_THROW(source.create(pod("b")), std::invalid_argument);
  BOOST_CHECK_THROW(source.create("{not json"), std::invalid_argument);
  BOOST_TEST(source.current_revision() == 5);  // failed calls change nothing
}

BOOST_AUTO_TEST_CASE(handlers_are_posted_never_run_inline) {
  boost::asio::io_context ioc;  // not running: nothing may complete until it runs
  scripted_source source(ioc.get_executor());
  source.create(pod("a"));

  bool listed = false;
  source.async_list({}, [&](informer::error err, object_list page) {
    BOOST_TEST(!err);
    BOOST_TEST(page.items.size() == 1u);
    listed = true;
  });
  std::shared_ptr<watch_stream> stream;
  source.async_watch({.resource_version = "2"}, [&](informer::error err, std::shared_ptr<watch_stream> s) {
    BOOST_TEST(!err);
    stream = std::move(s);
  });
  BOOST_TEST(!listed);
  BOOST_TEST(!stream);
  ioc.run();
  ioc.restart();
  BOOST_TEST(listed);
  BOOST_REQUIRE(stream);

  // A waiting async_next keeps the io_context busy, as a pending read would, and is completed by
  // a mutator through a post, not inside the mutator.
  std::optional<watch_event> got;
  stream->async_next([&](informer::error err, watch_event ev) {
    BOOST_TEST(!err);
    got = std::move(ev);
  });
  ioc.poll();
  BOOST_TEST(!ioc.stopped());
  source.create(pod("b"));
  BOOST_TEST(!got);
  ioc.poll();
  BOOST_REQUIRE(got);
  BOOST_TEST(got->obj->name() == "b");

  std::optional<informer::error> aborted;
  stream->async_next([&](informer::error err, watch_event) { aborted = err; });
  stream->cancel();
  BOOST_TEST(!aborted);
  ioc.restart();  // the last poll ran out of work
  ioc.run();      // returns: nothing is outstanding any more
  BOOST_REQUIRE(aborted);
  BOOST_TEST(aborted->code() == boost::asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(handlers_run_on_their_associated_executor) {
  io_thread io;
  scripted_source source(io.ioc.get_executor());
  boost::asio::io_context other;  // not running yet
  std::atomic<bool> done = false;
  source.async_list({}, boost::asio::bind_executor(other, [&](informer::error, object_list) { done = true; }));
  std::this_thread::sleep_for(50ms);  // the source's executor has had time to run it, if it would
  BOOST_TEST(!done);
  other.run();
  BOOST_TEST(done);
}

BOOST_FIXTURE_TEST_CASE(paged_list_is_a_consistent_snapshot, fixture) {
  for (auto n : {"a", "b", "c", "d", "e"}) source.create(pod(n));
  const auto rv = std::to_string(source.current_revision());

  auto first = list_ok(source, {.limit = 2});
  BOOST_TEST(names(first) == (std::vector<std::string>{"a", "b"}));
  BOOST_TEST(first.resource_version == rv);
  BOOST_REQUIRE(!first.continue_token.empty());

  // Changes between pages do not show in the rest of this list.
  source.remove("default/c");
  source.update(pod("d", "web", 7));
  source.create(pod("bb"));
  source.create(pod("f"));

  auto second = list_ok(source, {.limit = 2, .continue_token = first.continue_token});
  BOOST_TEST(names(second) == (std::vector<std::string>{"c", "d"}));
  BOOST_TEST(second.resource_version == rv);
  BOOST_TEST(second.items[1]->field("spec.generation")->as_int64() == 1);
  auto third = list_ok(source, {.limit = 2, .continue_token = second.continue_token});
  BOOST_TEST(names(third) == (std::vector<std::string>{"e"}));
  BOOST_TEST(third.continue_token.empty());
  BOOST_TEST(third.resource_version == rv);

  // A new list sees the new state.
  auto fresh = list_ok(source, {});
  BOOST_TEST(names(fresh) == (std::vector<std::string>{"a", "b", "bb", "d", "e", "f"}));
  BOOST_TEST(fresh.resource_version == std::to_string(source.current_revision()));
  BOOST_TEST(fresh.continue_token.empty());

  BOOST_TEST(source.list_calls() == 4u);
  auto requests = source.list_requests();
  BOOST_REQUIRE(requests.size() == 4u);
  BOOST_TEST(requests[1].continue_token == first.continue_token);
}

BOOST_FIXTURE_TEST_CASE(list_honours_label_and_field_selectors, fixture) {
  source.create(pod("a", "web"));
  source.create(pod("b", "db"));
  source.create(pod("c", "web"));
  source.create(pod("d", "web"));
  auto page = list_ok(source, {.label_selector = "app=web", .limit = 2});
  BOOST_TEST(names(page) == (std::vector<std::string>{"a", "c"}));
  auto rest = list_ok(source, {.label_selector = "app=web", .limit = 2, .continue_token = page.continue_token});
  BOOST_TEST(names(rest) == (std::vector<std::string>{"d"}));
  BOOST_TEST(rest.continue_token.empty());
  // A full last page leaves no token when nothing matching follows.
  auto exact = list_ok(source, {.label_selector = "app!=db", .limit = 3});
  BOOST_TEST(names(exact) == (std::vector<std::string>{"a", "c", "d"}));
  BOOST_TEST(exact.continue_token.empty());
  BOOST_TEST(names(list_ok(source, {.field_selector = "metadata.name=b"})) == std::vector<std::string>{"b"});

  auto [err, bad] = list(source, {.label_selector = "app in (("});
  BOOST_TEST(err.code() == informer::make_error_code(errc::bad_request));
}

BOOST_FIXTURE_TEST_CASE(resource_version_zero_ignores_the_limit, fixture) {
  for (auto n : {"a", "b", "c"}) source.create(pod(n));
  auto page = list_ok(source, {.limit = 1, .resource_version = "0"});
  BOOST_TEST(page.items.size() == 3u);
  BOOST_TEST(page.continue_token.empty());
  BOOST_TEST(page.resource_version == "4");
  BOOST_TEST(source.list_requests().at(0).resource_version == "0");
}

BOOST_FIXTURE_TEST_CASE(list_at_a_revision, fixture) {
  source.create(pod("a"));            // 2
  source.create(pod("b"));            // 3
  source.update(pod("a", "web", 2));  // 4
  source.remove("default/b");         // 5
  source.create(pod("c"));            // 6

  // Legacy rule: a resourceVersion with a limit reads exactly at it.
  auto at3 = list_ok(source, {.limit = 10, .resource_version = "3"});
  BOOST_TEST(names(at3) == (std::vector<std::string>{"a", "b"}));
  BOOST_TEST(at3.resource_version == "3");
  BOOST_TEST(at3.items[0]->resource_version() == "2");
  auto exact4 = list_ok(source, {.resource_version = "4", .match = informer::resource_version_match::exact});
  BOOST_TEST(names(exact4) == (std::vector<std::string>{"a", "b"}));
  BOOST_TEST(exact4.items[0]->resource_version() == "4");
  // Without a limit it is "not older than": the current state.
  auto recent = list_ok(source, {.resource_version = "3"});
  BOOST_TEST(names(recent) == (std::vector<std::string>{"a", "c"}));
  BOOST_TEST(recent.resource_version == "6");

  auto [too_large, l1] = list(source, {.resource_version = "99"});
  BOOST_TEST(too_large.code() == informer::make_error_code(errc::resource_version_too_large));
  source.compact(5);
  auto [expired, l2] = list(source, {.limit = 10, .resource_version = "3"});
  BOOST_TEST(expired.code() == informer::make_error_code(errc::expired));
  BOOST_TEST(names(list_ok(source, {.limit = 10, .resource_version = "5"})) == std::vector<std::string>{"a"});
}

BOOST_FIXTURE_TEST_CASE(continue_tokens_expire, fixture) {
  for (auto n : {"a", "b", "c"}) source.create(pod(n));
  auto first = list_ok(source, {.limit = 1});
  auto second = list_ok(source, {.limit = 1, .continue_token = first.continue_token});
  BOOST_TEST(names(second) == std::vector<std::string>{"b"});

  source.expire_continue_tokens();
  auto [err, page] = list(source, {.limit = 1, .continue_token = second.continue_token});
  BOOST_TEST(err.code() == informer::make_error_code(errc::expired));
  BOOST_TEST(err.detail().find("410 Expired") == 0u);
  BOOST_TEST(page.items.empty());

  // New lists page again; compaction past their revision expires them too.
  auto again = list_ok(source, {.limit = 1});
  BOOST_REQUIRE(!again.continue_token.empty());
  source.create(pod("d"));
  source.compact(source.current_revision());
  auto [err2, p2] = list(source, {.limit = 1, .continue_token = again.continue_token});
  BOOST_TEST(err2.code() == informer::make_error_code(errc::expired));

  auto [bad, p3] = list(source, {.limit = 1, .continue_token = "garbage"});
  BOOST_TEST(bad.code() == informer::make_error_code(errc::bad_request));
  auto fresh = list_ok(source, {.limit = 1});
  auto [with_rv, p4] = list(source, {.limit = 1, .continue_token = fresh.continue_token, .resource_version = "5"});
  BOOST_TEST(with_rv.code() == informer::make_error_code(errc::bad_request));
}

BOOST_FIXTURE_TEST_CASE(watch_from_a_revision_gets_the_later_events_in_order, fixture) {
  source.create(pod("a"));            // 2
  source.create(pod("b"));            // 3
  source.update(pod("a", "web", 2));  // 4
  source.remove("default/b");         // 5

  auto w = watch_ok(source, {.resource_version = "3"});
  BOOST_TEST(source.open_watches() == 1u);
  auto e1 = next_ok(*w);
  BOOST_TEST(e1.type == watch_event_type::modified);
  BOOST_TEST(e1.obj->name() == "a");
  BOOST_TEST(e1.resource_version == "4");
  BOOST_TEST(e1.obj->resource_version() == "4");
  auto e2 = next_ok(*w);
  BOOST_TEST(e2.type == watch_event_type::deleted);
  BOOST_TEST(e2.obj->name() == "b");
  BOOST_TEST(e2.resource_version == "5");

  // Then live events, each once, in order.
  for (int i = 0; i < 20; ++i) source.create(pod("p" + std::to_string(i)));
  for (int i = 0; i < 20; ++i) {
    auto e = next_ok(*w);
    BOOST_TEST(e.type == watch_event_type::added);
    BOOST_TEST(e.obj->name() == "p" + std::to_string(i));
    BOOST_TEST(e.resource_version == std::to_string(6 + i));
  }

  // "" starts from now.
  auto now = watch_ok(source, {});
  source.create(pod("z"));
  BOOST_TEST(next_ok(*now).obj->name() == "z");
  BOOST_TEST(source.watch_calls() == 2u);
  BOOST_TEST(source.watch_requests().at(0).resource_version == "3");
}

BOOST_FIXTURE_TEST_CASE(selector_watch_sees_objects_enter_and_leave, fixture) {
  auto w = watch_ok(source, {.label_selector = "app=web"});
  source.create(pod("a", "db"));      // not seen
  source.update(pod("a", "web"));     // enters: ADDED
  source.update(pod("a", "web", 2));  // MODIFIED
  source.update(pod("a", "db"));      // leaves: DELETED
  source.remove("default/a");         // not seen
  source.create(pod("b", "web"));
  auto e1 = next_ok(*w);
  BOOST_TEST(e1.type == watch_event_type::added);
  BOOST_TEST(e1.resource_version == "3");
  BOOST_TEST(next_ok(*w).type == watch_event_type::modified);
  auto e3 = next_ok(*w);
  BOOST_TEST(e3.type == watch_event_type::deleted);
  BOOST_TEST(e3.resource_version == "5");
  auto e4 = next_ok(*w);
  BOOST_TEST(e4.type == watch_event_type::added);
  BOOST_TEST(e4.obj->name() == "b");
}

BOOST_FIXTURE_TEST_CASE(bookmarks_reach_watches_that_allow_them, fixture) {
  source.create(pod("a"));
  auto with = watch_ok(source, {.allow_bookmarks = true});
  auto without = watch_ok(source, {.allow_bookmarks = false});
  source.bookmark();
  source.create(pod("b"));

  auto b = next_ok(*with);
  BOOST_TEST(b.type == watch_event_type::bookmark);
  BOOST_TEST(b.resource_version == "2");
  BOOST_TEST(!b.obj);
  BOOST_TEST(next_ok(*with).obj->name() == "b");
  auto first = next_ok(*without);
  BOOST_TEST(first.type == watch_event_type::added);
  BOOST_TEST(first.obj->name() == "b");
}

BOOST_FIXTURE_TEST_CASE(watch_from_a_compacted_revision_is_expired, fixture) {
  for (auto n : {"a", "b", "c"}) source.create(pod(n));  // 2..4
  source.compact(3);
  auto [err, stream] = watch(source, {.resource_version = "2"});
  BOOST_TEST(err.code() == informer::make_error_code(errc::expired));
  BOOST_TEST(err.detail().find("410 Expired") == 0u);
  BOOST_TEST(!stream);
  BOOST_TEST(source.open_watches() == 0u);

  auto w = watch_ok(source, {.resource_version = "3"});
  BOOST_TEST(next_ok(*w).obj->name() == "c");

  auto [too_large, s2] = watch(source, {.resource_version = "100"});
  BOOST_TEST(too_large.code() == informer::make_error_code(errc::resource_version_too_large));
}

BOOST_FIXTURE_TEST_CASE(cancel_from_another_thread_ends_a_pending_next, fixture) {
  auto w = watch_ok(source, {});
  auto pending = w->async_next(boost::asio::use_future);
  BOOST_TEST((pending.wait_for(50ms) == std::future_status::timeout));

  const auto start = std::chrono::steady_clock::now();
  std::thread([&] { w->cancel(); }).join();
  auto [err, ev] = await(std::move(pending));
  BOOST_TEST((std::chrono::steady_clock::now() - start < 2s));
  BOOST_TEST(err.code() == boost::asio::error::operation_aborted);
  BOOST_TEST(source.open_watches() == 0u);

  // Later calls too, and events no longer arrive.
  source.create(pod("a"));
  auto [err2, ev2] = next(*w);
  BOOST_TEST(err2.code() == boost::asio::error::operation_aborted);
  w->cancel();  // twice is harmless
}

BOOST_FIXTURE_TEST_CASE(dropping_a_stream_closes_the_watch, fixture) {
  auto w = watch_ok(source, {});
  BOOST_TEST(source.open_watches() == 1u);
  w.reset();
  BOOST_TEST(source.open_watches() == 0u);
  source.create(pod("a"));  // no one to deliver to
}

BOOST_FIXTURE_TEST_CASE(injected_failures_are_one_shot_and_queue, fixture) {
  source.create(pod("a"));
  source.fail_next_list(informer::status{.code = 500, .reason = "InternalError", .message = "boom"}, 2);
  auto [e1, l1] = list(source, {});
  BOOST_TEST(e1.code() == informer::make_error_code(errc::server_error));
  auto [e2, l2] = list(source, {});
  BOOST_TEST(e2.code() == informer::make_error_code(errc::server_error));
  BOOST_TEST(list_ok(source, {}).items.size() == 1u);
  BOOST_TEST(source.list_calls() == 3u);

  source.fail_next_watch(informer::status{.code = 410, .reason = "Expired", .message = "too old"});
  source.fail_next_watch(informer::error(errc::forbidden, "not allowed"));
  auto [w1, s1] = watch(source, {});
  BOOST_TEST(w1.code() == informer::make_error_code(errc::expired));
  BOOST_TEST(!s1);
  auto [w2, s2] = watch(source, {});
  BOOST_TEST(w2.code() == informer::make_error_code(errc::forbidden));
  BOOST_TEST(w2.detail() == "not allowed");
  watch_ok(source, {});
  BOOST_TEST(source.watch_calls() == 3u);
}

BOOST_FIXTURE_TEST_CASE(timeout_ends_the_stream_normally, fixture) {
  const auto start = std::chrono::steady_clock::now();
  auto w = watch_ok(source, {.timeout = 1s});
  source.create(pod("a"));
  BOOST_TEST(next_ok(*w).obj->name() == "a");
  auto [err, ev] = next(*w);
  const auto took = std::chrono::steady_clock::now() - start;
  BOOST_TEST(err.code() == informer::make_error_code(errc::end_of_stream));
  BOOST_TEST((took >= 1s));
  BOOST_TEST((took < 5s));
  BOOST_TEST(source.open_watches() == 0u);
}

BOOST_FIXTURE_TEST_CASE(end_watches_delivers_what_is_buffered_first, fixture) {
  auto w = watch_ok(source, {});
  source.create(pod("a"));
  source.create(pod("b"));
  source.end_watches();
  BOOST_TEST(source.open_watches() == 0u);
  BOOST_TEST(next_ok(*w).obj->name() == "a");
  BOOST_TEST(next_ok(*w).obj->name() == "b");
  auto [err, ev] = next(*w);
  BOOST_TEST(err.code() == informer::make_error_code(errc::end_of_stream));
  source.create(pod("c"));
  auto [err2, ev2] = next(*w);
  BOOST_TEST(err2.code() == informer::make_error_code(errc::end_of_stream));
}

BOOST_FIXTURE_TEST_CASE(send_error_sends_an_error_event_then_ends_the_watch, fixture) {
  auto w = watch_ok(source, {});
  source.send_error(informer::status{.code = 410, .reason = "Expired", .message = "too old resource version"});
  auto e = next_ok(*w);
  BOOST_TEST(e.type == watch_event_type::error);
  BOOST_TEST(e.error_status.code == 410);
  BOOST_TEST(e.error_status.to_error_code() == informer::make_error_code(errc::expired));
  auto [err, ev] = next(*w);
  BOOST_TEST(err.code() == informer::make_error_code(errc::end_of_stream));
  BOOST_TEST(source.open_watches() == 0u);
}

BOOST_FIXTURE_TEST_CASE(wait_for_watches_sees_a_watch_opened_elsewhere, fixture) {
  BOOST_TEST(!source.wait_for_watches(1, 10ms));
  // Boost.Test is not thread-safe: the other thread only calls the source, checks stay here.
  std::future<std::tuple<informer::error, std::shared_ptr<watch_stream>>> opened;
  std::thread opener([&] {
    std::this_thread::sleep_for(50ms);
    opened = source.async_watch({}, boost::asio::use_future);
  });
  BOOST_TEST(source.wait_for_watch_calls(1, patience));
  BOOST_TEST(source.wait_for_watches(1, patience));
  opener.join();
  auto [err, stream] = await(std::move(opened));
  BOOST_REQUIRE(stream);
  BOOST_TEST(source.open_watches() == 1u);
  stream->cancel();
  BOOST_TEST(source.open_watches() == 0u);

  std::future<std::tuple<informer::error, object_list>> listed;
  std::thread lister([&] { listed = source.async_list({}, boost::asio::use_future); });
  BOOST_TEST(source.wait_for_list_calls(1, patience));
  lister.join();
  BOOST_TEST(!std::get<0>(await(std::move(listed))));
}

// Mutations from two threads while a reader on the io thread drains a watch: every change arrives
// once and in revision order (run under TSan to check the locking). The reader records; the
// checks run on the test thread afterwards (Boost.Test is not thread-safe).
BOOST_FIXTURE_TEST_CASE(concurrent_mutations_and_reads, fixture) {
  constexpr int count = 500;
  auto w = watch_ok(source, {});
  std::promise<informer::error_code> ended;
  std::vector<std::int64_t> changes, bookmarks_seen;  // touched by the reader only, until `ended`
  std::function<void()> read = [&] {
    w->async_next([&](informer::error err, watch_event ev) {
      if (err) {
        ended.set_value(err.code());
        return;
      }
      (ev.type == watch_event_type::bookmark ? bookmarks_seen : changes).push_back(std::stoll(ev.resource_version));
      read();
    });
  };
  boost::asio::post(source.get_executor(), read);
  std::thread bookmarker([&] {
    for (int i = 0; i < 50; ++i) {
      source.bookmark();
      std::this_thread::yield();
    }
  });
  for (int i = 0; i < count; ++i) {
    source.create(pod("p" + std::to_string(i)));
    if (i % 3 == 0) source.update(pod("p" + std::to_string(i), "web", 2));
  }
  bookmarker.join();
  source.end_watches();
  BOOST_TEST(await(ended.get_future()) == informer::make_error_code(errc::end_of_stream));

  // Every change once, in revision order; bookmarks never go backwards.
  BOOST_REQUIRE(changes.size() == static_cast<std::size_t>(source.current_revision() - 1));
  for (std::size_t i = 0; i < changes.size(); ++i) BOOST_TEST(changes[i] == static_cast<std::int64_t>(i) + 2);
  BOOST_TEST(bookmarks_seen.size() == 50u);
  BOOST_TEST(std::is_sorted(bookmarks_seen.begin(), bookmarks_seen.end()));
}
