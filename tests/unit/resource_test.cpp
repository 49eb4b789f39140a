#include "informer/core/resource.hpp"

#include <boost/test/unit_test.hpp>

#include "informer/apiserver/resource_path.hpp"
#include "informer/apiserver/rest_client.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <set>
#include <string>

using informer::errc;
using informer::parse_resource;
using informer::resource;

// A program's global resource, initialised before the library's own statics may be.
const auto pods_at_static_initialisation = parse_resource("pods");

BOOST_AUTO_TEST_CASE(works_from_a_static_initialiser) {
  BOOST_TEST_REQUIRE(pods_at_static_initialisation.has_value());
  BOOST_TEST(pods_at_static_initialisation->kind == "Pod");
}

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

BOOST_AUTO_TEST_CASE(names_that_are_not_path_segments_are_refused) {
  using informer::check_path_segment;
  for (const char* ok : {"", "a", "my-app.v2", "x..y", "a.b.c"}) BOOST_TEST(!check_path_segment("name", ok), ok);
  for (const char* bad : {".", "..", "a/b", "/", "../secrets", "a%2Fb", "%"}) {
    const auto e = check_path_segment("name", bad);
    BOOST_TEST((e.code() == make_error_code(errc::invalid_argument)), bad);
    BOOST_TEST(e.detail().find(std::string("\"") + bad + "\"") != std::string::npos, e.detail());
  }
}

BOOST_AUTO_TEST_CASE(the_rest_client_refuses_such_names_before_sending) {
  boost::asio::io_context io;  // never run: nothing may be sent
  auto http = informer::http_client::create(io.get_executor(), {.server = "https://127.0.0.1:1", .qps = 0}).value();
  const auto configmaps = parse_resource("configmaps").value();
  const informer::rest_client in_default(http, configmaps, "default");
  auto get = in_default.async_get("../../secrets/x", {}, boost::asio::use_future);
  auto patch = in_default.async_patch("..", informer::patch_type::merge_patch, "{}", {}, boost::asio::use_future);
  const informer::rest_client bad_ns(http, configmaps, "kube-system/configmaps");
  auto list = bad_ns.async_list({}, boost::asio::use_future);
  io.run();
  BOOST_TEST((std::get<0>(get.get()).code() == make_error_code(errc::invalid_argument)));
  BOOST_TEST((std::get<0>(list.get()).code() == make_error_code(errc::invalid_argument)));
  BOOST_TEST((std::get<0>(patch.get()).code() == make_error_code(errc::invalid_argument)));
  BOOST_TEST(http.stats().requests_sent == 0u);
}
