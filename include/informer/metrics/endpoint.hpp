// informer/metrics/endpoint.hpp
//
// The HTTP endpoint a controller process exposes to Prometheus and to the kubelet's probes, as
// controller-runtime's metrics and health probe servers do (plain HTTP/1.1, Boost.Beast):
//   GET /metrics   the registry in the text format 0.0.4;
//   GET /healthz   200 "ok" while the process serves at all (also /livez);
//   GET /readyz    200 "ok" when every registered readiness check passes, else 503 listing the
//                  failing checks ("[-]<name> failed"); `?verbose` lists every check ("[+]<name> ok")
//                  as the Kubernetes API server does;
// anything else is 404, a method other than GET or HEAD 405.
//
// Use `informer_synced_check` to make readiness mean "these informers have synced".
//
// Connections are kept alive between requests; one silent for 60 s, or taking over 10 s to send a
// request's head once it started, is closed. A request's head is limited to 16 KiB and its body to
// 8 KiB (the connection is closed beyond). Beyond `max_connections` open connections, new ones are
// closed as soon as they are accepted. A request whose answer throws (a scrape-time callback that
// throws despite the registry's rule, bad_alloc) gets 500; the endpoint keeps serving.
//
// Errors: `create` throws `boost::system::system_error` when the address is invalid or cannot be
// bound. Connection errors end that connection only; a failed accept is retried 100 ms later. A readiness check that
// throws counts as failing.
//
// Thread safety: every member function is thread-safe. The acceptor and connections run on a strand
// of the given executor; checks and scrape-time gauge callbacks are called there. Lifetimes: the
// executor's execution context must outlive the endpoint object (`stop()`, which the destructor
// calls, dispatches onto the strand). The registry must outlive the endpoint's connections: call
// `stop()` and let the executor run the closing (or stop the context and destroy it, with its
// pending handlers) before destroying the registry. `stop()` (and the destructor) returns at once:
// the listening socket and open connections are closed on the strand soon after.
#pragma once

#include "informer/metrics/registry.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace informer {
class shared_informer;
}  // namespace informer

namespace informer::metrics {

namespace detail {
struct endpoint_state;
}  // namespace detail

struct endpoint_options {
  /// The address to listen on (IPv4 or IPv6 literal). "0.0.0.0" to serve other hosts.
  std::string address = "127.0.0.1";
  /// 0 lets the system pick a free port; `port()` says which.
  std::uint16_t port = 0;
  /// Open connections beyond which new ones are closed at once (client connection floods).
  std::size_t max_connections = 64;
};

/// See the file comment.
class endpoint {
public:
  /// Binds and starts accepting on a strand of `executor`. Throws `boost::system::system_error`.
  static std::unique_ptr<endpoint> create(boost::asio::any_io_executor executor, const registry& metrics,
                                          endpoint_options options = {});
  /// Stops; see the file comment.
  ~endpoint();
  endpoint(const endpoint&) = delete;
  endpoint& operator=(const endpoint&) = delete;

  /// The bound port.
  std::uint16_t port() const noexcept;

  /// Adds a readiness check named `name` (kept in the order added). It is called on each /readyz
  /// request and must be quick.
  void add_readiness_check(std::string name, std::function<bool()> check);

  /// Closes the listening socket and every open connection. Idempotent.
  void stop();

  // Private: use create().
  explicit endpoint(std::shared_ptr<detail::endpoint_state> state);

private:
  std::shared_ptr<detail::endpoint_state> state_;
};

/// A readiness check that passes once `informer` has synced (and keeps passing). It does not own
/// the informer (see `shared_informer::synced_observer`): a destroyed informer fails the check.
std::function<bool()> informer_synced_check(const std::shared_ptr<shared_informer>& informer);

}  // namespace informer::metrics
