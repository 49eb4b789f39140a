#include "informer/apiserver/exec_credential.hpp"

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <unistd.h>

#include "informer/apiserver/kubeconfig.hpp"
#include "io_threads.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <thread>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using informer::errc;
using informer::exec_config;
using informer::exec_credential;
using informer::exec_credential_options;
using informer::exec_credential_provider;
using informer::exec_interactive_mode;

namespace {

constexpr const char* v1 = "client.authentication.k8s.io/v1";
constexpr const char* v1beta1 = "client.authentication.k8s.io/v1beta1";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t lines_in(const fs::path& p) {
  const std::string text = read(p);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// An ExecCredential answer, as a plugin prints it.
std::string answer(const std::string& api_version, const std::string& token, const std::string& expiry = "") {
  std::string status = "\"token\":\"" + token + "\"";
  if (!expiry.empty()) status += ",\"expirationTimestamp\":\"" + expiry + "\"";
  return "{\"apiVersion\":\"" + api_version + "\",\"kind\":\"ExecCredential\",\"status\":{" + status + "}}";
}

struct fixture {
  fixture() {
    std::string pattern = (fs::temp_directory_path() / "exec-credential-test-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
  }
  ~fixture() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }

  // A bash script `name` in the test folder whose body is `body`; returns its path.
  std::string script(const std::string& name, const std::string& body) const {
    const fs::path p = dir / name;
    {
      std::ofstream out(p, std::ios::trunc);
      out << "#!/bin/bash\n" << body;
    }
    fs::permissions(p, fs::perms::owner_all);
    return p.string();
  }

  // A plugin that counts its runs in `counter` and answers `token` (with `expiry` when given).
  std::string counting_plugin(const std::string& token, const std::string& expiry = "") const {
    return script("counting.sh",
                  "echo run >> '" + counter().string() + "'\ncat <<'EOF'\n" + answer(v1, token, expiry) + "\nEOF\n");
  }

  fs::path counter() const { return dir / "runs.txt"; }

  std::shared_ptr<exec_credential_provider> provider(exec_config exec, exec_credential_options options = {}) {
    if (exec.api_version.empty()) exec.api_version = v1;
    options.exec = std::move(exec);
    auto p = exec_credential_provider::create(io.ctx.get_executor(), std::move(options));
    BOOST_TEST_REQUIRE(p.has_value(), p.error().what());
    return *p;
  }

  static std::pair<informer::error, exec_credential> get(exec_credential_provider& p) {
    std::promise<std::pair<informer::error, exec_credential>> done;
    auto f = done.get_future();
    p.async_get([&done](informer::error e, exec_credential c) { done.set_value({std::move(e), std::move(c)}); });
    BOOST_TEST_REQUIRE((f.wait_for(std::chrono::seconds(30)) == std::future_status::ready));
    return f.get();
  }

  informer::testing::io_threads io;
  fs::path dir;
};

std::string kubeconfig_with(const std::string& exec_block, const std::string& cluster_extra = "") {
  return "apiVersion: v1\nkind: Config\n"
         "clusters:\n"
         "- name: c\n"
         "  cluster:\n"
         "    server: https://10.1.2.3:6443\n"
         "    insecure-skip-tls-verify: true\n" +
         cluster_extra +
         "users:\n"
         "- name: u\n"
         "  user:\n"
         "    exec:\n" +
         exec_block +
         "contexts:\n"
         "- name: x\n"
         "  context: {cluster: c, user: u}\n"
         "current-context: x\n";
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(exec_credential_suite, fixture)

BOOST_AUTO_TEST_CASE(kubeconfig_reads_a_v1_exec_user) {
  auto c = informer::parse_kubeconfig(kubeconfig_with("      apiVersion: client.authentication.k8s.io/v1\n"
                                                      "      command: aws\n"
                                                      "      args: [eks, get-token, --cluster-name, prod]\n"
                                                      "      env:\n"
                                                      "      - name: AWS_PROFILE\n"
                                                      "        value: admin\n"
                                                      "      - name: EMPTY\n"
                                                      "      installHint: install the aws CLI\n"
                                                      "      provideClusterInfo: true\n"
                                                      "      interactiveMode: Never\n",
                                                      "    extensions:\n"
                                                      "    - name: other\n"
                                                      "      extension: {a: 1}\n"
                                                      "    - name: client.authentication.k8s.io/exec\n"
                                                      "      extension:\n"
                                                      "        audience: \"42\"\n"
                                                      "        port: 42\n"
                                                      "        on: true\n"),
                                      dir);
  BOOST_TEST_REQUIRE(c.has_value(), c.error().what());
  BOOST_TEST_REQUIRE(c->exec.has_value());
  const exec_config& e = *c->exec;
  BOOST_TEST(e.api_version == v1);
  BOOST_TEST(e.command == "aws");  // a bare name stays for the $PATH lookup
  BOOST_TEST((e.args == std::vector<std::string>{"eks", "get-token", "--cluster-name", "prod"}));
  BOOST_TEST_REQUIRE(e.env.size() == 2u);
  BOOST_TEST(e.env[0].first == "AWS_PROFILE");
  BOOST_TEST(e.env[0].second == "admin");
  BOOST_TEST(e.env[1].first == "EMPTY");
  BOOST_TEST(e.env[1].second == "");
  BOOST_TEST(e.install_hint == "install the aws CLI");
  BOOST_TEST(e.provide_cluster_info);
  BOOST_TEST((e.interactive_mode == exec_interactive_mode::never));
  const auto config = boost::json::parse(e.cluster_config);
  BOOST_TEST(config.at("audience").as_string() == "42");
  BOOST_TEST(config.at("port").as_int64() == 42);
  BOOST_TEST(config.at("on").as_bool());
}

BOOST_AUTO_TEST_CASE(kubeconfig_v1beta1_defaults_interactive_mode_and_resolves_relative_commands) {
  auto c = informer::parse_kubeconfig(kubeconfig_with("      apiVersion: client.authentication.k8s.io/v1beta1\n"
                                                      "      command: ./bin/plugin\n"),
                                      dir);
  BOOST_TEST_REQUIRE(c.has_value(), c.error().what());
  BOOST_TEST_REQUIRE(c->exec.has_value());
  BOOST_TEST((c->exec->interactive_mode == exec_interactive_mode::if_available));
  BOOST_TEST(c->exec->command == (dir / "./bin/plugin").string());
  BOOST_TEST(!c->exec->provide_cluster_info);
  BOOST_TEST(c->exec->cluster_config.empty());
}

BOOST_AUTO_TEST_CASE(kubeconfig_refuses_bad_exec_blocks) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"      apiVersion: client.authentication.k8s.io/v1\n      command: p\n", "interactiveMode is required"},
      {"      command: p\n      interactiveMode: Never\n", "apiVersion is required"},
      {"      apiVersion: client.authentication.k8s.io/v1alpha1\n      command: p\n", "not supported"},
      {"      apiVersion: client.authentication.k8s.io/v1\n      interactiveMode: Never\n", "command is required"},
      {"      apiVersion: client.authentication.k8s.io/v1\n      command: p\n      interactiveMode: Sometimes\n",
       "Sometimes"},
      {"      apiVersion: client.authentication.k8s.io/v1\n      command: p\n      interactiveMode: Never\n"
       "      env: [{value: x}]\n",
       "env[0] has no name"},
  };
  for (const auto& [block, expected] : cases) {
    auto c = informer::parse_kubeconfig(kubeconfig_with(block), dir);
    BOOST_TEST_REQUIRE(c.has_error(), block);
    BOOST_TEST(c.error().code() == make_error_code(errc::invalid_config));
    BOOST_TEST(contains(c.error().detail(), expected), c.error().detail());
  }
}

BOOST_AUTO_TEST_CASE(answers_are_parsed_and_checked) {
  auto ok = informer::parse_exec_credential(answer(v1, "t0k", "2030-01-02T03:04:05.5+01:00"), v1);
  BOOST_TEST_REQUIRE(ok.has_value(), ok.error().what());
  BOOST_TEST(ok->token == "t0k");
  BOOST_TEST_REQUIRE(ok->expiry.has_value());
  BOOST_TEST(rfc3339(*ok->expiry) == "2030-01-02T02:04:05Z");
  auto no_expiry = informer::parse_exec_credential(answer(v1beta1, "t0k"), v1beta1);
  BOOST_TEST_REQUIRE(no_expiry.has_value());
  BOOST_TEST(!no_expiry->expiry.has_value());

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"not json", "not a JSON"},
      {answer(v1beta1, "s3cret"), "apiVersion"},
      {"{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"Other\",\"status\":{\"token\":\"s3cret\"}}",
       "kind"},
      {"{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\"}", "no status"},
      {answer(v1, ""), "neither status.token"},
      {answer(v1, "s3cret", "tomorrow"), "RFC 3339"},
      {"{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":"
       "{\"clientCertificateData\":\"x\",\"clientKeyData\":\"y\"}}",
       "client certificate"},
      {"{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":"
       "{\"token\":\"s3cret\",\"clientCertificateData\":\"x\"}}",
       "only one of"},
  };
  for (const auto& [text, expected] : bad) {
    auto r = informer::parse_exec_credential(text, v1);
    BOOST_TEST_REQUIRE(r.has_error(), text);
    BOOST_TEST(r.error().code() == make_error_code(errc::invalid_config));
    BOOST_TEST(contains(r.error().detail(), expected), r.error().detail());
    BOOST_TEST(!contains(r.error().detail(), "s3cret"), "the token leaked: " << r.error().detail());
  }
}

BOOST_AUTO_TEST_CASE(a_plugin_gives_its_token_and_sees_its_environment) {
  ::setenv("EXEC_TEST_INHERITED", "from-parent", 1);
  auto p = provider({.command = script("ok.sh", "echo \"{\\\"apiVersion\\\":\\\"" + std::string{v1} +
                                                    "\\\",\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{"
                                                    "\\\"token\\\":\\\"$1-$MY_VAR-$EXEC_TEST_INHERITED\\\"}}\"\n"),
                     .args = {"arg"},
                     .env = {{"MY_VAR", "ignored"}, {"MY_VAR", "mine"}},
                     .interactive_mode = exec_interactive_mode::never});
  auto [e, c] = get(*p);
  BOOST_TEST_REQUIRE(!e, e.what());
  BOOST_TEST(c.token == "arg-mine-from-parent");
  BOOST_TEST(!c.expiry.has_value());
  ::unsetenv("EXEC_TEST_INHERITED");
}

BOOST_AUTO_TEST_CASE(a_plugin_inherits_no_descriptor_but_its_pipes_and_reads_dev_null) {
  // As a socket Asio opened: no close-on-exec.
  const int inheritable = ::open("/dev/null", O_RDONLY);
  BOOST_TEST_REQUIRE(inheritable > 2);
  auto p = provider({.command = script("fds.sh",
                                       "fds=$(ls /proc/self/fd | tr '\\n' ' ')\n"
                                       "in=$(readlink /proc/self/fd/0)\n"
                                       "echo \"{\\\"apiVersion\\\":\\\"" +
                                           std::string{v1} +
                                           "\\\",\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{"
                                           "\\\"token\\\":\\\"$in [$fds]\\\"}}\"\n"),
                     .interactive_mode = exec_interactive_mode::never});
  auto [e, c] = get(*p);
  ::close(inheritable);
  BOOST_TEST_REQUIRE(!e, e.what());
  // 0-2, and the descriptor `ls` opened to read /proc/self/fd.
  BOOST_TEST(c.token.starts_with("/dev/null [0 1 2 3 ]"), c.token);
}

BOOST_AUTO_TEST_CASE(a_failing_plugin_names_its_exit_code_and_stderr) {
  auto p = provider(
      {.command = script("fail.sh", "echo starting >&2\necho 'debug: token=s3cr3t' >&2\necho boom >&2\nexit 3\n")});
  auto [e, c] = get(*p);
  BOOST_TEST_REQUIRE(static_cast<bool>(e));
  BOOST_TEST(e.code() == make_error_code(errc::invalid_config));
  BOOST_TEST(contains(e.detail(), "exited with code 3"), e.detail());
  BOOST_TEST(contains(e.detail(), "boom"), e.detail());
  BOOST_TEST(!contains(e.detail(), "s3cr3t"), e.detail());  // the tail is redacted
  BOOST_TEST(p->runs() == 1u);
  auto [again, c2] = get(*p);  // a failure is not cached
  BOOST_TEST(static_cast<bool>(again));
  BOOST_TEST(p->runs() == 2u);
}

BOOST_AUTO_TEST_CASE(a_hanging_plugin_is_killed_after_the_timeout) {
  const fs::path pid_file = dir / "grandchild.pid";
  // The grandchild holds the pipes open too: killing the process group must end it.
  auto p = provider(
      {.command = script("hang.sh", "echo waiting >&2\nsleep 30 &\necho $! > '" + pid_file.string() + "'\nsleep 30\n"),
       .timeout = std::chrono::milliseconds(300)});
  const auto start = std::chrono::steady_clock::now();
  auto [e, c] = get(*p);
  const auto took = std::chrono::steady_clock::now() - start;
  BOOST_TEST_REQUIRE(static_cast<bool>(e));
  BOOST_TEST(contains(e.detail(), "did not finish within 300 ms"), e.detail());
  BOOST_TEST(contains(e.detail(), "waiting"), e.detail());
  BOOST_TEST(took < std::chrono::seconds(5));
  const pid_t grandchild = std::stoi(read(pid_file));
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    // Dead: no such process, or a zombie its new parent has not reaped yet.
    const std::string stat = read("/proc/" + std::to_string(grandchild) + "/stat");
    gone = ::kill(grandchild, 0) != 0 || contains(stat, ") Z ");
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  BOOST_TEST(gone, "the plugin's background child " << grandchild << " survived the timeout");
}

BOOST_AUTO_TEST_CASE(a_missing_command_shows_the_install_hint) {
  auto p = provider({.command = "informer-no-such-plugin", .install_hint = "brew install informer-no-such-plugin"});
  auto [e, c] = get(*p);
  BOOST_TEST_REQUIRE(static_cast<bool>(e));
  BOOST_TEST((e.code() == boost::system::errc::no_such_file_or_directory), e.code().message());
  BOOST_TEST(contains(e.detail(), "not found"), e.detail());
  BOOST_TEST(contains(e.detail(), "brew install informer-no-such-plugin"), e.detail());
}

BOOST_AUTO_TEST_CASE(interactive_always_is_refused_without_a_terminal) {
  auto p = provider({.command = counting_plugin("t"), .interactive_mode = exec_interactive_mode::always});
  auto [e, c] = get(*p);
  BOOST_TEST_REQUIRE(static_cast<bool>(e));
  BOOST_TEST(contains(e.detail(), "terminal"), e.detail());
  BOOST_TEST(!fs::exists(counter()));
}

BOOST_AUTO_TEST_CASE(concurrent_callers_share_one_run) {
  auto p = provider({.command = script("slow.sh", "echo run >> '" + counter().string() + "'\nsleep 0.3\ncat <<'EOF'\n" +
                                                      answer(v1, "shared") + "\nEOF\n")});
  constexpr int callers = 20;
  std::vector<std::promise<std::pair<informer::error, exec_credential>>> done(callers);
  for (auto& d : done) {
    p->async_get([&d](informer::error e, exec_credential c) { d.set_value({std::move(e), std::move(c)}); });
  }
  for (auto& d : done) {
    auto f = d.get_future();
    BOOST_TEST_REQUIRE((f.wait_for(std::chrono::seconds(30)) == std::future_status::ready));
    auto [e, c] = f.get();
    BOOST_TEST(!e, e.what());
    BOOST_TEST(c.token == "shared");
  }
  BOOST_TEST(lines_in(counter()) == 1u);
  BOOST_TEST(p->runs() == 1u);
  auto [e, c] = get(*p);  // cached: no expiry
  BOOST_TEST(c.token == "shared");
  BOOST_TEST(lines_in(counter()) == 1u);
}

BOOST_AUTO_TEST_CASE(expired_or_expiring_credentials_are_renewed) {
  const auto now = std::chrono::system_clock::now();
  for (const auto& expiry : {now - std::chrono::hours(1), now + std::chrono::seconds(5)}) {
    fs::remove(counter());
    auto p = provider({.command = counting_plugin("t", rfc3339(expiry))},
                      exec_credential_options{.expiry_margin = std::chrono::seconds(10)});
    BOOST_TEST(!get(*p).first);
    BOOST_TEST(!get(*p).first);
    BOOST_TEST(lines_in(counter()) == 2u);
  }
  fs::remove(counter());
  auto p = provider({.command = counting_plugin("t", rfc3339(now + std::chrono::hours(1)))});
  BOOST_TEST(!get(*p).first);
  BOOST_TEST(!get(*p).first);
  BOOST_TEST(lines_in(counter()) == 1u);
}

BOOST_AUTO_TEST_CASE(invalidate_renews_only_the_refused_token) {
  auto p = provider({.command = counting_plugin("t1")});
  BOOST_TEST(get(*p).second.token == "t1");
  p->invalidate(exec_credential{.token = "some-older-token"});  // renewed meanwhile: kept
  BOOST_TEST(get(*p).second.token == "t1");
  BOOST_TEST(lines_in(counter()) == 1u);
  p->invalidate(exec_credential{.token = "t1"});
  BOOST_TEST(get(*p).second.token == "t1");
  BOOST_TEST(lines_in(counter()) == 2u);
}

BOOST_AUTO_TEST_CASE(cluster_info_is_passed_when_asked) {
  const fs::path info = dir / "info.json";
  const std::string body = "printf '%s' \"$KUBERNETES_EXEC_INFO\" > '" + info.string() + "'\ncat <<'EOF'\n" +
                           answer(v1beta1, "t") + "\nEOF\n";
  auto p = provider({.api_version = v1beta1,
                     .command = script("info.sh", body),
                     .provide_cluster_info = true,
                     .cluster_config = "{\"audience\":\"prod\"}"},
                    exec_credential_options{.cluster = {.server = "https://example:6443",
                                                        .ca_pem = "PEM",
                                                        .tls_server_name = "api.example",
                                                        .insecure_skip_tls_verify = false}});
  BOOST_TEST_REQUIRE(!get(*p).first);
  const auto v = boost::json::parse(read(info));
  BOOST_TEST(v.at("apiVersion").as_string() == v1beta1);
  BOOST_TEST(v.at("kind").as_string() == "ExecCredential");
  BOOST_TEST(v.at("spec").at("interactive").as_bool() == false);
  const auto& cluster = v.at("spec").at("cluster");
  BOOST_TEST(cluster.at("server").as_string() == "https://example:6443");
  BOOST_TEST(cluster.at("certificate-authority-data").as_string() == "UEVN");  // base64("PEM")
  BOOST_TEST(cluster.at("tls-server-name").as_string() == "api.example");
  BOOST_TEST(cluster.at("config").at("audience").as_string() == "prod");

  auto without = provider({.command = script("info2.sh", "printf '%s' \"$KUBERNETES_EXEC_INFO\" > '" + info.string() +
                                                             "'\ncat <<'EOF'\n" + answer(v1, "t") + "\nEOF\n")});
  BOOST_TEST_REQUIRE(!get(*without).first);
  const auto w = boost::json::parse(read(info));
  BOOST_TEST(!w.at("spec").as_object().contains("cluster"));
}

BOOST_AUTO_TEST_SUITE_END()
