// informer/client/status.hpp
//
// A failure as a Kubernetes API server reports it (`metav1.Status`): HTTP code, machine-readable
// reason, human message and details. Sources (API server, etcd) turn their failures into a
// `status` so that the reflector and user code reason about one vocabulary; `to_error_code` maps
// it onto `informer::errc` (410 -> expired, 401 -> unauthorized, ...).
//
// Thread safety: plain values.
#pragma once

#include "informer/core/error.hpp"

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace informer {

struct status {
  std::int32_t code = 0;         ///< HTTP status code, e.g. 410
  std::string reason{};          ///< e.g. "Expired", "Forbidden", "Conflict"
  std::string message{};         ///< for people
  boost::json::value details{};  ///< `details` as sent (null when absent)
  /// Server-suggested delay (Retry-After or details.retryAfterSeconds), when given; clamped to
  /// `retry_after_limit`, so that a hostile value cannot overflow a later conversion.
  std::optional<std::chrono::seconds> retry_after{};
  static constexpr std::chrono::seconds retry_after_limit = std::chrono::hours(24);

  /// Reads a `Status` object; missing fields stay empty. Never fails.
  static status from_json(const boost::json::value& v);
  /// The `errc` this status stands for.
  error_code to_error_code() const;
  /// `informer::error` with the code from `to_error_code` and a detail "<code> <reason>: <message>".
  informer::error to_error() const;
};

}  // namespace informer
