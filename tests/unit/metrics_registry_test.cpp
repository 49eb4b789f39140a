#include "informer/metrics/registry.hpp"

#include "informer/metrics/adapters.hpp"

#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace informer::metrics;
using namespace std::chrono_literals;

namespace {

// A parsed scrape: HELP and TYPE per family, and each sample's value by its series as
// `name{a="x",b="y"}` with label values unescaped and labels in the order written.
struct scrape {
  std::map<std::string, std::string> help;
  std::map<std::string, std::string> type;
  std::map<std::string, double> samples;
  std::vector<std::string> order;  // series in output order
};

std::string unescape(std::string_view s, std::size_t& i, char end) {
  std::string out;
  for (; i < s.size() && s[i] != end; ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    BOOST_REQUIRE_LT(i + 1, s.size());
    const char c = s[++i];
    BOOST_REQUIRE_MESSAGE(c == '\\' || c == 'n' || c == '"', "bad escape \\" << c);
    out += c == 'n' ? '\n' : c;
  }
  return out;
}

double number(const std::string& s) {
  if (s == "+Inf") return HUGE_VAL;
  if (s == "-Inf") return -HUGE_VAL;
  if (s == "NaN") return NAN;
  std::size_t used = 0;
  const double v = std::stod(s, &used);
  BOOST_REQUIRE_EQUAL(used, s.size());
  return v;
}

// The text format 0.0.4, strictly enough to fail on malformed output.
scrape parse(const std::string& text) {
  scrape out;
  BOOST_REQUIRE(text.empty() || text.back() == '\n');
  std::size_t start = 0;
  while (start < text.size()) {
    const auto nl = text.find('\n', start);
    const std::string_view line(text.data() + start, nl - start);
    start = nl + 1;
    BOOST_REQUIRE(!line.empty());
    if (line.starts_with("# HELP ")) {
      const auto rest = line.substr(7);
      const auto sp = rest.find(' ');
      std::size_t i = sp + 1;
      out.help[std::string(rest.substr(0, sp))] = unescape(rest, i, '\n');
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      const auto rest = line.substr(7);
      const auto sp = rest.find(' ');
      const std::string t(rest.substr(sp + 1));
      BOOST_REQUIRE(t == "counter" || t == "gauge" || t == "histogram");
      out.type[std::string(rest.substr(0, sp))] = t;
      continue;
    }
    BOOST_REQUIRE(line[0] != '#');
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    std::string series(line.substr(0, i));
    if (line[i] == '{') {
      series += '{';
      ++i;
      bool first = true;
      while (line[i] != '}') {
        if (!first) {
          BOOST_REQUIRE_EQUAL(line[i], ',');
          ++i;
        }
        first = false;
        const auto eq = line.find('=', i);
        const std::string label(line.substr(i, eq - i));
        BOOST_REQUIRE_EQUAL(line[eq + 1], '"');
        i = eq + 2;
        const std::string value = unescape(line, i, '"');
        BOOST_REQUIRE_LT(i, line.size());
        ++i;  // closing quote
        series += (series.back() == '{' ? "" : ",") + label + "=\"" + value + "\"";
      }
      series += '}';
      ++i;
    }
    BOOST_REQUIRE_EQUAL(line[i], ' ');
    BOOST_REQUIRE_MESSAGE(out.samples.count(series) == 0, "duplicate series " << series);
    out.samples[series] = number(std::string(line.substr(i + 1)));
    out.order.push_back(series);
  }
  return out;
}

scrape scrape_of(const registry& r) {
  std::string text;
  r.write_prometheus(text);
  return parse(text);
}

}  // namespace

BOOST_AUTO_TEST_CASE(counters_gauges_and_labels_round_trip_through_the_text_format) {
  registry r;
  auto& requests = r.counter("http_requests_total", "Requests.", {"verb", "code"});
  requests.with({"GET", "200"}).inc();
  requests.with({"GET", "200"}).inc(2);
  requests.with({"PUT", "409"}).inc();
  requests.with({"PUT", "409"}).inc(-5);  // ignored: counters only go up
  auto g = r.gauge("queue_depth", "Depth.").with({});
  g.set(7);
  g.dec(2.5);

  const auto s = scrape_of(r);
  BOOST_TEST(s.type.at("http_requests_total") == "counter");
  BOOST_TEST(s.type.at("queue_depth") == "gauge");
  BOOST_TEST(s.help.at("http_requests_total") == "Requests.");
  BOOST_TEST(s.samples.at("http_requests_total{verb=\"GET\",code=\"200\"}") == 3.0);
  BOOST_TEST(s.samples.at("http_requests_total{verb=\"PUT\",code=\"409\"}") == 1.0);
  BOOST_TEST(s.samples.at("queue_depth") == 4.5);
  BOOST_TEST(s.samples.size() == 3u);
}

BOOST_AUTO_TEST_CASE(label_values_and_help_are_escaped) {
  registry r;
  const std::string nasty = "a\"b\\c\nd}e,f=g";
  r.counter("odd_total", "Help with \\ and\nnewline.", {"v"}).with({nasty}).inc();
  std::string text;
  r.write_prometheus(text);
  BOOST_TEST(text.find("# HELP odd_total Help with \\\\ and\\nnewline.\n") != std::string::npos);
  BOOST_TEST(text.find("odd_total{v=\"a\\\"b\\\\c\\nd}e,f=g\"} 1\n") != std::string::npos, text);
  const auto s = parse(text);
  BOOST_TEST(s.help.at("odd_total") == "Help with \\ and\nnewline.");
  BOOST_TEST(s.samples.at("odd_total{v=\"" + nasty + "\"}") == 1.0);
}

BOOST_AUTO_TEST_CASE(histogram_buckets_are_cumulative_and_end_with_inf) {
  registry r;
  auto h = r.histogram("latency_seconds", "Latency.", {"op"}, {0.1, 1, 10}).with({"get"});
  for (double v : {0.05, 0.1, 0.5, 2.0, 20.0, 30.0}) h.observe(v);
  h.observe(NAN);  // ignored
  BOOST_TEST(h.count() == 6u);

  const auto s = scrape_of(r);
  BOOST_TEST(s.type.at("latency_seconds") == "histogram");
  BOOST_TEST(s.samples.at("latency_seconds_bucket{op=\"get\",le=\"0.1\"}") == 2.0);  // le is inclusive
  BOOST_TEST(s.samples.at("latency_seconds_bucket{op=\"get\",le=\"1\"}") == 3.0);
  BOOST_TEST(s.samples.at("latency_seconds_bucket{op=\"get\",le=\"10\"}") == 4.0);
  BOOST_TEST(s.samples.at("latency_seconds_bucket{op=\"get\",le=\"+Inf\"}") == 6.0);
  BOOST_TEST(s.samples.at("latency_seconds_count{op=\"get\"}") == 6.0);
  BOOST_TEST(s.samples.at("latency_seconds_sum{op=\"get\"}") == 52.65, boost::test_tools::tolerance(1e-9));
  // Buckets come in increasing order, then _sum and _count.
  const std::vector<std::string> expected{"latency_seconds_bucket{op=\"get\",le=\"0.1\"}",
                                          "latency_seconds_bucket{op=\"get\",le=\"1\"}",
                                          "latency_seconds_bucket{op=\"get\",le=\"10\"}",
                                          "latency_seconds_bucket{op=\"get\",le=\"+Inf\"}",
                                          "latency_seconds_sum{op=\"get\"}",
                                          "latency_seconds_count{op=\"get\"}"};
  BOOST_TEST(s.order == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(families_are_found_again_and_conflicts_are_refused) {
  registry r;
  auto& a = r.counter("x_total", "X.", {"name"});
  BOOST_TEST(&r.counter("x_total", "X.", {"name"}) == &a);
  BOOST_CHECK_THROW(r.gauge("x_total", "X.", {"name"}), std::invalid_argument);
  BOOST_CHECK_THROW(r.counter("x_total", "X.", {"other"}), std::invalid_argument);
  BOOST_CHECK_THROW(r.counter("1bad", "B."), std::invalid_argument);
  BOOST_CHECK_THROW(r.counter("bad-name", "B."), std::invalid_argument);
  BOOST_CHECK_THROW(r.counter("ok_total", "B.", {"__reserved"}), std::invalid_argument);
  BOOST_CHECK_THROW(r.counter("ok_total", "B.", {"a", "a"}), std::invalid_argument);
  BOOST_CHECK_THROW(r.histogram("h", "H.", {"le"}), std::invalid_argument);
  BOOST_CHECK_THROW(r.histogram("h", "H.", {}, {1, 1}), std::invalid_argument);
  BOOST_CHECK_THROW(a.with({}), std::invalid_argument);
  BOOST_CHECK_THROW(a.with({"a", "b"}), std::invalid_argument);
  r.histogram("h2", "H.", {}, {1, 2});
  BOOST_CHECK_THROW(r.histogram("h2", "H.", {}, {1, 3}), std::invalid_argument);
  // Nothing half-registered by the refusals.
  const auto s = scrape_of(r);
  BOOST_TEST(s.type.size() == 2u);
}

BOOST_AUTO_TEST_CASE(callback_gauges_are_read_at_scrape_and_vanish_on_nullopt) {
  registry r;
  std::optional<double> value = 3;
  r.gauge("store_size", "Size.", {"name"}).set_callback({"pods"}, [&] { return value; });
  BOOST_TEST(scrape_of(r).samples.at("store_size{name=\"pods\"}") == 3.0);
  value = 5;
  BOOST_TEST(scrape_of(r).samples.at("store_size{name=\"pods\"}") == 5.0);
  value.reset();
  BOOST_TEST(scrape_of(r).samples.count("store_size{name=\"pods\"}") == 0u);
}

BOOST_AUTO_TEST_CASE(held_handles_count_exactly_from_many_threads) {
  registry r;
  auto c = r.counter("hits_total", "Hits.").with({});
  auto h = r.histogram("sizes", "Sizes.", {}, {10}).with({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        c.inc();
        h.observe(i % 20);
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto s = scrape_of(r);
  BOOST_TEST(s.samples.at("hits_total") == 400000.0);
  BOOST_TEST(s.samples.at("sizes_count") == 400000.0);
  BOOST_TEST(s.samples.at("sizes_bucket{le=\"10\"}") == 220000.0);  // 0..10 of every 20
}

BOOST_AUTO_TEST_CASE(workqueue_adapter_reports_under_controller_runtime_names) {
  registry r;
  informer::workqueue q({.metrics = workqueue_metrics(r, "pods")});
  q.add("a");
  q.add("b");
  q.add("a");  // collapsed
  auto key = q.get();
  BOOST_REQUIRE(key);
  q.done(*key);
  q.add_rate_limited("c");
  const auto s = scrape_of(r);
  BOOST_TEST(s.samples.at("workqueue_adds_total{name=\"pods\"}") == 2.0);
  BOOST_TEST(s.samples.at("workqueue_depth{name=\"pods\"}") == 1.0);
  BOOST_TEST(s.samples.at("workqueue_retries_total{name=\"pods\"}") == 1.0);
  BOOST_TEST(s.samples.at("workqueue_queue_duration_seconds_count{name=\"pods\"}") == 1.0);
  BOOST_TEST(s.samples.at("workqueue_work_duration_seconds_count{name=\"pods\"}") == 1.0);
  BOOST_TEST(s.samples.at("workqueue_work_duration_seconds_bucket{name=\"pods\",le=\"+Inf\"}") == 1.0);
}

BOOST_AUTO_TEST_CASE(workqueue_progress_gauges_show_a_key_in_progress) {
  registry r;
  {
    informer::workqueue q;
    informer::metrics::register_workqueue_progress_metrics(r, q, "pods");
    BOOST_TEST(scrape_of(r).samples.at("workqueue_unfinished_work_seconds{name=\"pods\"}") == 0.0);
    q.add("a");
    const auto key = q.get();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto s = scrape_of(r);
    BOOST_TEST(s.samples.at("workqueue_unfinished_work_seconds{name=\"pods\"}") >= 0.02);
    BOOST_TEST(s.samples.at("workqueue_longest_running_processor_seconds{name=\"pods\"}") >= 0.02);
    q.done(*key);
    BOOST_TEST(scrape_of(r).samples.at("workqueue_longest_running_processor_seconds{name=\"pods\"}") == 0.0);
  }
  BOOST_TEST(scrape_of(r).samples.count("workqueue_unfinished_work_seconds{name=\"pods\"}") == 0u);  // queue gone
}
