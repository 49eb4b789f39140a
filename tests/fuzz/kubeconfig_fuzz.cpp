// Kubeconfig text (`parse_kubeconfig`, the YAML of one file): never a crash or a throw, whatever
// the shape. Relative file names point into a folder that does not exist.
#include "informer/apiserver/kubeconfig.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  (void)informer::parse_kubeconfig(yaml, "/nonexistent/informer-fuzz", {}, "fuzz");
  return 0;
}
