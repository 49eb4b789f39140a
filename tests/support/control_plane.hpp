// tests/support/control_plane.hpp
//
// Throw-away real servers for integration tests and benchmarks: `control_plane` runs etcd +
// kube-apiserver 1.20.2 (TLS, token auth, RBAC; optionally kube-controller-manager), `etcd_server`
// runs etcd alone (optionally with TLS and client certificates), `etcd_cluster` three etcd members
// whose members a test can kill, restart, pause and resume. All drive scripts/control-plane.sh in a
// fresh temporary folder and stop everything in their destructor.
//
// The Kubernetes binaries must have been built once by scripts/provision-control-plane.sh. When
// they are missing, the constructors throw `not_provisioned` (a std::runtime_error) whose text says
// so; a fixture can catch it to skip, or a test can ask `control_plane::available()` up front:
//
//   BOOST_AUTO_TEST_CASE(lists_pods, * boost::unit_test::precondition(
//       [](auto) { return informer::testing::control_plane::available(); })) { ... }
//
// The script is found through the macro INFORMER_SOURCE_DIR (the repository root), which the test
// CMake defines for every test target; without it, the environment variable of the same name is
// used. If the test process dies without running the destructors, the script's watchdog (started
// with --owner-pid) stops the servers within a second.
//
// Thread safety: accessors are const and safe from any thread; restart_*() and the member
// controls of etcd_cluster must not run concurrently with each other or with destruction. No
// class is copyable or movable (the destructor owns the running processes).
#pragma once

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace informer::testing {

// Thrown when the Kubernetes binaries (or etcd) are not installed: run
// scripts/provision-control-plane.sh.
class not_provisioned : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

namespace detail {

inline std::filesystem::path source_dir() {
#ifdef INFORMER_SOURCE_DIR
  return std::filesystem::path{INFORMER_SOURCE_DIR};
#else
  if (const char* dir = std::getenv("INFORMER_SOURCE_DIR"); dir != nullptr && *dir != '\0') {
    return std::filesystem::path{dir};
  }
  throw std::runtime_error(
      "control_plane: INFORMER_SOURCE_DIR is not defined (the test CMake must define it as the "
      "repository root, or set it in the environment)");
#endif
}

inline std::filesystem::path script() { return source_dir() / "scripts" / "control-plane.sh"; }

inline std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

struct script_result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command; never throws for a failing command, only reports it.
inline script_result run_command(const std::string& command_line) {
  const std::string command = command_line + " 2>&1";
  script_result result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    result.output = "popen failed for: " + command;
    return result;
  }
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    result.output.append(buffer.data(), n);
  }
  const int status = ::pclose(pipe);
  result.exit_code = (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
  return result;
}

// Runs control-plane.sh with `args`.
inline script_result run_script(const std::vector<std::string>& args) {
  std::string command = shell_quote(script().string());
  for (const auto& a : args) {
    command += ' ';
    command += shell_quote(a);
  }
  return run_command(command);
}

// Runs the script and throws on failure: not_provisioned for exit code 3, runtime_error otherwise,
// with the script's output (which holds the tail of the failing server's log).
inline void run_script_or_throw(const std::vector<std::string>& args) {
  auto result = run_script(args);
  if (result.exit_code == 0) {
    return;
  }
  std::string what = "scripts/control-plane.sh " + args.at(0) + " failed (exit code " +
                     std::to_string(result.exit_code) + "):\n" + result.output;
  if (result.exit_code == 3) {
    throw not_provisioned(
        "Kubernetes control-plane binaries are not provisioned: run "
        "scripts/provision-control-plane.sh once (builds kube-apiserver 1.20.2, ~5-20 min on 2 cores).\n" +
        what);
  }
  throw std::runtime_error(what);
}

// DIR/env holds lines `export KEY='value'`.
inline std::map<std::string, std::string> read_env(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) {
    throw std::runtime_error("control_plane: cannot read " + file.string());
  }
  std::map<std::string, std::string> env;
  std::string line;
  while (std::getline(in, line)) {
    constexpr std::string_view prefix = "export ";
    if (line.starts_with(prefix)) {
      line.erase(0, prefix.size());
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) {
      continue;
    }
    std::string value = line.substr(eq + 1);
    if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') {
      value = value.substr(1, value.size() - 2);
    }
    env[line.substr(0, eq)] = std::move(value);
  }
  return env;
}

inline std::filesystem::path make_temp_dir(std::string_view stem) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      (tmp != nullptr && *tmp != '\0' ? std::string{tmp} : std::string{"/tmp"}) + "/" + std::string{stem} + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("control_plane: mkdtemp failed for " + pattern);
  }
  return std::filesystem::path{pattern};
}

// Owns one control-plane.sh folder: starts in the constructor, stops (and removes the folder,
// unless INFORMER_KEEP_CONTROL_PLANE=1) in the destructor, which never throws.
class script_instance {
public:
  script_instance(std::string_view start_command, std::vector<std::string> options)
      : dir_(make_temp_dir("informer-cp")) {
    std::vector<std::string> args{std::string{start_command}, dir_.string(), "--owner-pid", std::to_string(::getpid())};
    args.insert(args.end(), options.begin(), options.end());
    try {
      run_script_or_throw(args);
      env_ = read_env(dir_ / "env");
    } catch (...) {
      stop();
      throw;
    }
  }
  ~script_instance() { stop(); }
  script_instance(const script_instance&) = delete;
  script_instance& operator=(const script_instance&) = delete;

  const std::filesystem::path& dir() const noexcept { return dir_; }

  // A value from DIR/env ("" when absent), e.g. "ETCD_PID", "ADMIN_CERT".
  std::string env(const std::string& key) const {
    auto it = env_.find(key);
    return it == env_.end() ? std::string{} : it->second;
  }

  void run(const std::string& command, std::vector<std::string> args = {}) {
    args.insert(args.begin(), {command, dir_.string()});
    run_script_or_throw(args);
    env_ = read_env(dir_ / "env");  // the pids changed
  }

  // Runs a script command that prints an answer; throws on failure.
  std::string query(const std::string& command) {
    auto result = run_script({command, dir_.string()});
    if (result.exit_code != 0) {
      throw std::runtime_error("scripts/control-plane.sh " + command + " failed:\n" + result.output);
    }
    return result.output;
  }

private:
  void stop() noexcept {
    try {
      run_script({"stop", dir_.string()});
      const char* keep = std::getenv("INFORMER_KEEP_CONTROL_PLANE");
      if (keep == nullptr || std::string_view{keep} != "1") {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
      }
    } catch (...) {
    }
  }

  std::filesystem::path dir_;
  std::map<std::string, std::string> env_;
};

// Whether every thread of process `pid` is stopped (state 'T' in /proc): SIGSTOP takes effect
// asynchronously, and a thread running on another core may still answer a request meanwhile.
inline bool all_threads_stopped(int pid) {
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream stat(task.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const auto name_end = line.rfind(')');
    if (name_end == std::string::npos || name_end + 2 >= line.size() || line[name_end + 2] != 'T') {
      return false;
    }
  }
  return !ec;
}

inline bool executable(const std::filesystem::path& p) { return ::access(p.c_str(), X_OK) == 0; }

inline bool etcd_installed() {
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/bin:/bin";
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    const auto entry = rest.substr(0, colon);
    if (!entry.empty() && executable(std::filesystem::path{entry} / "etcd")) {
      return true;
    }
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
  }
  return false;
}

// Same default as the scripts.
inline std::filesystem::path kubernetes_bin_dir() {
  if (const char* dir = std::getenv("INFORMER_K8S_BIN_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  std::filesystem::path cache;
  if (const char* dir = std::getenv("INFORMER_CACHE_DIR"); dir != nullptr && *dir != '\0') {
    cache = dir;
  } else if (const char* home = std::getenv("HOME"); home != nullptr) {
    cache = std::filesystem::path{home} / ".cache" / "informer";
  }
  return cache / "kubernetes-1.20.2" / "bin";
}

}  // namespace detail

struct control_plane_options {
  // Run kube-controller-manager too (creates ServiceAccounts, ReplicaSets for Deployments, ...);
  // without it the ServiceAccount admission plugin is disabled so pod creates succeed.
  bool with_controller_manager = false;
  // etcd serves TLS with client certificates; the apiserver connects with them.
  bool etcd_tls = false;
  // Extra kube-apiserver flags, e.g. "--max-requests-inflight=2000".
  std::vector<std::string> apiserver_args = {};
};

// etcd + kube-apiserver on loopback, free ports, TLS with a CA of its own (ca_file()).
class control_plane {
public:
  explicit control_plane(control_plane_options options = {}) : instance_("start", to_args(options)) {}

  // True when the binaries are provisioned (so the constructor will not throw not_provisioned).
  static bool available() {
    return detail::executable(detail::kubernetes_bin_dir() / "kube-apiserver") && detail::etcd_installed();
  }

  const std::filesystem::path& dir() const noexcept { return instance_.dir(); }
  std::string etcd_endpoint() const { return instance_.env("ETCD_ENDPOINT"); }  // http(s)://127.0.0.1:P
  std::string apiserver_url() const { return instance_.env("APISERVER_URL"); }  // https://127.0.0.1:P
  std::string admin_token() const { return instance_.env("ADMIN_TOKEN"); }      // group system:masters
  std::string user_token() const { return instance_.env("USER_TOKEN"); }        // no RBAC bindings: 403s
  std::string kubeconfig_path() const { return instance_.env("KUBECONFIG"); }   // admin token
  std::string ca_file() const { return instance_.env("CA_FILE"); }              // verifies the apiserver (and etcd)
  std::string admin_cert() const { return instance_.env("ADMIN_CERT"); }        // client cert, system:masters
  std::string admin_key() const { return instance_.env("ADMIN_KEY"); }
  std::string kubectl() const { return instance_.env("K8S_BIN_DIR") + "/kubectl"; }
  // Any other value of DIR/env (ETCD_CERT, ETCD_KEY, ETCD_PID, KUBE_APISERVER_PID, ...).
  std::string env(const std::string& key) const { return instance_.env(key); }

  // Kills kube-apiserver and starts it again with the same flags and port; returns once /healthz is
  // ok. Throws std::runtime_error if it does not come back (and then everything is stopped).
  void restart_apiserver() { instance_.run("restart-apiserver"); }
  // Same for etcd, keeping its data.
  void restart_etcd() { instance_.run("restart-etcd"); }

private:
  static std::vector<std::string> to_args(const control_plane_options& options) {
    std::vector<std::string> args;
    if (options.with_controller_manager) {
      args.emplace_back("--with-controller-manager");
    }
    if (options.etcd_tls) {
      args.emplace_back("--etcd-tls");
    }
    for (const auto& a : options.apiserver_args) {
      args.push_back("--apiserver-arg=" + a);
    }
    return args;
  }

  detail::script_instance instance_;
};

struct etcd_server_options {
  // https with client-certificate authentication: use ca_file(), cert_file(), key_file().
  bool tls = false;
};

// etcd alone on loopback (data on /dev/shm when available, removed on destruction).
class etcd_server {
public:
  explicit etcd_server(etcd_server_options options = {})
      : instance_("start-etcd", options.tls ? std::vector<std::string>{"--etcd-tls"} : std::vector<std::string>{}) {}

  static bool available() { return detail::etcd_installed(); }

  const std::filesystem::path& dir() const noexcept { return instance_.dir(); }
  std::string endpoint() const { return instance_.env("ETCD_ENDPOINT"); }  // http(s)://127.0.0.1:P
  bool tls() const { return instance_.env("ETCD_TLS") == "1"; }
  std::string ca_file() const { return instance_.env("ETCD_CA"); }  // "" without TLS
  std::string cert_file() const { return instance_.env("ETCD_CERT"); }
  std::string key_file() const { return instance_.env("ETCD_KEY"); }
  std::string env(const std::string& key) const { return instance_.env(key); }

  // Kills etcd and starts it again on the same port with the same data; returns once healthy.
  void restart() { instance_.run("restart-etcd"); }

private:
  detail::script_instance instance_;
};

// Three etcd members on loopback (plain http; data on /dev/shm when available, removed on
// destruction), heartbeat 50 ms and election timeout 500 ms. Members are numbered 0..2; their
// client endpoints are endpoints()[i]. A member cut off from the others (paused peers) loses its
// leader within about an election timeout.
class etcd_cluster {
public:
  etcd_cluster() : instance_("start-etcd-cluster", {}) {}

  static bool available() { return detail::etcd_installed(); }

  const std::filesystem::path& dir() const noexcept { return instance_.dir(); }
  std::size_t size() const { return std::stoul(instance_.env("ETCD_MEMBERS")); }
  // http://127.0.0.1:P of every member, in member order.
  std::vector<std::string> endpoints() const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < size(); ++i) {
      out.push_back(endpoint(i));
    }
    return out;
  }
  std::string endpoint(std::size_t i) const { return instance_.env("ETCD_" + std::to_string(i) + "_ENDPOINT"); }
  // The process id of member i's running etcd (it changes with restart_member; std::invalid_argument
  // while the member is killed).
  int pid(std::size_t i) const { return std::stoi(instance_.env("ETCD_" + std::to_string(i) + "_PID")); }

  // SIGKILL: the member dies at once (paused or not), its data stays; returns once it is gone.
  void kill_member(std::size_t i) { instance_.run("kill-member", {std::to_string(i)}); }
  // Starts a killed member again (or kills and starts a running one) with the same ports and data;
  // returns once it is healthy (it has rejoined and knows a leader).
  void restart_member(std::size_t i) { instance_.run("restart-member", {std::to_string(i)}); }
  // SIGSTOP: the member keeps its connections open but answers nothing (a blackhole for its
  // clients, a dead member for its peers); returns once every thread of it has stopped.
  void pause_member(std::size_t i) {
    const int p = pid(i);
    if (::kill(p, SIGSTOP) != 0) {
      throw std::runtime_error("etcd_cluster: cannot stop member " + std::to_string(i));
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{5};
    while (!detail::all_threads_stopped(p)) {
      if (std::chrono::steady_clock::now() > deadline) {
        resume_member(i);
        throw std::runtime_error("etcd_cluster: member " + std::to_string(i) + " did not stop");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
  }
  // SIGCONT after pause_member.
  void resume_member(std::size_t i) { ::kill(pid(i), SIGCONT); }
  // The index of the member that leads now, as the members that answer within a second see it
  // (paused members are skipped). Throws when none knows a leader.
  std::size_t leader_index() { return std::stoul(instance_.query("leader")); }

private:
  detail::script_instance instance_;
};

}  // namespace informer::testing
