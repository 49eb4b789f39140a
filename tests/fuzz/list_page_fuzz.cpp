// A list response body (`decode_list`), JSON and protobuf (PodList, or any list kind the
// envelope names), full objects and metadata only: never a crash; a decoded page's items all
// have a kind and an apiVersion, and JSON text that parses.
#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "apiserver/detail/list_watch_codec.hpp"
#include "fuzz_check.hpp"

namespace {

void decode(std::string_view content_type, std::string_view body, const informer::detail::decode_settings& s) {
  auto page = informer::detail::decode_list(content_type, body, s);
  if (!page) return;
  for (const auto& item : page->items) {
    informer::fuzz::check(item != nullptr, "a list page holds a null item");
    informer::fuzz::check(!item->kind().empty() && !item->api_version().empty(), "a list item has no type");
    boost::system::error_code ec;
    (void)boost::json::parse(item->to_json(), ec);
    informer::fuzz::check(!ec, "a list item's JSON text does not parse");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  informer::detail::decode_settings settings{.res = informer::parse_resource("pods").value(),
                                             .object = {.max_bytes = 16 * 1024}};
  // The body's first byte picks the encoding a server would have announced: `k8s\0` is protobuf.
  const bool protobuf = body.starts_with(std::string_view("k8s\0", 4));
  const std::string_view content_type = protobuf ? "application/vnd.kubernetes.protobuf" : "application/json";
  decode(content_type, body, settings);
  settings.metadata_only = true;
  decode(protobuf ? content_type : "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", body, settings);
  return 0;
}
