#include "informer/etcd/kubernetes_source.hpp"

#include "informer/codec/protobuf.hpp"
#include "informer/core/key.hpp"

#include "etcd/detail/object_json.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>

namespace informer::etcd {

namespace {

namespace json = boost::json;

// Groups kube-apiserver 1.20 serves itself; any other group is a custom resource's.
constexpr std::array<std::string_view, 21> builtin_groups{
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "extensions",
    "flowcontrol.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
};

struct prefix_override {
  std::string_view group;
  std::string_view plural;
  std::string_view folder;
};

// Where kube-apiserver 1.20's storage departs from "<plural>" (its registries' key roots, checked
// against a running 1.20 control plane by tests/integration/etcd_kubernetes_source_test.cpp).
constexpr std::array<prefix_override, 9> overrides{{
    {"", "services", "services/specs"},
    {"", "endpoints", "services/endpoints"},
    {"", "nodes", "minions"},
    {"", "replicationcontrollers", "controllers"},
    {"networking.k8s.io", "ingresses", "ingress"},
    {"extensions", "ingresses", "ingress"},
    {"policy", "podsecuritypolicies", "podsecuritypolicy"},
    {"apiextensions.k8s.io", "customresourcedefinitions", "apiextensions.k8s.io/customresourcedefinitions"},
    {"apiregistration.k8s.io", "apiservices", "apiregistration.k8s.io/apiservices"},
}};

std::string trimmed_prefix(std::string_view etcd_prefix) {
  std::string out{etcd_prefix};
  while (!out.empty() && out.back() == '/') {
    out.pop_back();
  }
  return out;
}

class kubernetes_decoder final : public object_decoder {
public:
  explicit kubernetes_decoder(const kubernetes_source_options& options)
      : resource_(options.resource),
        base_(key_prefix({.resource = options.resource,
                          .etcd_prefix = options.etcd_prefix,
                          .ns = {},
                          .on_decode_error = {},
                          .watch_buffer_bytes = options.watch_buffer_bytes})) {}

  detailed_result<object::ptr> decode(const key_value& kv, std::int64_t resource_version) const override {
    const std::string_view value = kv.value;
    json::value body;
    if (looks_like_json(value)) {
      // Custom resources and CRDs are stored as JSON.
      auto parsed = detail::parse_body(kv.key, kv.mod_revision, value, resource_version);
      if (!parsed) {
        return parsed.error();
      }
      body = std::move(*parsed);
    } else {
      // Everything else must be the protobuf envelope; unwrap_envelope names what it is instead
      // (`encrypted` for k8s:enc:, `not_protobuf` for an unknown encoding).
      auto env = codec::unwrap_envelope(value);
      if (!env) {
        return detail::keyed(kv.key, kv.mod_revision, env.error());
      }
      auto decoded = codec::to_json(*env);
      if (!decoded) {
        return detail::keyed(kv.key, kv.mod_revision, decoded.error());
      }
      body = std::move(*decoded);
      if (auto e = detail::prepare_body(body, resource_version, true)) {
        return detail::keyed(kv.key, kv.mod_revision, e);
      }
    }
    return detail::keyed_object(kv.key, kv.mod_revision, body);
  }

  detailed_result<object::ptr> placeholder(std::string_view key, std::int64_t resource_version) const override {
    if (!key.starts_with(base_)) {
      return informer::error{informer::errc::invalid_key, "etcd key '" + std::string{key} + "' is not below " + base_};
    }
    std::string_view rest = key.substr(base_.size());
    json::object metadata;
    if (resource_.namespaced) {
      auto parts = split_key(rest);
      if (!parts || parts->ns.empty()) {
        return informer::error{informer::errc::invalid_key,
                               "etcd key '" + std::string{key} + "' is not <prefix>/<namespace>/<name>"};
      }
      metadata["name"] = parts->name;
      metadata["namespace"] = parts->ns;
    } else {
      metadata["name"] = rest;
    }
    metadata["resourceVersion"] = std::to_string(resource_version);
    json::object body;
    body["kind"] = resource_.kind;
    body["apiVersion"] = resource_.api_version();
    body["metadata"] = std::move(metadata);
    return object::from_json(body);
  }

private:
  static bool looks_like_json(std::string_view value) {
    const auto first = value.find_first_not_of(" \t\r\n");
    return first != std::string_view::npos && value[first] == '{';
  }

  const informer::resource resource_;
  const std::string base_;  // the key prefix of every namespace
};

}  // namespace

std::string storage_prefix(const informer::resource& r) {
  for (const auto& o : overrides) {
    if (o.group == r.group && o.plural == r.plural) {
      return std::string{o.folder};
    }
  }
  if (std::find(builtin_groups.begin(), builtin_groups.end(), r.group) == builtin_groups.end()) {
    return r.group + "/" + r.plural;  // a custom resource
  }
  return r.plural;
}

std::string key_prefix(const kubernetes_source_options& options) {
  std::string out = trimmed_prefix(options.etcd_prefix) + "/" + storage_prefix(options.resource) + "/";
  if (options.resource.namespaced && !options.ns.empty()) {
    out += options.ns;
    out += '/';
  }
  return out;
}

std::shared_ptr<const object_decoder> make_kubernetes_decoder(const kubernetes_source_options& options) {
  return std::make_shared<kubernetes_decoder>(options);
}

std::shared_ptr<source> make_kubernetes_source(std::shared_ptr<client> etcd, boost::asio::any_io_executor executor,
                                               kubernetes_source_options options) {
  if (options.resource.plural.empty() || options.resource.kind.empty()) {
    throw std::invalid_argument("etcd::make_kubernetes_source: the resource needs a plural and a kind");
  }
  // A namespace holding '/' would read below another key prefix than its own.
  if (auto e = check_path_segment("namespace", options.ns)) {
    throw std::invalid_argument("etcd::make_kubernetes_source: " + e.detail());
  }
  return source::create(std::move(etcd), std::move(executor),
                        {.prefix = key_prefix(options),
                         .decoder = make_kubernetes_decoder(options),
                         .on_decode_error = std::move(options.on_decode_error),
                         .watch_buffer_bytes = options.watch_buffer_bytes});
}

}  // namespace informer::etcd
