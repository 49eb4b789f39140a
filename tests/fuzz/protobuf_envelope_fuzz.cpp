// The `k8s\0` envelope (`unwrap_envelope`) and the protobuf -> JSON decoders behind it
// (`to_json`, schema-driven; `metadata_to_json`, hand-written): never a crash, and an envelope
// re-wrapped unwraps to the same parts. Bytes without the magic go straight to the decoder as a
// Pod message, so the fuzzer reaches it without having to find the envelope first.
#include "informer/codec/protobuf.hpp"

#include <boost/json/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace codec = informer::codec;
  using informer::fuzz::check;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto env = codec::unwrap_envelope(input);
  if (!env) {
    if (auto json = codec::message_to_json("k8s.io.api.core.v1.Pod", input)) (void)boost::json::serialize(*json);
    return 0;
  }
  const std::string again = codec::wrap_envelope(*env);
  auto env2 = codec::unwrap_envelope(again);
  check(env2.has_value(), "a re-wrapped envelope does not unwrap");
  check(env2->api_version == env->api_version && env2->kind == env->kind && env2->raw == env->raw &&
            env2->content_encoding == env->content_encoding && env2->content_type == env->content_type,
        "a re-wrapped envelope unwraps to other parts");

  if (auto meta = codec::metadata_to_json(*env)) (void)boost::json::serialize(*meta);
  if (auto json = codec::to_json(*env)) (void)boost::json::serialize(*json);
  return 0;
}
