#include "informer/cache/lister.hpp"

#include "informer/core/key.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace informer;

namespace {

object::ptr make(const std::string& ns, const std::string& name, const std::string& app) {
  const std::string ns_field = ns.empty() ? "" : R"("namespace":")" + ns + R"(",)";
  auto parsed = object::parse(R"({"apiVersion":"v1","kind":"Thing","metadata":{)" + ns_field + R"("name":")" + name +
                              R"(","labels":{"app":")" + app + R"("}}})");
  BOOST_REQUIRE(parsed.has_value());
  return *parsed;
}

label_selector selector(std::string_view text) {
  auto s = label_selector::parse(text);
  BOOST_REQUIRE(s.has_value());
  return *s;
}

std::vector<std::string> names(const std::vector<object::ptr>& objects) {
  std::vector<std::string> out;
  for (const auto& o : objects) out.emplace_back(o->ns().empty() ? std::string(o->name()) : object_key(*o));
  std::sort(out.begin(), out.end());
  return out;
}

std::shared_ptr<indexer> filled() {
  auto store = std::make_shared<indexer>();
  store->add(make("a", "web-1", "web"));
  store->add(make("a", "db-1", "db"));
  store->add(make("b", "web-2", "web"));
  store->add(make("", "node-1", "web"));
  return store;
}

}  // namespace

BOOST_AUTO_TEST_CASE(get_finds_namespaced_and_cluster_scoped_objects) {
  const lister l(filled());
  BOOST_REQUIRE(l.get("a", "web-1") != nullptr);
  BOOST_TEST(l.get("a", "web-1")->name() == "web-1");
  BOOST_TEST(l.get("b", "web-1") == nullptr);
  BOOST_REQUIRE(l.get("node-1") != nullptr);
  BOOST_TEST(l.get("node-1")->ns().empty());
  BOOST_TEST(l.get("", "node-1") == l.get("node-1"));
  BOOST_TEST(l.get("web-1") == nullptr);  // a namespaced object is not found without its namespace
}

BOOST_AUTO_TEST_CASE(list_filters_by_selector_across_namespaces) {
  const lister l(filled());
  BOOST_TEST(names(l.list()) == (std::vector<std::string>{"a/db-1", "a/web-1", "b/web-2", "node-1"}),
             boost::test_tools::per_element());
  BOOST_TEST(names(l.list(selector("app=web"))) == (std::vector<std::string>{"a/web-1", "b/web-2", "node-1"}),
             boost::test_tools::per_element());
  BOOST_TEST(names(l.list(selector("app!=web"))) == (std::vector<std::string>{"a/db-1"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(list_in_namespace_uses_namespace_and_selector) {
  const lister l(filled());
  BOOST_TEST(names(l.list("a", selector("app=web"))) == (std::vector<std::string>{"a/web-1"}),
             boost::test_tools::per_element());
  BOOST_TEST(names(l.list("a", {})) == (std::vector<std::string>{"a/db-1", "a/web-1"}),
             boost::test_tools::per_element());
  BOOST_TEST(l.list("c", {}).empty());
  // An empty namespace means every namespace.
  BOOST_TEST(l.list("", selector("app=web")).size() == 3u);
}

BOOST_AUTO_TEST_CASE(lister_sees_later_changes_and_outlives_its_creator) {
  auto store = filled();
  const lister l(store);
  store->add(make("b", "web-3", "web"));
  BOOST_TEST(l.list("b", selector("app=web")).size() == 2u);
  store->remove(*make("a", "web-1", "web"));
  BOOST_TEST(l.get("a", "web-1") == nullptr);
  store.reset();  // the lister shares ownership
  BOOST_TEST(l.list().size() == 4u);
  BOOST_TEST(l.store().size() == 4u);
}

BOOST_AUTO_TEST_CASE(null_indexer_is_rejected) { BOOST_CHECK_THROW(lister(nullptr), std::invalid_argument); }
