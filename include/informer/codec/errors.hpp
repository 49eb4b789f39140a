// informer/codec/errors.hpp
//
// The errors of the Kubernetes protobuf codec (informer/codec/protobuf.hpp): what was wrong with a
// body, a watch frame or a stored etcd value, in terms a person can act on. Every codec function
// returns them as `informer::error` values (an `error_code` of this category plus a detail text
// that names the field, the offset or the kind); none throws for bad input.
//
// Sources map them to their own policy: a watch stream that yields `frame_too_large` or
// `truncated` cannot be resynchronised and must be reopened; an etcd value that is `encrypted` or
// `not_protobuf` is reported and skipped without harming the rest of a list. Every code but
// `schemas_unavailable` (a build option, not the data) is `informer::condition::undecodable`
// (informer/core/condition.hpp).
//
// Thread safety: everything here is immutable or thread-safe.
#pragma once

#include <boost/system/error_category.hpp>
#include <boost/system/error_code.hpp>

#include <type_traits>

namespace informer::codec {

/// Errors of the protobuf codec (category name "informer.codec").
enum class errc {
  ok = 0,
  not_protobuf,         ///< bytes lack the `k8s\0` prefix (JSON, e.g. a custom resource in etcd, or garbage)
  encrypted,            ///< an etcd value encrypted at rest (`k8s:enc:` prefix): needs the server's key
  truncated,            ///< the data ends inside a field, a message or a frame
  malformed,            ///< invalid protobuf (bad varint, wire type, length) or invalid embedded JSON
  frame_too_large,      ///< a watch frame announces more bytes than the configured maximum
  unknown_kind,         ///< no protobuf schema for this apiVersion/kind (or message name)
  schemas_unavailable,  ///< built without the Kubernetes schemas (INFORMER_KUBERNETES_PROTO=OFF)
  unsupported,          ///< a value the codec cannot render as Kubernetes renders it
  unknown_field,        ///< a field number the compiled schemas lack (an object from a newer server)
};

/// The category of `codec::errc`; its name is "informer.codec".
const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace informer::codec

namespace boost::system {
template <>
struct is_error_code_enum<informer::codec::errc> : std::true_type {};
}  // namespace boost::system
