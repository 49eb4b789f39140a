#include "informer/codec/protobuf.hpp"
#include "informer/core/condition.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

namespace codec = informer::codec;
namespace json = boost::json;

namespace {

// A tiny protobuf writer for hand-built messages.
std::string varint(std::uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
  return out;
}
std::string num(std::uint32_t field, std::uint64_t v) { return varint(std::uint64_t{field} << 3) + varint(v); }
std::string len(std::uint32_t field, std::string_view bytes) {
  return varint((std::uint64_t{field} << 3) | 2) + varint(bytes.size()) + std::string(bytes);
}
std::string fixed64(std::uint32_t field, double d) {
  std::string out = varint((std::uint64_t{field} << 3) | 1);
  const auto bits = std::bit_cast<std::uint64_t>(d);
  for (int i = 0; i < 8; ++i) {
    out += static_cast<char>((bits >> (8 * i)) & 0xff);
  }
  return out;
}
std::string map_entry(std::uint32_t field, std::string_view key, std::string_view value) {
  return len(field, len(1, key) + len(2, value));
}
std::string frame(std::string_view payload) {
  const auto n = static_cast<std::uint32_t>(payload.size());
  std::string out{static_cast<char>(n >> 24), static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 8) & 0xff),
                  static_cast<char>(n & 0xff)};
  return out + std::string(payload);
}
std::string time_message(std::int64_t seconds) { return num(1, static_cast<std::uint64_t>(seconds)); }

std::string envelope_bytes(std::string_view api_version, std::string_view kind, std::string_view raw) {
  return codec::wrap_envelope({.api_version = api_version, .kind = kind, .raw = raw});
}

json::value expect_json(const informer::detailed_result<json::value>& r) {
  BOOST_TEST_REQUIRE(r.has_value(), (r ? std::string() : r.error().what()));
  return *r;
}

// A representative ObjectMeta: labels out of order, an owner, managed fields.
std::string object_meta() {
  const std::string owner = len(1, "ReplicaSet") + len(3, "web-1") + len(4, "uid-1") + len(5, "apps/v1") + num(6, 1);
  const std::string managed = len(1, "kubectl") + len(2, "Update") + len(3, "v1") + len(4, time_message(1610543666)) +
                              len(6, "FieldsV1") + len(7, len(1, R"({"f:metadata":{}})"));
  return len(1, "web-1-abc") + len(2, "web-1-") + len(3, "default") + len(5, "uid-2") + len(6, "42") + num(7, 3) +
         len(8, time_message(1610543666)) + map_entry(11, "tier", "web") + map_entry(11, "app", "shop") +
         map_entry(12, "note", "x") + len(13, owner) + len(14, "example.com/f") + len(17, managed);
}

const char* const object_meta_json = R"({
  "name": "web-1-abc", "generateName": "web-1-", "namespace": "default", "uid": "uid-2",
  "resourceVersion": "42", "generation": 3, "creationTimestamp": "2021-01-13T13:14:26Z",
  "labels": {"app": "shop", "tier": "web"}, "annotations": {"note": "x"},
  "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "uid-1",
                       "controller": true}],
  "finalizers": ["example.com/f"],
  "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                     "time": "2021-01-13T13:14:26Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]
})";

}  // namespace

BOOST_AUTO_TEST_SUITE(envelope)

BOOST_AUTO_TEST_CASE(round_trips) {
  const std::string bytes = envelope_bytes("apps/v1", "Deployment", std::string_view("\x0a\x00", 2));
  BOOST_TEST(bytes.starts_with(codec::protobuf_magic));
  auto env = codec::unwrap_envelope(bytes);
  BOOST_TEST_REQUIRE(env.has_value());
  BOOST_TEST(env->api_version == "apps/v1");
  BOOST_TEST(env->kind == "Deployment");
  BOOST_TEST(env->raw == std::string_view("\x0a\x00", 2));
  BOOST_TEST(env->content_type.empty());
}

BOOST_AUTO_TEST_CASE(skips_unknown_fields) {
  const std::string bytes = std::string(codec::protobuf_magic) + len(1, len(1, "v1") + len(2, "Pod")) + num(9, 5) +
                            len(2, "xyz") + len(4, "application/vnd.kubernetes.protobuf");
  auto env = codec::unwrap_envelope(bytes);
  BOOST_TEST_REQUIRE(env.has_value());
  BOOST_TEST(env->kind == "Pod");
  BOOST_TEST(env->raw == "xyz");
  BOOST_TEST(env->content_type == "application/vnd.kubernetes.protobuf");
}

BOOST_AUTO_TEST_CASE(reports_a_missing_magic) {
  auto garbage = codec::unwrap_envelope("\x01\x02\x03\x04\x05");
  BOOST_TEST_REQUIRE(!garbage.has_value());
  BOOST_TEST(garbage.error().code() == codec::make_error_code(codec::errc::not_protobuf));
  BOOST_TEST(garbage.error().detail().find("01 02 03 04 05") != std::string::npos);

  auto json_value = codec::unwrap_envelope(R"({"kind":"Widget"})");
  BOOST_TEST_REQUIRE(!json_value.has_value());
  BOOST_TEST(json_value.error().code() == codec::make_error_code(codec::errc::not_protobuf));
  BOOST_TEST(json_value.error().detail().find("JSON") != std::string::npos);

  auto empty = codec::unwrap_envelope("");
  BOOST_TEST_REQUIRE(!empty.has_value());
  BOOST_TEST(empty.error().code() == codec::make_error_code(codec::errc::not_protobuf));
}

BOOST_AUTO_TEST_CASE(reports_encryption_at_rest) {
  auto r = codec::unwrap_envelope("k8s:enc:aescbc:v1:key1:\x8f\x10\x22");
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code() == codec::make_error_code(codec::errc::encrypted));
  BOOST_TEST(r.error().detail().find("aescbc") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(reports_truncation) {
  auto short_magic = codec::unwrap_envelope(std::string_view("k8s", 3));
  BOOST_TEST_REQUIRE(!short_magic.has_value());
  BOOST_TEST(short_magic.error().code() == codec::make_error_code(codec::errc::truncated));

  const std::string full = envelope_bytes("v1", "Pod", std::string(100, 'x'));
  for (std::size_t cut : {std::size_t{5}, std::size_t{10}, full.size() - 1}) {
    auto r = codec::unwrap_envelope(std::string_view(full).substr(0, cut));
    BOOST_TEST_REQUIRE(!r.has_value(), "cut at " << cut);
    BOOST_TEST(r.error().code() == codec::make_error_code(codec::errc::truncated),
               "cut at " << cut << ": " << r.error().what());
  }
}

BOOST_AUTO_TEST_CASE(reports_malformed_data) {
  // A group (wire type 3), which Kubernetes never writes.
  auto group = codec::unwrap_envelope(std::string(codec::protobuf_magic) + varint((1 << 3) | 3));
  BOOST_TEST_REQUIRE(!group.has_value());
  BOOST_TEST(group.error().code() == codec::make_error_code(codec::errc::malformed));

  // typeMeta as a varint instead of a message.
  auto wrong_type = codec::unwrap_envelope(std::string(codec::protobuf_magic) + num(1, 7));
  BOOST_TEST_REQUIRE(!wrong_type.has_value());
  BOOST_TEST(wrong_type.error().code() == codec::make_error_code(codec::errc::malformed));
  BOOST_TEST(wrong_type.error().detail().find("runtime.Unknown") != std::string::npos);

  // An 11-byte varint.
  auto long_varint = codec::unwrap_envelope(std::string(codec::protobuf_magic) + std::string(10, '\xff') + '\x01');
  BOOST_TEST_REQUIRE(!long_varint.has_value());
  BOOST_TEST(long_varint.error().code() == codec::make_error_code(codec::errc::malformed));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(watch_frames)

BOOST_AUTO_TEST_CASE(splits_a_stream_fed_byte_by_byte) {
  const std::string stream = frame("first") + frame("") + frame(std::string(300, 'z'));
  codec::watch_frame_reader reader;
  std::vector<std::string> frames;
  for (char c : stream) {
    reader.feed(std::string_view(&c, 1));
    for (;;) {
      auto next = reader.next();
      BOOST_TEST_REQUIRE(next.has_value());
      if (!*next) {
        break;
      }
      frames.emplace_back(**next);
    }
  }
  BOOST_TEST_REQUIRE(frames.size() == 3u);
  BOOST_TEST(frames[0] == "first");
  BOOST_TEST(frames[1].empty());
  BOOST_TEST(frames[2] == std::string(300, 'z'));
  BOOST_TEST(!reader.finish());
  BOOST_TEST(reader.buffered() == 0u);
}

BOOST_AUTO_TEST_CASE(returns_several_frames_from_one_chunk) {
  codec::watch_frame_reader reader;
  reader.feed(frame("a") + frame("bb") + frame("ccc").substr(0, 5));
  BOOST_TEST(**reader.next() == "a");
  BOOST_TEST(**reader.next() == "bb");
  BOOST_TEST(!*reader.next());
  reader.feed("cc");
  BOOST_TEST(**reader.next() == "ccc");
}

BOOST_AUTO_TEST_CASE(refuses_an_oversize_frame_and_stays_failed) {
  codec::watch_frame_reader reader({.max_frame_bytes = 10});
  reader.feed(frame("0123456789"));
  BOOST_TEST(**reader.next() == "0123456789");
  reader.feed(frame("0123456789A"));
  auto r = reader.next();
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code() == codec::make_error_code(codec::errc::frame_too_large));
  BOOST_TEST(r.error().detail().find("11 bytes") != std::string::npos);
  reader.feed(frame("ok"));
  BOOST_TEST(!reader.next().has_value());
  BOOST_TEST(reader.finish().code() == codec::make_error_code(codec::errc::frame_too_large));
}

BOOST_AUTO_TEST_CASE(reports_a_stream_that_ends_inside_a_frame) {
  codec::watch_frame_reader in_header;
  in_header.feed(std::string_view("\x00\x00", 2));
  BOOST_TEST(!*in_header.next());
  BOOST_TEST(in_header.finish().code() == codec::make_error_code(codec::errc::truncated));

  codec::watch_frame_reader in_body;
  in_body.feed(frame("hello").substr(0, 7));
  BOOST_TEST(!*in_body.next());
  const auto e = in_body.finish();
  BOOST_TEST(e.code() == codec::make_error_code(codec::errc::truncated));
  BOOST_TEST(e.detail().find("3 of 5 bytes") != std::string::npos, e.what());
}

BOOST_AUTO_TEST_CASE(decodes_a_watch_event) {
  const std::string object = envelope_bytes("v1", "ConfigMap", len(1, len(1, "cm")));
  const std::string event = len(1, "MODIFIED") + len(2, len(1, object));
  auto e = codec::decode_watch_event(event);
  BOOST_TEST_REQUIRE(e.has_value(), (e ? "" : e.error().what()));
  BOOST_TEST(e->type == "MODIFIED");
  BOOST_TEST(e->object.kind == "ConfigMap");
  auto meta = codec::metadata_to_json(e->object);
  BOOST_TEST(expect_json(meta).at("metadata").at("name") == "cm");
}

BOOST_AUTO_TEST_CASE(reports_bad_watch_events) {
  auto no_type = codec::decode_watch_event(len(2, len(1, envelope_bytes("v1", "Pod", ""))));
  BOOST_TEST_REQUIRE(!no_type.has_value());
  BOOST_TEST(no_type.error().code() == codec::make_error_code(codec::errc::malformed));

  auto no_object = codec::decode_watch_event(len(1, "ADDED"));
  BOOST_TEST_REQUIRE(!no_object.has_value());
  BOOST_TEST(no_object.error().code() == codec::make_error_code(codec::errc::malformed));

  auto json_object = codec::decode_watch_event(len(1, "ADDED") + len(2, len(1, "{}")));
  BOOST_TEST_REQUIRE(!json_object.has_value());
  BOOST_TEST(json_object.error().code() == codec::make_error_code(codec::errc::not_protobuf));
  BOOST_TEST(json_object.error().detail().find("WatchEvent.object") != std::string::npos);

  auto truncated = codec::decode_watch_event(len(1, "ADDED").substr(0, 4));
  BOOST_TEST_REQUIRE(!truncated.has_value());
  BOOST_TEST(truncated.error().code() == codec::make_error_code(codec::errc::truncated));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(metadata_only)

BOOST_AUTO_TEST_CASE(renders_object_meta_as_the_server_does) {
  const std::string raw = len(1, object_meta()) + len(2, "ignored spec bytes");
  auto r = codec::metadata_to_json({.api_version = "v1", .kind = "Pod", .raw = raw});
  const json::value expected = {{"kind", "Pod"}, {"apiVersion", "v1"}, {"metadata", json::parse(object_meta_json)}};
  BOOST_TEST(expect_json(r) == expected, json::serialize(*r));
}

BOOST_AUTO_TEST_CASE(renders_an_empty_object_meta_with_a_null_creation_timestamp) {
  auto r = codec::metadata_to_json({.api_version = "v1", .kind = "Pod", .raw = ""});
  BOOST_TEST(expect_json(r).at("metadata") == json::parse(R"({"creationTimestamp": null})"));
}

// Found by tests/fuzz/protobuf_envelope_fuzz (UBSan: a null key handed to Boost.JSON's memcpy).
BOOST_AUTO_TEST_CASE(map_entries_without_key_or_value_render_as_empty_strings) {
  const std::string meta = len(1, "p") + len(11, len(2, "v")) + len(12, len(1, "k"));
  auto r = codec::metadata_to_json({.api_version = "v1", .kind = "Pod", .raw = len(1, meta)});
  const json::value doc = expect_json(r);
  const json::value& md = doc.at("metadata");
  BOOST_TEST(md.at("labels") == json::parse(R"({"": "v"})"), json::serialize(md));
  BOOST_TEST(md.at("annotations") == json::parse(R"({"k": ""})"), json::serialize(md));
}

// Found by tests/fuzz/etcd_decoder_fuzz: protobuf strings are Go strings, any bytes; the server's
// JSON has U+FFFD for each byte that is not UTF-8, and so must ours (else the text is not JSON).
BOOST_AUTO_TEST_CASE(bytes_that_are_not_utf8_render_as_replacement_characters) {
  const std::string meta = len(1, "we\xff-0") + map_entry(11, "k\xc3", "\xed\xa0\x80") + len(14, "caf\xc3\xa9\xc3");
  auto r = codec::metadata_to_json({.api_version = "v1", .kind = "Pod", .raw = len(1, meta)});
  const json::value doc = expect_json(r);
  const json::value& md = doc.at("metadata");
  BOOST_TEST(md.at("name").as_string() == "we\xef\xbf\xbd-0");
  BOOST_TEST(md.at("labels") == json::parse("{\"k\\ufffd\": \"\\ufffd\\ufffd\\ufffd\"}"), json::serialize(md));
  BOOST_TEST(md.at("finalizers") == json::parse(R"(["caf\u00e9\ufffd"])"), json::serialize(md));
  boost::system::error_code ec;
  (void)json::parse(json::serialize(doc), ec);
  BOOST_TEST(!ec);
}

BOOST_AUTO_TEST_CASE(names_the_field_of_an_error) {
  const std::string bad_owner = len(13, len(1, "ReplicaSet") + varint((3 << 3) | 2) + varint(50) + "short");
  auto r = codec::metadata_to_json({.api_version = "v1", .kind = "Pod", .raw = len(1, len(1, "p") + bad_owner)});
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code() == codec::make_error_code(codec::errc::truncated));
  BOOST_TEST(r.error().detail().find("metadata.ownerReferences[0]") != std::string::npos, r.error().what());
}

BOOST_AUTO_TEST_SUITE_END()

// The full decoder needs the schemas compiled in (INFORMER_KUBERNETES_PROTO).
struct schemas_present {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result r(codec::has_schemas());
    r.message() << "built without the Kubernetes protobuf schemas";
    return r;
  }
};

BOOST_AUTO_TEST_SUITE(full_decoder, *boost::unit_test::precondition(schemas_present{}))

BOOST_AUTO_TEST_CASE(renders_a_config_map) {
  const std::string raw = len(1, object_meta()) + map_entry(2, "b", "2") + map_entry(2, "a", "1") +
                          map_entry(3, "bin", std::string_view("\x00\xff\x10", 3)) + num(4, 0);
  auto r = codec::to_json({.api_version = "v1", .kind = "ConfigMap", .raw = raw});
  json::value expected = json::parse(R"({"kind": "ConfigMap", "apiVersion": "v1", "immutable": false,
      "data": {"a": "1", "b": "2"}, "binaryData": {"bin": "AP8Q"}})");
  expected.as_object()["metadata"] = json::parse(object_meta_json);
  BOOST_TEST(expect_json(r) == expected, json::serialize(*r));
  // The metadata-only decoder agrees with the full one.
  BOOST_TEST(
      expect_json(codec::metadata_to_json({.api_version = "v1", .kind = "ConfigMap", .raw = raw})).at("metadata") ==
      expected.at("metadata"));
}

BOOST_AUTO_TEST_CASE(refuses_fields_the_schemas_lack_instead_of_dropping_them) {
  // A ConfigMap from a newer server: field 9 of the object, and field 99 of its ObjectMeta.
  const std::string top = len(1, object_meta()) + map_entry(2, "a", "1") + num(9, 1);
  const codec::to_json_options reject{.reject_unknown_fields = true};
  auto r = codec::to_json({.api_version = "v1", .kind = "ConfigMap", .raw = top}, reject);
  BOOST_TEST_REQUIRE(r.has_error());
  BOOST_TEST((r.error().code() == codec::errc::unknown_field));
  BOOST_TEST(r.error().detail().find("k8s.io.api.core.v1.ConfigMap has a field 9") != std::string::npos,
             r.error().detail());
  BOOST_TEST((r.error().code() == informer::condition::undecodable));

  const std::string nested = len(1, object_meta() + num(99, 1)) + map_entry(2, "a", "1");
  auto n = codec::to_json({.api_version = "v1", .kind = "ConfigMap", .raw = nested}, reject);
  BOOST_TEST_REQUIRE(n.has_error());
  BOOST_TEST((n.error().code() == codec::errc::unknown_field));
  BOOST_TEST(n.error().detail().find("ObjectMeta has a field 99") != std::string::npos, n.error().detail());
  BOOST_TEST(n.error().detail().find("metadata") != std::string::npos, n.error().detail());  // the path

  // Without the option (an etcd reader has no other encoding to turn to) the known fields decode.
  auto kept = codec::to_json({.api_version = "v1", .kind = "ConfigMap", .raw = nested});
  BOOST_TEST_REQUIRE(kept.has_value(), kept.error().what());
  BOOST_TEST(kept->at("data").at("a") == "1");
}

BOOST_AUTO_TEST_CASE(renders_secret_bytes_as_base64) {
  const std::string raw =
      len(1, len(1, "s")) + map_entry(2, "password", "hunter2") + map_entry(2, "empty", "") + len(3, "Opaque");
  auto r = codec::to_json({.api_version = "v1", .kind = "Secret", .raw = raw});
  BOOST_TEST(expect_json(r) == json::parse(R"({"kind": "Secret", "apiVersion": "v1",
      "metadata": {"name": "s", "creationTimestamp": null},
      "data": {"empty": "", "password": "aHVudGVyMg=="}, "type": "Opaque"})"),
             json::serialize(*r));
}

BOOST_AUTO_TEST_CASE(renders_an_empty_list_with_items) {
  auto r = codec::to_json({.api_version = "v1", .kind = "ConfigMapList", .raw = len(1, len(2, "7"))});
  BOOST_TEST(expect_json(r) == json::parse(R"({"kind": "ConfigMapList", "apiVersion": "v1",
      "metadata": {"resourceVersion": "7"}, "items": []})"),
             json::serialize(*r));
}

BOOST_AUTO_TEST_CASE(renders_int_or_string_and_keeps_required_zeros) {
  const std::string by_number = len(1, "http") + len(2, "TCP") + num(3, 80) + len(4, num(1, 0) + num(2, 8080));
  BOOST_TEST(expect_json(codec::message_to_json("k8s.io.api.core.v1.ServicePort", by_number)) ==
             json::parse(R"({"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080})"));
  const std::string by_name = num(3, 0) + len(4, num(1, 1) + len(3, "web"));
  BOOST_TEST(expect_json(codec::message_to_json("k8s.io.api.core.v1.ServicePort", by_name)) ==
             json::parse(R"({"port": 0, "targetPort": "web"})"));
  // An absent value struct is Go's zero value: IntOrString 0.
  BOOST_TEST(expect_json(codec::message_to_json("k8s.io.api.core.v1.ServicePort", "")) ==
             json::parse(R"({"port": 0, "targetPort": 0})"));
}

BOOST_AUTO_TEST_CASE(inlines_embedded_structs_and_renders_quantities) {
  // Volume embeds VolumeSource without a JSON name: its fields appear in the volume itself.
  const std::string volume = len(1, "cache") + len(2, len(2, len(1, "") + len(2, len(1, "1Gi"))));
  BOOST_TEST(expect_json(codec::message_to_json("k8s.io.api.core.v1.Volume", volume)) ==
             json::parse(R"({"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}})"));
  const std::string resources = map_entry(1, "cpu", len(1, "500m")) + len(1, len(1, "memory"));
  BOOST_TEST(expect_json(codec::message_to_json("k8s.io.api.core.v1.ResourceRequirements", resources)) ==
             json::parse(R"({"limits": {"cpu": "500m", "memory": "0"}})"));
}

BOOST_AUTO_TEST_CASE(renders_times_and_durations) {
  BOOST_TEST(expect_json(codec::message_to_json("k8s.io.apimachinery.pkg.apis.meta.v1.Time",
                                                time_message(1610543666) + num(2, 999))) == "2021-01-13T13:14:26Z");
  BOOST_TEST(expect_json(codec::message_to_json("k8s.io.apimachinery.pkg.apis.meta.v1.Time", "")).is_null());
  BOOST_TEST(expect_json(codec::message_to_json("k8s.io.apimachinery.pkg.apis.meta.v1.Time", time_message(0))) ==
             "1970-01-01T00:00:00Z");
  BOOST_TEST(expect_json(codec::message_to_json("k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
                                                time_message(1610543666) + num(2, 123456789))) ==
             "2021-01-13T13:14:26.123456Z");
  const auto duration = [](std::int64_t nanos) {
    return expect_json(codec::message_to_json("k8s.io.apimachinery.pkg.apis.meta.v1.Duration",
                                              num(1, static_cast<std::uint64_t>(nanos))));
  };
  BOOST_TEST(duration(0) == "0s");
  BOOST_TEST(duration(90'000'000'000) == "1m30s");
  BOOST_TEST(duration(3'723'500'000'000) == "1h2m3.5s");
  BOOST_TEST(duration(1'500'000) == "1.5ms");
  BOOST_TEST(duration(2'000) == "2\xc2\xb5s");
  BOOST_TEST(duration(-7) == "-7ns");
}

// Nanoseconds that carry into seconds at the ends of the int64 range wrap around as in Go, with no
// signed overflow (UBSan).
BOOST_AUTO_TEST_CASE(full_decoder_replaces_bytes_that_are_not_utf8) {
  const std::string raw = len(1, len(1, "cm")) + map_entry(2, "\xc0\xaf", "ok\xf4\x90\x80\x80");
  auto r = codec::to_json({.api_version = "v1", .kind = "ConfigMap", .raw = raw});
  BOOST_TEST(expect_json(r).at("data") == json::parse(R"({"\ufffd\ufffd": "ok\ufffd\ufffd\ufffd\ufffd"})"),
             json::serialize(*r));
}

BOOST_AUTO_TEST_CASE(micro_times_at_the_ends_of_the_range) {
  const auto micro = [](std::int64_t seconds, std::int64_t nanos) {
    return expect_json(codec::message_to_json("k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
                                              time_message(seconds) + num(2, static_cast<std::uint64_t>(nanos))));
  };
  BOOST_TEST(micro(INT64_MAX, 1'500'000'000).as_string().ends_with(".500000Z"));
  BOOST_TEST(micro(INT64_MIN, -1).as_string().ends_with(".999999Z"));
}

BOOST_AUTO_TEST_CASE(embeds_raw_json_and_protobuf_objects) {
  const std::string revision = len(1, len(1, "r")) + len(2, len(1, R"({"spec":{"x":[1,2]}})")) + num(3, 2);
  BOOST_TEST(expect_json(codec::to_json({.api_version = "apps/v1", .kind = "ControllerRevision", .raw = revision})) ==
             json::parse(R"({"kind": "ControllerRevision", "apiVersion": "apps/v1",
                 "metadata": {"name": "r", "creationTimestamp": null}, "data": {"spec": {"x": [1, 2]}}, "revision": 2})"));
  const std::string nested = envelope_bytes("v1", "ConfigMap", len(1, len(1, "inner")));
  const std::string holder = len(1, len(1, "r")) + len(2, len(1, nested)) + num(3, 1);
  BOOST_TEST(
      expect_json(codec::to_json({.api_version = "apps/v1", .kind = "ControllerRevision", .raw = holder})).at("data") ==
      json::parse(
          R"({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "inner", "creationTimestamp": null}})"));
}

BOOST_AUTO_TEST_CASE(renders_floats_as_go_prints_them) {
  const std::string props = len(5, "number") + fixed64(9, 5.0) + fixed64(11, 0.5);
  BOOST_TEST(expect_json(codec::message_to_json(
                 "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps", props)) ==
             json::parse(R"({"type": "number", "maximum": 5, "minimum": 0.5})"));
}

BOOST_AUTO_TEST_CASE(reports_unknown_kinds) {
  auto custom = codec::to_json({.api_version = "example.com/v1", .kind = "Widget", .raw = ""});
  BOOST_TEST_REQUIRE(!custom.has_value());
  BOOST_TEST(custom.error().code() == codec::make_error_code(codec::errc::unknown_kind));
  BOOST_TEST(custom.error().detail().find("custom resources") != std::string::npos, custom.error().what());

  auto version = codec::to_json({.api_version = "apps/v9", .kind = "Deployment", .raw = ""});
  BOOST_TEST_REQUIRE(!version.has_value());
  BOOST_TEST(version.error().detail().find("v1, v1beta1, v1beta2") != std::string::npos, version.error().what());

  auto kind = codec::to_json({.api_version = "v1", .kind = "Gadget", .raw = ""});
  BOOST_TEST_REQUIRE(!kind.has_value());
  BOOST_TEST(kind.error().code() == codec::make_error_code(codec::errc::unknown_kind));

  // Status is registered in every group version.
  auto status = codec::to_json({.api_version = "v1", .kind = "Status", .raw = len(3, "Failure") + num(6, 410)});
  BOOST_TEST(expect_json(status).at("code") == 410);
}

BOOST_AUTO_TEST_CASE(names_the_field_path_of_bad_data) {
  // spec.containers[1].ports[0] has a string where containerPort (int32) belongs.
  const std::string ports = len(1, "http") + len(3, "oops");
  const std::string spec = len(2, len(1, "a")) + len(2, len(1, "b") + len(6, ports));
  auto r = codec::to_json({.api_version = "v1", .kind = "Pod", .raw = len(2, spec)});
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code() == codec::make_error_code(codec::errc::malformed));
  BOOST_TEST(r.error().detail().find("spec.containers[1].ports[0].containerPort") != std::string::npos,
             r.error().what());

  auto cut = codec::to_json({.api_version = "v1", .kind = "Pod", .raw = len(2, spec).substr(0, 6)});
  BOOST_TEST_REQUIRE(!cut.has_value());
  BOOST_TEST(cut.error().code() == codec::make_error_code(codec::errc::truncated));

  auto bad_json =
      codec::to_json({.api_version = "apps/v1", .kind = "ControllerRevision", .raw = len(2, len(1, "{not json"))});
  BOOST_TEST_REQUIRE(!bad_json.has_value());
  BOOST_TEST(bad_json.error().code() == codec::make_error_code(codec::errc::malformed));
  BOOST_TEST(bad_json.error().detail().find("data") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(refuses_hostile_nesting) {
  // JSONSchemaProps.not is a *JSONSchemaProps: nest it far beyond any real schema.
  std::string props = len(5, "object");
  for (int i = 0; i < 200; ++i) {
    props = len(28, props);
  }
  auto r = codec::message_to_json("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps", props);
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code() == codec::make_error_code(codec::errc::malformed));
}

BOOST_AUTO_TEST_SUITE_END()
