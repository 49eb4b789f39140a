// kube-apiserver's JSON watch stream (one `{"type", "object"}` per event) through the API-server
// lister-watcher's `watch_decoder`: never a crash, and the same events whatever the chunking.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "watch_replay.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view stream(reinterpret_cast<const char*>(data), size);
  // Small limits, so that inputs of a few KiB reach the oversize paths too.
  const informer::detail::decode_settings settings{.res = informer::parse_resource("pods").value(),
                                                   .object = {.max_bytes = 16 * 1024},
                                                   .max_frame_bytes = 32 * 1024};
  informer::fuzz::check_any_split(false, settings, stream);
  return 0;
}
