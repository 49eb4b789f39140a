// kube-apiserver's protobuf watch stream (4-byte length + WatchEvent frames, each object a
// `k8s\0` envelope) through the API-server lister-watcher's `watch_decoder`, with full objects
// (the schema-driven protobuf -> JSON decoder) and metadata only: never a crash, and the same
// events whatever the chunking.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "watch_replay.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view stream(reinterpret_cast<const char*>(data), size);
  informer::detail::decode_settings settings{.res = informer::parse_resource("pods").value(),
                                             .object = {.max_bytes = 16 * 1024},
                                             .max_frame_bytes = 32 * 1024};
  informer::fuzz::check_any_split(true, settings, stream);
  settings.metadata_only = true;
  informer::fuzz::replay_watch(true, settings, stream, 0);
  return 0;
}
