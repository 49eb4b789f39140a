// tests/support/tinyproxy.hpp
//
// A throw-away real HTTP proxy for integration tests: `tinyproxy` runs Debian's tinyproxy (package
// `tinyproxy`, see scripts/install-deps.sh) in the foreground on a free loopback port, with a
// configuration of its own in a fresh temporary folder: listening on and allowing 127.0.0.1 only,
// CONNECT to any port (tinyproxy allows every port when the configuration has no ConnectPort
// line), optionally Basic authentication. The system's tinyproxy service is not used.
//
// The log (LogLevel Info) records each request line, so a test proves a connection went through the
// proxy with `connects_to("host:port")`, the number of CONNECT requests for that target.
//
// When the binary is missing the constructor throws `not_installed` (a std::runtime_error) whose
// text says so; ask `tinyproxy::available()` up front to skip instead. If the test process dies
// without running the destructor, the proxy gets SIGTERM (PR_SET_PDEATHSIG).
//
// Thread safety: accessors are const and safe from any thread; the destructor must not run
// concurrently with them. Not copyable or movable (the destructor owns the running process).
#pragma once

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace informer::testing {

// Thrown when tinyproxy is not installed: run scripts/install-deps.sh with
// INFORMER_WITH_CONTROL_PLANE=1 (or apt-get install tinyproxy).
class not_installed : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct tinyproxy_options {
  // With a user, the proxy asks for Basic authentication (BasicAuth user password) and answers
  // 407 without it.
  std::string user = {};
  std::string password = {};
};

class tinyproxy {
public:
  explicit tinyproxy(tinyproxy_options options = {}) : dir_(make_dir()), port_(free_port()) {
    if (!available()) {
      std::filesystem::remove_all(dir_);
      throw not_installed("tinyproxy is not installed (" + binary().string() +
                          "): apt-get install tinyproxy, or scripts/install-deps.sh");
    }
    {
      std::ofstream conf(dir_ / "tinyproxy.conf");
      conf << "Port " << port_ << "\n"
           << "Listen 127.0.0.1\n"
           << "Allow 127.0.0.1\n"
           << "Timeout 600\n"
           << "LogFile \"" << log_path().string() << "\"\n"
           << "LogLevel Info\n"
           << "MaxClients 100\n";
      if (!options.user.empty()) conf << "BasicAuth " << options.user << " " << options.password << "\n";
    }
    try {
      start();
    } catch (...) {
      stop();
      throw;
    }
  }

  ~tinyproxy() { stop(); }
  tinyproxy(const tinyproxy&) = delete;
  tinyproxy& operator=(const tinyproxy&) = delete;

  static std::filesystem::path binary() { return "/usr/bin/tinyproxy"; }
  static bool available() { return ::access(binary().c_str(), X_OK) == 0; }

  int port() const { return port_; }
  // "http://127.0.0.1:<port>"
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // "http://user:password@127.0.0.1:<port>"
  std::string url_with(std::string_view user, std::string_view password) const {
    return "http://" + std::string{user} + ":" + std::string{password} + "@127.0.0.1:" + std::to_string(port_);
  }

  std::string log() const {
    std::ifstream in(log_path());
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // CONNECT requests the proxy received for `target` ("host:port"), whatever it answered.
  std::size_t connects_to(std::string_view target) const {
    const std::string needle = "CONNECT " + std::string{target} + " ";
    const std::string text = log();
    std::size_t count = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
    return count;
  }

private:
  void stop() noexcept {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    const char* keep = std::getenv("INFORMER_KEEP_CONTROL_PLANE");
    if (keep == nullptr || std::string_view{keep} != "1") {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }

  std::filesystem::path log_path() const { return dir_ / "tinyproxy.log"; }

  static std::filesystem::path make_dir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        (tmp != nullptr && *tmp != '\0' ? std::string{tmp} : std::string{"/tmp"}) + "/informer-tinyproxy-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("tinyproxy: mkdtemp failed for " + pattern);
    return pattern;
  }

  // A port the kernel just handed out and that nobody listens on (tinyproxy binds it next).
  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      throw std::runtime_error("tinyproxy: no free loopback port");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  bool accepts_connections() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<unsigned short>(port_));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
  }

  void start() {
    const std::string bin = binary().string();
    const std::string conf = (dir_ / "tinyproxy.conf").string();
    std::vector<char*> argv{const_cast<char*>(bin.c_str()), const_cast<char*>("-d"), const_cast<char*>("-c"),
                            const_cast<char*>(conf.c_str()), nullptr};
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("tinyproxy: fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!accepts_connections()) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("tinyproxy exited at start; log:\n" + log());
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("tinyproxy does not accept connections on port " + std::to_string(port_) +
                                 " after 10 s; log:\n" + log());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace informer::testing
