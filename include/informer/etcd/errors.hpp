// informer/etcd/errors.hpp
//
// Errors of the etcd client that have no counterpart in `informer::errc`: transport failures and
// gRPC statuses a Kubernetes-style status cannot express. Everything that does have one uses
// `informer::errc`, so a reflector treats both sources alike:
//
//   etcd answer                                          error code
//   ---------------------------------------------------  -----------------------------------------
//   revision compacted (Range, or a watch's compact_revision)   informer::errc::expired (the 410 Gone)
//   future revision                                      informer::errc::resource_version_too_large
//   wrong user or password, invalid token (UNAUTHENTICATED)   informer::errc::unauthorized
//   PERMISSION_DENIED                                    informer::errc::forbidden
//   lease not found (NOT_FOUND)                          informer::errc::not_found
//   other INVALID_ARGUMENT / OUT_OF_RANGE                informer::errc::bad_request
//   put_if_mod_revision lost the race                    informer::errc::conflict
//   INTERNAL, UNKNOWN, DATA_LOSS, ABORTED                informer::errc::server_error
//   the client was destroyed under a watch or keep-alive informer::errc::closed
//   UNAVAILABLE, DEADLINE_EXCEEDED, ...                  informer::etcd::errc (below)
//
// Conditions (informer/core/condition.hpp) of the codes below: `unavailable` and
// `deadline_exceeded` are `condition::stream_cut` (a watch whose stream broke is still good: watch
// again), `resource_exhausted` is `condition::throttled` (gRPC's 429), `canceled` is
// `condition::cancelled`, `invalid_options` is `condition::invalid_argument`; the others have none.
//
// The `informer::error` carrying any of these has a detail text naming the operation, the endpoint
// and etcd's own message, e.g. "Range '/registry/pods/' at 127.0.0.1:2379: etcdserver: mvcc:
// required revision has been compacted".
//
// Thread safety: everything here is immutable or thread-safe.
#pragma once

#include "informer/core/error.hpp"

#include <boost/system/error_category.hpp>

#include <type_traits>

namespace informer::etcd {

/// Failures specific to talking to etcd over gRPC.
enum class errc {
  ok = 0,
  unavailable,          ///< no endpoint could be reached, or the connection broke (UNAVAILABLE)
  deadline_exceeded,    ///< the request timeout passed (DEADLINE_EXCEEDED)
  canceled,             ///< the call was canceled on the client side (CANCELLED)
  resource_exhausted,   ///< etcd's quota or rate limits, or a message too large (RESOURCE_EXHAUSTED)
  failed_precondition,  ///< etcd refused in its current state (FAILED_PRECONDITION)
  unimplemented,        ///< the server does not know the method (UNIMPLEMENTED): not etcd v3?
  watch_canceled,       ///< etcd canceled a watch on its own; the detail holds its reason
  invalid_options,      ///< bad `client_options`: no endpoint, unreadable TLS file, bad URL
};

/// The category of `etcd::errc`; its name is "etcd".
const boost::system::error_category& error_category() noexcept;

inline error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace informer::etcd

namespace boost::system {
template <>
struct is_error_code_enum<informer::etcd::errc> : std::true_type {};
}  // namespace boost::system
