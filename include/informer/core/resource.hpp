// informer/core/resource.hpp
//
// Names a kind of object the Kubernetes API serves: its group, version and resource (the plural
// used in URLs), its kind, and whether it lives in namespaces. Both sources are addressed by it:
// the API-server source builds its URLs from it (`/api/v1/namespaces/ns/pods`,
// `/apis/apps/v1/deployments`), the etcd source its key prefix (`/registry/pods/ns/`).
//
//   auto pods = informer::parse_resource("pods").value();                 // a built-in, by plural
//   auto deploys = informer::parse_resource("apps/v1/deployments").value();
//   informer::resource crontabs{.group = "stable.example.com", .version = "v1",
//                               .plural = "crontabs", .kind = "CronTab"};  // a custom resource
//
// The built-in table covers the kinds of Kubernetes 1.20 a controller commonly watches, at 1.20's
// versions: some are no longer served by current servers (batch/v1beta1 cronjobs, policy/v1beta1
// poddisruptionbudgets, discovery.k8s.io/v1beta1 endpointslices were removed in 1.25/1.26). Against
// a live server, resolve names through its discovery documents instead (apiserver/rest_mapper.hpp:
// the server's preferred versions, short names, kinds and custom resources); the table is the
// mapper's offline fallback. Any other resource is described by filling the struct.
//
// Thread safety: plain values and pure functions.
#pragma once

#include "informer/core/error.hpp"

#include <span>
#include <string>
#include <string_view>

namespace informer {

struct resource {
  std::string group{};    ///< "" for the core group, "apps", "stable.example.com", ...
  std::string version{};  ///< "v1", "v1beta1", ...
  std::string plural{};   ///< the URL name: "pods", "deployments", "crontabs"
  std::string kind{};     ///< "Pod", "Deployment", "CronTab"
  bool namespaced = true;

  /// "v1" for the core group, else "group/version" (the objects' apiVersion).
  std::string api_version() const;

  friend bool operator==(const resource&, const resource&) = default;
};

/// "plural.group/version" style name for messages: "pods/v1", "deployments.apps/v1".
std::string to_string(const resource& r);

/// The built-in resources this library knows by name (Kubernetes 1.20's preferred versions).
std::span<const resource> builtin_resources() noexcept;

/// Looks a resource up in the built-in table by "plural" (the preferred version),
/// "version/plural" (core group) or "group/version/plural". A "group/version/plural" that is not
/// built in is accepted only if `kind` is known some other way, so it fails here: describe custom
/// resources with the struct. Errors: `errc::invalid_argument` (empty or malformed text),
/// `errc::not_found` (no such built-in resource; the detail names the text).
detailed_result<resource> parse_resource(std::string_view text);

/// Checks that `value` can stand as one segment of an object's path (URL or etcd key), as
/// client-go does before it builds a request: not "." or "..", no '/' and no '%'. `what` names the
/// value in the error ("name", "namespace"). Empty is accepted (callers decide what empty means).
/// Errors: `errc::invalid_argument`, quoting the value.
informer::error check_path_segment(std::string_view what, std::string_view value);

}  // namespace informer
