#include "informer/core/resource.hpp"

#include <boost/test/unit_test.hpp>

#include "informer/apiserver/resource_path.hpp"

#include <set>
#include <string>

using informer::errc;
using informer::parse_resource;
using informer::resource;

BOOST_AUTO_TEST_CASE(bare_plural_finds_the_preferred_version) {
  const auto pods = parse_resource("pods");
  BOOST_TEST_REQUIRE(pods.has_value());
  BOOST_TEST(pods->group == "");
  BOOST_TEST(pods->version == "v1");
  BOOST_TEST(pods->kind == "Pod");
  BOOST_TEST(pods->namespaced);
  BOOST_TEST(pods->api_version() == "v1");

  const auto deployments = parse_resource("deployments");
  BOOST_TEST_REQUIRE(deployments.has_value());
  BOOST_TEST(deployments->api_version() == "apps/v1");
  BOOST_TEST(to_string(*deployments) == "deployments.apps/v1");

  const auto nodes = parse_resource("nodes");
  BOOST_TEST_REQUIRE(nodes.has_value());
  BOOST_TEST(!nodes->namespaced);
}

BOOST_AUTO_TEST_CASE(qualified_names_must_match_group_and_version) {
  BOOST_TEST(parse_resource("v1/configmaps")->kind == "ConfigMap");
  BOOST_TEST(parse_resource("apps/v1/deployments")->kind == "Deployment");
  BOOST_TEST(parse_resource("events")->group == "");  // the core one, not events.k8s.io
  BOOST_TEST(parse_resource("apps/v1beta1/deployments").error().code() == make_error_code(errc::not_found));
  BOOST_TEST(parse_resource("v1/deployments").error().code() == make_error_code(errc::not_found));
  BOOST_TEST(parse_resource("stable.example.com/v1/crontabs").error().code() == make_error_code(errc::not_found));
}

BOOST_AUTO_TEST_CASE(malformed_names_are_rejected) {
  for (const char* text : {"", "/pods", "v1/", "a/b/c/d", "apps//deployments"}) {
    const auto r = parse_resource(text);
    BOOST_TEST(r.has_error(), text);
    if (r.has_error()) BOOST_TEST(r.error().code() == make_error_code(errc::invalid_argument), text);
  }
}

BOOST_AUTO_TEST_CASE(builtin_table_has_unique_names_and_kinds) {
  std::set<std::string> names;
  for (const resource& r : informer::builtin_resources()) {
    BOOST_TEST(!r.kind.empty());
    BOOST_TEST(names.insert(r.group + "/" + r.plural).second, r.plural);
  }
  BOOST_TEST(names.size() > 40u);
}

BOOST_AUTO_TEST_CASE(api_paths_follow_group_scope_and_subresource) {
  const resource pods = *parse_resource("pods");
  const resource deployments = *parse_resource("deployments");
  const resource nodes = *parse_resource("nodes");
  BOOST_TEST(informer::resource_path(pods, "") == "/api/v1/pods");
  BOOST_TEST(informer::resource_path(pods, "ns1") == "/api/v1/namespaces/ns1/pods");
  BOOST_TEST(informer::resource_path(pods, "ns1", "web-0", "status") == "/api/v1/namespaces/ns1/pods/web-0/status");
  BOOST_TEST(informer::resource_path(deployments, "a") == "/apis/apps/v1/namespaces/a/deployments");
  BOOST_TEST(informer::resource_path(nodes, "ignored", "n1") == "/api/v1/nodes/n1");
  BOOST_TEST(informer::resource_path(pods, "a b", "x/y") == "/api/v1/namespaces/a%20b/pods/x%2Fy");
}

BOOST_AUTO_TEST_CASE(query_strings_skip_empty_values_and_encode) {
  BOOST_TEST(informer::query_string({{"a", ""}, {"b", ""}}) == "");
  BOOST_TEST(informer::query_string({{"labelSelector", "app in (a,b),!x"}, {"limit", ""}, {"watch", "1"}}) ==
             "?labelSelector=app%20in%20%28a%2Cb%29%2C%21x&watch=1");
}
