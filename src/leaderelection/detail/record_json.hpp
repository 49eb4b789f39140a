// Private to the library: a `lock_record` as JSON, for the locks that store one: a Lease's spec
// (informer/apiserver/lease_lock.hpp, transitions under "leaseTransitions") and the value of an
// etcd key in the shape of client-go's leader-election record (informer/etcd/lease_lock.hpp,
// "leaderTransitions"). Times are MicroTime (RFC 3339 with microseconds); a zero time is left out,
// as MicroTime's null, and read back as zero.
//
// Thread safety: pure functions. Header-only: the components that include it link the codec.
#pragma once

#include "codec/detail/go_json.hpp"
#include "core/detail/rfc3339.hpp"
#include "informer/leaderelection/leader_elector.hpp"

#include <boost/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace informer::detail {

inline std::string micro_time(std::chrono::system_clock::time_point t) {
  const auto since = t.time_since_epoch();
  const auto seconds = std::chrono::floor<std::chrono::seconds>(since);
  return codec::detail::format_micro_time(
      seconds.count(), std::chrono::duration_cast<std::chrono::nanoseconds>(since - seconds).count());
}

inline boost::json::object record_to_json(const lock_record& r, std::string_view transitions_key) {
  boost::json::object o{{"holderIdentity", r.holder_identity},
                        {"leaseDurationSeconds", r.lease_duration.count()},
                        {transitions_key, r.leader_transitions}};
  if (r.acquire_time != std::chrono::system_clock::time_point{}) o["acquireTime"] = micro_time(r.acquire_time);
  if (r.renew_time != std::chrono::system_clock::time_point{}) o["renewTime"] = micro_time(r.renew_time);
  return o;
}

/// Reads `o` into `out`; missing and null fields keep their zero value. Returns what is wrong with
/// a field of the wrong type, nothing when all is well.
inline std::optional<std::string> record_from_json(const boost::json::object& o, std::string_view transitions_key,
                                                   lock_record& out) {
  auto present = [&](std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && !v->is_null() ? v : nullptr;
  };
  if (const auto* v = present("holderIdentity")) {
    if (!v->is_string()) return "holderIdentity is not a string";
    out.holder_identity = v->get_string();
  }
  if (const auto* v = present("leaseDurationSeconds")) {
    if (!v->is_int64()) return "leaseDurationSeconds is not an integer";
    out.lease_duration = std::chrono::seconds(v->get_int64());
  }
  if (const auto* v = present(transitions_key)) {
    if (!v->is_int64()) return std::string(transitions_key) + " is not an integer";
    out.leader_transitions = static_cast<std::int32_t>(v->get_int64());
  }
  for (auto [key, field] : {std::pair{"acquireTime", &out.acquire_time}, std::pair{"renewTime", &out.renew_time}}) {
    const auto* v = present(key);
    if (v == nullptr) continue;
    const auto t = v->is_string() ? parse_rfc3339(v->get_string()) : std::nullopt;
    if (!t) return std::string(key) + " is not an RFC 3339 time";
    *field = *t;
  }
  return std::nullopt;
}

}  // namespace informer::detail
