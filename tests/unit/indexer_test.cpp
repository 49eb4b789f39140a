#include "informer/cache/indexer.hpp"

#include <boost/test/unit_test.hpp>

#include "sample_pods.hpp"

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

using namespace informer;

namespace {

object::ptr make(std::string_view ns, std::string_view name, std::string labels_json = "{}", std::string rv = "1") {
  std::string text = R"({"metadata":{"name":")" + std::string(name) + R"(","namespace":")" + std::string(ns) +
                     R"(","resourceVersion":")" + rv + R"(","labels":)" + labels_json + "}}";
  auto r = object::parse(text);
  BOOST_REQUIRE(r.has_value());
  return *r;
}

label_selector sel(std::string_view text) {
  auto r = label_selector::parse(text);
  BOOST_REQUIRE_MESSAGE(r.has_value(), text);
  return *r;
}

std::set<std::string> names(const std::vector<object::ptr>& objs) {
  std::set<std::string> out;
  for (auto& o : objs) out.emplace(o->name());
  return out;
}

using strings = std::set<std::string>;

}  // namespace

BOOST_AUTO_TEST_CASE(add_get_update_remove) {
  indexer store;
  store.add(make("a", "x", R"({"app":"web"})"));
  store.add(make("b", "x"));
  BOOST_TEST(store.size() == 2u);
  BOOST_TEST(store.get_by_key("a/x")->ns() == "a");
  BOOST_TEST(!store.get_by_key("c/x"));
  store.update(make("a", "x", R"({"app":"db"})", "2"));
  BOOST_TEST(store.size() == 2u);
  BOOST_TEST(store.get_by_key("a/x")->resource_version() == "2");
  BOOST_TEST(store.remove_key("a/x"));
  BOOST_TEST(!store.remove_key("a/x"));
  BOOST_TEST(store.size() == 1u);
  store.remove(*make("b", "x"));
  BOOST_TEST(store.size() == 0u);
  BOOST_TEST(store.list().empty());
}

BOOST_AUTO_TEST_CASE(index_follows_updates_and_deletes_without_stale_postings) {
  indexer store;
  store.add(make("a", "p1", R"({"app":"web","tier":"fe"})"));
  store.add(make("a", "p2", R"({"app":"web"})"));
  store.add(make("b", "p3", R"({"app":"db"})"));
  BOOST_TEST(names(*store.by_index(label_index, "app=web")) == (strings{"p1", "p2"}));
  BOOST_TEST(names(*store.by_index(namespace_index, "a")) == (strings{"p1", "p2"}));

  store.update(make("a", "p1", R"({"app":"db"})"));  // moves p1 from web to db, drops tier
  BOOST_TEST(names(*store.by_index(label_index, "app=web")) == strings{"p2"});
  BOOST_TEST(names(*store.by_index(label_index, "app=db")) == (strings{"p1", "p3"}));
  BOOST_TEST(store.by_index(label_index, "tier=fe")->empty());

  store.remove_key("a/p2");
  BOOST_TEST(store.by_index(label_index, "app=web")->empty());
  const auto values = store.list_index_func_values(label_index);
  BOOST_TEST((strings(values.begin(), values.end())) == strings{"app=db"});  // no stale "app=web"/"tier=fe"

  store.replace({make("c", "q1", R"({"app":"cache"})")});
  BOOST_TEST(store.size() == 1u);
  BOOST_TEST(store.by_index(label_index, "app=db")->empty());
  const auto ns_values = store.list_index_func_values(namespace_index);
  BOOST_TEST((strings(ns_values.begin(), ns_values.end())) == strings{"c"});
  BOOST_TEST(*store.index_keys(label_index, "app=cache") == std::vector<std::string>{"c/q1"});
}

BOOST_AUTO_TEST_CASE(unknown_index_is_an_error) {
  indexer store;
  auto r = store.by_index("nope", "x");
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error() == make_error_code(errc::index_not_found));
  BOOST_TEST(!store.index_keys("nope", "x").has_value());
  BOOST_TEST(store.list_index_func_values("nope").empty());
}

BOOST_AUTO_TEST_CASE(add_indexers_backfills_and_rejects_duplicates) {
  indexer store;
  store.add(make("a", "p1", R"({"owner":"alice"})"));
  store.add(make("a", "p2", R"({"owner":"bob"})"));
  auto by_owner = [](const object& o) {
    auto v = o.labels().get("owner");
    return v ? std::vector<std::string>{std::string(*v)} : std::vector<std::string>{};
  };
  BOOST_REQUIRE(store.add_indexers({{"owner", by_owner}}).has_value());
  BOOST_TEST(names(*store.by_index("owner", "alice")) == strings{"p1"});
  store.add(make("a", "p3", R"({"owner":"alice"})"));
  BOOST_TEST(names(*store.by_index("owner", "alice")) == (strings{"p1", "p3"}));
  BOOST_TEST(names(*store.index("owner", *make("z", "z", R"({"owner":"alice"})"))) == (strings{"p1", "p3"}));

  auto dup = store.add_indexers({{"owner", by_owner}, {"other", by_owner}});
  BOOST_REQUIRE(!dup.has_value());
  BOOST_TEST(dup.error().code() == make_error_code(errc::already_exists));
  BOOST_TEST(!store.by_index("other", "alice").has_value());  // all-or-nothing
}

BOOST_AUTO_TEST_CASE(selector_queries_match_a_scan) {
  indexer store;
  const char* apps[] = {"web", "db", "cache"};
  const char* tiers[] = {"fe", "be"};
  for (int i = 0; i < 300; ++i) {
    std::string labels = std::string(R"({"app":")") + apps[i % 3] + "\"";
    if (i % 2 == 0) labels += std::string(R"(,"tier":")") + tiers[i / 2 % 2] + "\"";
    if (i % 5 == 0) labels += R"(,"legacy":"")";
    labels += "}";
    store.add(make(i % 4 == 0 ? "ns-a" : "ns-b", "p" + std::to_string(i), labels));
  }
  const auto all = store.list();
  for (std::string_view text :
       {"app=web", "app==db,tier=fe", "app in (web,cache)", "app notin (web)", "tier", "!tier", "legacy",
        "app!=db,!legacy", "app=web,tier in (fe,be),legacy", "app=none", "", "tier,app in (db)"}) {
    const auto s = sel(text);
    for (std::string_view ns : {"", "ns-a", "ns-b", "ns-none"}) {
      std::set<std::string> expected;
      for (auto& o : all)
        if ((ns.empty() || o->ns() == ns) && s.matches(o->labels())) expected.emplace(o->name());
      BOOST_TEST(names(store.list(ns, s)) == expected, "selector '" << text << "' ns '" << ns << "'");
      BOOST_TEST(store.count(ns, s) == expected.size());
    }
  }
}

BOOST_AUTO_TEST_CASE(replace_keeps_last_duplicate_and_custom_key_func) {
  indexer store({.key_func = [](const object& o) { return std::string(o.name()); }});
  store.replace({make("a", "x", R"({"v":"1"})"), make("b", "x", R"({"v":"2"})")});
  BOOST_TEST(store.size() == 1u);
  BOOST_TEST(store.get_by_key("x")->ns() == "b");
  BOOST_TEST(names(*store.by_index(label_index, "v=2")) == strings{"x"});
  BOOST_TEST(store.by_index(label_index, "v=1")->empty());
}

BOOST_AUTO_TEST_CASE(readers_see_whole_objects_during_heavy_writes) {
  indexer store;
  constexpr int keys = 50;
  for (int k = 0; k < keys; ++k) store.add(make("ns", "o" + std::to_string(k), R"({"gen":"0","mirror":"0"})", "0"));
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0};
  std::atomic<long> torn{0};  // Boost.Test assertions are not thread-safe: count, check after join
  const auto s = sel("gen");
  auto reader = [&] {
    while (!stop.load()) {
      const auto listed = store.list(s);
      if (listed.size() != static_cast<std::size_t>(keys)) torn.fetch_add(1);
      for (auto& o : listed) {
        // Each object is written with gen == mirror == resourceVersion: a torn read would differ.
        const auto gen = *o->labels().get("gen");
        if (gen != *o->labels().get("mirror") || gen != o->resource_version()) torn.fetch_add(1);
      }
      auto one = store.get_by_key("ns/o7");
      if (!one) {
        torn.fetch_add(1);
        continue;
      }
      // The index files an object under its current labels: its own gen value lists it (or a
      // newer write moved it on, in which case the object we hold is no longer the stored one).
      const auto gen = std::string(*one->labels().get("gen"));
      const auto filed = *store.index_keys(label_index, "gen=" + gen);
      if (std::find(filed.begin(), filed.end(), "ns/o7") == filed.end() && store.get_by_key("ns/o7") == one)
        torn.fetch_add(1);
      reads.fetch_add(1);
    }
  };
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) readers.emplace_back(reader);
  std::thread writer([&] {
    for (int round = 1; round <= 100; ++round) {
      const auto g = std::to_string(round);
      for (int k = 0; k < keys; ++k)
        store.update(make("ns", "o" + std::to_string(k), R"({"gen":")" + g + R"(","mirror":")" + g + "\"}", g));
      if (round % 50 == 0) {
        std::vector<object::ptr> fresh;
        for (int k = 0; k < keys; ++k)
          fresh.push_back(make("ns", "o" + std::to_string(k), R"({"gen":")" + g + R"(","mirror":")" + g + "\"}", g));
        store.replace(std::move(fresh));
      }
    }
  });
  writer.join();
  stop = true;
  for (auto& t : readers) t.join();
  BOOST_TEST(reads.load() > 0);
  BOOST_TEST(torn.load() == 0);
  BOOST_TEST(store.list(sel("gen=100")).size() == static_cast<std::size_t>(keys));
  BOOST_TEST(store.list_index_func_values(label_index).size() == 2u);  // gen=100, mirror=100
}

BOOST_AUTO_TEST_CASE(memory_usage_counts_objects_and_indexes) {
  indexer store;
  const auto empty = store.memory_usage();
  std::size_t objects = 0;
  for (int i = 0; i < 100; ++i) {
    auto r = object::parse(informer::testing::sample_pod_json(i));
    objects += (*r)->memory_usage();
    store.add(*r);
  }
  BOOST_TEST(store.memory_usage() > empty + objects);
  BOOST_TEST(store.memory_usage() < empty + objects * 2);
}

BOOST_AUTO_TEST_CASE(a_one_percent_query_reads_only_its_matches) {
  indexer store;
  std::vector<object::ptr> objects;
  for (int i = 0; i < 100000; ++i) {
    objects.push_back(
        make("ns-" + std::to_string(i % 10), "o" + std::to_string(i),
             R"({"app":"a)" + std::to_string(i % 100) + R"(","shard":"s)" + std::to_string(i % 7) + "\"}"));
  }
  store.replace(std::move(objects));
  auto plan = store.explain("", sel("app=a42"));
  BOOST_TEST(plan.source == "app=a42");
  BOOST_TEST(plan.candidates == 1000u);
  BOOST_TEST(store.list(sel("app=a42")).size() == 1000u);

  plan = store.explain("", sel("shard=s1,app in (a3,a4)"));  // the smaller term wins
  BOOST_TEST(plan.source == "app in (a3,a4)");
  BOOST_TEST(plan.candidates == 2000u);

  plan = store.explain("ns-3", sel("shard!=s1"));  // only the namespace narrows it
  BOOST_TEST(plan.source == "namespace=ns-3");
  BOOST_TEST(plan.candidates == 10000u);

  plan = store.explain("", sel("!app"));  // nothing indexable: a scan
  BOOST_TEST(plan.source.empty());
  BOOST_TEST(plan.candidates == 100000u);

  plan = store.explain("", sel("app=nothing,shard=s1"));
  BOOST_TEST(plan.candidates == 0u);
}
