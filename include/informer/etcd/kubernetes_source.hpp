// informer/etcd/kubernetes_source.hpp
//
// A `lister_watcher` that reads a Kubernetes resource straight from the cluster's etcd, with no
// kube-apiserver in the path: addressed by `informer::resource` like the API-server source, and
// yielding the same objects (the JSON kube-apiserver would send). Use it where the API server is
// the bottleneck (a large cluster's full lists), or to inspect a cluster whose API server is down.
// It needs read access to etcd, which means access to everything, Secrets included.
//
//   auto etcd = std::make_shared<informer::etcd::client>(
//       informer::etcd::client::connect({.endpoints = {"https://10.0.0.1:2379"},
//                                        .tls = {.ca_file = "ca.crt", .cert_file = "c.crt",
//                                                .key_file = "c.key"}}).value());
//   auto pods = informer::etcd::make_kubernetes_source(
//       etcd, io.get_executor(),
//       {.resource = informer::parse_resource("pods").value(), .ns = "default"});
//   auto inf = informer::shared_informer::create(pods, {.label_selector = "app=web"});
//
// Keys: kube-apiserver 1.20 stores an object under `<etcd_prefix>/<resource prefix>/<ns>/<name>`
// (cluster-scoped: `.../<name>`). The resource prefix is the plural, except where the server's
// storage says otherwise (see `storage_prefix`): services in `services/specs`, endpoints in
// `services/endpoints`, nodes in `minions`, replicationcontrollers in `controllers`, ingresses in
// `ingress`, podsecuritypolicies in `podsecuritypolicy`, and group-qualified paths
// (`<group>/<plural>`) for CustomResourceDefinitions, APIServices and every custom resource.
//
// Values: built-in kinds are `k8s\0` protobuf, decoded by `codec::to_json` (needs the schemas:
// CMake option INFORMER_KUBERNETES_PROTO); custom resources and CRDs are JSON. Either way
// metadata.resourceVersion is set to the key's mod_revision, as the server does. Differences from
// the API server's answer, all inherent to reading storage:
//   - the object is in the resource's storage version (for 1.20, e.g. Leases as
//     coordination.k8s.io/v1beta1), not converted to the version `resource` names;
//   - defaults the server applies on every read are missing where a mutating admission plugin left
//     a field undefaulted (see informer/codec/protobuf.hpp: the ServiceAccount token volume's
//     `secret.defaultMode`);
//   - the server's field selectors are limited per kind; here any field path works.
// A value encrypted at rest (`k8s:enc:...`, kube-apiserver's --encryption-provider-config) cannot be
// read without the server's keys: it is reported to `on_decode_error` (`codec::errc::encrypted`)
// and counted, and the object is skipped; so is any other undecodable value (`not_protobuf`, ...).
// For everything else (paging, revisions, watch events, selectors, errors, threads, lifetimes)
// see informer/etcd/source.hpp.
#pragma once

#include "informer/core/resource.hpp"
#include "informer/etcd/source.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace informer::etcd {

struct kubernetes_source_options {
  /// What to read; `kind`, `group`, `plural` and `namespaced` are used.
  informer::resource resource{};
  /// kube-apiserver's --etcd-prefix.
  std::string etcd_prefix = "/registry";
  /// Only this namespace (namespaced resources); empty: all namespaces.
  std::string ns{};
  /// See `source_options::on_decode_error`.
  std::function<void(const decode_failure&)> on_decode_error{};
  /// See `source_options::watch_buffer_bytes`.
  std::size_t watch_buffer_bytes = std::size_t{64} << 20;
};

/// The resource's folder below the etcd prefix in kube-apiserver 1.20's storage, without slashes
/// around it: "pods", "services/specs", "minions", "stable.example.com/crontabs".
std::string storage_prefix(const informer::resource& r);

/// The key prefix a source for `options` reads: "/registry/pods/" or "/registry/pods/default/"
/// (a trailing '/' so that "default" does not also match "default-2").
std::string key_prefix(const kubernetes_source_options& options);

/// The decoder the source uses, for reading single keys with `client::get` the same way: `k8s\0`
/// protobuf or JSON in, the API server's JSON out. Thread-safe.
std::shared_ptr<const object_decoder> make_kubernetes_decoder(const kubernetes_source_options& options);

/// A source for `options.resource` on `etcd`, doing its work on `executor`. Throws
/// std::invalid_argument for a null client, a resource without plural or kind, or a namespace
/// that is not a path segment (`check_path_segment`: it could read below another prefix).
std::shared_ptr<source> make_kubernetes_source(std::shared_ptr<client> etcd, boost::asio::any_io_executor executor,
                                               kubernetes_source_options options);

}  // namespace informer::etcd
