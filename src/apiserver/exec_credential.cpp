#include "informer/apiserver/exec_credential.hpp"

#include "informer/core/log.hpp"

#include "apiserver/detail/base64.hpp"
#include "core/detail/async_completion.hpp"
#include "core/detail/rfc3339.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <tuple>
#include <utility>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;  // NOLINT: POSIX declares it nowhere else

namespace informer {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace asio::experimental::awaitable_operators;
using clock = std::chrono::steady_clock;

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view api_v1 = "client.authentication.k8s.io/v1";
constexpr std::string_view api_v1beta1 = "client.authentication.k8s.io/v1beta1";
constexpr std::size_t max_stdout = 1 << 20;
constexpr std::size_t stderr_tail_size = 2048;

informer::error invalid(std::string detail) { return {errc::invalid_config, std::move(detail)}; }

std::string exec_info(const exec_config& exec, const exec_cluster_info& cluster) {
  json::object spec{{"interactive", false}};
  if (exec.provide_cluster_info) {
    json::object c{{"server", cluster.server}};
    if (!cluster.tls_server_name.empty()) c["tls-server-name"] = cluster.tls_server_name;
    if (cluster.insecure_skip_tls_verify) c["insecure-skip-tls-verify"] = true;
    if (!cluster.ca_pem.empty()) c["certificate-authority-data"] = detail::encode_base64(cluster.ca_pem);
    if (!exec.cluster_config.empty()) {
      boost::system::error_code ec;
      auto v = json::parse(exec.cluster_config, ec);
      if (!ec) c["config"] = std::move(v);
    }
    spec["cluster"] = std::move(c);
  }
  return json::serialize(json::object{{"apiVersion", exec.api_version}, {"kind", "ExecCredential"}, {"spec", spec}});
}

// This process's environment, then the plugin's variables, then KUBERNETES_EXEC_INFO; a later
// value of a name replaces an earlier one.
std::vector<std::string> plugin_environment(const exec_config& exec, const std::string& info) {
  std::vector<std::string> env;
  auto set = [&](std::string_view name, std::string_view value) {
    std::string entry = std::string{name} + "=" + std::string{value};
    for (auto& e : env) {
      if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
        e = std::move(entry);
        return;
      }
    }
    env.push_back(std::move(entry));
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  for (const auto& [name, value] : exec.env) set(name, value);
  set("KUBERNETES_EXEC_INFO", info);
  return env;
}

std::string plugin_name(const exec_config& exec) { return "exec plugin \"" + exec.command + "\""; }

std::string with_stderr(std::string detail, const std::string& tail) {
  if (tail.empty()) return detail + " (no standard error output)";
  // Redacted: a plugin in a debug mode may print the very credentials it hands out.
  return detail + "; its standard error ends: " + redact(tail);
}

// A child process and the ends of its output pipes, until reaped.
struct child {
  pid_t pid = -1;
  int out = -1;
  int err = -1;
};

detailed_result<child> spawn(const exec_config& exec, const std::string& info) {
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    const int e = errno;
    for (int fd : {out[0], out[1], err[0], err[1]})
      if (fd >= 0) ::close(fd);
    return informer::error{boost::system::error_code{e, boost::system::generic_category()},
                           plugin_name(exec) + ": cannot create pipes"};
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  ::posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  // Nothing else of this process: Asio opens its sockets without close-on-exec, and a helper the
  // plugin leaves running would otherwise hold the client's connections and listening ports.
  ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  ::posix_spawnattr_init(&attr);
  // Its own process group, so a timeout kills whatever it started too; default signal actions
  // and an empty mask whatever this process ignores or blocks.
  sigset_t none;
  sigset_t all;
  ::sigemptyset(&none);
  ::sigfillset(&all);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> args{exec.command};
  args.insert(args.end(), exec.args.begin(), exec.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  auto env = plugin_environment(exec, info);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, exec.command.c_str(), &actions, &attr, argv.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    std::string detail = plugin_name(exec) + ": cannot run it: " + std::strerror(rc);
    if (rc == ENOENT) detail = plugin_name(exec) + ": executable not found (is the credential plugin installed?)";
    if (!exec.install_hint.empty()) detail += "\n" + exec.install_hint;
    return informer::error{boost::system::error_code{rc, boost::system::generic_category()}, std::move(detail)};
  }
  return child{pid, out[0], err[0]};
}

// Reads `pipe` to its end; more than `max_stdout` bytes is an overflow, and kills the plugin.
asio::awaitable<void> read_stdout(asio::readable_pipe& pipe, std::string& into, bool& overflow, pid_t pid) {
  char buf[8192];
  for (;;) {
    auto [ec, n] = co_await pipe.async_read_some(asio::buffer(buf), nothrow);
    if (into.size() + n > max_stdout) {
      overflow = true;
      ::kill(-pid, SIGKILL);
      co_return;
    }
    into.append(buf, n);
    if (ec) co_return;
  }
}

// Copies `pipe` to our standard error as it comes, keeping its tail.
asio::awaitable<void> read_stderr(asio::readable_pipe& pipe, std::string& tail) {
  char buf[4096];
  for (;;) {
    auto [ec, n] = co_await pipe.async_read_some(asio::buffer(buf), nothrow);
    for (std::size_t done = 0; done < n;) {
      const auto w = ::write(STDERR_FILENO, buf + done, n - done);
      if (w <= 0) break;
      done += static_cast<std::size_t>(w);
    }
    tail.append(buf, n);
    if (tail.size() > stderr_tail_size) tail.erase(0, tail.size() - stderr_tail_size);
    if (ec) co_return;
  }
}

// Waits for `pid` without blocking the thread: polls, backing off, until `deadline` (then kills).
asio::awaitable<std::optional<int>> reap(pid_t pid, clock::time_point deadline) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) co_return status;
    if (r < 0 && errno != EINTR) co_return std::nullopt;  // reaped elsewhere (SIGCHLD ignored)
    if (clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      co_return std::nullopt;
    }
    timer.expires_after(std::min<clock::duration>(pause, deadline - clock::now()));
    co_await timer.async_wait(nothrow);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

asio::awaitable<std::tuple<informer::error, exec_credential>> run_plugin(exec_config exec, exec_cluster_info cluster) {
  using result = std::tuple<informer::error, exec_credential>;
  if (exec.interactive_mode == exec_interactive_mode::always) {
    co_return result{
        invalid(plugin_name(exec) + ": interactiveMode Always needs a terminal for the plugin, and this client never "
                                    "gives it one (standard input is not a terminal)"),
        {}};
  }
  log(log_level::info, "exec_credential", "running the credential plugin " + plugin_name(exec));
  auto spawned = spawn(exec, exec_info(exec, cluster));
  if (!spawned) co_return result{spawned.error(), {}};
  const child c = *spawned;
  const auto ex = co_await asio::this_coro::executor;
  asio::readable_pipe out(ex, c.out);
  asio::readable_pipe err(ex, c.err);
  const auto deadline =
      exec.timeout > std::chrono::nanoseconds::zero() ? clock::now() + exec.timeout : clock::time_point::max();
  asio::steady_timer timer(ex, deadline);
  std::string answer;
  std::string tail;
  bool overflow = false;
  const auto outcome =
      co_await ((read_stdout(out, answer, overflow, c.pid) && read_stderr(err, tail)) || timer.async_wait(nothrow));
  out.close();
  err.close();
  if (outcome.index() == 1 || overflow) {
    ::kill(-c.pid, SIGKILL);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    if (overflow) {
      co_return result{invalid(with_stderr(plugin_name(exec) + ": wrote more than " + std::to_string(max_stdout) +
                                               " bytes to standard output (killed)",
                                           tail)),
                       {}};
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(exec.timeout).count();
    co_return result{invalid(with_stderr(plugin_name(exec) + ": did not finish within " + std::to_string(ms) +
                                             " ms (exec_config::timeout); killed",
                                         tail)),
                     {}};
  }
  const auto status = co_await reap(c.pid, deadline);
  if (!status && clock::now() >= deadline) {
    co_return result{invalid(with_stderr(plugin_name(exec) + ": did not exit within the timeout; killed", tail)), {}};
  }
  if (status && WIFSIGNALED(*status)) {
    co_return result{
        invalid(with_stderr(plugin_name(exec) + ": killed by signal " + std::to_string(WTERMSIG(*status)), tail)), {}};
  }
  if (status && WIFEXITED(*status) && WEXITSTATUS(*status) != 0) {
    co_return result{
        invalid(with_stderr(plugin_name(exec) + ": exited with code " + std::to_string(WEXITSTATUS(*status)), tail)),
        {}};
  }
  auto credential = parse_exec_credential(answer, exec.api_version);
  if (!credential) {
    co_return result{informer::error{credential.error().code(), plugin_name(exec) + ": " + credential.error().detail()},
                     {}};
  }
  co_return result{informer::error{}, std::move(*credential)};
}

}  // namespace

detailed_result<exec_cluster_info> exec_cluster_info_of(const rest_config& config) {
  exec_cluster_info info{.server = config.server,
                         .ca_pem = config.tls.ca_data,
                         .tls_server_name = config.tls.server_name,
                         .insecure_skip_tls_verify = config.tls.insecure_skip_tls_verify};
  if (info.ca_pem.empty() && !config.tls.ca_file.empty()) {
    auto text = read_config_file(config.tls.ca_file, "certificate authority");
    if (!text) return text.error();
    info.ca_pem = std::move(*text);
  }
  return info;
}

detailed_result<exec_credential> parse_exec_credential(std::string_view text, std::string_view api_version) {
  boost::system::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec) return invalid("its standard output is not a JSON ExecCredential (" + ec.message() + ")");
  const json::object* root = v.if_object();
  if (root == nullptr) return invalid("its standard output is not a JSON object");
  auto string_at = [](const json::object& o, std::string_view key) -> std::string {
    const auto* s = o.if_contains(key) ? o.at(key).if_string() : nullptr;
    return s != nullptr ? std::string{*s} : std::string{};
  };
  const std::string got_version = string_at(*root, "apiVersion");
  const std::string got_kind = string_at(*root, "kind");
  if (got_version != api_version || got_kind != "ExecCredential") {
    return invalid("it answered apiVersion \"" + got_version + "\", kind \"" + got_kind + "\"; expected \"" +
                   std::string{api_version} + "\", \"ExecCredential\"");
  }
  const json::object* status = root->if_contains("status") ? root->at("status").if_object() : nullptr;
  if (status == nullptr) return invalid("its ExecCredential has no status");
  exec_credential c;
  c.token = string_at(*status, "token");
  c.client_certificate = string_at(*status, "clientCertificateData");
  c.client_key = string_at(*status, "clientKeyData");
  if (c.client_certificate.empty() != c.client_key.empty()) {
    return invalid("its ExecCredential has only one of status.clientCertificateData and clientKeyData");
  }
  if (!c.client_certificate.empty()) {
    // The detail names the field and OpenSSL's reason, never the PEM text.
    auto pem = load_tls_pem(tls_config{.cert_data = c.client_certificate, .key_data = c.client_key});
    if (!pem) return invalid("its client certificate: " + pem.error().detail());
  }
  if (c.token.empty() && c.client_certificate.empty()) {
    return invalid("its ExecCredential has neither status.token nor a client certificate");
  }
  if (status->if_contains("expirationTimestamp") && !status->at("expirationTimestamp").is_null()) {
    const std::string when = string_at(*status, "expirationTimestamp");
    auto t = detail::parse_rfc3339(when);
    if (!t) return invalid("status.expirationTimestamp \"" + when + "\" is not an RFC 3339 time");
    c.expiry = *t;
  }
  return c;
}

detailed_result<std::shared_ptr<exec_credential_provider>> exec_credential_provider::create(
    boost::asio::any_io_executor executor, exec_credential_options options) {
  const exec_config& e = options.exec;
  if (e.api_version != api_v1 && e.api_version != api_v1beta1) {
    return invalid("exec plugin: apiVersion \"" + e.api_version + "\" is not supported (use " + std::string{api_v1} +
                   " or " + std::string{api_v1beta1} + ")");
  }
  if (e.command.empty()) return invalid("exec plugin: no command");
  return std::make_shared<exec_credential_provider>(passkey{}, std::move(executor), std::move(options));
}

exec_credential_provider::exec_credential_provider(passkey, boost::asio::any_io_executor executor,
                                                   exec_credential_options options)
    : executor_(std::move(executor)), options_(std::move(options)) {}

bool exec_credential_provider::fresh_locked() const {
  if (!cached_) return false;
  if (!cached_->expiry) return true;
  const auto now = options_.now ? options_.now() : std::chrono::system_clock::now();
  return now + std::chrono::duration_cast<std::chrono::system_clock::duration>(options_.expiry_margin) <
         *cached_->expiry;
}

void exec_credential_provider::get_impl(boost::asio::any_completion_handler<get_signature> handler) {
  auto op = detail::async_completion<get_signature>::create(std::move(handler), executor_, detail::delivery::post);
  std::optional<exec_credential> ready;
  bool start = false;
  {
    informer::lock_guard lock(mu_);
    if (fresh_locked()) {
      ready = *cached_;
    } else {
      waiters_.push_back([op](const informer::error& e, const exec_credential& c) { op->complete(e, c); });
      start = !running_;
      running_ = true;
      if (start) ++runs_;
    }
  }
  if (ready) {
    op->complete(informer::error{}, std::move(*ready));
    return;
  }
  if (!start) return;
  asio::co_spawn(asio::make_strand(executor_), run_plugin(options_.exec, options_.cluster),
                 [self = shared_from_this()](std::exception_ptr ep, std::tuple<informer::error, exec_credential> r) {
                   if (ep) {
                     try {
                       std::rethrow_exception(ep);
                     } catch (const std::exception& x) {
                       r = {invalid(plugin_name(self->options_.exec) + ": " + x.what()), {}};
                     } catch (...) {
                       r = {invalid(plugin_name(self->options_.exec) + ": unknown exception"), {}};
                     }
                   }
                   self->finish(std::move(std::get<0>(r)), std::move(std::get<1>(r)));
                 });
}

void exec_credential_provider::finish(informer::error e, exec_credential c) {
  std::vector<std::function<void(const informer::error&, const exec_credential&)>> waiters;
  {
    informer::lock_guard lock(mu_);
    running_ = false;
    if (!e) cached_ = c;
    waiters.swap(waiters_);
  }
  for (auto& w : waiters) w(e, c);
}

void exec_credential_provider::invalidate(const exec_credential& refused) {
  informer::lock_guard lock(mu_);
  if (cached_ && cached_->token == refused.token && cached_->client_certificate == refused.client_certificate) {
    cached_.reset();
  }
}

std::uint64_t exec_credential_provider::runs() const {
  informer::lock_guard lock(mu_);
  return runs_;
}

}  // namespace informer
