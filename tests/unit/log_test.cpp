#include "informer/core/log.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace informer;

namespace {

// Captures records for one test case and restores the logger afterwards.
struct capture {
  capture() : previous_level(get_log_level()) {
    previous_sink = set_log_sink([this](const log_record& r) {
      std::lock_guard lock(mutex);
      lines.push_back(std::string(to_string(r.level)) + " " + std::string(r.component) + ": " + std::string(r.message));
    });
  }
  ~capture() {
    set_log_sink(previous_sink);
    set_log_level(previous_level);
  }
  std::vector<std::string> taken() {
    std::lock_guard lock(mutex);
    return lines;
  }
  log_level previous_level;
  log_sink previous_sink;
  std::mutex mutex;
  std::vector<std::string> lines;
};

}  // namespace

BOOST_AUTO_TEST_CASE(records_below_the_level_are_dropped) {
  capture c;
  set_log_level(log_level::warning);
  BOOST_TEST(!log_enabled(log_level::info));
  BOOST_TEST(log_enabled(log_level::error));
  log(log_level::info, "reflector", "relisting");
  log(log_level::warning, "reflector", "watch failed");
  log(log_level::error, "etcd", "gone");
  set_log_level(log_level::off);
  BOOST_TEST(!log_enabled(log_level::error));
  log(log_level::error, "etcd", "dropped");
  set_log_level(log_level::debug);
  log(log_level::debug, "http_client", "retrying");
  BOOST_TEST(c.taken() == (std::vector<std::string>{"warning reflector: watch failed", "error etcd: gone",
                                                    "debug http_client: retrying"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(an_empty_or_throwing_sink_is_harmless) {
  capture c;
  set_log_sink({});
  log(log_level::error, "x", "nobody hears this");
  set_log_sink([](const log_record&) { throw std::runtime_error("sink failed"); });
  BOOST_CHECK_NO_THROW(log(log_level::error, "x", "thrown away"));
}

BOOST_AUTO_TEST_CASE(the_default_sink_writes_one_line) {
  // Not captured: just that it formats without failing (its output goes to the test's stderr).
  BOOST_CHECK_NO_THROW(stderr_log_sink()(
      log_record{.level = log_level::warning, .component = "log_test", .message = "a line on stderr", .time = {}}));
}

BOOST_AUTO_TEST_CASE(credentials_are_redacted) {
  const auto r = [](std::string_view s) { return redact(s); };
  BOOST_TEST(r("GET /api: 401 with Authorization: Bearer abc.def.ghi") ==
             "GET /api: 401 with Authorization: [redacted]");
  BOOST_TEST(r("sent bearer s3cr3t-token to the server") == "sent bearer [redacted] to the server");
  BOOST_TEST(r("Proxy-Authorization: Basic dXNlcjpwYXNz\r\nHost: x") == "Proxy-Authorization: [redacted]\r\nHost: x");
  BOOST_TEST(r(R"({"token":"abc","expirationTimestamp":"2026"})") ==
             R"({"token":"[redacted]","expirationTimestamp":"2026"})");
  BOOST_TEST(r("password=hunter2&user=bob") == "password=[redacted]&user=bob");
  BOOST_TEST(r("client-key-data: LS0tLS1CRUdJTg==") == "client-key-data: [redacted]");
  BOOST_TEST(r("id-token=eyJhbGciOi") == "id-token=[redacted]");
  BOOST_TEST(r("proxy http://alice:wonderland@proxy:3128 refused") == "proxy http://[redacted]@proxy:3128 refused");
  BOOST_TEST(r("key: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY----- end") ==
             "key: [redacted private key] end");
  BOOST_TEST(r("-----BEGIN PRIVATE KEY-----\nMHcCAQEE") == "[redacted private key]");
  BOOST_TEST(r(R"({"Authorization": "abc123", "x": 1})") == R"({"Authorization": "[redacted]", "x": 1})");
  BOOST_TEST(r(R"(password: "p w, x" next)") == R"(password: "[redacted]" next)");
  BOOST_TEST(r("Cookie: session=abc; theme=dark\nnext") == "Cookie: [redacted]\nnext");
  BOOST_TEST(r("secretAccessKey=AKIA/abc apiKey: k") == "secretAccessKey=[redacted] apiKey: [redacted]");
  BOOST_TEST(r("tokens: 3, token file /var/run/token: not found") == "tokens: 3, token file /var/run/token: not found");
  // Ordinary text is left alone, certificates included.
  const std::string plain =
      "configmaps in default: the watch received nothing for 90000 ms; reopening it from resourceVersion 42 "
      "(the continue token expired) -----BEGIN CERTIFICATE-----";
  BOOST_TEST(r(plain) == plain);
  BOOST_TEST(r(std::string(10000, 'x')).size() < 4200u);
}

BOOST_AUTO_TEST_CASE(redaction_is_linear_and_shallow_on_hostile_text) {
  // Text from servers lands in messages: no input may stall or overflow a thread's stack.
  std::string dashes;
  while (dashes.size() < 4096) dashes += "a-";
  std::string header = "Authorization: " + std::string(4000, 'x');
  std::string tokens;
  while (tokens.size() < 4096) tokens += "token=";
  std::string urls;
  while (urls.size() < 4096) urls += "://";
  const auto started = std::chrono::steady_clock::now();
  for (const auto& text : {dashes, header, tokens, urls, std::string(4096, '"')}) {
    std::string out;
    std::thread small([&] { out = redact(text); });  // a thread's default stack; no recursion needed
    small.join();
    BOOST_TEST(out.size() <= text.size() + 20);
  }
  BOOST_TEST((std::chrono::steady_clock::now() - started < std::chrono::seconds(2)));
  BOOST_TEST(redact(header) == "Authorization: [redacted]");
}

BOOST_AUTO_TEST_CASE(messages_pass_the_redaction_on_their_way_to_the_sink) {
  capture c;
  set_log_level(log_level::info);
  log(log_level::warning, "http_client", "401 Unauthorized; sent Authorization: Bearer topsecret");
  const auto lines = c.taken();
  BOOST_TEST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(lines[0].find("topsecret") == std::string::npos, lines[0]);
  BOOST_TEST(lines[0].find("401 Unauthorized") != std::string::npos, lines[0]);
}

BOOST_AUTO_TEST_CASE(concurrent_logging_and_sink_changes) {
  capture c;
  set_log_level(log_level::info);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 200; ++i) log(log_level::info, "t", std::to_string(t));
    });
  }
  for (int i = 0; i < 50; ++i) set_log_level(i % 2 == 0 ? log_level::info : log_level::debug);
  for (auto& t : threads) t.join();
  BOOST_TEST(c.taken().size() == 800u);
}
