// The etcd sources' decoders and key layout, without a server: kube-apiserver's storage prefixes,
// `k8s\0` protobuf and JSON values to objects with the key's revision, encrypted and unknown values
// refused with a clear error, and the generic source's key layouts, decoder and label extractor.
#include "informer/etcd/generic_source.hpp"
#include "informer/etcd/kubernetes_source.hpp"

#include "informer/codec/errors.hpp"
#include "informer/codec/protobuf.hpp"

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

// g++ 12 flags options members left to their defaults in designated initializers, which is how
// the house style spells options.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <string>

namespace etcd = informer::etcd;
namespace json = boost::json;

namespace {

informer::resource builtin(const char* name) { return informer::parse_resource(name).value(); }

etcd::key_value kv(std::string key, std::string value, std::int64_t rev) {
  return {.key = std::move(key), .value = std::move(value), .create_revision = rev, .mod_revision = rev};
}

bool has_code(const informer::error& e, informer::codec::errc code) {
  return e.code() == informer::codec::make_error_code(code);
}

bool has_code(const informer::error& e, informer::errc code) { return e.code() == informer::make_error_code(code); }

}  // namespace

BOOST_AUTO_TEST_CASE(storage_prefixes_follow_kube_apiserver_1_20) {
  BOOST_TEST(etcd::storage_prefix(builtin("pods")) == "pods");
  BOOST_TEST(etcd::storage_prefix(builtin("deployments")) == "deployments");
  BOOST_TEST(etcd::storage_prefix(builtin("services")) == "services/specs");
  BOOST_TEST(etcd::storage_prefix(builtin("endpoints")) == "services/endpoints");
  BOOST_TEST(etcd::storage_prefix(builtin("nodes")) == "minions");
  BOOST_TEST(etcd::storage_prefix(builtin("replicationcontrollers")) == "controllers");
  BOOST_TEST(etcd::storage_prefix(builtin("ingresses")) == "ingress");
  BOOST_TEST(etcd::storage_prefix(builtin("podsecuritypolicies")) == "podsecuritypolicy");
  BOOST_TEST(etcd::storage_prefix(builtin("customresourcedefinitions")) ==
             "apiextensions.k8s.io/customresourcedefinitions");
  BOOST_TEST(
      etcd::storage_prefix({.group = "stable.example.com", .version = "v1", .plural = "crontabs", .kind = "CronTab"}) ==
      "stable.example.com/crontabs");

  BOOST_TEST(etcd::key_prefix({.resource = builtin("pods")}) == "/registry/pods/");
  BOOST_TEST(etcd::key_prefix({.resource = builtin("pods"), .ns = "default"}) == "/registry/pods/default/");
  BOOST_TEST(etcd::key_prefix({.resource = builtin("pods"), .etcd_prefix = "/k8s/", .ns = "a"}) == "/k8s/pods/a/");
  // A namespace means nothing to a cluster-scoped resource.
  BOOST_TEST(etcd::key_prefix({.resource = builtin("namespaces"), .ns = "x"}) == "/registry/namespaces/");
}

BOOST_AUTO_TEST_CASE(kubernetes_values_become_the_servers_objects) {
  auto decoder = etcd::make_kubernetes_decoder({.resource = builtin("configmaps")});
  // A ConfigMap as kube-apiserver stores it: k8s\0 + runtime.Unknown around
  // ConfigMap{metadata{name: "cm", namespace: "ns", uid: "u1"}, data{"k": "v"}}.
  const std::string meta = std::string(
      "\x0a\x02"
      "cm"
      "\x1a\x02"
      "ns"
      "\x2a\x02"
      "u1",
      12);
  const std::string entry = std::string(
      "\x0a\x01"
      "k"
      "\x12\x01"
      "v",
      6);
  const std::string raw = "\x0a" + std::string(1, static_cast<char>(meta.size())) + meta + "\x12" +
                          std::string(1, static_cast<char>(entry.size())) + entry;
  const std::string stored = informer::codec::wrap_envelope({.api_version = "v1", .kind = "ConfigMap", .raw = raw});
  if (informer::codec::has_schemas()) {
    auto obj = decoder->decode(kv("/registry/configmaps/ns/cm", stored, 42), 42);
    BOOST_TEST_REQUIRE(obj.has_value(), (obj ? "" : obj.error().what()));
    BOOST_TEST((*obj)->name() == "cm");
    BOOST_TEST((*obj)->ns() == "ns");
    BOOST_TEST((*obj)->resource_version() == "42");
    BOOST_TEST((*obj)->field("data.k").value().as_string() == "v");
    // resourceVersion sits where Go's ObjectMeta puts it: after uid.
    BOOST_TEST((*obj)->to_json().find(R"("uid":"u1","resourceVersion":"42")") != std::string::npos, (*obj)->to_json());
  }

  // JSON values (custom resources, CRDs) get the revision too.
  auto cr = decoder->decode(
      kv("/registry/x/y/ns/w",
         R"({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"ns"},"spec":{}})", 7),
      9);
  BOOST_TEST_REQUIRE(cr.has_value());
  BOOST_TEST((*cr)->resource_version() == "9");

  // Encrypted at rest, an unknown encoding, broken JSON: errors that name the key.
  auto encrypted = decoder->decode(kv("/registry/configmaps/ns/e", "k8s:enc:aescbc:v1:key1:\x01\x02", 5), 5);
  BOOST_TEST_REQUIRE(!encrypted);
  BOOST_TEST(has_code(encrypted.error(), informer::codec::errc::encrypted));
  BOOST_TEST(encrypted.error().what().find("/registry/configmaps/ns/e") != std::string::npos);
  auto unknown = decoder->decode(kv("/registry/configmaps/ns/u", "\x89PNG....", 5), 5);
  BOOST_TEST_REQUIRE(!unknown);
  BOOST_TEST(has_code(unknown.error(), informer::codec::errc::not_protobuf));
  auto broken = decoder->decode(kv("/registry/configmaps/ns/b", "{\"metadata\":", 5), 5);
  BOOST_TEST_REQUIRE(!broken);
  BOOST_TEST(has_code(broken.error(), informer::errc::invalid_json));  // as the generic decoder says it

  // A deleted key without its value: a stand-in named by the key.
  auto stand_in = decoder->placeholder("/registry/configmaps/ns/gone", 77);
  BOOST_TEST_REQUIRE(stand_in.has_value());
  BOOST_TEST((*stand_in)->ns() == "ns");
  BOOST_TEST((*stand_in)->name() == "gone");
  BOOST_TEST((*stand_in)->kind() == "ConfigMap");
  BOOST_TEST((*stand_in)->resource_version() == "77");
  BOOST_TEST(!decoder->placeholder("/registry/configmaps/flat", 1));
}

BOOST_AUTO_TEST_CASE(generic_values_named_by_their_keys) {
  auto flat = etcd::make_generic_decoder({.prefix = "/cfg/"});
  auto obj = flat->decode(kv("/cfg/a", R"({"metadata":{"name":"ignored","labels":{"t":"x"}},"spec":{"n":1}})", 3), 3);
  BOOST_TEST_REQUIRE(obj.has_value(), (obj ? "" : obj.error().what()));
  BOOST_TEST((*obj)->name() == "a");  // the key wins over the value
  BOOST_TEST((*obj)->ns() == "");
  BOOST_TEST((*obj)->labels().get("t").value_or("") == "x");
  BOOST_TEST((*obj)->resource_version() == "3");
  auto plain = flat->decode(kv("/cfg/b", R"({"port":1})", 4), 4);  // no metadata at all
  BOOST_TEST_REQUIRE(plain.has_value());
  BOOST_TEST((*plain)->name() == "b");
  BOOST_TEST(!flat->decode(kv("/cfg/a/b", "{}", 1), 1));  // '/' below the prefix: not a name
  auto array = flat->decode(kv("/cfg/c", "[1]", 1), 1);
  BOOST_TEST_REQUIRE(!array);
  BOOST_TEST(has_code(array.error(), informer::errc::not_an_object));
  auto text = flat->decode(kv("/cfg/c", "nope", 1), 1);
  BOOST_TEST_REQUIRE(!text);
  BOOST_TEST(has_code(text.error(), informer::errc::invalid_json));
  BOOST_TEST(text.error().what().find("/cfg/c") != std::string::npos);
  auto bad_metadata = flat->decode(kv("/cfg/c", R"({"metadata":1})", 1), 1);
  BOOST_TEST_REQUIRE(!bad_metadata);
  BOOST_TEST(has_code(bad_metadata.error(), informer::errc::invalid_field));

  auto nested = etcd::make_generic_decoder(
      {.prefix = "/cfg/",
       .layout = etcd::key_layout::namespace_name,
       .decode = [](std::string_view, std::string_view value) -> informer::detailed_result<json::value> {
         return json::value{{"spec", json::value{{"raw", value}}}};
       },
       .labels =
           [](std::string_view key, const json::value&) {
             return informer::label_set{{"from", key.ends_with("a") ? "a" : "other"}};
           }});
  auto namespaced = nested->decode(kv("/cfg/prod/a", "bytes", 5), 5);
  BOOST_TEST_REQUIRE(namespaced.has_value(), (namespaced ? "" : namespaced.error().what()));
  BOOST_TEST((*namespaced)->ns() == "prod");
  BOOST_TEST((*namespaced)->name() == "a");
  BOOST_TEST((*namespaced)->labels().get("from").value_or("") == "a");
  BOOST_TEST((*namespaced)->field("spec.raw").value().as_string() == "bytes");
  auto cluster = nested->decode(kv("/cfg/top", "x", 5), 5);
  BOOST_TEST_REQUIRE(cluster.has_value());
  BOOST_TEST((*cluster)->ns() == "");
  BOOST_TEST(!nested->decode(kv("/cfg/a/b/c", "x", 5), 5));
  auto stand_in = nested->placeholder("/cfg/prod/gone", 8);
  BOOST_TEST_REQUIRE(stand_in.has_value());
  BOOST_TEST((*stand_in)->ns() == "prod");
  BOOST_TEST((*stand_in)->resource_version() == "8");
}
