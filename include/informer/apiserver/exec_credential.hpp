// informer/apiserver/exec_credential.hpp
//
// Credentials from a kubeconfig `exec` plugin (client-go's plugin/pkg/client/auth/exec): a
// program (`aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`) run on demand, whose
// standard output is an ExecCredential holding a bearer token or a client certificate, and its
// expiry. `http_client` uses one by itself when `rest_config::exec` is set; use the provider
// directly to get a credential for something else, or to test a plugin.
//
// Contract of a run (`exec_config`, config.hpp):
// - the program gets KUBERNETES_EXEC_INFO = {"apiVersion": <api_version>, "kind":
//   "ExecCredential", "spec": {"interactive": false[, "cluster": {...}]}} (the cluster, with
//   `provide_cluster_info`: server, certificate-authority-data (base64 PEM), tls-server-name,
//   insecure-skip-tls-verify, config), `exec_config::env` on top of this process's environment,
//   /dev/null as standard input (never a terminal: nobody is prompted), and its own process group;
// - its standard error is copied to ours as it comes, and its last 2 KiB kept for errors;
// - its standard output (at most 1 MiB) must be an ExecCredential of the same apiVersion with
//   status.token, or status.clientCertificateData and clientKeyData (PEM), or both, and
//   optionally status.expirationTimestamp (RFC 3339);
// - it must exit 0 within `exec_config::timeout`, else its process group is killed (SIGKILL).
//
// Caching (as client-go): the credential is kept until `expiry_margin` before its expiry, without
// expiry until `invalidate` (after a 401). Exactly one run is in flight however many callers
// wait; all of them get its outcome. A failed run is not cached: the next call runs the plugin
// again. A 401 does not resend the request (client-go does not either): the request fails with
// `errc::unauthorized`, and the next one runs the plugin again.
//
// Errors (`informer::error`; never the token or the key in a detail):
// - the command not found (or not executable): its system error (no_such_file_or_directory,
//   permission_denied), the detail naming the command and the install hint;
// - a non-zero exit, death by a signal, a timeout: `errc::invalid_config` naming the exit code or
//   signal (or the timeout) and the tail of the plugin's standard error;
// - an answer that is not JSON, another apiVersion or kind, neither token nor certificate, a
//   certificate without key (or the reverse), or that does not parse or match, a bad
//   expirationTimestamp: `errc::invalid_config`;
// - `exec_interactive_mode::always` (there is never a terminal): `errc::invalid_config`;
// - an unsupported api_version, an empty command: `errc::invalid_config` from `create`.
//
// Threads: the plugin runs as a child process watched from the executor given to `create`
// (non-blocking pipes and timers; no thread is started, and no I/O thread waits on the plugin:
// spawning it, and reaping it after a kill, are brief system calls). Completion handlers run on
// their associated executor, never inside `async_get`.
//
// Thread safety: `exec_credential_provider` is thread-safe.
// Lifetimes: a run in flight keeps the provider alive; destroy it before its execution context.
#pragma once

#include "informer/apiserver/config.hpp"
#include "informer/core/error.hpp"
#include "informer/core/mutex.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace informer {

/// What a plugin answered.
struct exec_credential {
  std::string token{};  ///< "" when the plugin gave only a client certificate
  /// PEM client certificate and key (status.clientCertificateData/clientKeyData), checked to
  /// parse and match; "" when the plugin gave only a token.
  std::string client_certificate{};
  std::string client_key{};
  /// status.expirationTimestamp; none: valid until the server refuses it.
  std::optional<std::chrono::system_clock::time_point> expiry{};
};

/// The cluster as the plugin sees it with `exec_config::provide_cluster_info`.
struct exec_cluster_info {
  std::string server{};
  std::string ca_pem{};  ///< sent base64-encoded as certificate-authority-data; "" for none
  std::string tls_server_name{};
  bool insecure_skip_tls_verify = false;
};

/// The cluster info of `config` (its server, CA text read from file or data, TLS settings).
/// Errors: the CA file cannot be read.
detailed_result<exec_cluster_info> exec_cluster_info_of(const rest_config& config);

/// Reads a plugin's standard output: an ExecCredential of `api_version` with status.token or a
/// client certificate and key.
/// Errors: `errc::invalid_config` (see the file comment), the detail never quoting the token.
detailed_result<exec_credential> parse_exec_credential(std::string_view json, std::string_view api_version);

struct exec_credential_options {
  exec_config exec{};
  exec_cluster_info cluster{};
  /// A credential is renewed this long before its expiry (client-go: not at all; a little
  /// ahead avoids sending one that expires on the way).
  std::chrono::nanoseconds expiry_margin = std::chrono::seconds(10);
  /// Clock for expiries; empty means system_clock (tests drive their own).
  std::function<std::chrono::system_clock::time_point()> now{};
};

/// The credential of one exec plugin, cached, renewed by one run at a time (see the file comment).
class exec_credential_provider : public std::enable_shared_from_this<exec_credential_provider> {
  struct passkey {};

public:
  using get_signature = void(informer::error, exec_credential);

  /// Checks `options.exec` (api_version, command, interactive mode). Runs nothing yet.
  static detailed_result<std::shared_ptr<exec_credential_provider>> create(boost::asio::any_io_executor executor,
                                                                           exec_credential_options options);

  exec_credential_provider(passkey, boost::asio::any_io_executor executor, exec_credential_options options);

  /// Completes with the cached credential, or with the outcome of the run in flight, or of a new
  /// one. Errors: those of the run (see the file comment).
  template <class CompletionToken>
  auto async_get(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, get_signature>(
        [self = shared_from_this()](auto handler) { self->get_impl(std::move(handler)); }, token);
  }

  /// Drops the cached credential if it is still `refused` (a 401 answered it), so the next
  /// `async_get` runs the plugin; a credential renewed meanwhile is kept (no second run).
  void invalidate(const exec_credential& refused);

  /// Plugin runs started so far.
  std::uint64_t runs() const;

private:
  void get_impl(boost::asio::any_completion_handler<get_signature> handler);
  void finish(informer::error e, exec_credential c);
  bool fresh_locked() const INFORMER_REQUIRES(mu_);

  const boost::asio::any_io_executor executor_;
  const exec_credential_options options_;
  mutable informer::mutex mu_;
  std::optional<exec_credential> cached_ INFORMER_GUARDED_BY(mu_);
  bool running_ INFORMER_GUARDED_BY(mu_) = false;
  // Callers waiting for the run in flight (each completes its handler once, on its executor).
  std::vector<std::function<void(const informer::error&, const exec_credential&)>> waiters_ INFORMER_GUARDED_BY(mu_);
  std::uint64_t runs_ INFORMER_GUARDED_BY(mu_) = 0;
};

}  // namespace informer
