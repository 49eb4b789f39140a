// informer/core/condition.hpp
//
// What an error means for whoever must decide what to do next: reopen a watch, relist, back off,
// or give up and tell a person. Errors keep the code of whoever raised them (the SDK's
// `informer::errc`, etcd's, the codec's, Asio's, Beast's, OpenSSL's); a `condition` groups them by
// policy, as `boost::beast::condition` does, so a caller asks
//
//   if (e.code() == informer::condition::stream_cut) ...   // or `e == condition::stream_cut`
//
// and never lists codes of libraries it does not know. Each of the project's categories maps its
// own codes through its `equivalent`; the codes of categories the project cannot change (Asio's
// system and misc errors, Beast's, Asio's SSL stream errors) are mapped by the condition category.
// A code may belong to no condition; most belong to one.
//
//   condition          meaning, and what maps to it
//   -----------------  -------------------------------------------------------------------------
//   stream_cut         A watch ended, or its connection broke, without saying anything about its
//                      resourceVersion: watch again from the last version seen, no relist.
//                      errc::end_of_stream; etcd::errc::unavailable and deadline_exceeded (the
//                      etcd watch stream broke); asio eof, connection_reset, connection_aborted,
//                      broken_pipe, timed_out; beast::error::timeout; beast http partial_message
//                      and end_of_stream (the server went away mid-body); ssl stream_truncated.
//   unreachable        The connection was refused: the server is probably restarting.
//                      asio connection_refused.
//   relist_required    The resourceVersion or continue token can no longer be served: list again
//                      for the most recent state. errc::expired (410 Gone, an etcd compaction),
//                      errc::resource_version_too_large.
//   throttled          The server asks the client to slow down: back off, then retry the same
//                      request. errc::too_many_requests (429); etcd::errc::resource_exhausted.
//   unauthorized       Missing or wrong credentials. errc::unauthorized (401).
//   forbidden          Authenticated, not allowed. errc::forbidden (403).
//   not_found          No such object, index or lease. errc::not_found, errc::index_not_found.
//   conflict           Lost an optimistic-concurrency race, or it exists already. errc::conflict
//                      (409), errc::already_exists.
//   invalid_argument   The caller's request, options or configuration were refused; retrying the
//                      same call cannot help. errc::invalid_argument, invalid_url, invalid_config,
//                      invalid_key, invalid_selector, invalid_label, bad_request (400), invalid
//                      (422); etcd::errc::invalid_options.
//   undecodable        A body, frame, stored value or object could not be read. errc::invalid_json,
//                      not_an_object, missing_name, invalid_field, object_too_large,
//                      malformed_response; every codec::errc but schemas_unavailable.
//   server_error       The server failed. errc::server_error (5xx), errc::server_timeout (504).
//   cancelled          The operation was cancelled on the client's side. asio operation_aborted,
//                      etcd::errc::canceled.
//
// Thread safety: everything here is immutable or thread-safe.
#pragma once

#include <boost/system/error_category.hpp>
#include <boost/system/error_condition.hpp>

#include <type_traits>

namespace informer {

/// Error conditions (category name "informer.condition"); see the table above.
enum class condition {
  stream_cut = 1,
  unreachable,
  relist_required,
  throttled,
  unauthorized,
  forbidden,
  not_found,
  conflict,
  invalid_argument,
  undecodable,
  server_error,
  cancelled,
};

/// The category of `condition`; its name is "informer.condition".
const boost::system::error_category& condition_category() noexcept;

inline boost::system::error_condition make_error_condition(condition c) noexcept {
  return {static_cast<int>(c), condition_category()};
}

}  // namespace informer

namespace boost::system {
template <>
struct is_error_condition_enum<informer::condition> : std::true_type {};
}  // namespace boost::system
