#include "cache/detail/posting_list.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <random>
#include <set>
#include <vector>

using informer::detail::posting_list;

namespace {

std::vector<std::uint32_t> contents(const posting_list& list) {
  std::vector<std::uint32_t> out;
  list.for_each([&](std::uint32_t s) { out.push_back(s); });
  std::vector<std::uint32_t> appended;
  list.append_to(appended);
  BOOST_TEST(appended == out);
  return out;
}

std::vector<std::uint32_t> contents(const std::set<std::uint32_t>& set) { return {set.begin(), set.end()}; }

}  // namespace

BOOST_AUTO_TEST_CASE(insert_and_erase_report_whether_they_changed_the_set) {
  posting_list list;
  BOOST_TEST(list.empty());
  BOOST_TEST(!list.erase(3));
  BOOST_TEST(list.insert(3));
  BOOST_TEST(list.insert(1));
  BOOST_TEST(!list.insert(3));
  BOOST_TEST(list.size() == 2u);
  BOOST_TEST(!list.erase(2));
  BOOST_TEST(!list.erase(4));
  BOOST_TEST(list.erase(3));
  BOOST_TEST(contents(list) == (std::vector<std::uint32_t>{1}));
  BOOST_TEST(list.erase(1));
  BOOST_TEST(list.empty());
  BOOST_TEST(contents(list).empty());
}

// Many blocks, split and merged in every order: the list always iterates as a sorted set would.
BOOST_AUTO_TEST_CASE(matches_a_sorted_set_through_splits_and_merges) {
  std::mt19937 random(12);
  posting_list list;
  std::set<std::uint32_t> expected;
  constexpr std::uint32_t universe = 20 * posting_list::block_capacity;
  for (std::uint32_t s = 0; s < universe; s += 2) {  // filled in order, as the indexer fills a list
    BOOST_TEST(list.insert(s));
    expected.insert(s);
  }
  BOOST_TEST(contents(list) == contents(expected));
  for (int round = 0; round < 6; ++round) {
    // Insert-heavy rounds split blocks in the middle; erase-heavy ones empty and merge them.
    const bool inserting = round % 2 == 0;
    for (int k = 0; k < 4000; ++k) {
      const auto s = static_cast<std::uint32_t>(random() % universe);
      if (random() % 4 != 0 ? inserting : !inserting) {
        BOOST_TEST(list.insert(s) == expected.insert(s).second);
      } else {
        BOOST_TEST(list.erase(s) == (expected.erase(s) == 1));
      }
    }
    BOOST_TEST(list.size() == expected.size());
    BOOST_TEST(contents(list) == contents(expected));
  }
  for (auto s : contents(expected)) BOOST_TEST(list.erase(s));
  BOOST_TEST(list.empty());
}

// Filled in order, blocks take about four bytes per number, like the flat array they replace;
// after half the numbers left, no more than they took before.
BOOST_AUTO_TEST_CASE(memory_stays_close_to_four_bytes_per_number) {
  posting_list list;
  constexpr std::uint32_t n = 100000;
  for (std::uint32_t s = 0; s < n; ++s) list.insert(s);
  BOOST_TEST(list.memory_usage() >= n * sizeof(std::uint32_t));
  BOOST_TEST(list.memory_usage() < n * sizeof(std::uint32_t) * 5 / 4);
  for (std::uint32_t s = 0; s < n; s += 2) list.erase(s);  // half the numbers leave
  BOOST_TEST(list.memory_usage() < n * sizeof(std::uint32_t) * 5 / 4);
}
