// The API-server lister-watcher's decoding, without a server: list bodies (JSON, protobuf,
// PartialObjectMetadata) and watch streams split or joined at any byte, bookmarks, ERROR events,
// malformed and oversize input. The real-server behaviour is in
// tests/integration/apiserver_informer_test.cpp.
#include "informer/apiserver/lister_watcher.hpp"

#include <boost/test/unit_test.hpp>

#include "apiserver/detail/list_watch_codec.hpp"
#include "informer/codec/protobuf.hpp"

#include <boost/asio/io_context.hpp>

#include <string>
#include <vector>

using informer::errc;
using informer::watch_event;
using informer::watch_event_type;
using informer::detail::decode_list;
using informer::detail::decode_settings;
using informer::detail::watch_decoder;

namespace {

const informer::resource configmaps{.group = "", .version = "v1", .plural = "configmaps", .kind = "ConfigMap"};
const informer::resource crontabs{
    .group = "stable.example.com", .version = "v1", .plural = "crontabs", .kind = "CronTab"};

decode_settings settings(const informer::resource& r = configmaps) { return {.res = r}; }

std::string cm_event(const std::string& type, const std::string& name, int rv) {
  return R"({"type":")" + type + R"(","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":")" + name +
         R"(","namespace":"default","resourceVersion":")" + std::to_string(rv) + R"("},"data":{"k":"v"}}})" + "\n";
}

// Feeds `stream` in pieces of `piece` bytes and collects every event, failing on any error.
std::vector<watch_event> decode_all(watch_decoder& d, const std::string& stream, std::size_t piece) {
  std::vector<watch_event> out;
  for (std::size_t at = 0; at < stream.size(); at += piece) {
    d.feed(std::string_view(stream).substr(at, piece));
    for (;;) {
      auto e = d.next();
      BOOST_TEST_REQUIRE(e.has_value(), e.error().what());
      if (!*e) break;
      out.push_back(std::move(**e));
    }
  }
  return out;
}

// --- protobuf encoding by hand (wire format) ---
std::string varint(std::uint64_t v) {
  std::string out;
  do {
    unsigned char b = v & 0x7f;
    v >>= 7;
    if (v) b |= 0x80;
    out += static_cast<char>(b);
  } while (v);
  return out;
}
std::string field(int number, const std::string& bytes) {
  return varint(number << 3 | 2) + varint(bytes.size()) + bytes;
}
std::string field_varint(int number, std::uint64_t v) { return varint(number << 3) + varint(v); }

std::string object_meta(const std::string& name, const std::string& rv) {
  return field(1, name) + field(3, "default") + field(6, rv);
}
std::string configmap_message(const std::string& name, const std::string& rv) {
  return field(1, object_meta(name, rv)) + field(2, field(1, "k") + field(2, "v"));  // data: {k: v}
}
std::string frame(const std::string& type, const informer::codec::envelope& env) {
  const std::string event = field(1, type) + field(2, field(1, informer::codec::wrap_envelope(env)));
  const auto n = static_cast<std::uint32_t>(event.size());
  std::string out{static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                  static_cast<char>(n)};
  return out + event;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(apiserver_lister_watcher_decoding)

BOOST_AUTO_TEST_CASE(json_events_survive_any_split_and_coalescing) {
  const std::string stream =
      cm_event("ADDED", "a", 10) + cm_event("MODIFIED", "a", 11) + "\n" + cm_event("DELETED", "a", 12) +
      R"({"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"15","creationTimestamp":null}}})" +
      "\n";
  for (std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{64}, stream.size()}) {
    watch_decoder d(false, settings());
    auto events = decode_all(d, stream, piece);
    BOOST_TEST_REQUIRE(events.size() == 4u, "piece " << piece);
    BOOST_TEST((events[0].type == watch_event_type::added));
    BOOST_TEST((events[1].type == watch_event_type::modified));
    BOOST_TEST((events[2].type == watch_event_type::deleted));
    BOOST_TEST(events[2].obj->name() == "a");
    BOOST_TEST(events[2].resource_version == "12");
    BOOST_TEST(events[1].obj->field("data.k")->as_string() == "v");
    BOOST_TEST((events[3].type == watch_event_type::bookmark));
    BOOST_TEST(events[3].obj == nullptr);
    BOOST_TEST(events[3].resource_version == "15");
    BOOST_TEST(!d.finish(), d.finish().what());
  }
}

BOOST_AUTO_TEST_CASE(json_error_event_carries_the_status) {
  watch_decoder d(false, settings());
  auto events = decode_all(
      d,
      R"x({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (90)","reason":"Expired","code":410}})x",
      1000);
  BOOST_TEST_REQUIRE(events.size() == 1u);
  BOOST_TEST((events[0].type == watch_event_type::error));
  BOOST_TEST(events[0].error_status.code == 410);
  BOOST_TEST((events[0].error_status.to_error().code() == make_error_code(errc::expired)));
  BOOST_TEST(events[0].error_status.message == "too old resource version: 5 (90)");
}

BOOST_AUTO_TEST_CASE(malformed_json_fails_the_stream_and_stays_failed) {
  watch_decoder d(false, settings());
  d.feed(cm_event("ADDED", "ok", 3) + "{\"type\":\"ADDED\",\"object\":{]\n" + cm_event("ADDED", "later", 4));
  auto first = d.next();
  BOOST_TEST_REQUIRE(first.has_value());
  BOOST_TEST((*first)->obj->name() == "ok");  // what came before the bad frame is delivered
  auto bad = d.next();
  BOOST_TEST_REQUIRE(bad.has_error());
  BOOST_TEST((bad.error().code() == make_error_code(errc::malformed_response)), bad.error().what());
  BOOST_TEST(d.next().has_error());
  BOOST_TEST((d.finish().code() == make_error_code(errc::malformed_response)));
}

BOOST_AUTO_TEST_CASE(bad_events_are_errors_not_drops) {
  const std::vector<std::string> bad{
      R"({"type":"ADDED"})",                                                         // no object
      R"({"type":"SOMETHING","object":{"metadata":{"name":"x"}}})",                  // unknown type
      R"({"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"labels":{}}}})",  // no name
      R"([1,2,3])",
  };
  for (const auto& text : bad) {
    watch_decoder d(false, settings());
    d.feed(text);
    auto e = d.next();
    BOOST_TEST_REQUIRE(e.has_error(), text);
    BOOST_TEST((e.error().code() == make_error_code(errc::malformed_response)), e.error().what());
    BOOST_TEST_MESSAGE(e.error().what());
  }
}

BOOST_AUTO_TEST_CASE(oversize_events_and_objects_are_object_too_large) {
  auto s = settings();
  s.max_frame_bytes = 100;
  watch_decoder frame_limited(false, s);
  frame_limited.feed(cm_event("ADDED", std::string(200, 'n'), 1));
  auto e = frame_limited.next();
  BOOST_TEST_REQUIRE(e.has_error());
  BOOST_TEST((e.error().code() == make_error_code(errc::object_too_large)), e.error().what());

  auto o = settings();
  o.object.max_bytes = 30;
  watch_decoder object_limited(false, o);
  object_limited.feed(cm_event("ADDED", std::string(200, 'n'), 1));
  auto e2 = object_limited.next();
  BOOST_TEST_REQUIRE(e2.has_error());
  BOOST_TEST((e2.error().code() == make_error_code(errc::object_too_large)), e2.error().what());
}

BOOST_AUTO_TEST_CASE(a_stream_ending_inside_an_event_is_malformed) {
  watch_decoder d(false, settings());
  const auto text = cm_event("ADDED", "a", 1);
  auto events = decode_all(d, text + text.substr(0, 20), 1000);
  BOOST_TEST(events.size() == 1u);
  BOOST_TEST((d.finish().code() == make_error_code(errc::malformed_response)), d.finish().what());

  watch_decoder trailing_newlines(false, settings());
  decode_all(trailing_newlines, text + "\n\n", 5);
  BOOST_TEST(!trailing_newlines.finish());
}

BOOST_AUTO_TEST_CASE(json_list_items_get_kind_and_api_version) {
  const std::string body =
      R"({"kind":"CronTabList","apiVersion":"stable.example.com/v1","metadata":{"resourceVersion":"77","continue":"tok","remainingItemCount":3},)"
      R"("items":[{"metadata":{"name":"a","namespace":"n","resourceVersion":"70"},"spec":{"x":1}},)"
      R"({"apiVersion":"stable.example.com/v1","kind":"CronTab","metadata":{"name":"b","namespace":"n"}}]})";
  auto list = decode_list("application/json", body, settings(crontabs));
  BOOST_TEST_REQUIRE(list.has_value(), list.error().what());
  BOOST_TEST(list->resource_version == "77");
  BOOST_TEST(list->continue_token == "tok");
  BOOST_TEST((list->remaining_item_count == std::optional<std::int64_t>(3)));
  BOOST_TEST_REQUIRE(list->items.size() == 2u);
  for (const auto& item : list->items) {
    BOOST_TEST(item->kind() == "CronTab");
    BOOST_TEST(item->api_version() == "stable.example.com/v1");
  }
  BOOST_TEST(list->items[0]->to_json().starts_with(R"({"kind":"CronTab","apiVersion":"stable.example.com/v1",)"));
  BOOST_TEST(list->items[0]->field("spec.x")->as_int64() == 1);

  auto empty =
      decode_list("application/json", R"({"kind":"CronTabList","metadata":{"resourceVersion":"5"},"items":null})",
                  settings(crontabs));
  BOOST_TEST_REQUIRE(empty.has_value());
  BOOST_TEST(empty->items.empty());
  BOOST_TEST(empty->resource_version == "5");

  BOOST_TEST(decode_list("application/json", "{\"items\":[", settings()).has_error());
}

BOOST_AUTO_TEST_CASE(an_undecodable_list_item_is_skipped_by_key_or_fails_the_page_without_one) {
  // With its key known, the reflector can keep the object's cached state: the item is left out
  // and named. Without one, nothing could keep a relist from reading it as deleted: the page fails.
  const auto page = [](const std::string& items) {
    return decode_list("application/json",
                       R"({"kind":"CronTabList","metadata":{"resourceVersion":"9"},"items":[)"
                       R"({"metadata":{"name":"good","namespace":"n"}},)" +
                           items + "]}",
                       settings(crontabs));
  };
  BOOST_TEST_REQUIRE(page(R"({"metadata":{"name":"also-good","namespace":"n"}})").has_value());
  auto unnamed = page(R"({"metadata":{}})");
  BOOST_TEST_REQUIRE(unnamed.has_error());
  BOOST_TEST((unnamed.error().code() == make_error_code(errc::malformed_response)));
  BOOST_TEST(unnamed.error().detail().starts_with("item 1 of the list of crontabs"), unnamed.error().detail());
  auto number = page("7");
  BOOST_TEST_REQUIRE(number.has_error());
  BOOST_TEST(number.error().detail().starts_with("item 1 of the list of crontabs"), number.error().detail());
  auto bad = page(R"({"metadata":{"name":"bad","namespace":"n","labels":{"app":7}}})");
  BOOST_TEST_REQUIRE(bad.has_value(), bad.error().what());
  BOOST_TEST_REQUIRE(bad->items.size() == 1u);
  BOOST_TEST(bad->items[0]->name() == "good");
  BOOST_TEST_REQUIRE(bad->skipped.size() == 1u);
  BOOST_TEST(bad->skipped[0].key == "n/bad");
  BOOST_TEST((bad->skipped[0].error.code() == make_error_code(errc::malformed_response)));
  BOOST_TEST(bad->skipped[0].error.detail().starts_with("item 1 (n/bad) of the list of crontabs"),
             bad->skipped[0].error.detail());
  BOOST_TEST(bad->resource_version == "9");
}

BOOST_AUTO_TEST_CASE(an_undecodable_protobuf_list_item_is_skipped_by_key,
                     *boost::unit_test::precondition([](auto) { return informer::codec::has_schemas(); })) {
  namespace codec = informer::codec;
  // Item "b": its metadata decodes, its data (field 2, a map) is a number.
  const std::string list_raw = field(1, field(2, "31")) + field(2, configmap_message("a", "30")) +
                               field(2, field(1, object_meta("b", "31")) + field_varint(2, 5)) +
                               field(2, configmap_message("c", "31"));
  const auto body = codec::wrap_envelope({.api_version = "v1", .kind = "ConfigMapList", .raw = list_raw});
  auto list = decode_list("application/vnd.kubernetes.protobuf", body, settings());
  BOOST_TEST_REQUIRE(list.has_value(), list.error().what());
  BOOST_TEST_REQUIRE(list->items.size() == 2u);
  BOOST_TEST(list->items[0]->name() == "a");
  BOOST_TEST(list->items[1]->name() == "c");
  BOOST_TEST_REQUIRE(list->skipped.size() == 1u);
  BOOST_TEST(list->skipped[0].key == "default/b");
  BOOST_TEST((list->skipped[0].error.code() == make_error_code(errc::malformed_response)));
  BOOST_TEST(list->skipped[0].error.detail().starts_with("item 1 (default/b) of the protobuf list of configmaps"),
             list->skipped[0].error.detail());

  // An item with a field the schemas lack is not skipped: the page fails with the codec's code, so
  // that the source reads the list as JSON instead.
  const std::string newer = field(1, field(2, "31")) + field(2, configmap_message("a", "30")) +
                            field(2, configmap_message("n", "31") + field_varint(9, 1));
  auto from_newer =
      decode_list("application/vnd.kubernetes.protobuf",
                  codec::wrap_envelope({.api_version = "v1", .kind = "ConfigMapList", .raw = newer}), settings());
  BOOST_TEST_REQUIRE(from_newer.has_error());
  BOOST_TEST((from_newer.error().code() == codec::errc::unknown_field));
  BOOST_TEST(from_newer.error().detail().starts_with("item 1 (default/n) of the protobuf list of configmaps"),
             from_newer.error().detail());

  // An item whose metadata does not decode either cannot be keyed: the page fails.
  const std::string unkeyed = field(1, field(2, "31")) + field(2, configmap_message("a", "30")) +
                              field(2, field(1, field_varint(1, 5)) + field_varint(2, 5));
  auto failed =
      decode_list("application/vnd.kubernetes.protobuf",
                  codec::wrap_envelope({.api_version = "v1", .kind = "ConfigMapList", .raw = unkeyed}), settings());
  BOOST_TEST_REQUIRE(failed.has_error());
  BOOST_TEST(failed.error().detail().starts_with("item 1 of the protobuf list of configmaps"), failed.error().detail());
}

BOOST_AUTO_TEST_CASE(metadata_only_objects_take_the_resources_type) {
  auto s = settings();
  s.metadata_only = true;
  auto list = decode_list(
      "application/json",
      R"({"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"9"},)"
      R"("items":[{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"a","labels":{"app":"x"}}}]})",
      s);
  BOOST_TEST_REQUIRE(list.has_value(), list.error().what());
  BOOST_TEST_REQUIRE(list->items.size() == 1u);
  BOOST_TEST(list->items[0]->kind() == "ConfigMap");
  BOOST_TEST(list->items[0]->api_version() == "v1");
  BOOST_TEST((list->items[0]->labels().get("app") == "x"));

  watch_decoder d(false, s);
  auto events = decode_all(
      d,
      R"({"type":"ADDED","object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"a","resourceVersion":"10"}}})",
      1000);
  BOOST_TEST_REQUIRE(events.size() == 1u);
  BOOST_TEST(events[0].obj->kind() == "ConfigMap");
  BOOST_TEST(events[0].resource_version == "10");
}

BOOST_AUTO_TEST_CASE(protobuf_metadata_only_list_and_watch_need_no_schema) {
  namespace codec = informer::codec;
  auto s = settings();
  s.metadata_only = true;
  const std::string list_raw = field(1, field(2, "31") + field(3, "next") + field_varint(4, 7)) +
                               field(2, field(1, object_meta("a", "30"))) + field(2, field(1, object_meta("b", "31")));
  const auto body =
      codec::wrap_envelope({.api_version = "meta.k8s.io/v1", .kind = "PartialObjectMetadataList", .raw = list_raw});
  auto list = decode_list("application/vnd.kubernetes.protobuf", body, s);
  BOOST_TEST_REQUIRE(list.has_value(), list.error().what());
  BOOST_TEST(list->resource_version == "31");
  BOOST_TEST(list->continue_token == "next");
  BOOST_TEST((list->remaining_item_count == std::optional<std::int64_t>(7)));
  BOOST_TEST_REQUIRE(list->items.size() == 2u);
  BOOST_TEST(list->items[1]->name() == "b");
  BOOST_TEST(list->items[1]->kind() == "ConfigMap");
  BOOST_TEST(list->items[1]->ns() == "default");

  const std::string stream =
      frame(
          "ADDED",
          {.api_version = "meta.k8s.io/v1", .kind = "PartialObjectMetadata", .raw = field(1, object_meta("c", "40"))}) +
      frame("BOOKMARK",
            {.api_version = "meta.k8s.io/v1", .kind = "PartialObjectMetadata", .raw = field(1, field(6, "41"))}) +
      frame("ERROR", {.api_version = "v1",
                      .kind = "Status",
                      .raw = field(2, "Failure") + field(3, "too old") + field(4, "Expired") + field_varint(6, 410)});
  for (std::size_t piece : {std::size_t{1}, std::size_t{5}, stream.size()}) {
    watch_decoder d(true, s);
    auto events = decode_all(d, stream, piece);
    BOOST_TEST_REQUIRE(events.size() == 3u);
    BOOST_TEST(events[0].obj->name() == "c");
    BOOST_TEST(events[0].resource_version == "40");
    BOOST_TEST((events[1].type == watch_event_type::bookmark));
    BOOST_TEST(events[1].resource_version == "41");
    BOOST_TEST((events[2].type == watch_event_type::error));
    BOOST_TEST(events[2].error_status.code == 410);
    BOOST_TEST(events[2].error_status.reason == "Expired");
    BOOST_TEST(!d.finish());
  }
}

BOOST_AUTO_TEST_CASE(protobuf_full_objects_decode_like_json,
                     *boost::unit_test::precondition([](auto) { return informer::codec::has_schemas(); })) {
  namespace codec = informer::codec;
  const std::string list_raw = field(1, field(2, "12")) + field(2, configmap_message("a", "11"));
  auto list =
      decode_list("application/vnd.kubernetes.protobuf",
                  codec::wrap_envelope({.api_version = "v1", .kind = "ConfigMapList", .raw = list_raw}), settings());
  BOOST_TEST_REQUIRE(list.has_value(), list.error().what());
  BOOST_TEST_REQUIRE(list->items.size() == 1u);
  const auto& from_protobuf = *list->items[0];

  auto json = decode_list(
      "application/json",
      R"({"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"12"},"items":[{"metadata":{"name":"a","namespace":"default","resourceVersion":"11","creationTimestamp":null},"data":{"k":"v"}}]})",
      settings());
  BOOST_TEST_REQUIRE(json.has_value(), json.error().what());
  BOOST_TEST(same_content(from_protobuf, *json->items[0]), from_protobuf.to_json()
                                                               << " vs " << json->items[0]->to_json());

  watch_decoder d(true, settings());
  auto events = decode_all(
      d, frame("MODIFIED", {.api_version = "v1", .kind = "ConfigMap", .raw = configmap_message("a", "13")}), 3);
  BOOST_TEST_REQUIRE(events.size() == 1u);
  BOOST_TEST((events[0].type == watch_event_type::modified));
  BOOST_TEST(events[0].obj->field("data.k")->as_string() == "v");
  BOOST_TEST(events[0].resource_version == "13");
}

BOOST_AUTO_TEST_CASE(protobuf_bad_frames_are_errors) {
  auto s = settings();
  s.metadata_only = true;
  s.max_frame_bytes = 64;
  watch_decoder too_large(true, s);
  too_large.feed(std::string("\x00\x00\x10\x00", 4));  // announces 4096 bytes
  auto e = too_large.next();
  BOOST_TEST_REQUIRE(e.has_error());
  BOOST_TEST((e.error().code() == make_error_code(errc::object_too_large)), e.error().what());

  watch_decoder garbage(true, settings());
  garbage.feed(std::string("\x00\x00\x00\x03\xff\xff\xff", 7));
  auto g = garbage.next();
  BOOST_TEST_REQUIRE(g.has_error());
  BOOST_TEST((g.error().code() == make_error_code(errc::malformed_response)), g.error().what());

  watch_decoder truncated(true, settings());
  truncated.feed(std::string("\x00\x00\x00\x09\x0a", 5));
  BOOST_TEST(truncated.next().has_value());
  BOOST_TEST((truncated.finish().code() == make_error_code(errc::malformed_response)), truncated.finish().what());
}

BOOST_AUTO_TEST_CASE(create_checks_the_combination) {
  boost::asio::io_context ctx;
  auto client = informer::http_client::create(ctx.get_executor(), {.server = "https://127.0.0.1:1", .qps = 0});
  BOOST_TEST_REQUIRE(client.has_value(), client.error().what());
  using informer::apiserver_lister_watcher;
  BOOST_TEST(apiserver_lister_watcher::create(*client, configmaps, {.ns = "default"}).has_value());
  auto nodes = informer::parse_resource("nodes").value();
  auto scoped = apiserver_lister_watcher::create(*client, nodes, {.ns = "default"});
  BOOST_TEST_REQUIRE(scoped.has_error());
  BOOST_TEST((scoped.error().code() == make_error_code(errc::invalid_argument)), scoped.error().what());
  auto cr_protobuf =
      apiserver_lister_watcher::create(*client, crontabs, {.encoding = informer::wire_encoding::protobuf});
  BOOST_TEST_REQUIRE(cr_protobuf.has_error());
  BOOST_TEST_MESSAGE(cr_protobuf.error().what());
  BOOST_TEST(apiserver_lister_watcher::create(*client, crontabs,
                                              {.encoding = informer::wire_encoding::protobuf, .metadata_only = true})
                 .has_value());
  BOOST_TEST(apiserver_lister_watcher::create(*client, informer::resource{.plural = "x"}).has_error());
  for (const char* ns : {"a/b", "..", "kube%2Fsystem"}) {
    auto bad = apiserver_lister_watcher::create(*client, configmaps, {.ns = ns});
    BOOST_TEST_REQUIRE(bad.has_error(), ns);
    BOOST_TEST((bad.error().code() == make_error_code(errc::invalid_argument)), bad.error().what());
  }
}

BOOST_AUTO_TEST_SUITE_END()
