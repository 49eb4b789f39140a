// tests/support/loopback_port.hpp
//
// A loopback TCP port for tests of a client without a working server: not listening, connections
// are refused; listening, they are accepted and never answered. `unused_loopback_port()`: a port
// free a moment ago, for a server the test starts (or for nobody, to be refused).
#pragma once

#include <boost/test/unit_test.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

class loopback_port {
public:
  explicit loopback_port(bool listening) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (listening) {
      BOOST_REQUIRE(::listen(fd_, 16) == 0);
    }
  }
  ~loopback_port() { ::close(fd_); }
  loopback_port(const loopback_port&) = delete;
  loopback_port& operator=(const loopback_port&) = delete;

  /// The etcd endpoint URL of this port.
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

private:
  int fd_;
  int port_ = 0;
};

inline int unused_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}
