#include "informer/cache/delta_fifo.hpp"

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace informer;

namespace {

object::ptr make(const std::string& name, int rv = 1) {
  auto parsed = object::parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"ns","name":")" + name +
                              R"(","resourceVersion":")" + std::to_string(rv) + R"("}})");
  BOOST_REQUIRE(parsed.has_value());
  return *parsed;
}

std::string key_of(const std::string& name) { return "ns/" + name; }

// The consumer's store, as an informer's indexer would be: thread-safe, updated by `process`.
class map_store : public known_objects {
public:
  void put(object::ptr obj) {
    std::lock_guard lock(mutex_);
    items_[object_key(*obj)] = std::move(obj);
  }
  void erase(const std::string& key) {
    std::lock_guard lock(mutex_);
    items_.erase(key);
  }
  std::vector<std::string> list_keys() const override {
    std::lock_guard lock(mutex_);
    std::vector<std::string> keys;
    for (const auto& [k, v] : items_) keys.push_back(k);
    return keys;
  }
  object::ptr get_by_key(std::string_view key) const override {
    std::lock_guard lock(mutex_);
    auto it = items_.find(std::string(key));
    return it == items_.end() ? nullptr : it->second;
  }

private:
  mutable std::mutex mutex_;
  std::map<std::string, object::ptr> items_;
};

struct popped {
  std::string key;
  delta_list deltas;
  bool is_in_initial_list = false;
};

popped pop_one(delta_fifo& fifo) {
  popped out;
  error_code ec = fifo.pop([&](const std::string& key, const delta_list& deltas, bool initial) {
    out = {key, deltas, initial};
    return process_result{};
  });
  BOOST_REQUIRE(!ec);
  return out;
}

std::vector<delta_type> types(const delta_list& deltas) {
  std::vector<delta_type> out;
  for (const auto& d : deltas) out.push_back(d.type);
  return out;
}

std::string rv(const delta& d) { return std::string(d.obj()->resource_version()); }

using dt = delta_type;

}  // namespace

namespace informer {
std::ostream& operator<<(std::ostream& os, delta_type t) { return os << to_string(t); }
}  // namespace informer

BOOST_AUTO_TEST_CASE(keys_pop_in_first_arrival_order_and_keep_their_place) {
  delta_fifo fifo;
  fifo.add(make("a"));
  fifo.add(make("b"));
  fifo.add(make("c"));
  fifo.update(make("a", 2));
  BOOST_TEST(fifo.size() == 3u);
  BOOST_TEST((fifo.list_keys() == std::vector<std::string>{"ns/a", "ns/b", "ns/c"}));

  auto first = pop_one(fifo);
  BOOST_TEST(first.key == "ns/a");
  BOOST_TEST((types(first.deltas) == std::vector{dt::added, dt::updated}));
  BOOST_TEST(rv(first.deltas[1]) == "2");
  BOOST_TEST(pop_one(fifo).key == "ns/b");
  BOOST_TEST(pop_one(fifo).key == "ns/c");
  BOOST_TEST(fifo.size() == 0u);
}

BOOST_AUTO_TEST_CASE(deltas_accumulate_per_key_until_popped) {
  map_store store;
  delta_fifo fifo({.known = &store});
  fifo.add(make("a", 1));
  fifo.update(make("a", 2));
  fifo.update(make("a", 3));
  fifo.delete_object(make("a", 3));

  auto queued = fifo.get_by_key("ns/a");
  BOOST_REQUIRE(queued.has_value());
  BOOST_TEST((types(*queued) == std::vector{dt::added, dt::updated, dt::updated, dt::deleted}));
  BOOST_TEST(!fifo.get_by_key("ns/zzz").has_value());
  BOOST_TEST(delta_key(queued->front()) == "ns/a");

  auto p = pop_one(fifo);
  BOOST_TEST(p.deltas.size() == 4u);
  BOOST_TEST(!fifo.get_by_key("ns/a").has_value());
  // Once popped, new deltas start a fresh list.
  fifo.update(make("a", 4));
  BOOST_TEST(fifo.get_by_key("ns/a")->size() == 1u);
}

BOOST_AUTO_TEST_CASE(consecutive_deletes_collapse) {
  map_store store;
  store.put(make("a", 1));
  delta_fifo fifo({.known = &store});

  // Two observed deletions: the older is kept.
  fifo.delete_object(make("a", 1));
  fifo.delete_object(make("a", 2));
  auto deltas = *fifo.get_by_key("ns/a");
  BOOST_TEST(deltas.size() == 1u);
  BOOST_TEST(rv(deltas[0]) == "1");
  BOOST_TEST(!deltas[0].final_state_unknown());
  pop_one(fifo);

  // A tombstone followed by an observed deletion: the observed one replaces it.
  fifo.replace({}, "10");
  deltas = *fifo.get_by_key("ns/a");
  BOOST_REQUIRE(deltas.size() == 1u);
  BOOST_TEST(deltas[0].final_state_unknown());
  fifo.delete_object(make("a", 5));
  deltas = *fifo.get_by_key("ns/a");
  BOOST_REQUIRE(deltas.size() == 1u);
  BOOST_TEST(!deltas[0].final_state_unknown());
  BOOST_TEST(rv(deltas[0]) == "5");
  pop_one(fifo);

  // An observed deletion followed by a relist without the key: no tombstone is added.
  fifo.add(make("b", 1));
  fifo.delete_object(make("b", 2));
  fifo.replace({}, "11");
  deltas = *fifo.get_by_key("ns/b");
  BOOST_TEST((types(deltas) == std::vector{dt::added, dt::deleted}));
  BOOST_TEST(!deltas[1].final_state_unknown());
}

BOOST_AUTO_TEST_CASE(delete_of_unknown_object_is_ignored) {
  map_store store;
  delta_fifo with_store({.known = &store});
  with_store.delete_object(make("a"));
  BOOST_TEST(with_store.size() == 0u);
  store.put(make("a"));
  with_store.delete_object(make("a"));
  BOOST_TEST(with_store.size() == 1u);

  delta_fifo without_store;
  without_store.delete_object(make("a"));
  BOOST_TEST(without_store.size() == 0u);
  without_store.add(make("a"));
  without_store.delete_object(make("a"));
  BOOST_TEST((types(*without_store.get_by_key("ns/a")) == std::vector{dt::added, dt::deleted}));
}

BOOST_AUTO_TEST_CASE(replace_with_known_objects_makes_tombstones_with_last_known_state) {
  map_store store;
  store.put(make("gone", 7));
  store.put(make("kept", 1));
  store.put(make("queued", 1));
  delta_fifo fifo({.known = &store});
  fifo.update(make("queued", 2));  // newer than the store's copy
  fifo.add(make("fresh", 3));      // never reached the store

  fifo.replace({make("kept", 2)}, "100");

  auto kept = *fifo.get_by_key("ns/kept");
  BOOST_TEST((types(kept) == std::vector{dt::replaced}));
  BOOST_TEST(rv(kept[0]) == "2");

  auto gone = *fifo.get_by_key("ns/gone");
  BOOST_REQUIRE(gone.size() == 1u);
  BOOST_TEST(gone[0].type == dt::deleted);
  BOOST_REQUIRE(gone[0].final_state_unknown());
  BOOST_TEST(gone[0].tombstone()->key == "ns/gone");
  BOOST_TEST(rv(gone[0]) == "7");
  BOOST_TEST(delta_key(gone[0]) == "ns/gone");

  // Queued keys: the tombstone carries the newest queued object, not the store's.
  auto queued = *fifo.get_by_key("ns/queued");
  BOOST_TEST((types(queued) == std::vector{dt::updated, dt::deleted}));
  BOOST_TEST(queued[1].final_state_unknown());
  BOOST_TEST(rv(queued[1]) == "2");
  auto fresh = *fifo.get_by_key("ns/fresh");
  BOOST_TEST((types(fresh) == std::vector{dt::added, dt::deleted}));
  BOOST_TEST(rv(fresh[1]) == "3");

  // Queued keys keep their place; new ones follow in order.
  auto keys = fifo.list_keys();
  BOOST_TEST(keys.size() == 4u);
  BOOST_TEST(keys[0] == "ns/queued");
  BOOST_TEST(keys[1] == "ns/fresh");
}

BOOST_AUTO_TEST_CASE(replace_leaves_kept_keys_alone) {
  // Keys a relist holds but could not decode: neither replaced nor tombstoned.
  map_store store;
  store.put(make("a", 1));
  store.put(make("bad", 1));
  store.put(make("gone", 1));
  delta_fifo fifo({.known = &store});
  fifo.update(make("queued-bad", 2));
  fifo.replace({make("a", 3)}, "3", {"ns/bad", "ns/queued-bad"});

  BOOST_TEST((types(*fifo.get_by_key("ns/a")) == std::vector{dt::replaced}));
  BOOST_TEST((types(*fifo.get_by_key("ns/gone")) == std::vector{dt::deleted}));
  BOOST_TEST((types(*fifo.get_by_key("ns/queued-bad")) == std::vector{dt::updated}));  // only its update
  BOOST_TEST(!fifo.get_by_key("ns/bad").has_value());
  BOOST_TEST(fifo.list_keys().size() == 3u);
}

BOOST_AUTO_TEST_CASE(replace_without_known_objects_uses_the_queue) {
  delta_fifo fifo({.emit_delta_type_replaced = false});
  fifo.add(make("a", 1));
  fifo.add(make("b", 1));
  fifo.add(make("c", 1));
  fifo.delete_object(make("c", 2));
  fifo.replace({make("a", 2)}, "5");

  BOOST_TEST((types(*fifo.get_by_key("ns/a")) == std::vector{dt::added, dt::sync}));
  auto b = *fifo.get_by_key("ns/b");
  BOOST_TEST((types(b) == std::vector{dt::added, dt::deleted}));
  BOOST_TEST(b[1].final_state_unknown());
  BOOST_TEST(rv(b[1]) == "1");
  BOOST_TEST((types(*fifo.get_by_key("ns/c")) == std::vector{dt::added, dt::deleted}));
  BOOST_TEST(!fifo.get_by_key("ns/c")->back().final_state_unknown());

  // Popped keys are forgotten without a store: a later relist cannot report them.
  while (fifo.size() > 0) pop_one(fifo);
  fifo.replace({}, "6");
  BOOST_TEST(fifo.size() == 0u);
}

BOOST_AUTO_TEST_CASE(resync_skips_queued_keys) {
  map_store store;
  store.put(make("a", 1));
  store.put(make("b", 1));
  delta_fifo fifo({.known = &store});
  fifo.update(make("a", 2));
  fifo.resync();

  BOOST_TEST((types(*fifo.get_by_key("ns/a")) == std::vector{dt::updated}));
  auto b = *fifo.get_by_key("ns/b");
  BOOST_TEST((types(b) == std::vector{dt::sync}));
  BOOST_TEST(rv(b[0]) == "1");

  delta_fifo no_store;
  no_store.resync();
  BOOST_TEST(no_store.size() == 0u);
}

BOOST_AUTO_TEST_CASE(requeue_puts_deltas_back_ahead_of_newer_ones) {
  delta_fifo fifo;
  fifo.add(make("a", 1));
  fifo.add(make("b", 1));

  const error_code failure = make_error_code(errc::not_found);
  error_code ec = fifo.pop([&](const std::string& key, const delta_list&, bool) {
    BOOST_TEST(key == "ns/a");
    // The lock is released while processing: producers go on, and their deltas wait.
    fifo.update(make("a", 2));
    BOOST_TEST(fifo.get_by_key("ns/a").has_value());
    return process_result{.error = failure, .requeue = true};
  });
  BOOST_TEST(ec == failure);

  // The newer update queued "a" behind "b"; the requeued delta goes in front of it.
  BOOST_TEST((fifo.list_keys() == std::vector<std::string>{"ns/b", "ns/a"}));
  auto a = *fifo.get_by_key("ns/a");
  BOOST_TEST((types(a) == std::vector{dt::added, dt::updated}));
  BOOST_TEST(rv(a[0]) == "1");
  BOOST_TEST(rv(a[1]) == "2");

  // Without newer deltas a requeued key goes to the back.
  ec = fifo.pop([](const std::string&, const delta_list&, bool) { return process_result{.requeue = true}; });
  BOOST_TEST(!ec);
  BOOST_TEST((fifo.list_keys() == std::vector<std::string>{"ns/a", "ns/b"}));

  // A throwing process requeues too.
  BOOST_CHECK_THROW(
      fifo.pop([](const std::string&, const delta_list&, bool) -> process_result { throw std::runtime_error("boom"); }),
      std::runtime_error);
  BOOST_TEST((fifo.list_keys() == std::vector<std::string>{"ns/b", "ns/a"}));
  BOOST_TEST(fifo.get_by_key("ns/a")->size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_deletion_in_flight_is_not_reported_again) {
  map_store store;
  store.put(make("a", 1));
  delta_fifo fifo({.known = &store});
  fifo.delete_object(make("a", 1));
  fifo.pop([&](const std::string&, const delta_list&, bool) {
    // The store still holds "a", but the deletion being processed counts as applied.
    fifo.delete_object(make("a", 1));
    fifo.replace({}, "9");
    fifo.resync();
    BOOST_TEST(fifo.size() == 0u);
    return process_result{.requeue = true};
  });
  auto a = *fifo.get_by_key("ns/a");
  BOOST_TEST((types(a) == std::vector{dt::deleted}));
  BOOST_TEST(!a[0].final_state_unknown());
}

BOOST_AUTO_TEST_CASE(keys_in_flight_count_as_known_in_their_newest_state) {
  map_store store;
  delta_fifo fifo({.known = &store});
  fifo.add(make("a", 1));
  fifo.add(make("b", 1));
  pop_one(fifo);  // "a" is popped but never stored, as by a consumer that drops it

  fifo.pop([&](const std::string& key, const delta_list&, bool) {
    BOOST_TEST(key == "ns/b");
    // Not in the store yet, but being processed: its deletion must not be lost.
    fifo.delete_object(make("b", 2));
    BOOST_TEST((types(*fifo.get_by_key("ns/b")) == std::vector{dt::deleted}));
    // Neither queued, in flight nor stored, "a" is unknown.
    fifo.delete_object(make("a", 2));
    BOOST_TEST(!fifo.get_by_key("ns/a").has_value());
    store.put(make("b", 1));
    return process_result{};
  });
  BOOST_TEST((types(*fifo.get_by_key("ns/b")) == std::vector{dt::deleted}));
  pop_one(fifo);  // drop b's deletion; "b" stays in the store

  fifo.add(make("c", 1));

  fifo.pop([&](const std::string& key, const delta_list&, bool) {
    BOOST_TEST(key == "ns/c");
    store.put(make("c", 0));  // as if an older copy were stored
    // A resync would send the store's stale copy after the state being processed: skipped.
    fifo.resync();
    BOOST_TEST(!fifo.get_by_key("ns/c").has_value());
    BOOST_TEST(fifo.get_by_key("ns/b").has_value());
    // A relist without "c" must delete it, with the state being processed as last known.
    fifo.replace({}, "3");
    auto c = *fifo.get_by_key("ns/c");
    BOOST_REQUIRE(c.size() == 1u);
    BOOST_TEST(c[0].final_state_unknown());
    BOOST_TEST(rv(c[0]) == "1");
    return process_result{};
  });
  BOOST_TEST((fifo.list_keys() == std::vector<std::string>{"ns/b", "ns/c"}));
}

BOOST_AUTO_TEST_CASE(has_synced_after_the_first_replace_is_processed) {
  map_store store;
  store.put(make("old", 1));
  delta_fifo fifo({.known = &store});
  BOOST_TEST(!fifo.has_synced());

  fifo.replace({make("a"), make("b")}, "10");  // a, b and a tombstone for "old"
  BOOST_TEST(!fifo.has_synced());
  auto first = pop_one(fifo);
  BOOST_TEST(first.is_in_initial_list);
  BOOST_TEST(!fifo.has_synced());
  pop_one(fifo);
  BOOST_TEST(!fifo.has_synced());

  // The last initial key counts only once processed, so the store is complete when synced.
  fifo.add(make("later"));
  fifo.pop([&](const std::string& key, const delta_list&, bool initial) {
    BOOST_TEST(key == "ns/old");
    BOOST_TEST(initial);
    BOOST_TEST(!fifo.has_synced());
    return process_result{};
  });
  BOOST_TEST(fifo.has_synced());
  BOOST_TEST(!pop_one(fifo).is_in_initial_list);

  // Later relists do not reset it.
  fifo.replace({make("c")}, "11");
  BOOST_TEST(fifo.has_synced());
}

BOOST_AUTO_TEST_CASE(has_synced_when_an_event_comes_before_any_replace) {
  delta_fifo fifo;
  fifo.add(make("a"));
  BOOST_TEST(fifo.has_synced());

  delta_fifo empty_list;
  empty_list.replace({}, "1");
  BOOST_TEST(empty_list.has_synced());
}

BOOST_AUTO_TEST_CASE(pop_waits_for_an_item) {
  delta_fifo fifo;
  // Boost.Test assertions are not thread-safe: the worker only reports.
  auto result = std::async(std::launch::async, [&] {
    std::string key;
    error_code ec = fifo.pop([&](const std::string& k, const delta_list&, bool) {
      key = k;
      return process_result{};
    });
    return std::make_pair(ec, key);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  fifo.add(make("a"));
  auto [ec, key] = result.get();
  BOOST_TEST(!ec);
  BOOST_TEST(key == "ns/a");
}

BOOST_AUTO_TEST_CASE(close_wakes_a_blocked_pop) {
  delta_fifo fifo;
  std::promise<void> started;
  auto result = std::async(std::launch::async, [&] {
    started.set_value();
    return fifo.pop([](const std::string&, const delta_list&, bool) { return process_result{}; });
  });
  started.get_future().wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  BOOST_TEST(!fifo.is_closed());
  fifo.close();
  BOOST_TEST(fifo.is_closed());
  BOOST_REQUIRE(result.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  BOOST_TEST((result.get() == errc::closed));
}

BOOST_AUTO_TEST_CASE(a_closed_queue_drains_before_reporting_closed) {
  delta_fifo fifo;
  fifo.add(make("a"));
  fifo.close();
  BOOST_TEST(pop_one(fifo).key == "ns/a");
  error_code ec = fifo.pop([](const std::string&, const delta_list&, bool) { return process_result{}; });
  BOOST_TEST((ec == errc::closed));
}

namespace {

// Producers own disjoint keys and send, per key: added 1, updated 2..n, deleted n. Consumers
// apply deltas to a store, as an informer does, and requeue every `requeue_every`-th call. Every
// key must be seen exactly in that order, each delta once, and never by two consumers at a time.
void run_concurrent(int consumers, int keys_per_producer, int versions, int requeue_every) {
  constexpr int producers = 4;

  std::map<std::string, std::vector<object::ptr>> objects;
  for (int p = 0; p < producers; ++p) {
    for (int k = 0; k < keys_per_producer; ++k) {
      std::string name = "p" + std::to_string(p) + "k" + std::to_string(k);
      for (int v = 1; v <= versions; ++v) objects[key_of(name)].push_back(make(name, v));
    }
  }
  std::map<std::string, std::atomic<int>> busy;
  for (const auto& [key, objs] : objects) busy[key];

  map_store store;
  delta_fifo fifo({.known = &store});
  std::mutex seen_mutex;
  std::map<std::string, std::vector<std::string>> seen;  // key -> "Type/rv" in delivery order
  std::atomic<int> calls{0};
  std::atomic<bool> overlap{false};

  auto consume = [&] {
    for (;;) {
      error_code ec = fifo.pop([&](const std::string& key, const delta_list& deltas, bool) {
        if (busy.at(key).fetch_add(1) != 0) overlap = true;
        // Slow consumers keep keys in flight while producers add to them.
        if (consumers > 1) std::this_thread::sleep_for(std::chrono::microseconds(50));
        process_result result;
        if (requeue_every > 0 && ++calls % requeue_every == 0) {
          result.requeue = true;
        } else {
          std::lock_guard lock(seen_mutex);
          for (const auto& d : deltas) {
            seen[key].push_back(std::string(to_string(d.type)) + "/" + rv(d));
            if (d.type == delta_type::deleted) {
              store.erase(key);
            } else {
              store.put(d.obj());
            }
          }
        }
        busy.at(key).fetch_sub(1);
        return result;
      });
      if (ec == errc::closed) return;
    }
  };

  std::vector<std::thread> threads;
  for (int c = 0; c < consumers; ++c) threads.emplace_back(consume);
  std::vector<std::thread> producer_threads;
  for (int p = 0; p < producers; ++p) {
    producer_threads.emplace_back([&, p] {
      for (int v = 1; v <= versions + 1; ++v) {
        for (int k = 0; k < keys_per_producer; ++k) {
          const auto& objs = objects.at(key_of("p" + std::to_string(p) + "k" + std::to_string(k)));
          if (v == 1) {
            fifo.add(objs[0]);
          } else if (v <= versions) {
            fifo.update(objs[v - 1]);
          } else {
            fifo.delete_object(objs[versions - 1]);
          }
        }
        // Paced, so that deltas also arrive for keys being processed.
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    });
  }
  for (auto& t : producer_threads) t.join();
  // Let the consumers drain, then close.
  while (fifo.size() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  fifo.close();
  for (auto& t : threads) t.join();

  BOOST_TEST(!overlap.load());
  BOOST_TEST(seen.size() == objects.size());
  std::vector<std::string> expected{"Added/1"};
  for (int v = 2; v <= versions; ++v) expected.push_back("Updated/" + std::to_string(v));
  expected.push_back("Deleted/" + std::to_string(versions));
  for (const auto& [key, deltas] : seen) {
    BOOST_TEST_CONTEXT("key " << key) { BOOST_TEST(deltas == expected, boost::test_tools::per_element()); }
  }
  BOOST_TEST(store.list_keys().empty());
}

}  // namespace

BOOST_AUTO_TEST_CASE(concurrent_producers_and_one_consumer) { run_concurrent(1, 25, 8, 0); }

// Few keys, so that a key gets new deltas while in flight and reaches the front of the queue
// before its processing ends.
BOOST_AUTO_TEST_CASE(concurrent_producers_and_consumers_with_requeues) { run_concurrent(3, 1, 60, 5); }

BOOST_AUTO_TEST_CASE(try_pop_never_waits) {
  delta_fifo fifo;
  int calls = 0;
  auto count = [&](const std::string&, const delta_list&, bool) {
    ++calls;
    return process_result{};
  };
  BOOST_TEST(!fifo.try_pop(count).has_value());  // empty: nothing, at once
  fifo.add(*object::parse(R"({"metadata":{"name":"a","namespace":"n"}})"));
  auto r = fifo.try_pop(count);
  BOOST_REQUIRE(r.has_value());
  BOOST_TEST(!*r);
  BOOST_TEST(calls == 1);
  BOOST_TEST(!fifo.try_pop(count).has_value());
  fifo.close();
  auto closed = fifo.try_pop(count);
  BOOST_REQUIRE(closed.has_value());
  BOOST_TEST(*closed == make_error_code(errc::closed));
}
