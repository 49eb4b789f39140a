// Against a real kube-apiserver 1.20 (with kube-controller-manager) and its etcd: every object read
// as protobuf (from the server, and straight from etcd) decodes to exactly the JSON the server
// sends for it.
#include "informer/codec/protobuf.hpp"

#include "control_plane.hpp"
#include "json_diff.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace codec = informer::codec;
namespace json = boost::json;
using informer::testing::control_plane;
using informer::testing::detail::shell_quote;

namespace {

constexpr const char* protobuf_type = "application/vnd.kubernetes.protobuf";

// Runs a shell command: its exit code and output (stdout and stderr).
informer::testing::detail::script_result run(const std::string& command) {
  return informer::testing::detail::run_command(command);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string base64_decode(std::string_view text) {
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    int v = -1;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    if (v < 0) continue;
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    if ((count += 6) >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

std::string describe_diff(const json::value& decoded, const json::value& expected) {
  return informer::testing::describe_json_differences(decoded, expected, "the decoded protobuf", "the JSON");
}

std::string resource_version(const json::value& v) {
  const auto* meta = v.is_object() ? v.get_object().if_contains("metadata") : nullptr;
  const auto* rv = meta != nullptr && meta->is_object() ? meta->get_object().if_contains("resourceVersion") : nullptr;
  return rv != nullptr && rv->is_string() ? std::string(rv->get_string()) : std::string();
}

class cluster {
public:
  // The controller manager makes ServiceAccounts, ReplicaSets and their Pods: objects written by
  // controllers, not only by kubectl.
  cluster() : cp_({.with_controller_manager = true}) { std::filesystem::create_directories(work_dir()); }

  std::filesystem::path work_dir() const { return cp_.dir() / "codec-test"; }

  struct response {
    int status = 0;
    std::string body;
  };

  response get(const std::string& path, const std::string& accept) {
    const auto body_file = work_dir() / ("body-" + std::to_string(++requests_));
    const auto r =
        run("curl -sS --max-time 30 --cacert " + shell_quote(cp_.ca_file()) + " -H " +
            shell_quote("Authorization: Bearer " + cp_.admin_token()) + " -H " + shell_quote("Accept: " + accept) +
            " -o " + shell_quote(body_file.string()) + " -w '%{http_code}' " + shell_quote(cp_.apiserver_url() + path));
    response out;
    out.status = r.exit_code == 0 ? std::atoi(r.output.c_str()) : -1;
    out.body = read_file(body_file);
    std::filesystem::remove(body_file);
    BOOST_TEST_REQUIRE(r.exit_code == 0, "curl " << path << ": " << r.output);
    return out;
  }

  json::value get_json(const std::string& path) {
    const auto r = get(path, "application/json");
    BOOST_TEST_REQUIRE(r.status == 200, "GET " << path << ": " << r.status << " " << r.body);
    return json::parse(r.body);
  }

  std::string get_protobuf(const std::string& path) {
    const auto r = get(path, protobuf_type);
    BOOST_TEST_REQUIRE(r.status == 200, "GET " << path << " as protobuf: " << r.status << " " << r.body);
    return r.body;
  }

  std::string kubectl(const std::string& args) {
    const auto r = run(shell_quote(cp_.kubectl()) + " --kubeconfig=" + shell_quote(cp_.kubeconfig_path()) + " " + args);
    BOOST_TEST_REQUIRE(r.exit_code == 0, "kubectl " << args << ": " << r.output);
    return r.output;
  }

  void apply(const std::string& name, const std::string& manifest) {
    const auto file = work_dir() / (name + ".yaml");
    std::ofstream(file) << manifest;
    kubectl("apply -f " + shell_quote(file.string()));
  }

  // The value and mod_revision of one etcd key.
  struct etcd_value {
    std::string value;
    std::int64_t mod_revision = 0;
  };
  etcd_value etcd_get(const std::string& key) {
    const auto r = run("ETCDCTL_API=3 etcdctl --endpoints=" + shell_quote(cp_.etcd_endpoint()) + " get " +
                       shell_quote(key) + " -w json");
    BOOST_TEST_REQUIRE(r.exit_code == 0, "etcdctl get " << key << ": " << r.output);
    const auto reply = json::parse(r.output);
    const auto* kvs = reply.get_object().if_contains("kvs");
    BOOST_TEST_REQUIRE((kvs != nullptr && kvs->get_array().size() == 1u), "no etcd key " << key);
    const auto& kv = kvs->get_array()[0].get_object();
    return {base64_decode(kv.at("value").get_string()), kv.at("mod_revision").to_number<std::int64_t>()};
  }

  template <class Predicate>
  void wait_for(const std::string& what, Predicate done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (!done()) {
      BOOST_TEST_REQUIRE((std::chrono::steady_clock::now() < deadline), "timed out waiting for " << what);
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }

  control_plane& cp() { return cp_; }

private:
  control_plane cp_;
  int requests_ = 0;
};

std::unique_ptr<cluster>& the_cluster() {
  static std::unique_ptr<cluster> instance;
  return instance;
}

// One control plane for the whole file, with the objects every test reads.
struct cluster_fixture {
  cluster_fixture() {
    if (!control_plane::available() || !codec::has_schemas()) {
      return;
    }
    the_cluster() = std::make_unique<cluster>();
    create_objects(*the_cluster());
  }
  ~cluster_fixture() { the_cluster().reset(); }

  static void create_objects(cluster& c) {
    c.apply("namespace", "apiVersion: v1\nkind: Namespace\nmetadata: {name: codec}\n");
    // The ServiceAccount admission plugin refuses pods until the token of `default` exists.
    c.wait_for("the default ServiceAccount's token", [&] {
      const auto r = c.get("/api/v1/namespaces/codec/serviceaccounts/default", "application/json");
      return r.status == 200 && json::parse(r.body).as_object().contains("secrets");
    });
    c.apply("config", R"(apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: codec
  labels: {app: shop}
  annotations: {example.com/multi-line: "a\nb", example.com/empty: ""}
data:
  app.conf: "port=8080\n"
  empty: ""
binaryData:
  blob: AAH/EA==
)");
    c.apply("secret", R"(apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: codec}
type: Opaque
data:
  password: aHVudGVyMg==
  empty: ""
stringData:
  user: admin
)");
    c.apply("service", R"(apiVersion: v1
kind: Service
metadata: {name: web, namespace: codec, labels: {app: web}}
spec:
  type: NodePort
  selector: {app: web}
  externalTrafficPolicy: Local
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: admin, port: 8081, targetPort: 9090, protocol: TCP}
)");
    c.apply("deployment", R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: codec, labels: {app: web}}
spec:
  replicas: 2
  revisionHistoryLimit: 3
  progressDeadlineSeconds: 120
  minReadySeconds: 1
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}, annotations: {example.com/rev: "1"}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{name: http, containerPort: 80}]
        resources: {limits: {cpu: 100m, memory: 1.5Gi}}
)");
    const std::string owner_uid = c.kubectl("get configmap settings -n codec -o jsonpath={.metadata.uid}");
    c.apply("pod", R"(apiVersion: v1
kind: Pod
metadata:
  name: rich
  namespace: codec
  labels: {app: shop, tier: web}
  annotations: {note: hello}
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: settings, uid: )" +
                       owner_uid + R"(, controller: true, blockOwnerDeletion: false}
spec:
  initContainers:
  - {name: init, image: "busybox:1.36", command: [sh, -c, "true"]}
  containers:
  - name: app
    image: nginx:1.25
    args: [--port, "8080"]
    workingDir: /srv
    ports:
    - {name: http, containerPort: 8080, protocol: TCP}
    - {name: metrics, containerPort: 9090, hostPort: 19090}
    env:
    - {name: PLAIN, value: x}
    - {name: EMPTY, value: ""}
    - name: NODE
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password, optional: true}}
    - name: LIMIT
      valueFrom: {resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: settings}}
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: "1", memory: 1.5Gi, ephemeral-storage: 2G}
    volumeMounts:
    - {name: cache, mountPath: /cache}
    - {name: config, mountPath: /etc/config, readOnly: true, subPath: app.conf}
    livenessProbe:
      httpGet: {path: /healthz, port: http, httpHeaders: [{name: X-Probe, value: "1"}]}
      initialDelaySeconds: 5
      periodSeconds: 10
    readinessProbe:
      tcpSocket: {port: 8080}
    startupProbe:
      exec: {command: [cat, /tmp/ready]}
    lifecycle:
      preStop: {exec: {command: [sleep, "5"]}}
    securityContext:
      runAsUser: 0
      runAsNonRoot: false
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
    imagePullPolicy: IfNotPresent
    stdin: true
  - {name: sidecar, image: "busybox:1.36", command: [sleep, infinity]}
  volumes:
  - {name: cache, emptyDir: {medium: Memory, sizeLimit: 128Mi}}
  - name: config
    configMap: {name: settings, defaultMode: 0644, items: [{key: app.conf, path: app.conf, mode: 0600}]}
  - {name: creds, secret: {secretName: creds, optional: false}}
  - name: downward
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  - name: projected
    projected: {sources: [{serviceAccountToken: {path: token, expirationSeconds: 3600, audience: api}}]}
  tolerations:
  - {key: dedicated, operator: Equal, value: web, effect: NoSchedule}
  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 300}
  nodeSelector: {disktype: ssd}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: zone, operator: In, values: [a, b]}]
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 50
        podAffinityTerm:
          labelSelector: {matchLabels: {app: shop}}
          topologyKey: kubernetes.io/hostname
  topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: shop}}}
  terminationGracePeriodSeconds: 15
  activeDeadlineSeconds: 600
  dnsConfig: {nameservers: [1.1.1.1], options: [{name: ndots, value: "2"}, {name: edns0}]}
  hostAliases: [{ip: 10.1.2.3, hostnames: [a.local, b.local]}]
  enableServiceLinks: false
  hostname: rich
  subdomain: web
  securityContext: {fsGroup: 2000, sysctls: [{name: net.core.somaxconn, value: "1024"}]}
  readinessGates: [{conditionType: example.com/ready}]
)");
    c.apply("lease", R"(apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader, namespace: codec}
spec:
  holderIdentity: me
  leaseDurationSeconds: 15
  acquireTime: "2021-01-13T13:14:26.123456Z"
  renewTime: "2021-01-13T13:15:00.000001Z"
  leaseTransitions: 0
)");
    c.apply("event", R"(apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: tested, namespace: codec}
eventTime: "2021-01-13T13:14:26.654321Z"
reportingController: example.com/tester
reportingInstance: tester-1
action: Testing
reason: Tested
note: a note
type: Normal
regarding: {kind: Pod, name: rich, namespace: codec, apiVersion: v1}
)");
    c.apply("crd", R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList, shortNames: [wd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns: [{name: Size, type: integer, jsonPath: .spec.size}]
    subresources: {status: {}, scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10, default: 3}
              ratio: {type: number, multipleOf: 0.25, maximum: 2.5}
              color: {type: string, enum: [red, green], pattern: "^[a-z]+$"}
              tags: {type: array, items: {type: string}, maxItems: 5}
              extra: {type: object, additionalProperties: {type: string}}
              free: {type: object, x-kubernetes-preserve-unknown-fields: true}
              replicas: {type: integer}
          status: {type: object, properties: {replicas: {type: integer}}}
)");
    // A deleted object held by a finalizer: deletionTimestamp and deletionGracePeriodSeconds.
    c.apply("doomed",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: doomed, namespace: codec, finalizers: "
            "[example.com/hold]}\ndata: {a: b}\n");
    c.kubectl("delete configmap doomed -n codec --wait=false");

    c.wait_for("the Deployment's pods", [&] {
      const auto pods = c.get_json("/api/v1/namespaces/codec/pods?labelSelector=app%3Dweb");
      return pods.at("items").as_array().size() == 2;
    });
    c.wait_for("the CRD to be established", [&] {
      return c.get_json("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
          .at("status")
          .as_object()
          .contains("acceptedNames");
    });
    c.apply("widget",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: codec}\n"
            "spec: {size: 4, ratio: 0.5, free: {anything: [1, 2.5, true]}}\n");
  }
};

BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

struct cluster_running {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result r(the_cluster() != nullptr);
    r.message() << "needs the Kubernetes binaries (scripts/provision-control-plane.sh) and the schemas "
                   "(INFORMER_KUBERNETES_PROTO=ON)";
    return r;
  }
};

// A list served from the watch cache (resourceVersion=0) comes in map order, different on every
// request: sort the items by namespace/name so that two reads compare.
void sort_items(json::value& list) {
  auto* items = list.as_object().if_contains("items");
  if (items == nullptr || !items->is_array()) {
    return;
  }
  const auto key = [](const json::value& item) {
    const auto& meta = item.at("metadata").as_object();
    const auto* ns = meta.if_contains("namespace");
    return (ns != nullptr ? std::string(ns->as_string()) : std::string()) + "/" +
           std::string(meta.at("name").as_string());
  };
  auto& array = items->as_array();
  std::sort(array.begin(), array.end(), [&](const json::value& a, const json::value& b) { return key(a) < key(b); });
}

// GETs `path` as JSON and as protobuf and requires the decoded protobuf to equal the JSON. The two
// reads are separate requests: when the object changed in between (a controller updated its
// status), read again.
json::value expect_protobuf_equals_json(const std::string& path) {
  auto& c = *the_cluster();
  for (int attempt = 0;; ++attempt) {
    auto expected = c.get_json(path);
    const auto bytes = c.get_protobuf(path);
    auto env = codec::unwrap_envelope(bytes);
    BOOST_TEST_REQUIRE(env.has_value(), path << ": " << env.error().what());
    auto decoded = codec::to_json(*env);
    BOOST_TEST_REQUIRE(decoded.has_value(), path << ": " << decoded.error().what());
    sort_items(expected);
    sort_items(*decoded);
    if (*decoded == expected) {
      if (expected.at("metadata").as_object().contains("name")) {
        auto meta = codec::metadata_to_json(*env);
        BOOST_TEST_REQUIRE(meta.has_value(), path << ": " << meta.error().what());
        BOOST_TEST(
            meta->at("metadata") == expected.at("metadata"),
            path << ": metadata-only decoder differs:" << describe_diff(meta->at("metadata"), expected.at("metadata")));
      }
      return expected;
    }
    if (attempt < 20 && resource_version(*decoded) != resource_version(expected)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      continue;
    }
    BOOST_TEST(false, path << ": the decoded protobuf differs from the JSON:" << describe_diff(*decoded, expected));
    return expected;
  }
}

// A difference the server's read path introduces on purpose, with the reason.
struct known_difference {
  std::string path;  // as `diff` names it, e.g. ".spec.volumes[5].secret.defaultMode"
  std::string why;
};

// Reads `key` straight from etcd and requires it to decode to the JSON the server sends for
// `path` (the storage version's path), except for metadata.resourceVersion, which etcd does not
// store (the server sets it from the key's mod_revision), and the listed known differences. Any
// other difference fails the test and is listed. Values stored as JSON (apiextensions) are parsed.
void expect_etcd_equals_json(const std::string& key, const std::string& path,
                             const std::vector<known_difference>& known = {}) {
  auto& c = *the_cluster();
  for (int attempt = 0;; ++attempt) {
    const auto expected = c.get_json(path);
    const auto stored = c.etcd_get(key);
    json::value decoded;
    if (auto env = codec::unwrap_envelope(stored.value)) {
      auto object = codec::to_json(*env);
      BOOST_TEST_REQUIRE(object.has_value(), key << ": " << object.error().what());
      decoded = std::move(*object);
    } else {
      BOOST_TEST_REQUIRE(env.error().code() == codec::make_error_code(codec::errc::not_protobuf),
                         key << ": " << env.error().what());
      BOOST_TEST_MESSAGE(key << " is stored as JSON, not protobuf");
      decoded = json::parse(stored.value);
    }
    auto& meta = decoded.as_object()["metadata"].as_object();
    BOOST_TEST(!meta.contains("resourceVersion"), key << ": etcd stores a resourceVersion");
    meta["resourceVersion"] = std::to_string(stored.mod_revision);
    auto differences = informer::testing::json_differences(decoded, expected, "the decoded protobuf", "the JSON");
    std::erase_if(differences, [&](const std::string& d) {
      for (const auto& k : known) {
        if (d.starts_with(k.path + ":")) {
          BOOST_TEST_MESSAGE(key << ": known difference " << d << " (" << k.why << ")");
          return true;
        }
      }
      return false;
    });
    if (differences.empty()) {
      return;
    }
    if (attempt < 20 && resource_version(expected) != std::to_string(stored.mod_revision)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      continue;
    }
    std::string text;
    for (const auto& d : differences) {
      text += "\n  " + d;
    }
    BOOST_TEST(false, key << ": the etcd value differs from the server's JSON:" << text);
    return;
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(protobuf_codec, *boost::unit_test::precondition(cluster_running{}))

BOOST_AUTO_TEST_CASE(objects_read_as_protobuf_equal_their_json) {
  for (const std::string path : {
           "/api/v1/namespaces/codec/pods/rich",
           "/api/v1/namespaces/codec/configmaps/settings",
           "/api/v1/namespaces/codec/configmaps/doomed",
           "/api/v1/namespaces/codec/secrets/creds",
           "/api/v1/namespaces/codec/services/web",
           "/api/v1/namespaces/codec/serviceaccounts/default",
           "/api/v1/namespaces/codec",
           "/apis/apps/v1/namespaces/codec/deployments/web",
           "/apis/coordination.k8s.io/v1/namespaces/codec/leases/leader",
           "/apis/events.k8s.io/v1/namespaces/codec/events/tested",
           "/api/v1/namespaces/codec/events/tested",
           "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
       }) {
    BOOST_TEST_CONTEXT(path) { expect_protobuf_equals_json(path); }
  }
}

BOOST_AUTO_TEST_CASE(the_fixture_objects_carry_the_special_types) {
  const auto pod = expect_protobuf_equals_json("/api/v1/namespaces/codec/pods/rich");
  const auto& app = pod.at("spec").at("containers").at(0);
  BOOST_TEST(app.at("resources").at("limits").at("memory") == "1536Mi");                     // canonical Quantity
  BOOST_TEST(app.at("livenessProbe").at("httpGet").at("port") == "http");                    // IntOrString string
  BOOST_TEST(app.at("readinessProbe").at("tcpSocket").at("port") == 8080);                   // IntOrString int
  BOOST_TEST(pod.at("spec").at("volumes").at(0).at("emptyDir").at("sizeLimit") == "128Mi");  // inlined VolumeSource
  BOOST_TEST(pod.at("metadata").at("managedFields").at(0).at("fieldsV1").is_object());
  const auto lease = expect_protobuf_equals_json("/apis/coordination.k8s.io/v1/namespaces/codec/leases/leader");
  BOOST_TEST(lease.at("spec").at("acquireTime") == "2021-01-13T13:14:26.123456Z");  // MicroTime
  const auto doomed = expect_protobuf_equals_json("/api/v1/namespaces/codec/configmaps/doomed");
  BOOST_TEST(doomed.at("metadata").at("deletionTimestamp").is_string());
  const auto secret = expect_protobuf_equals_json("/api/v1/namespaces/codec/secrets/creds");
  BOOST_TEST(secret.at("data").at("password") == "aHVudGVyMg==");  // bytes
}

BOOST_AUTO_TEST_CASE(controller_made_objects_equal_their_json) {
  const auto pods = the_cluster()->get_json("/api/v1/namespaces/codec/pods?labelSelector=app%3Dweb");
  for (const auto& pod : pods.at("items").as_array()) {
    const std::string name(pod.at("metadata").at("name").as_string());
    expect_protobuf_equals_json("/api/v1/namespaces/codec/pods/" + name);
  }
  const auto sets = the_cluster()->get_json("/apis/apps/v1/namespaces/codec/replicasets");
  BOOST_TEST_REQUIRE(sets.at("items").as_array().size() == 1u);
  expect_protobuf_equals_json("/apis/apps/v1/namespaces/codec/replicasets/" +
                              std::string(sets.at("items").at(0).at("metadata").at("name").as_string()));
}

BOOST_AUTO_TEST_CASE(lists_read_as_protobuf_equal_their_json) {
  for (const std::string path : {
           "/api/v1/namespaces/codec/pods",
           "/api/v1/namespaces/codec/configmaps",
           "/api/v1/namespaces/codec/secrets",
           "/api/v1/namespaces/codec/services",
           "/apis/apps/v1/namespaces/codec/deployments",
           "/apis/apps/v1/namespaces/codec/replicasets",
           "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
           "/api/v1/namespaces/codec/pods?resourceVersion=0",
       }) {
    BOOST_TEST_CONTEXT(path) { expect_protobuf_equals_json(path); }
  }
}

BOOST_AUTO_TEST_CASE(an_empty_list_has_empty_items) {
  const auto list = expect_protobuf_equals_json("/api/v1/namespaces/codec/limitranges");
  BOOST_TEST(list.at("items") == json::array());
}

BOOST_AUTO_TEST_CASE(etcd_values_equal_the_servers_json) {
  // The ServiceAccount admission plugin adds the token volume after defaulting, so etcd holds it
  // without defaultMode; the server applies defaults again whenever it decodes from etcd.
  expect_etcd_equals_json("/registry/pods/codec/rich", "/api/v1/namespaces/codec/pods/rich",
                          {{".spec.volumes[5].secret.defaultMode",
                            "defaulted by kube-apiserver on read; etcd holds the object as admission left it"}});
  const auto sets = the_cluster()->get_json("/apis/apps/v1/namespaces/codec/replicasets");
  const std::string set_name(sets.at("items").at(0).at("metadata").at("name").as_string());
  expect_etcd_equals_json("/registry/replicasets/codec/" + set_name,
                          "/apis/apps/v1/namespaces/codec/replicasets/" + set_name);
  // Leases are stored as v1beta1 in 1.20, CRDs as v1beta1, events as core v1 whatever version
  // created them: each is compared with the server's rendering of the stored version.
  const std::vector<std::pair<std::string, std::string>> objects = {
      {"/registry/configmaps/codec/settings", "/api/v1/namespaces/codec/configmaps/settings"},
      {"/registry/configmaps/codec/doomed", "/api/v1/namespaces/codec/configmaps/doomed"},
      {"/registry/secrets/codec/creds", "/api/v1/namespaces/codec/secrets/creds"},
      {"/registry/services/specs/codec/web", "/api/v1/namespaces/codec/services/web"},
      {"/registry/deployments/codec/web", "/apis/apps/v1/namespaces/codec/deployments/web"},
      {"/registry/leases/codec/leader", "/apis/coordination.k8s.io/v1beta1/namespaces/codec/leases/leader"},
      {"/registry/events/codec/tested", "/api/v1/namespaces/codec/events/tested"},
      {"/registry/namespaces/codec", "/api/v1/namespaces/codec"},
      // Stored as JSON, in apiextensions.k8s.io/v1beta1.
      {"/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com",
       "/apis/apiextensions.k8s.io/v1beta1/customresourcedefinitions/widgets.example.com"},
  };
  for (const auto& [key, path] : objects) {
    BOOST_TEST_CONTEXT(key) { expect_etcd_equals_json(key, path); }
  }
}

BOOST_AUTO_TEST_CASE(custom_resources_in_etcd_are_reported_as_json) {
  const auto stored = the_cluster()->etcd_get("/registry/example.com/widgets/codec/w1");
  auto env = codec::unwrap_envelope(stored.value);
  BOOST_TEST_REQUIRE(!env.has_value());
  BOOST_TEST(env.error().code() == codec::make_error_code(codec::errc::not_protobuf));
  BOOST_TEST(env.error().detail().find("JSON") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_protobuf_watch_equals_the_json_watch) {
  auto& c = *the_cluster();
  const std::string from = resource_version(c.get_json("/api/v1/namespaces/codec/configmaps"));
  c.apply("watched", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched, namespace: codec}\ndata: {n: '1'}\n");
  c.kubectl(R"(patch configmap watched -n codec --type=merge -p '{"data":{"n":"2"},"binaryData":{"b":"AA=="}}')");
  c.kubectl("delete configmap watched -n codec");
  const std::string watch = "/api/v1/namespaces/codec/configmaps?watch=1&timeoutSeconds=2&resourceVersion=" + from +
                            "&fieldSelector=metadata.name%3Dwatched";

  const auto json_stream = c.get(watch, "application/json");
  std::vector<json::value> expected;
  std::istringstream lines(json_stream.body);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) {
      expected.push_back(json::parse(line));
    }
  }

  const auto protobuf_stream = c.get(watch, std::string(protobuf_type) + ";stream=watch");
  codec::watch_frame_reader reader;
  // Fed in small, uneven pieces, as a socket would deliver them.
  std::vector<json::value> decoded;
  for (std::size_t at = 0; at < protobuf_stream.body.size(); at += 37) {
    reader.feed(std::string_view(protobuf_stream.body).substr(at, 37));
    for (;;) {
      auto frame = reader.next();
      BOOST_TEST_REQUIRE(frame.has_value(), frame.error().what());
      if (!*frame) {
        break;
      }
      auto event = codec::decode_watch_event(**frame);
      BOOST_TEST_REQUIRE(event.has_value(), event.error().what());
      auto object = codec::to_json(event->object);
      BOOST_TEST_REQUIRE(object.has_value(), object.error().what());
      decoded.push_back(json::object{{"type", event->type}, {"object", std::move(*object)}});
    }
  }
  BOOST_TEST(!reader.finish());
  BOOST_TEST_REQUIRE(expected.size() == 3u, json_stream.body);
  BOOST_TEST_REQUIRE(decoded.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    BOOST_TEST(decoded[i] == expected[i], "event " << i << ":" << describe_diff(decoded[i], expected[i]));
  }
}

BOOST_AUTO_TEST_SUITE_END()
