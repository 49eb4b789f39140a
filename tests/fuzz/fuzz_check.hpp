// What the fuzz targets share: a property check that stops the run (libFuzzer saves the input as a
// crash) with a message saying which property failed.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace informer::fuzz {

/// Aborts with `what` when `ok` is false: a broken promise of the code under test (e.g. a
/// selector that does not parse back from its own text), found by the fuzzer.
inline void check(bool ok, std::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz check failed: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

}  // namespace informer::fuzz
