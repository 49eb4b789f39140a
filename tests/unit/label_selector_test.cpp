#include "informer/core/label_selector.hpp"

#include <boost/test/unit_test.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <vector>

using informer::errc;
using informer::label_requirement;
using informer::label_selector;
using informer::label_set;
using informer::selector_op;

namespace {

label_selector must_parse(std::string_view text) {
  auto r = label_selector::parse(text);
  BOOST_TEST_REQUIRE(r.has_value(), "parse(\"" << text << "\") failed: " << r.error().what());
  return *r;
}

label_selector must_from_json(std::string_view json) {
  auto r = label_selector::from_json(boost::json::parse(json));
  BOOST_TEST_REQUIRE(r.has_value(), "from_json(" << json << ") failed: " << r.error().what());
  return *r;
}

// Checks that `text` fails with `code` and that the detail names `position`.
void expect_error(std::string_view text, errc code, std::size_t position) {
  auto r = label_selector::parse(text);
  BOOST_TEST_REQUIRE(r.has_error(), "parse(\"" << text << "\") should fail");
  BOOST_TEST(r.error().code() == make_error_code(code), "parse(\"" << text << "\"): " << r.error().what());
  std::string at = "at position " + std::to_string(position) + ":";
  BOOST_TEST(r.error().detail().starts_with(at), "parse(\"" << text << "\"): " << r.error().detail());
}

void expect_json_error(std::string_view json, errc code, std::string_view detail_part) {
  auto r = label_selector::from_json(boost::json::parse(json));
  BOOST_TEST_REQUIRE(r.has_error(), "from_json(" << json << ") should fail");
  BOOST_TEST(r.error().code() == make_error_code(code), json << ": " << r.error().what());
  BOOST_TEST(r.error().detail().find(detail_part) != std::string::npos, json << ": " << r.error().detail());
}

std::vector<label_requirement> reqs(const label_selector& s) {
  return {s.requirements().begin(), s.requirements().end()};
}

}  // namespace

BOOST_TEST_DONT_PRINT_LOG_VALUE(label_requirement)
BOOST_TEST_DONT_PRINT_LOG_VALUE(label_selector)

BOOST_AUTO_TEST_SUITE(parsing)

BOOST_AUTO_TEST_CASE(empty_selects_everything) {
  for (std::string_view text : {"", "   ", "\t\n"}) {
    auto s = must_parse(text);
    BOOST_TEST(s.empty());
    BOOST_TEST(s == label_selector::everything());
    BOOST_TEST(s.to_string() == "");
    BOOST_TEST(s.matches(label_set{}));
    BOOST_TEST(s.matches(label_set{{"a", "b"}}));
  }
  BOOST_TEST(label_selector().empty());
}

BOOST_AUTO_TEST_CASE(every_operator) {
  auto s = must_parse("a=1,b==2,c!=3,d in (x,y),e notin (z),f,!g");
  std::vector<label_requirement> want = {
      {"a", selector_op::equals, {"1"}},      {"b", selector_op::equals, {"2"}}, {"c", selector_op::not_equals, {"3"}},
      {"d", selector_op::in, {"x", "y"}},     {"e", selector_op::not_in, {"z"}}, {"f", selector_op::exists, {}},
      {"g", selector_op::does_not_exist, {}},
  };
  BOOST_TEST(reqs(s) == want);
  BOOST_TEST(!s.empty());
}

BOOST_AUTO_TEST_CASE(requirements_sorted_by_key_and_values_sorted_unique) {
  auto s = must_parse("z in (c,a,b,a),a=1,m notin (q,p)");
  std::vector<label_requirement> want = {
      {"a", selector_op::equals, {"1"}},
      {"m", selector_op::not_in, {"p", "q"}},
      {"z", selector_op::in, {"a", "b", "c"}},
  };
  BOOST_TEST(reqs(s) == want);
}

BOOST_AUTO_TEST_CASE(whitespace_is_tolerated) {
  auto spaced = must_parse("  a = 1 ,\tb == 2 , c != 3 , d in ( x , y ) , e notin(z) , f , ! g  ");
  auto tight = must_parse("a=1,b=2,c!=3,d in (x,y),e notin (z),f,!g");
  BOOST_TEST(spaced == tight);
  BOOST_TEST(must_parse("d in(x,y)") == must_parse("d in (x,y)"));
  BOOST_TEST(must_parse("\na\r\n=\n1\n") == must_parse("a=1"));
}

BOOST_AUTO_TEST_CASE(empty_values) {
  BOOST_TEST(reqs(must_parse("a=")) == (std::vector<label_requirement>{{"a", selector_op::equals, {""}}}));
  BOOST_TEST(reqs(must_parse("a!=,b")) ==
             (std::vector<label_requirement>{{"a", selector_op::not_equals, {""}}, {"b", selector_op::exists, {}}}));
  // Kubernetes reads empty set members as empty values.
  BOOST_TEST(reqs(must_parse("a in ()")) == (std::vector<label_requirement>{{"a", selector_op::in, {""}}}));
  BOOST_TEST(reqs(must_parse("a in (,x)")) == (std::vector<label_requirement>{{"a", selector_op::in, {"", "x"}}}));
  BOOST_TEST(reqs(must_parse("a in (x,)")) == (std::vector<label_requirement>{{"a", selector_op::in, {"", "x"}}}));
  BOOST_TEST(reqs(must_parse("a in (x,,y)")) ==
             (std::vector<label_requirement>{{"a", selector_op::in, {"", "x", "y"}}}));
}

BOOST_AUTO_TEST_CASE(prefixed_keys_and_keywords_as_keys_and_values) {
  auto s = must_parse("app.kubernetes.io/name=web,example.com/tier in (in,notin),in,!notin");
  std::vector<label_requirement> want = {
      {"app.kubernetes.io/name", selector_op::equals, {"web"}},
      {"example.com/tier", selector_op::in, {"in", "notin"}},
      {"in", selector_op::exists, {}},
      {"notin", selector_op::does_not_exist, {}},
  };
  BOOST_TEST(reqs(s) == want);
  BOOST_TEST(reqs(must_parse("in in (a)")) == (std::vector<label_requirement>{{"in", selector_op::in, {"a"}}}));
  BOOST_TEST(reqs(must_parse("k=in")) == (std::vector<label_requirement>{{"k", selector_op::equals, {"in"}}}));
}

BOOST_AUTO_TEST_CASE(limits_of_names_and_values) {
  std::string name63(63, 'a');
  std::string prefix253 = std::string(249, 'p') + ".com";
  must_parse(name63 + "=" + name63);
  must_parse(prefix253 + "/" + name63);
  must_parse("A-b_c.D9=x.Y-z_0");
  expect_error(std::string(64, 'a') + "=b", errc::invalid_label, 0);
  expect_error("a=" + std::string(64, 'b'), errc::invalid_label, 2);
  expect_error(std::string(250, 'p') + ".com/a", errc::invalid_label, 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(invalid_input)

BOOST_AUTO_TEST_CASE(detail_names_position_and_token) {
  auto r = label_selector::parse("a=b,c=d foo");
  BOOST_TEST_REQUIRE(r.has_error());
  BOOST_TEST(r.error().code() == make_error_code(errc::invalid_selector));
  BOOST_TEST(r.error().detail() == "at position 8: expected ',' or end of selector, found \"foo\"");
  BOOST_TEST(r.error().what().find("invalid selector") != std::string::npos);

  r = label_selector::parse("a in (x");
  BOOST_TEST_REQUIRE(r.has_error());
  BOOST_TEST(r.error().detail() == "at position 7: expected ',' or ')', found end of selector");
}

BOOST_AUTO_TEST_CASE(missing_or_malformed_set) {
  expect_error("a in", errc::invalid_selector, 4);
  expect_error("a notin", errc::invalid_selector, 7);
  expect_error("a in x", errc::invalid_selector, 5);
  expect_error("a in x)", errc::invalid_selector, 5);
  expect_error("a in (x", errc::invalid_selector, 7);
  expect_error("a in (x y)", errc::invalid_selector, 8);
  expect_error("a in (x))", errc::invalid_selector, 8);
  expect_error("a in ((x)", errc::invalid_selector, 6);
  expect_error("a in (x=y)", errc::invalid_selector, 7);
  expect_error("a in (x),", errc::invalid_selector, 9);
}

BOOST_AUTO_TEST_CASE(bad_operators_and_values) {
  expect_error("a=(x)", errc::invalid_selector, 2);
  expect_error("a===b", errc::invalid_selector, 3);
  expect_error("a b", errc::invalid_selector, 2);
  expect_error("a > 3", errc::invalid_selector, 2);
  expect_error("a<3", errc::invalid_selector, 1);
  expect_error("a=b=c", errc::invalid_selector, 3);
  expect_error("a=b c", errc::invalid_selector, 4);
}

BOOST_AUTO_TEST_CASE(bad_characters) {
  expect_error("a@b=c", errc::invalid_label, 0);
  expect_error("a=b@c", errc::invalid_label, 2);
  expect_error("a in (x, y$)", errc::invalid_label, 9);
  expect_error("-a=b", errc::invalid_label, 0);
  expect_error("a-=b", errc::invalid_label, 0);
  expect_error("a=b-", errc::invalid_label, 2);
  expect_error("Example.com/a=b", errc::invalid_label, 0);
  expect_error("a/b/c=d", errc::invalid_label, 0);
  expect_error("ex..com/a", errc::invalid_label, 0);
}

BOOST_AUTO_TEST_CASE(empty_keys) {
  expect_error("=b", errc::invalid_selector, 0);
  expect_error("!=b", errc::invalid_selector, 0);
  expect_error("a=b,=c", errc::invalid_selector, 4);
  expect_error("a/=b", errc::invalid_label, 0);
  expect_error("/a=b", errc::invalid_label, 0);
  expect_error("!", errc::invalid_selector, 1);
  expect_error("a=b, !", errc::invalid_selector, 6);
}

BOOST_AUTO_TEST_CASE(stray_commas) {
  expect_error("a=b,", errc::invalid_selector, 4);
  expect_error("a=b , ", errc::invalid_selector, 6);
  expect_error(",a=b", errc::invalid_selector, 0);
  expect_error("a=b,,c=d", errc::invalid_selector, 4);
  expect_error(",", errc::invalid_selector, 0);
}

BOOST_AUTO_TEST_CASE(not_with_operator) {
  expect_error("!a=b", errc::invalid_selector, 2);
  expect_error("!a in (b)", errc::invalid_selector, 3);
  expect_error("!a!=b", errc::invalid_selector, 2);
  expect_error("!!a", errc::invalid_selector, 1);
  expect_error("a=!b", errc::invalid_selector, 2);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(json_form)

BOOST_AUTO_TEST_CASE(match_labels_and_expressions) {
  auto s = must_from_json(R"({
    "matchLabels": {"app": "web", "example.com/tier": ""},
    "matchExpressions": [
      {"key": "env", "operator": "In", "values": ["prod", "dev", "prod"]},
      {"key": "zone", "operator": "NotIn", "values": ["b"]},
      {"key": "canary", "operator": "Exists"},
      {"key": "legacy", "operator": "DoesNotExist", "values": []}
    ]})");
  std::vector<label_requirement> want = {
      {"app", selector_op::equals, {"web"}},       {"canary", selector_op::exists, {}},
      {"env", selector_op::in, {"dev", "prod"}},   {"example.com/tier", selector_op::equals, {""}},
      {"legacy", selector_op::does_not_exist, {}}, {"zone", selector_op::not_in, {"b"}},
  };
  BOOST_TEST(reqs(s) == want);
  BOOST_TEST(s.to_string() == "app=web,canary,env in (dev,prod),example.com/tier=,!legacy,zone notin (b)");
  BOOST_TEST(must_parse(s.to_string()) == s);
}

BOOST_AUTO_TEST_CASE(null_and_empty_select_everything) {
  for (std::string_view json : {"null", "{}", R"({"matchLabels": {}, "matchExpressions": []})",
                                R"({"matchLabels": null, "matchExpressions": null})"}) {
    auto s = must_from_json(json);
    BOOST_TEST(s.empty(), json);
    BOOST_TEST(s.matches(label_set{{"x", "y"}}));
  }
}

BOOST_AUTO_TEST_CASE(invalid_forms) {
  expect_json_error("[]", errc::invalid_selector, "JSON object");
  expect_json_error("\"app=web\"", errc::invalid_selector, "JSON object");
  expect_json_error(R"({"matchLabels": []})", errc::invalid_selector, "matchLabels");
  expect_json_error(R"({"matchLabels": {"a": 1}})", errc::invalid_selector, R"(matchLabels["a"])");
  expect_json_error(R"({"matchLabels": {"": "x"}})", errc::invalid_label, "key must not be empty");
  expect_json_error(R"({"matchLabels": {"a": "-x"}})", errc::invalid_label, R"(invalid label value "-x")");
  expect_json_error(R"({"matchExpressions": {}})", errc::invalid_selector, "matchExpressions");
  expect_json_error(R"({"matchExpressions": [7]})", errc::invalid_selector, "matchExpressions[0]");
  expect_json_error(R"({"matchExpressions": [{"operator": "Exists"}]})", errc::invalid_selector,
                    "matchExpressions[0].key");
  expect_json_error(R"({"matchExpressions": [{"key": "a b", "operator": "Exists"}]})", errc::invalid_label,
                    "matchExpressions[0].key");
  expect_json_error(R"({"matchExpressions": [{"key": "a"}]})", errc::invalid_selector, "matchExpressions[0].operator");
  expect_json_error(R"({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]})",
                    errc::invalid_selector, R"("Equals" is not a valid operator)");
  expect_json_error(R"({"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]})",
                    errc::invalid_selector, "matchExpressions[0].operator");
  expect_json_error(R"({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})",
                    errc::invalid_selector, "not a valid operator");
  expect_json_error(R"({"matchExpressions": [{"key": "a", "operator": "Exists"}, {"key": "a", "operator": "In"}]})",
                    errc::invalid_selector, "matchExpressions[1].values");
  expect_json_error(R"({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]})",
                    errc::invalid_selector, "needs at least one value");
  expect_json_error(R"({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})",
                    errc::invalid_selector, "takes no values");
  expect_json_error(R"({"matchExpressions": [{"key": "a", "operator": "DoesNotExist", "values": ["x"]}]})",
                    errc::invalid_selector, "takes no values");
  expect_json_error(R"({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]})", errc::invalid_selector,
                    "matchExpressions[0].values");
  expect_json_error(R"({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", 1]}]})",
                    errc::invalid_selector, "matchExpressions[0].values[1]");
  expect_json_error(R"({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y!"]}]})",
                    errc::invalid_label, "matchExpressions[0].values[1]");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(canonical_text)

BOOST_AUTO_TEST_CASE(to_string_is_canonical) {
  BOOST_TEST(must_parse("z , b==2, a in (y, x), !c, d notin (q,p), e, f!=1").to_string() ==
             "a in (x,y),b=2,!c,d notin (p,q),e,f!=1,z");
  BOOST_TEST(must_parse("a in (x)").to_string() == "a in (x)");
  BOOST_TEST(must_parse("a in ()").to_string() == "a in ()");
  BOOST_TEST(must_parse("a in (,x)").to_string() == "a in (,x)");
  BOOST_TEST(must_parse("a=").to_string() == "a=");
}

BOOST_AUTO_TEST_CASE(round_trip) {
  for (std::string_view text : {
           "",
           "a=b",
           "a!=b",
           "a==b,c",
           "x in (a,b,c),y notin (d),!z,w",
           "a in (),b in (,x),c=,d!=",
           "app.kubernetes.io/name=web,example.com/x notin (a.b,c_d)",
           "in,notin in (in),!x",
           "a=1,a!=2,a in (3),a",
       }) {
    auto s = must_parse(text);
    auto again = label_selector::parse(s.to_string());
    BOOST_TEST_REQUIRE(again.has_value(), s.to_string() << ": " << again.error().what());
    BOOST_TEST(*again == s, text);
    BOOST_TEST(again->to_string() == s.to_string());
  }
}

BOOST_AUTO_TEST_CASE(equality_ignores_source_order) {
  BOOST_TEST(must_parse("a=1,b=2") == must_parse("b=2, a==1"));
  BOOST_TEST(must_parse("a in (x,y)") == must_parse("a in (y,x,y)"));
  BOOST_TEST(!(must_parse("a=1") == must_parse("a in (1)")));
  BOOST_TEST(!(must_parse("a=1") == must_parse("a=2")));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(matching)

BOOST_AUTO_TEST_CASE(equals) {
  auto s = must_parse("app=web");
  BOOST_TEST(s.matches(label_set{{"app", "web"}}));
  BOOST_TEST(s.matches(label_set{{"app", "web"}, {"tier", "x"}}));
  BOOST_TEST(!s.matches(label_set{{"app", "db"}}));
  BOOST_TEST(!s.matches(label_set{}));
  auto empty_value = must_parse("app=");
  BOOST_TEST(empty_value.matches(label_set{{"app", ""}}));
  BOOST_TEST(!empty_value.matches(label_set{}));
}

BOOST_AUTO_TEST_CASE(not_equals_matches_absent_keys) {
  auto s = must_parse("app!=web");
  BOOST_TEST(!s.matches(label_set{{"app", "web"}}));
  BOOST_TEST(s.matches(label_set{{"app", "db"}}));
  BOOST_TEST(s.matches(label_set{}));
  BOOST_TEST(s.matches(label_set{{"other", "web"}}));
}

BOOST_AUTO_TEST_CASE(in_and_notin) {
  auto in = must_parse("env in (prod, staging)");
  BOOST_TEST(in.matches(label_set{{"env", "prod"}}));
  BOOST_TEST(in.matches(label_set{{"env", "staging"}}));
  BOOST_TEST(!in.matches(label_set{{"env", "dev"}}));
  BOOST_TEST(!in.matches(label_set{}));

  auto notin = must_parse("env notin (prod, staging)");
  BOOST_TEST(!notin.matches(label_set{{"env", "prod"}}));
  BOOST_TEST(notin.matches(label_set{{"env", "dev"}}));
  BOOST_TEST(notin.matches(label_set{}));

  auto with_empty = must_parse("env in ()");
  BOOST_TEST(with_empty.matches(label_set{{"env", ""}}));
  BOOST_TEST(!with_empty.matches(label_set{{"env", "x"}}));
}

BOOST_AUTO_TEST_CASE(exists_and_does_not_exist) {
  auto exists = must_parse("canary");
  BOOST_TEST(exists.matches(label_set{{"canary", ""}}));
  BOOST_TEST(exists.matches(label_set{{"canary", "yes"}}));
  BOOST_TEST(!exists.matches(label_set{{"other", "yes"}}));

  auto absent = must_parse("!canary");
  BOOST_TEST(!absent.matches(label_set{{"canary", ""}}));
  BOOST_TEST(absent.matches(label_set{}));
  BOOST_TEST(absent.matches(label_set{{"other", "yes"}}));
}

BOOST_AUTO_TEST_CASE(all_requirements_must_hold) {
  auto s = must_parse("app=web,env in (prod,staging),!legacy,tier!=db,zone");
  label_set good{{"app", "web"}, {"env", "prod"}, {"zone", "a"}};
  BOOST_TEST(s.matches(good));
  BOOST_TEST(!s.matches(label_set{{"app", "web"}, {"env", "prod"}}));
  BOOST_TEST(!s.matches(label_set{{"app", "web"}, {"env", "prod"}, {"zone", "a"}, {"legacy", "1"}}));
  BOOST_TEST(!s.matches(label_set{{"app", "web"}, {"env", "prod"}, {"zone", "a"}, {"tier", "db"}}));
  BOOST_TEST(s.matches(label_set{{"app", "web"}, {"env", "staging"}, {"zone", "a"}, {"tier", "fe"}}));
  BOOST_TEST(!s.matches(label_set{{"app", "web"}, {"env", "dev"}, {"zone", "a"}}));
}

BOOST_AUTO_TEST_CASE(requirement_matches_alone) {
  label_requirement r{"app", selector_op::in, {"a", "b"}};
  BOOST_TEST(r.matches(label_set{{"app", "b"}}));
  BOOST_TEST(!r.matches(label_set{{"app", "c"}}));
}

BOOST_AUTO_TEST_SUITE_END()
