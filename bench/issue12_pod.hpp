// bench/issue12_pod.hpp
//
// The metadata of issue 12's workload pod, for benchmarks that exercise only what reads metadata
// (the indexer, the in-process pipeline): building 100,000 full bodies would dominate their run,
// under callgrind above all. Also the callgrind client macros, as no-ops when valgrind's header is
// absent, so that a benchmark can instrument only the loop it measures.
#pragma once

#include "informer/core/object.hpp"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#endif

#include <cstddef>
#include <cstdio>
#include <cstdlib>

namespace bench {

/// Pod `i` of namespace `bench` (`user-service-%06d`; labels app, tier, name, shard,
/// pod-template-hash; annotations owner, revision) at `resource_version`; its tier is
/// `tier % 3` (web, db, cache). Exits the process if the text does not parse.
inline informer::object::ptr issue12_pod(std::size_t i, std::size_t tier, std::size_t resource_version) {
  static constexpr const char* tiers[] = {"web", "db", "cache"};
  char text[512];
  std::snprintf(text, sizeof text,
                R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"user-service-%06zu","namespace":"bench",)"
                R"("resourceVersion":"%zu","labels":{"app":"app-%03zu","tier":"%s","name":"user-service",)"
                R"("shard":"s%zu","pod-template-hash":"dbc77d4c7"},)"
                R"("annotations":{"owner":"team-user","revision":"%zu"}}})",
                i, resource_version, i % 100, tiers[tier % 3], i % 10, i % 7);
  auto pod = informer::object::parse(text);
  if (!pod) {
    std::fprintf(stderr, "parse failed: %s\n", pod.error().what().c_str());
    std::exit(1);
  }
  return *pod;
}

}  // namespace bench
