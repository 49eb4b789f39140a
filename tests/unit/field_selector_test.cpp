#include "informer/core/field_selector.hpp"

#include <boost/test/unit_test.hpp>

#include "informer/core/object.hpp"
#include "sample_pods.hpp"

#include <map>
#include <string>
#include <vector>

using informer::errc;
using informer::field_requirement;
using informer::field_selector;
using informer::object;
using informer::selector_op;

namespace {

field_selector must_parse(std::string_view text) {
  auto r = field_selector::parse(text);
  BOOST_TEST_REQUIRE(r.has_value(), "parse(\"" << text << "\") failed: " << r.error().what());
  return *r;
}

void expect_error(std::string_view text, std::size_t position) {
  auto r = field_selector::parse(text);
  BOOST_TEST_REQUIRE(r.has_error(), "parse(\"" << text << "\") should fail");
  BOOST_TEST(r.error().code() == make_error_code(errc::invalid_selector), text << ": " << r.error().what());
  std::string at = "at position " + std::to_string(position) + ":";
  BOOST_TEST(r.error().detail().starts_with(at), text << ": " << r.error().detail());
}

std::vector<field_requirement> reqs(const field_selector& s) {
  return {s.requirements().begin(), s.requirements().end()};
}

object::ptr make(std::string_view json) {
  auto r = object::parse(json);
  BOOST_TEST_REQUIRE(r.has_value(), "object::parse failed: " << r.error().what());
  return *r;
}

const char* scheduled_pod = R"({"apiVersion":"v1","kind":"Pod",
  "metadata":{"name":"web-1","namespace":"prod","labels":{"app":"web"}},
  "spec":{"nodeName":"node-a","replicas":3,"unschedulable":true,"ratio":1.5,"priority":null,
          "containers":[{"name":"app","image":"nginx:1.25"}]},
  "status":{"phase":"Running","podIP":"10.0.0.7"}})";

const char* pending_pod = R"({"apiVersion":"v1","kind":"Pod",
  "metadata":{"name":"web-2","namespace":"prod"},
  "spec":{"containers":[{"name":"app","image":"nginx:1.25"}]},
  "status":{"phase":"Pending"}})";

const char* node = R"({"apiVersion":"v1","kind":"Node","metadata":{"name":"node-a"},"spec":{"unschedulable":false}})";

}  // namespace

BOOST_TEST_DONT_PRINT_LOG_VALUE(field_requirement)
BOOST_TEST_DONT_PRINT_LOG_VALUE(field_selector)

BOOST_AUTO_TEST_SUITE(parsing)

BOOST_AUTO_TEST_CASE(empty_selects_everything) {
  auto s = must_parse("");
  BOOST_TEST(s.empty());
  BOOST_TEST(s == field_selector::everything());
  BOOST_TEST(s.to_string() == "");
  BOOST_TEST(s.matches(*make(pending_pod)));
  BOOST_TEST(must_parse(",,").empty());
}

BOOST_AUTO_TEST_CASE(every_operator) {
  auto s = must_parse("status.phase=Running,metadata.name==web-1,spec.nodeName!=");
  std::vector<field_requirement> want = {
      {"metadata.name", selector_op::equals, "web-1"},
      {"spec.nodeName", selector_op::not_equals, ""},
      {"status.phase", selector_op::equals, "Running"},
  };
  BOOST_TEST(reqs(s) == want);
  BOOST_TEST(!s.empty());
}

BOOST_AUTO_TEST_CASE(values_split_at_first_operator) {
  BOOST_TEST(reqs(must_parse("a=!x")) == (std::vector<field_requirement>{{"a", selector_op::equals, "!x"}}));
  BOOST_TEST(reqs(must_parse("a!=!x")) == (std::vector<field_requirement>{{"a", selector_op::not_equals, "!x"}}));
  BOOST_TEST(reqs(must_parse("a= x ")) == (std::vector<field_requirement>{{"a", selector_op::equals, " x "}}));
  BOOST_TEST(reqs(must_parse("spec.containers.0.image=nginx:1.25")) ==
             (std::vector<field_requirement>{{"spec.containers.0.image", selector_op::equals, "nginx:1.25"}}));
}

BOOST_AUTO_TEST_CASE(escapes) {
  auto s = must_parse(R"(a=x\,y\=z\\w\!v,b!=\,)");
  std::vector<field_requirement> want = {
      {"a", selector_op::equals, R"(x,y=z\w!v)"},
      {"b", selector_op::not_equals, ","},
  };
  BOOST_TEST(reqs(s) == want);
  BOOST_TEST(field_selector::escape_value(R"(a,b=c\d!e)") == R"(a\,b\=c\\d!e)");
}

BOOST_AUTO_TEST_CASE(empty_terms_are_skipped) { BOOST_TEST(must_parse(",a=b,,c=d,") == must_parse("a=b,c=d")); }

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(invalid_input)

BOOST_AUTO_TEST_CASE(detail_names_position_and_text) {
  auto r = field_selector::parse("a=b,c=d\\x");
  BOOST_TEST_REQUIRE(r.has_error());
  BOOST_TEST(r.error().code() == make_error_code(errc::invalid_selector));
  BOOST_TEST(r.error().detail().starts_with("at position 7: invalid escape sequence \"\\x\""), r.error().detail());
}

BOOST_AUTO_TEST_CASE(missing_operator) {
  expect_error("metadata.name", 0);
  expect_error("a=b,status.phase", 4);
  expect_error("a=b,!c", 4);
}

BOOST_AUTO_TEST_CASE(bad_paths) {
  expect_error("=x", 0);
  expect_error("a=b,!=x", 4);
  expect_error("metadata.name = web", 13);
  expect_error(" a=b", 0);
  expect_error("a..b=c", 1);
  expect_error(".a=c", 0);
  expect_error("a.=c", 1);
  expect_error("a!b=c", 1);
  expect_error("a/b=c", 1);
}

BOOST_AUTO_TEST_CASE(bad_values) {
  expect_error("a=b=c", 3);
  expect_error("a==b=c", 4);
  expect_error("a=x,b!==c", 7);
  expect_error(R"(a=b\c)", 3);
  expect_error(R"(a=b\)", 3);
  expect_error(R"(a=b\\\)", 5);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(canonical_text)

BOOST_AUTO_TEST_CASE(to_string_is_canonical) {
  BOOST_TEST(must_parse("status.phase==Running,metadata.namespace!=kube-system,metadata.name=a").to_string() ==
             "metadata.name=a,metadata.namespace!=kube-system,status.phase=Running");
  BOOST_TEST(must_parse(R"(a=x\,y\!z)").to_string() == R"(a=x\,y!z)");
  BOOST_TEST(must_parse("spec.nodeName=").to_string() == "spec.nodeName=");
}

BOOST_AUTO_TEST_CASE(round_trip) {
  for (std::string_view text : {
           "",
           "a=b",
           "a!=b",
           "spec.nodeName=,spec.nodeName!=",
           R"(a=x\,y\=z\\w,b!=\=,c=\=)",
           "a=!x,a!=!",
           "metadata.name=web-1,metadata.namespace=prod,status.phase!=Succeeded",
       }) {
    auto first = field_selector::parse(text);
    BOOST_TEST_REQUIRE(first.has_value(), text << ": " << first.error().what());
    auto again = field_selector::parse(first->to_string());
    BOOST_TEST_REQUIRE(again.has_value(), first->to_string() << ": " << again.error().what());
    BOOST_TEST(*again == *first, text);
    BOOST_TEST(again->to_string() == first->to_string());
  }
  // Values full of special characters survive a round trip.
  std::string nasty = R"(=,\!=,,\\==)";
  auto built = must_parse("a=" + field_selector::escape_value(nasty));
  BOOST_TEST(built.requirements()[0].value == nasty);
  BOOST_TEST(must_parse(built.to_string()) == built);
}

BOOST_AUTO_TEST_CASE(equality_ignores_source_order) {
  BOOST_TEST(must_parse("a=1,b=2") == must_parse("b=2,a==1"));
  BOOST_TEST(!(must_parse("a=1") == must_parse("a!=1")));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(matching)

BOOST_AUTO_TEST_CASE(string_fields) {
  auto pod = make(scheduled_pod);
  BOOST_TEST(must_parse("metadata.name=web-1").matches(*pod));
  BOOST_TEST(must_parse("metadata.namespace==prod,status.phase=Running").matches(*pod));
  BOOST_TEST(!must_parse("metadata.namespace=default").matches(*pod));
  BOOST_TEST(must_parse("metadata.namespace!=default").matches(*pod));
  BOOST_TEST(!must_parse("status.phase!=Running").matches(*pod));
  BOOST_TEST(must_parse("spec.containers.0.image=nginx:1.25").matches(*pod));
  BOOST_TEST(must_parse("metadata.labels.app=web").matches(*pod));
}

BOOST_AUTO_TEST_CASE(scheduled_and_unscheduled) {
  auto scheduled = make(scheduled_pod);
  auto pending = make(pending_pod);
  auto unscheduled = must_parse("spec.nodeName=");
  auto on_a_node = must_parse("spec.nodeName!=");
  BOOST_TEST(unscheduled.matches(*pending));
  BOOST_TEST(!unscheduled.matches(*scheduled));
  BOOST_TEST(on_a_node.matches(*scheduled));
  BOOST_TEST(!on_a_node.matches(*pending));
  BOOST_TEST(must_parse("spec.nodeName=node-a").matches(*scheduled));
  BOOST_TEST(must_parse("spec.nodeName!=node-b").matches(*pending));
}

BOOST_AUTO_TEST_CASE(non_string_fields_compare_as_json_text) {
  auto pod = make(scheduled_pod);
  BOOST_TEST(must_parse("spec.replicas=3").matches(*pod));
  BOOST_TEST(!must_parse("spec.replicas=03").matches(*pod));
  BOOST_TEST(must_parse("spec.unschedulable=true").matches(*pod));
  BOOST_TEST(must_parse("spec.unschedulable!=false").matches(*pod));
  BOOST_TEST(must_parse("spec.ratio=1.5").matches(*pod));
  BOOST_TEST(must_parse("spec.priority=").matches(*pod));
  BOOST_TEST(must_parse("spec.unschedulable=false").matches(*make(node)));
}

BOOST_AUTO_TEST_CASE(missing_fields_read_as_empty) {
  auto pod = make(pending_pod);
  BOOST_TEST(must_parse("status.podIP=").matches(*pod));
  BOOST_TEST(!must_parse("status.podIP!=").matches(*pod));
  BOOST_TEST(!must_parse("no.such.field=x").matches(*pod));
  BOOST_TEST(must_parse("no.such.field!=x").matches(*pod));
  // Cluster-scoped objects have no namespace.
  BOOST_TEST(must_parse("metadata.namespace=").matches(*make(node)));
}

BOOST_AUTO_TEST_CASE(sample_pods) {
  auto pending = make(informer::testing::sample_pod_json(1, {.node = ""}));
  auto placed = make(informer::testing::sample_pod_json(2, {.node = "worker-3"}));
  auto s = must_parse("metadata.namespace=default,spec.nodeName=worker-3,status.phase=Running");
  BOOST_TEST(s.matches(*placed));
  BOOST_TEST(!s.matches(*pending));
  BOOST_TEST(must_parse("spec.nodeName=").matches(*pending));
}

BOOST_AUTO_TEST_CASE(getter) {
  std::map<std::string, std::string, std::less<>> fields = {{"metadata.name", "x"}, {"spec.nodeName", "n1"}};
  int calls = 0;
  field_selector::field_getter get = [&](std::string_view path) -> std::optional<std::string> {
    ++calls;
    auto it = fields.find(path);
    if (it == fields.end()) return std::nullopt;
    return it->second;
  };
  BOOST_TEST(must_parse("metadata.name=x,spec.nodeName!=").matches(get));
  BOOST_TEST(calls == 2);
  BOOST_TEST(!must_parse("metadata.name=x,status.phase=Running").matches(get));
  BOOST_TEST(must_parse("status.phase=").matches(get));
  BOOST_TEST(must_parse("metadata.name!=y").matches([](std::string_view) { return std::optional<std::string>(); }));
}

BOOST_AUTO_TEST_SUITE_END()
