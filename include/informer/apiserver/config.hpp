// informer/apiserver/config.hpp
//
// How to reach and authenticate to a kube-apiserver: `rest_config` is client-go's rest.Config for
// this SDK (server URL, TLS trust and client certificate, bearer token, timeouts, client-side rate
// limit). Fill it by hand, or let kubeconfig.hpp build it from a kubeconfig file or from the
// in-cluster service-account mount; `http_client` (http_client.hpp) connects with it.
//
// Also here, the two pieces of credential handling the client needs at run time:
// - `load_tls_pem` reads and checks the PEM material named by a `tls_config` (file or inline data),
//   so a bad certificate is reported with the field and file it came from, before any connection.
// - `token_source` hands out the bearer token: a fixed string, or a token file that is re-read when
//   it changes (rotated service-account tokens).
//
// Credentials from an external program (kubeconfig `exec`: aws eks get-token,
// gke-gcloud-auth-plugin, kubelogin) are described by `exec_config` and obtained at run time by
// `exec_credential_provider` (exec_credential.hpp).
//
// Thread safety: `rest_config`, `tls_config`, `exec_config` and `tls_pem` are plain values. `token_source` is
// thread-safe.
#pragma once

#include "informer/core/error.hpp"
#include "informer/core/mutex.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace informer {

/// Trust and identity for the TLS connection. For each of the CA, the client certificate and the
/// client key, inline `*_data` (PEM text) wins over `*_file`.
struct tls_config {
  /// PEM file of the CA certificate(s) the server's certificate must chain to. With neither this
  /// nor `ca_data`, the system's default trust store is used.
  std::filesystem::path ca_file{};
  /// PEM text of the CA certificate(s).
  std::string ca_data{};
  /// Client certificate (chain) for certificate authentication; needs the key as well.
  std::filesystem::path cert_file{};
  std::string cert_data{};
  /// The client certificate's private key (PEM, PKCS#8 or traditional).
  std::filesystem::path key_file{};
  std::string key_data{};
  /// Name sent as SNI and checked against the server's certificate instead of the URL's host
  /// (kubeconfig `tls-server-name`). Empty: the URL's host (a DNS name or an IP address).
  std::string server_name{};
  /// Skips verification of the server's certificate: chain and name. Only when set explicitly;
  /// refused together with a CA (as client-go does), since one of the two must be a mistake.
  bool insecure_skip_tls_verify = false;
};

/// Acting as another identity (kubeconfig `as`, `as-uid`, `as-groups`, `as-user-extra`; kubectl
/// --as): each request carries Impersonate-User, Impersonate-Uid, one Impersonate-Group per group
/// and one Impersonate-Extra-<key> per value (the key percent-encoded where HTTP needs it). The
/// authenticated identity needs the `impersonate` verb on what it acts as. Groups, a uid or extra
/// without a user are refused (as client-go does), and so is any value holding CR, LF or NUL.
struct impersonation {
  std::string user{};  ///< empty: no impersonation
  std::string uid{};
  std::vector<std::string> groups{};
  std::map<std::string, std::vector<std::string>> extra{};
};

/// The HTTP proxy connections to the API server go through (client-go's rest.Config.Proxy, kubeconfig
/// `proxy-url`). A proxy carries each connection as a CONNECT tunnel; TLS runs end to end inside
/// it, checked against the API server's name, never the proxy's.
struct proxy_config {
  /// "http://[user[:password]@]host[:port]" (port 80 by default), used for every connection, as
  /// client-go uses an explicit proxy-url: NO_PROXY does not apply. The user and password
  /// (percent-decoded) are sent as "Proxy-Authorization: Basic"; they never appear in error
  /// details. https:// (TLS to the proxy) and socks5:// proxies are refused with
  /// `errc::invalid_config` naming the scheme. Empty: see `from_environment`.
  std::string url{};
  /// With no `url`, take the proxy from the environment as Go's http.ProxyFromEnvironment does
  /// (client-go's default): HTTPS_PROXY, else https_proxy ("host:port" means http://host:port),
  /// unless NO_PROXY (else no_proxy) lists the server, or the server is "localhost" or a loopback
  /// address, which always go direct. The environment is read when the `http_client` is created.
  /// false: connect directly.
  bool from_environment = true;
};

/// Whether an exec plugin may talk to a person (kubeconfig `interactiveMode`). This SDK never gives
/// a plugin a terminal: `never` and `if_available` run it without one (ExecCredential
/// spec.interactive=false); `always` is refused when the plugin is run, as client-go does without a
/// terminal on stdin.
enum class exec_interactive_mode { never, if_available, always };

/// A credential plugin (kubeconfig `users[].user.exec`, client-go's ExecConfig): a program whose
/// standard output is an ExecCredential object holding a bearer token or a client certificate
/// and, optionally, its expiry.
struct exec_config {
  /// "client.authentication.k8s.io/v1" or "client.authentication.k8s.io/v1beta1": the version of
  /// the ExecCredential sent to the plugin, and the one its answer must carry.
  std::string api_version{};
  /// The program: a name looked up in $PATH, or a path (a kubeconfig's relative path with a '/'
  /// is taken from the kubeconfig's folder, as kubectl does).
  std::string command{};
  std::vector<std::string> args{};
  /// Set for the plugin on top of this process's environment (later entries win).
  std::vector<std::pair<std::string, std::string>> env{};
  /// Shown when the command cannot be found (how to install the plugin).
  std::string install_hint{};
  /// Sends the cluster (server, CA, TLS server name, `cluster_config`) in KUBERNETES_EXEC_INFO.
  bool provide_cluster_info = false;
  exec_interactive_mode interactive_mode = exec_interactive_mode::if_available;
  /// The cluster's `extensions` entry `client.authentication.k8s.io/exec`, as JSON text (""
  /// when absent); passed as spec.cluster.config with `provide_cluster_info`.
  std::string cluster_config{};
  /// A plugin still running after this long is killed (with its process group) and the attempt
  /// fails. client-go has no bound; zero means none here too.
  std::chrono::nanoseconds timeout = std::chrono::seconds(60);
};

/// Everything needed to talk to one API server as one identity.
struct rest_config {
  /// "https://host:port", optionally with a path prefix ("https://host/k8s"); requests append
  /// their path to it. Only https is supported.
  std::string server{};
  tls_config tls{};
  /// Sent as "Authorization: Bearer <token>" unless `bearer_token_file` is set.
  std::string bearer_token{};
  /// A file holding the token, re-read when it changes (a service account's projected token);
  /// takes precedence over `bearer_token`.
  std::filesystem::path bearer_token_file{};
  /// How often the token file is checked for a change (a stat; re-read only when its time, size
  /// or inode changed). A 401 answer forces a check before the next request.
  std::chrono::nanoseconds token_file_check_interval = std::chrono::minutes(1);
  /// The namespace the kubeconfig context or the pod's service account names; "" when unset.
  std::string default_namespace{};
  /// Bound on a whole unary request (connect, TLS handshake, send, receive), and on opening a
  /// stream up to its response headers. Zero: no bound.
  std::chrono::nanoseconds timeout = std::chrono::seconds(30);
  /// Client-side limit on unary requests (a token bucket; streams are not limited): `qps`
  /// requests per second on average, `burst` at once. qps <= 0 disables it. client-go's defaults.
  double qps = 5.0;
  int burst = 10;
  /// The User-Agent header.
  std::string user_agent = "informer/0.1";
  /// See `impersonation`.
  impersonation impersonate{};
  /// See `proxy_config`.
  proxy_config proxy{};
  /// A credential plugin supplying the bearer token or client certificate, run when a request
  /// needs one and the cached one is missing, about to expire, or was answered with 401
  /// (exec_credential.hpp). Its certificate replaces `tls`'s for new connections. Ignored when
  /// `bearer_token` or `bearer_token_file` is set (a given token wins, as in kubectl).
  std::optional<exec_config> exec{};
};

/// The PEM text a `tls_config` names, read from its files or taken from its data, and checked.
struct tls_pem {
  std::string ca;    ///< "" when the system's trust store is to be used
  std::string cert;  ///< "" without client certificate
  std::string key;   ///< "" without client certificate
};

/// Reads and checks the TLS material of `tls`: each file must be readable, the CA text must hold
/// at least one certificate, the client certificate and key must come together, parse, and match.
/// Errors: the file's system error (e.g. no_such_file_or_directory) with the path in the detail;
/// `errc::invalid_config` for text that is not a certificate or key, a certificate without key
/// (or the reverse), a key that does not match the certificate, or a CA together with
/// insecure_skip_tls_verify; the detail names the field and OpenSSL's reason.
detailed_result<tls_pem> load_tls_pem(const tls_config& tls);

/// Reads a whole configuration file (kubeconfig, certificate, key, token). `what` names it for the
/// error. Errors: the system error (no_such_file_or_directory, permission_denied, ...) with
/// "cannot read <what> <path>" in the detail.
detailed_result<std::string> read_config_file(const std::filesystem::path& path, std::string_view what);

struct token_source_options {
  /// The fixed token; used when `file` is empty.
  std::string token{};
  /// The token file; re-read when it changes. Surrounding whitespace is trimmed.
  std::filesystem::path file{};
  /// Minimum time between two checks of the file (zero: every call).
  std::chrono::nanoseconds check_interval = std::chrono::minutes(1);
  /// Clock; empty means steady_clock (tests drive their own).
  std::function<std::chrono::steady_clock::time_point()> now{};
};

/// The bearer token to send with each request.
///
/// With a file, the first `token()` reads it; later calls look at the file again once
/// `check_interval` has passed (or after `invalidate()`) and re-read it when its modification time,
/// size or inode changed, so a token rotated in place or swapped by a symlink (as the kubelet does)
/// is picked up. If the file cannot be read after it was read once, the last good token is kept.
///
/// Thread safety: thread-safe. No I/O under the lock other than the stat and read of the file.
class token_source {
public:
  explicit token_source(token_source_options options);

  /// The token to send ("" when none is configured). Errors: the first read of the file failed
  /// (its system error, with the path).
  detailed_result<std::string> token();

  /// Makes the next `token()` check the file at once (call it after a 401).
  void invalidate();

private:
  struct file_id {
    std::int64_t mtime_ns = 0;
    std::uint64_t size = 0;
    std::uint64_t inode = 0;
    bool operator==(const file_id&) const = default;
  };

  detailed_result<std::string> refresh_locked(std::chrono::steady_clock::time_point now) INFORMER_REQUIRES(mu_);

  const token_source_options options_;
  informer::mutex mu_;
  std::string token_ INFORMER_GUARDED_BY(mu_);    // last good token
  bool loaded_ INFORMER_GUARDED_BY(mu_) = false;  // token_ came from the file
  file_id id_ INFORMER_GUARDED_BY(mu_){};         // the file token_ was read from
  std::chrono::steady_clock::time_point next_check_ INFORMER_GUARDED_BY(mu_){};
};

}  // namespace informer
