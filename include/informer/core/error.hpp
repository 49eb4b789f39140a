// informer/core/error.hpp
//
// The project's error vocabulary. Every fallible call returns `informer::result<T>` (an alias of
// `boost::system::result<T>`): either the value or an `error_code` whose category is
// `informer::error_category()` and whose `what` text a person can act on.
//
// Codes name what went wrong; policy asks conditions (informer/core/condition.hpp), which group
// this category's codes with those of etcd, the codec, Asio, Beast and OpenSSL: a reflector asks
// `e == condition::stream_cut`, not which library cut the stream.
//
// Thread safety: everything here is immutable or thread-safe.
#pragma once

#include "informer/core/condition.hpp"

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <boost/system/system_error.hpp>

#include <string>
#include <type_traits>

namespace informer {

using boost::system::error_code;

/// Errors raised by the SDK itself (transport errors keep their own categories).
enum class errc {
  ok = 0,
  invalid_json,      ///< text is not valid JSON
  not_an_object,     ///< JSON value is not an object
  missing_name,      ///< object lacks metadata.name
  invalid_field,     ///< a well-known field of an object has the wrong type (e.g. labels is not a map of strings)
  invalid_argument,  ///< an argument or option outside its domain (an empty name, burst < 1 with qps > 0, ...)
  invalid_url,       ///< a server URL the client cannot use (not https://, no host, a bad port)
  invalid_config,    ///< a kubeconfig or TLS setting that cannot be used (a wrong-shaped entry, bad PEM, ...)
  invalid_key,       ///< an object key is not `name` or `namespace/name`
  invalid_selector,  ///< a label or field selector failed to parse
  invalid_label,     ///< a label key or value breaks Kubernetes' rules
  object_too_large,  ///< an object exceeds the configured size limit, or nests too deeply
  not_found,         ///< no object under that key
  already_exists,    ///< indexer name or object already present
  index_not_found,   ///< no indexer registered under that name
  closed,            ///< the queue or stream was closed
  // Answers of a source (API server or etcd), mapped from their status codes and reasons.
  end_of_stream,               ///< a watch ended normally (server timeout, client timeout)
  expired,                     ///< 410 Gone / "Expired": the resourceVersion or continue token is too old
  resource_version_too_large,  ///< the resourceVersion is newer than the server has seen
  bad_request,                 ///< 400
  unauthorized,                ///< 401: missing or wrong credentials
  forbidden,                   ///< 403: authenticated, but not allowed (RBAC)
  conflict,                    ///< 409: optimistic-concurrency failure, or already exists on create
  invalid,                     ///< 422: the object failed validation
  too_many_requests,           ///< 429: throttled; retry after the server's delay
  server_error,                ///< 5xx
  server_timeout,              ///< 504 / "Timeout": the server gave up waiting
  api_error,                   ///< any other failure status
  malformed_response,          ///< a frame or body the client could not decode
};

/// The category of `errc`; its name is "informer".
const boost::system::error_category& error_category() noexcept;

inline error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

/// Fallible return type: a `T` or an `error_code`.
template <class T>
using result = boost::system::result<T, error_code>;

/// An error code plus a human-readable detail (position, offending token, path). `what()` joins
/// both. Used where the code alone would not tell a person what to fix.
class error {
public:
  error() = default;
  error(error_code code, std::string detail) : code_(code), detail_(std::move(detail)) {}
  error(errc e, std::string detail) : error(make_error_code(e), std::move(detail)) {}

  error_code code() const noexcept { return code_; }
  const std::string& detail() const noexcept { return detail_; }
  std::string what() const { return detail_.empty() ? code_.message() : code_.message() + ": " + detail_; }
  explicit operator bool() const noexcept { return static_cast<bool>(code_); }

  /// True when the code belongs to condition `c` (informer/core/condition.hpp).
  friend bool operator==(const error& e, condition c) noexcept { return e.code_ == c; }

private:
  error_code code_;
  std::string detail_;
};

/// Lets `detailed_result<T>::value()` throw a `boost::system::system_error` carrying the detail
/// text (found by argument-dependent lookup).
inline void throw_exception_from_error(const error& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(e.code(), e.detail()), loc);
}

/// Fallible return type whose error carries a detail message.
template <class T>
using detailed_result = boost::system::result<T, error>;

}  // namespace informer

namespace boost::system {
template <>
struct is_error_code_enum<informer::errc> : std::true_type {};
}  // namespace boost::system
