// informer/apiserver/kubeconfig.hpp
//
// Builds a `rest_config` (config.hpp) the way kubectl and client-go find one:
// - `load_kubeconfig`: kubeconfig files (YAML): clusters, users, contexts, current-context; the
//   `certificate-authority`, `client-certificate`, `client-key` files (relative paths are taken
//   from the folder of the kubeconfig that names them) and their `*-data` (base64) variants;
//   `token` and `tokenFile`; `exec` credential plugins (apiVersion client.authentication.k8s.io/v1
//   or v1beta1, command, args, env, installHint, provideClusterInfo, interactiveMode, required
//   under v1; the cluster's `client.authentication.k8s.io/exec` extension; see exec_credential.hpp);
//   impersonation (`as`, `as-uid`, `as-groups`, `as-user-extra`); `insecure-skip-tls-verify`;
//   `tls-server-name`; `proxy-url` (an http:// proxy; without one, the client takes
//   HTTPS_PROXY/NO_PROXY, see `proxy_config`); the context's `namespace`. Files come from the
//   options, else `$KUBECONFIG` (a colon-separated list), else
//   `~/.kube/config`. Several files merge as in kubectl: for each named cluster, user and context
//   the first file that defines it wins, and so does the first current-context.
// - `load_in_cluster_config`: a pod's service account (token, ca.crt and namespace under
//   /var/run/secrets/kubernetes.io/serviceaccount) and the KUBERNETES_SERVICE_HOST/PORT
//   environment variables. The token is read from its file on use, so rotations are followed.
// - `load_default_config`: a kubeconfig when there is one, else the in-cluster config.
//
// Every TLS file and datum is read and checked while loading (see `load_tls_pem`), so a broken
// kubeconfig fails here, naming the entry, rather than at the first connection.
//
// Errors (`informer::error`, the detail names the file and the entry):
// - a file that cannot be read: its system error (no_such_file_or_directory, ...);
// - not YAML, or an entry of the wrong shape: `errc::invalid_config`;
// - an unknown context, cluster or user, no current-context, no kubeconfig at all, not in a
//   cluster: `errc::not_found`;
// - bad base64, a certificate or key that does not parse, a key that does not match its
//   certificate, an exec block without apiVersion or command, with an unknown apiVersion or
//   interactiveMode (or none under v1), credentials this SDK does not implement (auth providers,
//   basic auth), a proxy-url that is not http://host[:port] (https:// and socks5:// proxies are not
//   supported): `errc::invalid_config`. An exec plugin is not run while loading.
//
// Thread safety: the functions read the environment (getenv) and files; they are safe to call
// from any thread as long as nobody modifies the environment at the same time.
#pragma once

#include "informer/apiserver/config.hpp"
#include "informer/core/error.hpp"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace informer {

struct kubeconfig_options {
  /// Kubeconfig files to merge, in order; each must exist. Empty: the existing files among
  /// `$KUBECONFIG`'s entries (missing ones are skipped, as kubectl does), or `~/.kube/config`
  /// when `$KUBECONFIG` is unset or empty.
  std::vector<std::filesystem::path> files{};
  /// The context to use; empty: the merged current-context.
  std::string context{};
};

/// Loads the kubeconfig files chosen by `options` and returns the config of the chosen context.
detailed_result<rest_config> load_kubeconfig(const kubeconfig_options& options = {});

/// Parses one kubeconfig given as text. Relative file names in it are taken from `base_dir`;
/// `source` names the text in error messages (e.g. its file name).
detailed_result<rest_config> parse_kubeconfig(std::string_view yaml, const std::filesystem::path& base_dir,
                                              std::string_view context = {}, std::string_view source = "kubeconfig");

struct in_cluster_options {
  /// Where the service account's token, ca.crt and namespace are mounted.
  std::filesystem::path root = "/var/run/secrets/kubernetes.io/serviceaccount";
  /// The API server's address; empty: the KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT
  /// environment variables.
  std::string host{};
  std::string port{};
};

/// The config of a pod's service account. `bearer_token_file` is root/token (checked to be
/// readable now, re-read on change later), the CA is root/ca.crt, `default_namespace` comes from
/// root/namespace ("default" when the file is absent). Errors: `errc::not_found` outside a cluster
/// (host or port unknown); a token or CA that cannot be read, or a CA that does not parse.
detailed_result<rest_config> load_in_cluster_config(const in_cluster_options& options = {});

/// client-go's default rules: the kubeconfig files of `options` (or $KUBECONFIG, ~/.kube/config)
/// when any exists, otherwise the in-cluster config. Errors: those of the source chosen; when
/// neither is available, `errc::not_found` saying what was looked for.
detailed_result<rest_config> load_default_config(const kubeconfig_options& options = {});

}  // namespace informer
