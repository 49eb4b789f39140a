// The watch hub without gRPC or etcd: a fake stream feeds it responses and stream ends and
// records what it asks for (streams opened, requests written, streams closed, updates delivered).
#include "etcd/detail/watch_hub.hpp"

#include "informer/etcd/errors.hpp"

#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <chrono>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace etcd = informer::etcd;
namespace detail = informer::etcd::detail;
using etcd::watch_update_kind;

namespace {

etcd::event put(std::string key, std::int64_t revision) {
  return {.type = etcd::event_type::put,
          .kv = {.key = std::move(key), .value = "v", .create_revision = revision, .mod_revision = revision}};
}

detail::watch_spec spec(std::string key, std::int64_t start_revision = 0) {
  return {.key = key, .start_revision = start_revision, .what = "watch of key '" + key + "'"};
}

detail::watch_response created(std::int64_t watch_id, std::int64_t revision) {
  return {.watch_id = watch_id, .revision = revision, .created = true};
}

detail::watch_response events(std::int64_t watch_id, std::int64_t revision, std::vector<etcd::event> evs,
                              bool fragment = false) {
  return {.watch_id = watch_id, .revision = revision, .fragment = fragment, .events = std::move(evs)};
}

// A per-watch progress notification (no events) or, with watch id -1, the stream-wide reply.
detail::watch_response progress(std::int64_t watch_id, std::int64_t revision) {
  return {.watch_id = watch_id, .revision = revision};
}

informer::error unavailable() { return {etcd::errc::unavailable, "watch stream at e:1: connection refused"}; }

// Performs the hub's actions the way the driver does, recording them.
struct fake {
  explicit fake(detail::watch_hub_options options = {}) : hub(options) {}

  detail::watch_hub hub;
  std::vector<detail::open_stream> opened;
  std::map<std::uint64_t, std::vector<detail::watch_request>> written;  // by stream
  std::vector<std::uint64_t> closed;                                    // close_stream, in order
  std::vector<std::uint64_t> unresponsive;                              // ... of those, the dead ones
  std::map<std::uint64_t, std::vector<etcd::watch_update>> updates;     // by watch

  void apply(detail::watch_actions actions) {
    for (auto& action : actions) {
      if (auto* o = std::get_if<detail::open_stream>(&action)) {
        opened.push_back(*o);
      } else if (auto* w = std::get_if<detail::write_request>(&action)) {
        written[w->stream].push_back(std::move(w->request));
      } else if (auto* c = std::get_if<detail::close_stream>(&action)) {
        closed.push_back(c->stream);
        if (c->unresponsive) {
          unresponsive.push_back(c->stream);
        }
      } else {
        auto& d = std::get<detail::deliver_update>(action);
        BOOST_TEST_REQUIRE(!(updates[d.watch].size() > 0 && updates[d.watch].back().is_final()),
                           "an update after the final one, to watch " << d.watch);
        updates[d.watch].push_back(std::move(d.update));
      }
    }
  }

  void add(std::uint64_t id, detail::watch_spec s) { apply(hub.add(id, std::move(s))); }
  void cancel(std::uint64_t id) { apply(hub.cancel(id)); }
  void respond(std::uint64_t stream, detail::watch_response r) { apply(hub.on_response(stream, std::move(r))); }
  void end(std::uint64_t stream, const informer::error& why) { apply(hub.on_stream_end(stream, why)); }
  // A tick `elapsed` after the fake's start.
  void tick(std::chrono::milliseconds elapsed) { apply(hub.on_tick(start + elapsed)); }

  const std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  // The creates written to `stream`, in order.
  std::vector<detail::watch_spec> creates(std::uint64_t stream) {
    std::vector<detail::watch_spec> out;
    for (auto& r : written[stream]) {
      if (auto* c = std::get_if<detail::create_request>(&r)) {
        out.push_back(c->spec);
      }
    }
    return out;
  }
  std::vector<std::int64_t> cancels(std::uint64_t stream) {
    std::vector<std::int64_t> out;
    for (auto& r : written[stream]) {
      if (auto* c = std::get_if<detail::cancel_request>(&r)) {
        out.push_back(c->watch_id);
      }
    }
    return out;
  }
  std::size_t progress_requests(std::uint64_t stream) {
    std::size_t n = 0;
    for (auto& r : written[stream]) {
      n += std::holds_alternative<detail::progress_request>(r) ? 1 : 0;
    }
    return n;
  }
  std::vector<watch_update_kind> kinds(std::uint64_t watch) {
    std::vector<watch_update_kind> out;
    for (auto& u : updates[watch]) {
      out.push_back(u.kind);
    }
    return out;
  }
};

bool has(const informer::error& e, etcd::errc code) { return e.code() == etcd::make_error_code(code); }
bool has(const informer::error& e, informer::errc code) { return e.code() == informer::make_error_code(code); }

}  // namespace

namespace informer::etcd {
std::ostream& operator<<(std::ostream& out, watch_update_kind kind) {
  static const char* const names[] = {"created", "events", "progress", "canceled", "failed"};
  return out << names[static_cast<int>(kind)];
}
}  // namespace informer::etcd

BOOST_AUTO_TEST_CASE(a_watch_opens_a_stream_is_created_and_gets_events) {
  fake f;
  f.add(1, spec("/a", 7));
  BOOST_REQUIRE_EQUAL(f.opened.size(), 1u);
  const std::uint64_t s = f.opened[0].stream;
  BOOST_TEST(f.opened[0].stale_token_of == 0u);
  BOOST_REQUIRE_EQUAL(f.creates(s).size(), 1u);
  BOOST_TEST(f.creates(s)[0].key == "/a");
  BOOST_TEST(f.creates(s)[0].start_revision == 7);
  BOOST_TEST((f.hub.phase_of_watch(1) == detail::watch_phase::creating));
  BOOST_TEST((f.hub.phase_of_stream(s) == detail::stream_phase::connecting));
  BOOST_TEST(f.hub.awaiting_first_answer(s));

  f.respond(s, created(0, 10));
  BOOST_TEST((f.hub.phase_of_watch(1) == detail::watch_phase::active));
  BOOST_TEST((f.hub.phase_of_stream(s) == detail::stream_phase::serving));
  BOOST_TEST(!f.hub.awaiting_first_answer(s));
  f.respond(s, events(0, 12, {put("/a", 11), put("/a", 12)}));
  BOOST_TEST(f.kinds(1) == (std::vector{watch_update_kind::created, watch_update_kind::events}),
             boost::test_tools::per_element());
  BOOST_TEST(f.updates[1][0].revision == 10);
  BOOST_TEST(f.updates[1][1].revision == 12);
  BOOST_TEST(f.updates[1][1].events.size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_fragmented_response_is_delivered_once_reassembled) {
  fake f;
  f.add(1, spec("/a"));
  f.respond(1, created(0, 10));
  f.respond(1, events(0, 13, {put("/a/1", 13), put("/a/2", 13)}, true));
  f.respond(1, events(0, 13, {put("/a/3", 13)}, true));
  BOOST_TEST(f.updates[1].size() == 1u);  // created only, so far
  f.respond(1, events(0, 13, {put("/a/4", 13)}));
  BOOST_REQUIRE_EQUAL(f.updates[1].size(), 2u);
  const auto& batch = f.updates[1][1];
  BOOST_TEST((batch.kind == watch_update_kind::events));
  BOOST_REQUIRE_EQUAL(batch.events.size(), 4u);
  BOOST_TEST(batch.events[0].kv.key == "/a/1");
  BOOST_TEST(batch.events[3].kv.key == "/a/4");
}

BOOST_AUTO_TEST_CASE(a_stream_ending_mid_fragment_delivers_no_part_of_it) {
  fake f;
  f.add(1, spec("/a"));
  f.respond(1, created(0, 10));
  f.respond(1, events(0, 13, {put("/a/1", 13)}, true));
  f.end(1, unavailable());
  BOOST_TEST(f.kinds(1) == (std::vector{watch_update_kind::created, watch_update_kind::failed}),
             boost::test_tools::per_element());
  BOOST_TEST(has(f.updates[1].back().failure, etcd::errc::unavailable));
  BOOST_TEST(f.updates[1].back().failure.detail().starts_with("watch of key '/a': watch stream at e:1"));
  BOOST_TEST(f.hub.watch_count() == 0u);
  BOOST_TEST(f.hub.stream_count() == 0u);
  BOOST_TEST(f.opened.size() == 1u);  // a created watch is not moved to a new stream
}

BOOST_AUTO_TEST_CASE(cancel_while_the_create_is_in_flight) {
  fake f;
  f.add(1, spec("/a"));
  f.add(2, spec("/b"));
  f.cancel(1);
  // The final update comes at once; etcd is told once it has answered the create.
  BOOST_TEST(f.kinds(1) == (std::vector{watch_update_kind::canceled}), boost::test_tools::per_element());
  BOOST_TEST((f.hub.phase_of_watch(1) == detail::watch_phase::canceling));
  f.cancel(1);  // idempotent
  BOOST_TEST(f.updates[1].size() == 1u);
  f.respond(1, created(5, 10));
  BOOST_TEST(f.cancels(1) == (std::vector<std::int64_t>{5}), boost::test_tools::per_element());
  BOOST_TEST(!f.hub.phase_of_watch(1).has_value());
  // The next create follows the answer.
  BOOST_REQUIRE_EQUAL(f.creates(1).size(), 2u);
  BOOST_TEST(f.creates(1)[1].key == "/b");

  // Canceled while queued: never written.
  f.add(3, spec("/c"));
  f.cancel(3);
  f.respond(1, created(6, 11));  // /b
  BOOST_TEST(f.creates(1).size() == 2u);
  BOOST_TEST(f.kinds(3) == (std::vector{watch_update_kind::canceled}), boost::test_tools::per_element());

  // Canceled during a create that etcd then refuses: forgotten, nothing to cancel.
  f.add(4, spec("/d"));
  f.cancel(4);
  f.respond(1, {.watch_id = -1, .revision = 11, .created = true, .canceled = true, .cancel_reason = "no"});
  BOOST_TEST(f.cancels(1).size() == 1u);
  BOOST_TEST(f.hub.watch_count() == 1u);  // /b
}

BOOST_AUTO_TEST_CASE(cancel_of_an_active_watch_tells_etcd) {
  fake f;
  f.add(1, spec("/a"));
  f.respond(1, created(3, 10));
  f.cancel(1);
  BOOST_TEST(f.kinds(1) == (std::vector{watch_update_kind::created, watch_update_kind::canceled}),
             boost::test_tools::per_element());
  BOOST_TEST(f.cancels(1) == (std::vector<std::int64_t>{3}), boost::test_tools::per_element());
  // A response already on its way for it goes nowhere.
  f.respond(1, events(3, 11, {put("/a", 11)}));
  BOOST_TEST(f.updates[1].size() == 2u);
}

BOOST_AUTO_TEST_CASE(watches_share_a_stream_creates_go_one_at_a_time) {
  fake f;
  f.add(1, spec("/a"));
  f.add(2, spec("/b"));
  f.add(3, spec("/c"));
  BOOST_REQUIRE_EQUAL(f.opened.size(), 1u);
  BOOST_TEST(f.creates(1).size() == 1u);
  BOOST_TEST((f.hub.phase_of_watch(2) == detail::watch_phase::queued));
  f.respond(1, created(0, 10));
  BOOST_TEST(f.creates(1).size() == 2u);
  f.respond(1, created(1, 10));
  f.respond(1, created(2, 10));
  BOOST_TEST(f.creates(1).size() == 3u);

  f.respond(1, events(2, 11, {put("/c", 11)}));
  f.respond(1, events(0, 12, {put("/a", 12)}));
  f.respond(1, events(1, 13, {put("/b", 13)}, true));
  f.respond(1, events(2, 14, {put("/c", 14)}));
  f.respond(1, events(1, 13, {put("/b", 13)}));
  BOOST_REQUIRE_EQUAL(f.updates[1].size(), 2u);
  BOOST_TEST(f.updates[1][1].events[0].kv.key == "/a");
  BOOST_REQUIRE_EQUAL(f.updates[2].size(), 2u);
  BOOST_TEST(f.updates[2][1].events.size() == 2u);
  BOOST_REQUIRE_EQUAL(f.updates[3].size(), 3u);
  BOOST_TEST(f.updates[3][2].events[0].kv.mod_revision == 14);

  // A watch added later rides the same stream.
  f.add(4, spec("/d"));
  BOOST_TEST(f.opened.size() == 1u);
  BOOST_TEST(f.creates(1).size() == 4u);

  // The stream breaks: every created watch fails with its error, the unanswered one too.
  f.end(1, unavailable());
  for (std::uint64_t id : {1, 2, 3, 4}) {
    BOOST_TEST((f.updates[id].back().kind == watch_update_kind::failed));
    BOOST_TEST(has(f.updates[id].back().failure, etcd::errc::unavailable));
  }
  BOOST_TEST(f.opened.size() == 1u);
}

BOOST_AUTO_TEST_CASE(progress_notifications_are_bookmarks) {
  fake f;
  f.add(1, spec("/a"));
  f.add(2, spec("/b"));
  f.respond(1, created(0, 10));
  f.respond(1, created(1, 10));
  // A per-watch notification, to its watch only.
  f.respond(1, progress(1, 12));
  BOOST_TEST(f.kinds(1) == (std::vector{watch_update_kind::created}), boost::test_tools::per_element());
  BOOST_TEST(f.kinds(2) == (std::vector{watch_update_kind::created, watch_update_kind::progress}),
             boost::test_tools::per_element());
  BOOST_TEST(f.updates[2].back().revision == 12);

  // A requested one goes on the current stream; the stream-wide reply reaches watches in sync.
  f.apply(f.hub.request_progress());
  BOOST_TEST(f.progress_requests(1) == 1u);
  f.respond(1, progress(-1, 13));
  BOOST_TEST((f.updates[1].back().kind == watch_update_kind::progress));
  BOOST_TEST(f.updates[1].back().revision == 13);
  BOOST_TEST(f.updates[2].back().revision == 13);
  // A reply that says the stream is canceled is no progress.
  f.respond(1, {.watch_id = -1, .revision = 14, .canceled = true});
  BOOST_TEST(f.updates[1].back().revision == 13);
}

BOOST_AUTO_TEST_CASE(no_progress_request_without_a_stream) {
  fake f;
  f.apply(f.hub.request_progress());
  BOOST_TEST(f.opened.empty());
  BOOST_TEST(f.written.empty());
}

BOOST_AUTO_TEST_CASE(compaction_ends_the_watch_as_expired_at_create_or_later) {
  fake f;
  f.add(1, spec("/a", 3));
  f.respond(1, {.watch_id = -1, .revision = 50, .created = true, .canceled = true, .compact_revision = 40});
  BOOST_REQUIRE_EQUAL(f.updates[1].size(), 1u);
  const auto& at_create = f.updates[1][0];
  BOOST_TEST((at_create.kind == watch_update_kind::failed));
  BOOST_TEST(has(at_create.failure, informer::errc::expired));
  BOOST_TEST(at_create.compact_revision == 40);

  f.add(2, spec("/b", 45));
  f.respond(1, created(7, 50));
  f.respond(1, {.watch_id = 7, .revision = 60, .canceled = true, .compact_revision = 55});
  const auto& later = f.updates[2].back();
  BOOST_TEST((later.kind == watch_update_kind::failed));
  BOOST_TEST(has(later.failure, informer::errc::expired));
  BOOST_TEST(later.compact_revision == 55);
  // One text for both.
  BOOST_TEST(at_create.failure.detail() ==
             "watch of key '/a': etcd has compacted its history up to revision 40; list again and watch from "
             "the list's revision + 1");
  BOOST_TEST(later.failure.detail().find("compacted its history up to revision 55; list again") != std::string::npos);
  BOOST_TEST(f.hub.watch_count() == 0u);
}

BOOST_AUTO_TEST_CASE(etcd_canceling_or_refusing_a_watch_says_why) {
  fake f;
  f.add(1, spec("/a"));
  f.hub.stream_at(1, "e:1");
  f.respond(1, {.watch_id = -1, .revision = 5, .created = true, .canceled = true, .cancel_reason = "bad range"});
  BOOST_TEST(has(f.updates[1].back().failure, etcd::errc::watch_canceled));
  BOOST_TEST(f.updates[1].back().failure.detail() == "watch of key '/a' at e:1: etcd refused the watch: bad range");

  f.add(2, spec("/b"));
  f.respond(1, created(4, 5));
  f.respond(1, {.watch_id = 4, .revision = 6, .canceled = true, .cancel_reason = "etcdserver: permission denied"});
  BOOST_TEST(has(f.updates[2].back().failure, informer::errc::forbidden));
  f.add(3, spec("/c"));
  f.respond(1, created(5, 6));
  f.respond(1, {.watch_id = 5, .revision = 6, .canceled = true});
  BOOST_TEST(has(f.updates[3].back().failure, etcd::errc::watch_canceled));
  BOOST_TEST(f.updates[3].back().failure.detail() ==
             "watch of key '/c' at e:1: etcd canceled the watch: (no reason given)");
  BOOST_TEST(f.closed.empty());  // the stream still takes watches
}

BOOST_AUTO_TEST_CASE(a_refused_token_retires_the_stream_and_retries_once_with_a_new_one) {
  fake f({.endpoints = 1, .authenticates = true});
  f.add(1, spec("/a"));
  f.respond(1, created(0, 10));  // /a is active on stream 1
  f.add(2, spec("/b"));
  f.add(3, spec("/c"));
  const detail::watch_response refused{.watch_id = -1,
                                       .revision = 10,
                                       .created = true,
                                       .canceled = true,
                                       .cancel_reason = "etcdserver: permission denied"};
  f.respond(1, refused);  // /b
  BOOST_TEST((f.hub.phase_of_stream(1) == detail::stream_phase::retired));
  BOOST_REQUIRE_EQUAL(f.opened.size(), 2u);
  BOOST_TEST(f.opened[1].stream == 2u);
  BOOST_TEST(f.opened[1].stale_token_of == 1u);
  // Both unanswered watches move, in order; the created one stays.
  BOOST_REQUIRE_EQUAL(f.creates(2).size(), 1u);
  BOOST_TEST(f.creates(2)[0].key == "/b");
  f.respond(1, events(0, 11, {put("/a", 11)}));
  BOOST_TEST((f.updates[1].back().kind == watch_update_kind::events));

  f.respond(2, refused);  // /b again: no second retry
  BOOST_TEST(has(f.updates[2].back().failure, informer::errc::forbidden));
  BOOST_REQUIRE_EQUAL(f.opened.size(), 3u);      // for /c, moved off the retired stream
  BOOST_TEST(f.opened[2].stale_token_of == 0u);  // the token is new: /b is truly forbidden
  BOOST_TEST(f.closed == (std::vector<std::uint64_t>{2}), boost::test_tools::per_element());

  // The retired stream is closed once its last watch is gone; a cancel is not written to it.
  f.cancel(1);
  BOOST_TEST(f.cancels(1).empty());
  BOOST_TEST(f.closed == (std::vector<std::uint64_t>{2, 1}), boost::test_tools::per_element());
  BOOST_TEST((f.hub.phase_of_stream(1) == detail::stream_phase::closing));
}

BOOST_AUTO_TEST_CASE(a_refusal_without_credentials_is_forbidden) {
  fake f;
  f.add(1, spec("/a"));
  f.respond(1, {.watch_id = -1,
                .revision = 10,
                .created = true,
                .canceled = true,
                .cancel_reason = "etcdserver: permission denied"});
  BOOST_TEST(has(f.updates[1].back().failure, informer::errc::forbidden));
  BOOST_TEST(f.opened.size() == 1u);
  BOOST_TEST(f.closed == (std::vector<std::uint64_t>{1}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_connection_failure_recreates_unanswered_watches_on_the_next_stream) {
  fake f({.endpoints = 2});
  f.add(1, spec("/a", 7));
  f.add(2, spec("/b"));
  f.end(1, unavailable());  // no answer: a connection failure
  BOOST_REQUIRE_EQUAL(f.opened.size(), 2u);
  BOOST_TEST(f.updates.empty());
  BOOST_REQUIRE_EQUAL(f.creates(2).size(), 1u);
  BOOST_TEST(f.creates(2)[0].key == "/a");
  BOOST_TEST(f.creates(2)[0].start_revision == 7);  // nothing delivered: from where it asked
  f.respond(2, created(0, 9));
  BOOST_TEST(f.creates(2)[1].key == "/b");

  // Once etcd answered, an end is no connection failure: nothing moves.
  f.end(2, unavailable());
  BOOST_TEST((f.updates[1].back().kind == watch_update_kind::failed));
  BOOST_TEST((f.updates[2].back().kind == watch_update_kind::failed));
  BOOST_TEST(f.opened.size() == 2u);

  // Each watch tries each endpoint once.
  f.add(3, spec("/c"));
  f.end(3, unavailable());
  f.end(4, unavailable());
  BOOST_TEST(f.opened.size() == 4u);
  BOOST_TEST(has(f.updates[3].back().failure, etcd::errc::unavailable));
}

BOOST_AUTO_TEST_CASE(a_recreated_watch_from_now_still_asks_for_now) {
  // Not a revision it never saw.
  fake f({.endpoints = 3});
  f.add(1, spec("/a"));
  f.end(1, {etcd::errc::deadline_exceeded, "dial"});
  BOOST_REQUIRE_EQUAL(f.creates(2).size(), 1u);
  BOOST_TEST(f.creates(2)[0].start_revision == 0);
  f.end(2, unavailable());
  BOOST_REQUIRE_EQUAL(f.creates(3).size(), 1u);
  BOOST_TEST(f.creates(3)[0].start_revision == 0);
  BOOST_TEST(f.updates.empty());
}

BOOST_AUTO_TEST_CASE(an_answered_stream_that_fails_fails_its_unanswered_watches) {
  fake f({.endpoints = 2});
  f.add(1, spec("/a"));
  f.add(2, spec("/b"));
  f.respond(1, created(0, 10));
  f.end(1, {etcd::errc::canceled, "watch stream at e:1: canceled"});
  BOOST_TEST(has(f.updates[1].back().failure, etcd::errc::canceled));
  BOOST_TEST(has(f.updates[2].back().failure, etcd::errc::canceled));
  BOOST_TEST(f.opened.size() == 1u);
}

BOOST_AUTO_TEST_CASE(close_ends_every_watch_and_stream) {
  fake f({.endpoints = 2});
  f.add(1, spec("/a"));
  f.respond(1, created(0, 10));
  f.add(2, spec("/b"));
  f.add(3, spec("/c"));
  f.cancel(2);  // canceling: its final update was delivered already
  f.apply(f.hub.close());
  BOOST_TEST(has(f.updates[1].back().failure, informer::errc::closed));
  BOOST_TEST(f.updates[2].size() == 1u);
  BOOST_TEST(has(f.updates[3].back().failure, informer::errc::closed));
  BOOST_TEST(f.closed == (std::vector<std::uint64_t>{1}), boost::test_tools::per_element());
  // What comes after is ignored; new watches end at once.
  f.respond(1, events(0, 11, {put("/a", 11)}));
  f.end(1, unavailable());
  BOOST_TEST(f.opened.size() == 1u);
  f.add(4, spec("/d"));
  BOOST_TEST(has(f.updates[4].back().failure, informer::errc::closed));
  BOOST_TEST(f.hub.stream_count() == 0u);
}

BOOST_AUTO_TEST_CASE(a_stream_wide_progress_reply_skips_watches_still_replaying_history) {
  // etcd releases without the fix for etcd issue 15220 answer a progress request with the store's
  // revision even to a watch still replaying older history: as a bookmark, that revision would
  // move the watch past the events it has yet to deliver.
  fake f;
  f.add(1, spec("/old", 1001));    // replays 1001..5000
  f.add(2, spec("/now"));          // nothing to replay
  f.add(3, spec("/ahead", 6000));  // nothing to replay either
  f.add(4, spec("/quiet", 10));    // replays, but its history has nothing for it
  f.respond(1, created(0, 5000));
  f.respond(1, created(1, 5000));
  f.respond(1, created(2, 5000));
  f.respond(1, created(3, 5000));
  f.apply(f.hub.request_progress());
  f.respond(1, progress(-1, 5000));
  BOOST_TEST(f.kinds(1) == (std::vector{watch_update_kind::created}), boost::test_tools::per_element());
  BOOST_TEST(f.kinds(2) == (std::vector{watch_update_kind::created, watch_update_kind::progress}),
             boost::test_tools::per_element());
  BOOST_TEST(f.kinds(3) == (std::vector{watch_update_kind::created, watch_update_kind::progress}),
             boost::test_tools::per_element());
  BOOST_TEST(f.kinds(4) == (std::vector{watch_update_kind::created}), boost::test_tools::per_element());

  // Still replaying after an older event; in sync once it delivered the revision of its creation.
  f.respond(1, events(0, 5001, {put("/old", 1500)}));
  f.respond(1, progress(-1, 5001));
  BOOST_TEST((f.updates[1].back().kind == watch_update_kind::events));
  f.respond(1, events(0, 5001, {put("/old", 5000)}));
  f.respond(1, progress(-1, 5002));
  BOOST_TEST((f.updates[1].back().kind == watch_update_kind::progress));
  BOOST_TEST(f.updates[1].back().revision == 5002);

  // A per-watch notification (etcd sends those only to a watch in sync) is a bookmark and says
  // the watch has caught up.
  f.respond(1, progress(3, 5003));
  BOOST_TEST((f.updates[4].back().kind == watch_update_kind::progress));
  BOOST_TEST(f.updates[4].back().revision == 5003);
  f.respond(1, progress(-1, 5004));
  BOOST_TEST(f.updates[4].back().revision == 5004);

  // Nor mid-fragment: the reply may overtake the rest of the response.
  f.respond(1, events(1, 5005, {put("/now", 5005)}, true));
  f.respond(1, progress(-1, 5005));
  BOOST_TEST((f.updates[2].back().kind == watch_update_kind::progress));
  BOOST_TEST(f.updates[2].back().revision == 5004);
  f.respond(1, events(1, 5005, {put("/now", 5005)}));
  BOOST_TEST((f.updates[2].back().kind == watch_update_kind::events));
}

// Heartbeats: a progress request per interval on each stream that carries watches; a stream
// silent for the timeout after one is dead.
const detail::watch_hub_options heartbeats{.endpoints = 2, .progress_interval = 1000ms, .progress_timeout = 500ms};

BOOST_AUTO_TEST_CASE(heartbeats_go_out_once_per_interval_and_their_answers_are_bookmarks) {
  fake f(heartbeats);
  f.add(1, spec("/now"));
  f.add(2, spec("/old", 3));  // replays 3..10
  BOOST_TEST(f.hub.wants_ticks());
  f.tick(0ms);  // no serving stream yet: the dial timer's business
  f.respond(1, created(0, 10));
  f.respond(1, created(1, 10));
  f.tick(100ms);  // the interval counts from the first tick that sees the stream serving
  f.tick(1099ms);
  BOOST_TEST(f.progress_requests(1) == 0u);
  f.tick(1100ms);
  BOOST_TEST(f.progress_requests(1) == 1u);
  f.respond(1, progress(-1, 10));
  // Every watch gets a bookmark at what it has delivered: the one in sync at 10, the one still
  // replaying from 3 at 2 (the reply's 10 would skip its history: defect 1 of issue 13).
  BOOST_TEST(f.kinds(1) == (std::vector{watch_update_kind::created, watch_update_kind::progress}),
             boost::test_tools::per_element());
  BOOST_TEST(f.updates[1].back().revision == 10);
  BOOST_TEST(f.kinds(2) == (std::vector{watch_update_kind::created, watch_update_kind::progress}),
             boost::test_tools::per_element());
  BOOST_TEST(f.updates[2].back().revision == 2);
  f.tick(1700ms);  // answered: not dead, and the next one is not due yet
  f.tick(2099ms);
  BOOST_TEST(f.progress_requests(1) == 1u);
  f.tick(2100ms);
  BOOST_TEST(f.progress_requests(1) == 2u);
  BOOST_TEST(f.closed.empty());
}

BOOST_AUTO_TEST_CASE(a_heartbeat_reply_never_moves_a_watch_past_what_it_delivered) {
  // etcd issue 15220: the stream-wide reply can overtake an event queued for a watch in sync.
  fake f(heartbeats);
  f.add(1, spec("/a"));
  f.respond(1, created(0, 10));
  f.tick(0ms);
  f.tick(1000ms);
  f.apply(f.hub.request_progress());  // the user's, after the heartbeat
  f.respond(1, progress(-1, 12));     // the heartbeat's reply, ahead of the event at 12
  // At 12, a cut now would have the watch created again from 13, and the event at 12 lost.
  BOOST_TEST((f.updates[1].back().kind == watch_update_kind::progress));
  BOOST_TEST(f.updates[1].back().revision == 10);
  f.respond(1, events(0, 12, {put("/a", 12)}));
  f.respond(1, progress(-1, 12));  // the user's reply: the store's revision, as before
  BOOST_TEST((f.updates[1].back().kind == watch_update_kind::progress));
  BOOST_TEST(f.updates[1].back().revision == 12);
}

BOOST_AUTO_TEST_CASE(a_stream_silent_after_a_heartbeat_is_dead_and_its_watches_move_on) {
  fake f(heartbeats);
  f.add(1, spec("/a", 5));
  f.respond(1, created(0, 10));
  f.respond(1, events(0, 10, {put("/a", 8)}));
  f.add(2, spec("/b"));  // its create is in flight when the stream goes silent
  f.tick(0ms);
  f.tick(1000ms);
  BOOST_REQUIRE_EQUAL(f.progress_requests(1), 1u);
  f.tick(1499ms);
  BOOST_TEST(f.closed.empty());
  f.tick(1500ms);
  BOOST_TEST(f.closed == (std::vector<std::uint64_t>{1}), boost::test_tools::per_element());
  BOOST_TEST(f.unresponsive == (std::vector<std::uint64_t>{1}), boost::test_tools::per_element());
  // The created watch fails as for a broken stream (its owner watches again from revision 9)...
  BOOST_REQUIRE(f.updates[1].back().is_final());
  BOOST_TEST(has(f.updates[1].back().failure, etcd::errc::unavailable));
  BOOST_TEST(f.updates[1].back().failure.detail().find("no answer to a progress request within 500 ms") !=
             std::string::npos);
  // ... and the unanswered one is created again on a new stream.
  BOOST_REQUIRE_EQUAL(f.opened.size(), 2u);
  const std::uint64_t next = f.opened[1].stream;
  BOOST_REQUIRE_EQUAL(f.creates(next).size(), 1u);
  BOOST_TEST(f.creates(next)[0].key == "/b");
  BOOST_TEST(f.updates[2].empty());
  // What the dead stream still says, and its end, change nothing.
  f.respond(1, created(1, 11));
  f.end(1, {etcd::errc::canceled, "watch stream at e:1: canceled"});
  BOOST_TEST(f.updates[2].empty());
  BOOST_TEST(f.opened.size() == 2u);
  // The re-created watch goes on the new stream, from the first revision not delivered.
  f.add(3, spec("/a", 9));
  f.respond(next, created(0, 12));
  BOOST_TEST(f.creates(next).size() == 2u);
  BOOST_TEST(f.creates(next)[1].start_revision == 9);
}

BOOST_AUTO_TEST_CASE(any_answer_keeps_a_stream_alive) {
  // Fixed etcd releases hold a progress reply back while a watch replays; its events still flow.
  fake f(heartbeats);
  f.add(1, spec("/a", 1));
  f.respond(1, created(0, 100));
  f.tick(0ms);
  f.tick(1000ms);
  f.respond(1, events(0, 100, {put("/a", 7)}));
  f.tick(1600ms);
  BOOST_TEST(f.closed.empty());
  BOOST_TEST(f.kinds(1) == (std::vector{watch_update_kind::created, watch_update_kind::events}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(no_heartbeats_when_off_or_on_a_stream_without_watches) {
  fake off;
  off.add(1, spec("/a"));
  off.respond(1, created(0, 10));
  BOOST_TEST(!off.hub.wants_ticks());
  off.tick(0ms);
  off.tick(60s);
  BOOST_TEST(off.progress_requests(1) == 0u);

  fake f(heartbeats);
  f.add(1, spec("/a"));
  f.respond(1, created(0, 10));
  f.cancel(1);
  f.tick(0ms);
  f.tick(5s);
  f.tick(10s);
  BOOST_TEST(f.progress_requests(1) == 0u);
  BOOST_TEST(f.closed.empty());
  f.apply(f.hub.close());
  BOOST_TEST(!f.hub.wants_ticks());
}

BOOST_AUTO_TEST_CASE(a_watch_refused_for_want_of_a_leader_waits_a_tick_and_tries_again) {
  // Every member refuses new streams during an election: failing the watch would make its owner
  // relist; it is tried again a tick later instead, a bounded number of times.
  const informer::error no_leader{etcd::errc::unavailable, "watch stream at e:1: etcdserver: no leader"};
  fake f(heartbeats);
  f.add(1, spec("/a", 7));
  f.end(1, no_leader);
  BOOST_TEST((f.hub.phase_of_watch(1) == detail::watch_phase::parked));
  BOOST_TEST(f.opened.size() == 1u);
  BOOST_TEST(f.hub.wants_ticks());
  f.tick(0ms);  // parked for a whole tick period at least
  BOOST_TEST(f.opened.size() == 1u);
  f.tick(100ms);
  BOOST_REQUIRE_EQUAL(f.opened.size(), 2u);
  BOOST_TEST(f.creates(f.opened[1].stream).at(0).start_revision == 7);
  f.respond(f.opened[1].stream, created(0, 10));
  BOOST_TEST(f.kinds(1) == (std::vector{watch_update_kind::created}), boost::test_tools::per_element());

  // Bounded: after 20 refusals in a row the watch fails.
  fake g(heartbeats);
  g.add(2, spec("/b"));
  for (int i = 0; i < 20; ++i) {
    g.end(g.opened.back().stream, no_leader);
    BOOST_REQUIRE((g.hub.phase_of_watch(2) == detail::watch_phase::parked));
    g.tick(0ms);
    g.tick(0ms);
  }
  // Then as any failure to connect: tried on the next endpoint at once, and failed after that.
  g.end(g.opened.back().stream, no_leader);
  BOOST_TEST((g.hub.phase_of_watch(2) == detail::watch_phase::creating));
  BOOST_TEST(g.updates[2].empty());
  g.end(g.opened.back().stream, no_leader);
  BOOST_REQUIRE(!g.updates[2].empty());
  BOOST_TEST(has(g.updates[2].back().failure, etcd::errc::unavailable));

  // A parked watch can be canceled; without heartbeats (no ticks) nothing is parked.
  g.add(3, spec("/c"));
  g.end(g.opened.back().stream, no_leader);
  g.cancel(3);
  BOOST_TEST((g.updates[3].back().kind == watch_update_kind::canceled));
  const auto opened = g.opened.size();
  g.tick(0ms);
  g.tick(0ms);
  BOOST_TEST(g.opened.size() == opened);

  fake off({.endpoints = 1});
  off.add(1, spec("/a"));
  off.end(1, no_leader);
  BOOST_TEST(has(off.updates[1].back().failure, etcd::errc::unavailable));
}
