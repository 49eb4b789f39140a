// informer/metrics/http_client_metrics.hpp
//
// Wires an API-server client's hooks (`http_client_options::metrics`) to a `registry`, under
// client-go's rest_client metric names. Part of the informer::apiserver component (the rest of
// informer/metrics/ is core).
//
//   rest_client_requests_total{code,method}            counter    attempts by answer code ("<error>":
//                                                                  no answer) and HTTP method
//   rest_client_request_duration_seconds{verb}         histogram  attempt latency
//   rest_client_rate_limiter_duration_seconds{verb}    histogram  waits of the client-side limiter
//                                                                  (0 included; only with qps > 0)
//   rest_client_request_retries_total{code,verb}       counter    retries after 429
// Every attempt counts (a retried request counts once per attempt, as in client-go); watch opens
// count with their latency to the answer's head.
//
// Errors: `std::invalid_argument` from the registry when one of these names is already registered
// in it with another type or other labels.
//
// Thread safety: the hooks are thread-safe; each call looks its series up under the family's lock
// (the labels vary per request). Lifetimes: unlike the hooks of informer/metrics/adapters.hpp,
// these point into the registry's families (the labels vary per request, so no series can be
// held ahead) and do not keep them alive: the registry must outlive every call of the hooks, that
// is every `http_client` (and `rest_client`) given them and every other copy of them.
#pragma once

#include "informer/apiserver/http_client.hpp"
#include "informer/metrics/registry.hpp"

namespace informer::metrics {

/// Hooks for `http_client_options::metrics`.
informer::http_client_metrics rest_client_metrics(registry& r);

}  // namespace informer::metrics
