#include "informer/core/resource.hpp"

#include <array>

namespace informer {

std::string resource::api_version() const { return group.empty() ? version : group + "/" + version; }

std::string to_string(const resource& r) {
  std::string out = r.plural;
  if (!r.group.empty()) {
    out += '.';
    out += r.group;
  }
  out += '/';
  out += r.version;
  return out;
}

namespace {

// Kubernetes 1.20's preferred version of each resource. Where two groups serve the same plural
// (core and events.k8s.io "events"), the core one is listed, so a bare plural finds it. Built on
// first use: a static initializer elsewhere (a program's global resource) may ask before this
// file's own statics exist.
const auto& builtin_table() {
  static const std::array table{
      resource{"", "v1", "pods", "Pod", true},
      resource{"", "v1", "services", "Service", true},
      resource{"", "v1", "endpoints", "Endpoints", true},
      resource{"", "v1", "configmaps", "ConfigMap", true},
      resource{"", "v1", "secrets", "Secret", true},
      resource{"", "v1", "serviceaccounts", "ServiceAccount", true},
      resource{"", "v1", "events", "Event", true},
      resource{"", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true},
      resource{"", "v1", "replicationcontrollers", "ReplicationController", true},
      resource{"", "v1", "limitranges", "LimitRange", true},
      resource{"", "v1", "resourcequotas", "ResourceQuota", true},
      resource{"", "v1", "podtemplates", "PodTemplate", true},
      resource{"", "v1", "namespaces", "Namespace", false},
      resource{"", "v1", "nodes", "Node", false},
      resource{"", "v1", "persistentvolumes", "PersistentVolume", false},
      resource{"apps", "v1", "deployments", "Deployment", true},
      resource{"apps", "v1", "replicasets", "ReplicaSet", true},
      resource{"apps", "v1", "statefulsets", "StatefulSet", true},
      resource{"apps", "v1", "daemonsets", "DaemonSet", true},
      resource{"apps", "v1", "controllerrevisions", "ControllerRevision", true},
      resource{"batch", "v1", "jobs", "Job", true},
      resource{"batch", "v1beta1", "cronjobs", "CronJob", true},
      resource{"autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true},
      resource{"coordination.k8s.io", "v1", "leases", "Lease", true},
      resource{"discovery.k8s.io", "v1beta1", "endpointslices", "EndpointSlice", true},
      resource{"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true},
      resource{"networking.k8s.io", "v1", "ingresses", "Ingress", true},
      resource{"networking.k8s.io", "v1", "ingressclasses", "IngressClass", false},
      resource{"policy", "v1beta1", "poddisruptionbudgets", "PodDisruptionBudget", true},
      resource{"policy", "v1beta1", "podsecuritypolicies", "PodSecurityPolicy", false},
      resource{"rbac.authorization.k8s.io", "v1", "roles", "Role", true},
      resource{"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true},
      resource{"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false},
      resource{"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false},
      resource{"storage.k8s.io", "v1", "storageclasses", "StorageClass", false},
      resource{"storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", false},
      resource{"storage.k8s.io", "v1", "csidrivers", "CSIDriver", false},
      resource{"storage.k8s.io", "v1", "csinodes", "CSINode", false},
      resource{"scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", false},
      resource{"node.k8s.io", "v1beta1", "runtimeclasses", "RuntimeClass", false},
      resource{"certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", false},
      resource{"admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration",
               false},
      resource{"admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
               "ValidatingWebhookConfiguration", false},
      resource{"apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false},
      resource{"apiregistration.k8s.io", "v1", "apiservices", "APIService", false},
      resource{"flowcontrol.apiserver.k8s.io", "v1beta1", "flowschemas", "FlowSchema", false},
      resource{"flowcontrol.apiserver.k8s.io", "v1beta1", "prioritylevelconfigurations", "PriorityLevelConfiguration",
               false},
  };
  return table;
}

}  // namespace

std::span<const resource> builtin_resources() noexcept { return builtin_table(); }

detailed_result<resource> parse_resource(std::string_view text) {
  std::string_view parts[3];
  std::size_t count = 0;
  std::string_view rest = text;
  while (true) {
    const auto slash = rest.find('/');
    if (count == 3 || (slash == std::string_view::npos ? rest.empty() : slash == 0)) {
      return error{errc::invalid_argument,
                   "resource \"" + std::string(text) + "\": expected plural, version/plural or group/version/plural"};
    }
    parts[count++] = rest.substr(0, slash);
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  const std::string_view group = count == 3 ? parts[0] : std::string_view{};
  const std::string_view version = count >= 2 ? parts[count - 2] : std::string_view{};
  const std::string_view plural = parts[count - 1];
  for (const resource& r : builtin_table()) {
    if (r.plural == plural && (count == 1 || (r.group == group && r.version == version))) return r;
  }
  return error{errc::not_found, "resource \"" + std::string(text) +
                                    "\" is not built in (describe custom resources with informer::resource)"};
}

informer::error check_path_segment(std::string_view what, std::string_view value) {
  std::string why;
  if (value == "." || value == "..") {
    why = "may not be '" + std::string(value) + "'";
  } else if (value.find('/') != std::string_view::npos) {
    why = "may not contain '/'";
  } else if (value.find('%') != std::string_view::npos) {
    why = "may not contain '%'";
  } else {
    return {};
  }
  return {errc::invalid_argument, "invalid " + std::string(what) + " \"" + std::string(value) + "\": it " + why};
}

}  // namespace informer
