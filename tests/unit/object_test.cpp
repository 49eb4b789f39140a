#include "informer/core/object.hpp"
#include "informer/core/key.hpp"

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include "core/detail/key_table.hpp"
#include "sample_pods.hpp"

#include <string>

using namespace informer;

namespace {
object::ptr must_parse(std::string_view text) {
  auto r = object::parse(text);
  BOOST_REQUIRE_MESSAGE(r.has_value(), (r.has_value() ? "" : r.error().what()));
  return *r;
}
}  // namespace

BOOST_AUTO_TEST_CASE(parses_well_known_metadata) {
  auto obj = must_parse(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"prod",
    "uid":"u-1","resourceVersion":"42","generation":7,"creationTimestamp":"2026-01-01T00:00:00Z",
    "deletionTimestamp":"2026-01-02T00:00:00Z","labels":{"tier":"front","app":"web"},"annotations":{"a/b":"c"},
    "finalizers":["x/y","z"],"ownerReferences":[{"apiVersion":"v1","kind":"Foo","name":"owner","uid":"o-1",
    "controller":true}]},"spec":{"replicas":3}})");
  BOOST_TEST(obj->api_version() == "apps/v1");
  BOOST_TEST(obj->kind() == "Deployment");
  BOOST_TEST(obj->ns() == "prod");
  BOOST_TEST(obj->name() == "web");
  BOOST_TEST(obj->uid() == "u-1");
  BOOST_TEST(obj->resource_version() == "42");
  BOOST_TEST(obj->generation() == 7);
  BOOST_TEST(obj->creation_timestamp() == "2026-01-01T00:00:00Z");
  BOOST_TEST(obj->deletion_timestamp() == "2026-01-02T00:00:00Z");
  BOOST_TEST(obj->labels().size() == 2u);
  BOOST_TEST(obj->labels().begin()->key == "app");  // sorted
  BOOST_TEST(*obj->labels().get("tier") == "front");
  BOOST_TEST(!obj->labels().get("missing"));
  BOOST_TEST(*obj->annotations().get("a/b") == "c");
  BOOST_REQUIRE(obj->finalizers().size() == 2u);
  BOOST_TEST(obj->finalizers()[1] == "z");
  BOOST_REQUIRE(obj->owner_references().size() == 1u);
  BOOST_TEST(obj->owner_references()[0].name == "owner");
  BOOST_TEST(obj->owner_references()[0].controller);
  BOOST_TEST(!obj->owner_references()[0].block_owner_deletion);
  BOOST_TEST(object_key(*obj) == "prod/web");
}

BOOST_AUTO_TEST_CASE(body_round_trips_every_json_kind) {
  const auto text = std::string(R"({"metadata":{"name":"n"},"a":null,"b":true,"c":false,"d":-12345678901,)") +
                    R"("e":18446744073709551615,"f":1.5,"g":"str\"ing","h":[],"i":{},"j":[1,[2,{"k":"v"}]],)" +
                    R"("a key longer than sixty-four characters is kept inline rather than interned ok":1})";
  auto obj = must_parse(text);
  BOOST_TEST(obj->body() == boost::json::parse(text));
  BOOST_TEST(boost::json::parse(obj->to_json()) == boost::json::parse(text));
  BOOST_TEST(obj->ns().empty());
  BOOST_TEST(object_key(*obj) == "n");
}

// Found by tests/fuzz/list_page_fuzz in the clang build: a key too long to intern (here one whose
// length takes a two-byte varint, nested too) read back from the wrong offset.
BOOST_AUTO_TEST_CASE(long_keys_round_trip) {
  const std::string key(128, 'm');
  const auto text = R"({"metadata":{"name":"n"},")" + key + R"(":{},"data":{")" + key + R"(x":")" + key + R"("}})";
  auto obj = must_parse(text);
  BOOST_TEST(boost::json::parse(obj->to_json()) == boost::json::parse(text), obj->to_json());
  BOOST_TEST(obj->body() == boost::json::parse(text));
}

BOOST_AUTO_TEST_CASE(field_reads_one_path) {
  auto obj = must_parse(informer::testing::sample_pod_json(3, {.node = "node-1"}));
  BOOST_TEST(obj->field("spec.nodeName")->as_string() == "node-1");
  BOOST_TEST(obj->field("status.phase")->as_string() == "Running");
  BOOST_TEST(obj->field("spec.containers.1.name")->as_string() == "sidecar");
  BOOST_TEST(obj->field("spec.containers.0.ports.0.containerPort")->as_int64() == 8080);
  BOOST_TEST(!obj->field("spec.containers.7"));
  BOOST_TEST(!obj->field("spec.containers.x"));
  BOOST_TEST(!obj->field("spec.nodeName.deeper"));
  BOOST_TEST(!obj->field("nope"));
  BOOST_TEST(obj->field("")->is_object());
}

BOOST_AUTO_TEST_CASE(rejects_bad_input_with_a_clear_error) {
  auto expect = [](std::string_view text, errc code, std::string_view needle) {
    auto r = object::parse(text);
    BOOST_REQUIRE(!r.has_value());
    BOOST_TEST(r.error().code() == make_error_code(code));
    BOOST_TEST(r.error().what().find(needle) != std::string::npos, r.error().what());
  };
  expect("{\"metadata\":", errc::invalid_json, "");
  expect("[1,2]", errc::not_an_object, "not a JSON object");
  expect("{}", errc::missing_name, "no metadata");
  expect(R"({"metadata":{"namespace":"x"}})", errc::missing_name, "metadata.name");
  expect(R"({"metadata":{"name":""}})", errc::missing_name, "metadata.name");
  expect(R"({"metadata":{"name":5}})", errc::invalid_field, "metadata.name");
  expect(R"({"metadata":{"name":"a","labels":{"x":1}}})", errc::invalid_field, "metadata.labels.x");
  expect(R"({"metadata":{"name":"a","labels":[]}})", errc::invalid_field, "metadata.labels");
  expect(R"({"metadata":{"name":"a","generation":"1"}})", errc::invalid_field, "generation");
  expect(R"({"metadata":{"name":"a","ownerReferences":[{"name":3}]}})", errc::invalid_field, "ownerReferences");

  auto too_big = object::parse(informer::testing::sample_pod_json(1), {.max_bytes = 1000});
  BOOST_REQUIRE(!too_big.has_value());
  BOOST_TEST(too_big.error().code() == make_error_code(errc::object_too_large));
  BOOST_TEST(!object::from_json(boost::json::value(3)).has_value());
}

BOOST_AUTO_TEST_CASE(from_json_and_parse_agree) {
  const auto text = informer::testing::sample_pod_json(9);
  auto a = must_parse(text);
  auto b = object::from_json(boost::json::parse(text));
  BOOST_REQUIRE(b.has_value());
  BOOST_TEST(same_content(*a, **b));
  auto other = must_parse(informer::testing::sample_pod_json(10));
  BOOST_TEST(!same_content(*a, *other));
}

BOOST_AUTO_TEST_CASE(compact_body_is_far_smaller_than_json) {
  const auto text = informer::testing::sample_pod_json(77);
  auto obj = must_parse(text);
  BOOST_TEST(obj->packed_size() * 2 < text.size(), obj->packed_size() << " vs " << text.size());
  BOOST_TEST(obj->memory_usage() >= obj->packed_size());
}

BOOST_AUTO_TEST_CASE(duplicate_label_keys_keep_the_last) {
  auto obj = must_parse(R"({"metadata":{"name":"a","labels":{"k":"1","k":"2"}}})");
  BOOST_TEST(obj->labels().size() == 1u);
  BOOST_TEST(*obj->labels().get("k") == "2");
}

BOOST_AUTO_TEST_CASE(keys_split_and_join) {
  BOOST_TEST(make_key("ns", "n") == "ns/n");
  BOOST_TEST(make_key("", "n") == "n");
  auto p = split_key("ns/n");
  BOOST_REQUIRE(p.has_value());
  BOOST_TEST(p->ns == "ns");
  BOOST_TEST(p->name == "n");
  BOOST_TEST(split_key("n")->ns.empty());
  for (auto bad : {"", "a/b/c", "/n", "ns/"}) {
    auto r = split_key(bad);
    BOOST_REQUIRE(!r.has_value());
    BOOST_TEST(r.error().code() == make_error_code(errc::invalid_key));
  }
}

BOOST_AUTO_TEST_CASE(value_throws_with_the_detail) {
  auto r = object::parse("[]");
  BOOST_CHECK_EXCEPTION(r.value(), boost::system::system_error, [](const boost::system::system_error& e) {
    return std::string(e.what()).find("not a JSON object") != std::string::npos;
  });
}

BOOST_AUTO_TEST_CASE(shared_strings_survive_their_first_owner) {
  // Two pods share most strings; dropping the first must leave the second intact.
  auto a = must_parse(informer::testing::sample_pod_json(1));
  auto b = must_parse(informer::testing::sample_pod_json(2));
  const auto before = b->to_json();
  a.reset();
  for (int i = 0; i < 200; ++i) must_parse(informer::testing::sample_pod_json(1000 + i));  // churn the table
  BOOST_TEST(b->to_json() == before);
  BOOST_TEST(b->field("spec.containers.0.image")->as_string() == "registry.example.com/team/web:v1.4.2");
}

BOOST_AUTO_TEST_CASE(unbounded_key_positions_stop_growing_the_key_table) {
  // Each ConfigMap brings keys of its own under `data` (and under `annotations`): after a learning
  // share they must stay inline, so churn cannot fill the process-wide table.
  auto& table = informer::detail::key_table::instance();
  const auto cm = [](int i) {
    const std::string n = std::to_string(i);
    return R"({"kind":"ConfigMap","metadata":{"name":"cm-)" + n + R"(","annotations":{"note-)" + n +
           R"(":"x"}},"data":{"unique-key-)" + n + R"(":"v)" + n + R"("}})";
  };
  const std::uint32_t before = table.size();
  constexpr int count = 3000;
  for (int i = 0; i < count; ++i) must_parse(cm(i));
  const std::uint32_t grown = table.size() - before;
  BOOST_TEST(grown <= 2 * informer::detail::key_table::max_children_per_parent + 8);
  BOOST_TEST(grown < count);
  // Inline keys read back like interned ones.
  const auto last = must_parse(cm(count + 1));
  BOOST_TEST(last->field("data.unique-key-" + std::to_string(count + 1))->as_string() ==
             "v" + std::to_string(count + 1));
  BOOST_TEST(boost::json::serialize(last->body()) == boost::json::serialize(boost::json::parse(cm(count + 1))));
}

BOOST_AUTO_TEST_CASE(deep_objects_are_accepted_up_to_the_limit) {
  auto nest = [](std::size_t levels) {
    std::string text = R"({"metadata":{"name":"deep"},"spec":)";
    for (std::size_t i = 0; i < levels; ++i) text += R"({"a":)";
    text += "1";
    for (std::size_t i = 0; i < levels; ++i) text += "}";
    return text + "}";
  };
  auto ok = object::parse(nest(100));  // far deeper than Boost.JSON's default of 32
  BOOST_REQUIRE(ok.has_value());
  BOOST_TEST(object::from_json(boost::json::parse(nest(100), {}, {.max_depth = 1000})).has_value());
  auto too_deep = object::parse(nest(300));
  BOOST_REQUIRE(!too_deep.has_value());
  auto too_deep_value = object::from_json(boost::json::parse(nest(300), {}, {.max_depth = 1000}));
  BOOST_REQUIRE(!too_deep_value.has_value());
  BOOST_TEST(too_deep_value.error().what().find("deeper") != std::string::npos);
}
