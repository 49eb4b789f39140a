// informer/apiserver/resource_path.hpp
//
// The REST paths and query strings of the Kubernetes API, built from a `resource` (core/resource.hpp):
// the one place that knows `/api/v1/namespaces/ns/pods/name/status` and
// `/apis/apps/v1/deployments?labelSelector=...`. The lister-watcher and the REST client both use it.
//
// Thread safety: pure functions.
#pragma once

#include "informer/client/lister_watcher.hpp"
#include "informer/core/resource.hpp"

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace informer {

/// The path of a collection (`name` empty), of one object, or of one object's subresource:
/// "/api/v1/namespaces/{ns}/pods[/{name}[/{subresource}]]", "/apis/{group}/{version}/...".
/// `ns` is ignored for cluster-scoped resources; empty `ns` on a namespaced resource addresses
/// every namespace (valid for collections only). Path segments are percent-encoded.
std::string resource_path(const resource& r, std::string_view ns, std::string_view name = {},
                          std::string_view subresource = {});

/// Percent-encodes `text` for use in a URL query value or path segment (RFC 3986 unreserved
/// characters are kept).
std::string url_encode(std::string_view text);

/// "?k1=v1&k2=v2" from the pairs whose value is non-empty, values percent-encoded; "" if none.
std::string query_string(std::initializer_list<std::pair<std::string_view, std::string_view>> params);

/// The query of a list request: labelSelector, fieldSelector, limit (when > 0), continue,
/// resourceVersion and resourceVersionMatch, each only when set.
std::string list_query(const list_options& options);

}  // namespace informer
