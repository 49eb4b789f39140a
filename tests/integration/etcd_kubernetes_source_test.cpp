// The Kubernetes-on-etcd source against a real kube-apiserver 1.20 (with kube-controller-manager)
// and its etcd: the storage prefixes of the built-in resources, informers over Pods, Deployments,
// ConfigMaps and a custom resource read straight from etcd yielding the objects the API server
// serves, and values encrypted at rest reported and skipped.
#include "informer/etcd/kubernetes_source.hpp"

#include "informer/client/shared_informer.hpp"
#include "informer/codec/errors.hpp"
#include "informer/codec/protobuf.hpp"
#include "informer/core/resource.hpp"

#include "control_plane.hpp"
#include "json_diff.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace etcd = informer::etcd;
namespace json = boost::json;
using informer::testing::control_plane;
using informer::testing::detail::shell_quote;

namespace {

constexpr auto patience = 90s;

// Runs a shell command: its exit code and output (stdout and stderr).
informer::testing::detail::script_result run(const std::string& command) {
  return informer::testing::detail::run_command(command);
}

template <class Predicate>
void wait_for(const std::string& what, Predicate done) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (!done()) {
    BOOST_TEST_REQUIRE((std::chrono::steady_clock::now() < deadline), "timed out waiting for " << what);
    std::this_thread::sleep_for(200ms);
  }
}

bool documented_difference(const std::string& line) {
  return line.starts_with(".spec.volumes[") &&
         line.find("].secret.defaultMode: only in the API server: 420") != std::string::npos;
}

class cluster {
public:
  cluster() : cp_({.with_controller_manager = true}) {
    std::filesystem::create_directories(work_dir());
    auto c = etcd::client::connect({.endpoints = {cp_.etcd_endpoint()}});
    BOOST_TEST_REQUIRE(c.has_value(), (c ? "" : c.error().what()));
    client = std::make_shared<etcd::client>(std::move(*c));
    threads_.emplace_back([this] { io.run(); });
    threads_.emplace_back([this] { io.run(); });
  }
  ~cluster() {
    work_.reset();
    io.stop();
    for (auto& t : threads_) {
      t.join();
    }
  }

  std::filesystem::path work_dir() const { return cp_.dir() / "etcd-source-test"; }

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

  // GET path as JSON; null when the server answers anything but 200.
  json::value get(const std::string& path) {
    const auto body_file = work_dir() / "body.json";
    const auto r =
        run("curl -sS --max-time 30 --cacert " + shell_quote(cp_.ca_file()) + " -H " +
            shell_quote("Authorization: Bearer " + cp_.admin_token()) + " -o " + shell_quote(body_file.string()) +
            " -w '%{http_code}' " + shell_quote(cp_.apiserver_url() + path));
    BOOST_TEST_REQUIRE(r.exit_code == 0, "curl " << path << ": " << r.output);
    std::ifstream in(body_file);
    std::ostringstream body;
    body << in.rdbuf();
    return r.output == "200" ? json::parse(body.str()) : json::value{};
  }

  // An informer on `resource` read from etcd.
  std::shared_ptr<informer::shared_informer> informer_for(etcd::kubernetes_source_options options,
                                                          std::shared_ptr<etcd::source>* source = nullptr) {
    auto src = etcd::make_kubernetes_source(client, io.get_executor(), std::move(options));
    if (source != nullptr) {
      *source = src;
    }
    auto inf = informer::shared_informer::create(src, {.name = "etcd " + src->prefix()});
    inf->run();
    BOOST_TEST_REQUIRE(informer::wait_for_cache_sync({inf}, patience));
    return inf;
  }

  control_plane& cp() { return cp_; }

  asio::io_context io;
  std::shared_ptr<etcd::client> client;

private:
  control_plane cp_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io);
  std::vector<std::thread> threads_;
};

std::unique_ptr<cluster>& the_cluster() {
  static std::unique_ptr<cluster> instance;
  return instance;
}

bool available() { return control_plane::available() && informer::codec::has_schemas(); }

// One control plane for the whole file.
struct cluster_fixture {
  cluster_fixture() {
    if (!available()) {
      return;
    }
    the_cluster() = std::make_unique<cluster>();
    auto& c = *the_cluster();
    c.apply("namespace", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n");
    wait_for("the default ServiceAccount's token", [&] {
      const auto sa = c.get("/api/v1/namespaces/shop/serviceaccounts/default");
      return sa.is_object() && sa.as_object().contains("secrets");
    });
    c.apply("objects", R"(apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop, labels: {app: shop}, annotations: {note: "a\nb"}}
data: {app.conf: "port=8080\n", empty: ""}
binaryData: {blob: AAH/EA==}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other, namespace: shop, labels: {app: other}}
data: {x: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{name: http, containerPort: 80}]
        resources: {limits: {cpu: 100m, memory: 1.5Gi}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
)");
    // The Deployment's ReplicaSet and its two Pods come from the controller manager.
    wait_for("the Deployment's pods", [&] {
      const auto pods = c.get("/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb");
      return pods.is_object() && pods.as_object().at("items").as_array().size() == 2;
    });
    wait_for("the Widget CRD", [&] {
      const auto crd = c.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com");
      return crd.is_object() && crd.at("status").as_object().contains("acceptedNames") &&
             crd.at("status").at("acceptedNames").as_object().contains("kind");
    });
    c.apply("widget",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: shop, labels: "
            "{app: web}}\nspec: {size: 3, tags: [a, b]}\n");
  }
  ~cluster_fixture() { the_cluster().reset(); }
};

// Every object the informer holds equals the API server's GET of it, field by field, but for the
// documented defaulting difference. Returns the number of objects compared; counts the documented
// differences seen into `*defaulted` when given.
std::size_t compare_with_api_server(informer::shared_informer& inf, const std::string& collection_path,
                                    std::size_t* defaulted = nullptr) {
  auto& c = *the_cluster();
  std::size_t compared = 0;
  for (const auto& obj : inf.get_store()->list()) {
    const auto served = c.get(collection_path + "/" + std::string{obj->name()});
    BOOST_TEST_REQUIRE(served.is_object(), "GET " << collection_path << "/" << obj->name());
    auto lines = informer::testing::json_differences(obj->body(), served, "etcd", "the API server");
    const auto documented = std::erase_if(lines, documented_difference);
    if (defaulted != nullptr) {
      *defaulted += documented;
    }
    std::string text;
    for (const auto& l : lines) {
      text += "\n  " + l;
    }
    BOOST_TEST(lines.empty(), collection_path << "/" << obj->name() << " differs:" << text);
    ++compared;
  }
  return compared;
}

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

BOOST_AUTO_TEST_CASE(storage_prefixes_claim_every_key_of_a_1_20_control_plane,
                     *boost::unit_test::precondition([](auto) { return available(); })) {
  auto& c = *the_cluster();
  // Every key kube-apiserver and the controller manager wrote belongs to exactly one built-in
  // resource's prefix (or the CRD-defined Widget's), except the server's own bookkeeping.
  std::vector<std::pair<std::string, std::string>> prefixes;  // key prefix, resource
  for (const auto& r : informer::builtin_resources()) {
    prefixes.emplace_back(etcd::key_prefix({.resource = r}), informer::to_string(r));
  }
  const informer::resource widgets{.group = "example.com", .version = "v1", .plural = "widgets", .kind = "Widget"};
  prefixes.emplace_back(etcd::key_prefix({.resource = widgets}), "widgets");
  BOOST_TEST(etcd::key_prefix({.resource = widgets}) == "/registry/example.com/widgets/");
  BOOST_TEST(etcd::key_prefix(
                 {.resource = informer::parse_resource("pods").value(), .etcd_prefix = "/other/", .ns = "shop"}) ==
             "/other/pods/shop/");
  BOOST_TEST(etcd::key_prefix({.resource = informer::parse_resource("nodes").value(), .ns = "shop"}) ==
             "/registry/minions/");

  const auto all = c.client->range("/registry/", etcd::prefix_end("/registry/"), {.keys_only = true});
  BOOST_TEST_REQUIRE(all.has_value());
  std::set<std::string> claimed;
  for (const auto& kv : all->kvs) {
    std::vector<std::string> owners;
    for (const auto& [prefix, name] : prefixes) {
      if (kv.key.starts_with(prefix)) {
        owners.push_back(name);
      }
    }
    if (owners.empty()) {
      BOOST_TEST((kv.key.starts_with("/registry/masterleases/") || kv.key.starts_with("/registry/ranges/")),
                 "no resource claims " << kv.key);
    } else {
      BOOST_TEST(owners.size() == 1u, kv.key << " is claimed by " << owners.size() << " resources");
      claimed.insert(owners.front());
    }
  }
  // The special cases were really exercised.
  for (const char* name : {"services/v1", "endpoints/v1", "customresourcedefinitions.apiextensions.k8s.io/v1",
                           "apiservices.apiregistration.k8s.io/v1", "pods/v1", "deployments.apps/v1", "widgets"}) {
    BOOST_TEST(claimed.contains(name), name << " has no key in etcd");
  }
}

BOOST_AUTO_TEST_CASE(objects_from_etcd_equal_the_api_servers,
                     *boost::unit_test::precondition([](auto) { return available(); })) {
  auto& c = *the_cluster();
  auto pods = c.informer_for({.resource = informer::parse_resource("pods").value(), .ns = "shop"});
  auto deployments = c.informer_for({.resource = informer::parse_resource("deployments").value(), .ns = "shop"});
  auto configmaps = c.informer_for({.resource = informer::parse_resource("configmaps").value(), .ns = "shop"});
  auto widgets =
      c.informer_for({.resource = {.group = "example.com", .version = "v1", .plural = "widgets", .kind = "Widget"}});
  // The controller manager updates the Deployment's status after creating it: compare once it has
  // settled and the etcd informer has its latest version.
  std::size_t defaulted = 0;
  const auto compare_all = [&] {
    return compare_with_api_server(*pods, "/api/v1/namespaces/shop/pods", &defaulted) +
           compare_with_api_server(*deployments, "/apis/apps/v1/namespaces/shop/deployments") +
           compare_with_api_server(*configmaps, "/api/v1/namespaces/shop/configmaps") +
           compare_with_api_server(*widgets, "/apis/example.com/v1/namespaces/shop/widgets");
  };
  wait_for("a settled Deployment", [&] {
    const auto d = c.get("/apis/apps/v1/namespaces/shop/deployments/web");
    return d.at("status").as_object().contains("observedGeneration") &&
           deployments->get_store()->get_by_key("shop/web") &&
           deployments->get_store()->get_by_key("shop/web")->resource_version() ==
               d.at("metadata").at("resourceVersion").as_string();
  });
  BOOST_TEST(pods->get_store()->size() == 2u);
  BOOST_TEST(configmaps->get_store()->size() == 3u);  // settings, other, kube-root-ca.crt
  BOOST_TEST(compare_all() == 7u);
  // Each pod has the ServiceAccount token volume, the one documented difference.
  BOOST_TEST(defaulted == 2u);

  // Changes made through the API server arrive through etcd's watch, with the server's
  // resourceVersion.
  c.kubectl("label configmap settings -n shop tier=gold");
  wait_for("the label through the etcd watch", [&] {
    auto cm = configmaps->get_store()->get_by_key("shop/settings");
    return cm && cm->labels().get("tier").value_or("") == "gold";
  });
  const auto served = c.get("/api/v1/namespaces/shop/configmaps/settings");
  BOOST_TEST(configmaps->get_store()->get_by_key("shop/settings")->resource_version() ==
             served.at("metadata").at("resourceVersion").as_string());
  BOOST_TEST(compare_with_api_server(*configmaps, "/api/v1/namespaces/shop/configmaps") == 3u);
  c.kubectl("delete configmap other -n shop");
  wait_for("the delete through the etcd watch", [&] { return !configmaps->get_store()->get_by_key("shop/other"); });
  for (auto& inf : {pods, deployments, configmaps, widgets}) {
    inf->stop();
  }
}

BOOST_AUTO_TEST_CASE(values_encrypted_at_rest_are_reported_and_skipped,
                     *boost::unit_test::precondition([](auto) { return available(); })) {
  auto& c = *the_cluster();
  // What kube-apiserver with an aescbc EncryptionConfiguration writes (the payload is opaque here).
  const std::string encrypted =
      std::string{"k8s:enc:aescbc:v1:key1:"} + std::string("\x8f\x12\x00\xa4\x55\x10", 6) + std::string(64, '\x5a');
  BOOST_TEST_REQUIRE(c.client->put("/registry/secrets/shop/sealed", encrypted).has_value());
  std::mutex mutex;
  std::vector<etcd::decode_failure> failures;
  std::shared_ptr<etcd::source> src;
  auto secrets = c.informer_for({.resource = informer::parse_resource("secrets").value(),
                                 .ns = "shop",
                                 .on_decode_error =
                                     [&](const etcd::decode_failure& f) {
                                       std::lock_guard lock(mutex);
                                       failures.push_back(f);
                                     }},
                                &src);
  // The rest of the namespace's secrets (the ServiceAccount token) synced.
  BOOST_TEST(secrets->get_store()->size() >= 1u);
  BOOST_TEST(!secrets->get_store()->get_by_key("shop/sealed"));
  {
    std::lock_guard lock(mutex);
    BOOST_TEST_REQUIRE(failures.size() == 1u);
    BOOST_TEST(failures[0].key == "/registry/secrets/shop/sealed");
    BOOST_TEST((failures[0].error.code() == informer::codec::make_error_code(informer::codec::errc::encrypted)));
    BOOST_TEST(failures[0].error.what().find("/registry/secrets/shop/sealed") != std::string::npos);
  }
  BOOST_TEST(src->decode_failures() == 1u);
  // In the watch too: another encrypted write is reported, a readable Secret still arrives.
  BOOST_TEST_REQUIRE(c.client->put("/registry/secrets/shop/sealed2", encrypted).has_value());
  c.kubectl("create secret generic plain -n shop --from-literal=a=b");
  wait_for("the plain Secret", [&] { return secrets->get_store()->get_by_key("shop/plain") != nullptr; });
  BOOST_TEST(src->decode_failures() == 2u);
  BOOST_TEST(!secrets->get_store()->get_by_key("shop/sealed2"));
  secrets->stop();
  BOOST_TEST_REQUIRE(c.client->delete_range("/registry/secrets/shop/sealed").has_value());
  BOOST_TEST_REQUIRE(c.client->delete_range("/registry/secrets/shop/sealed2").has_value());
}
