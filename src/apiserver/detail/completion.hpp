// Private to the API-server rooms: how an asynchronous operation hands its outcome to a
// completion handler, and how an HTTP answer is read as a Kubernetes Status. Shared by
// http_client, rest_client and the lister-watcher so that all three agree.
//
// Thread safety: pure functions; `deliver_to`'s completion runs once, on any thread.
#pragma once

#include "informer/apiserver/http_client.hpp"
#include "informer/client/status.hpp"
#include "informer/core/error.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/beast/http/fields.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

namespace informer::detail {

/// An exception caught from a coroutine as an error: system errors keep their code, anything else
/// (bad_alloc, a throwing user callback) is `errc::api_error`; `what` names the operation.
informer::error error_from_exception(const std::exception_ptr& ep, const std::string& what);

/// A co_spawn completion that hands (error, value) to `handler` on the handler's own executor
/// (`fallback` when it has none), keeping that executor busy meanwhile. An exception from the
/// coroutine becomes the error (see `error_from_exception`), never escapes into a run loop.
template <class Value>
auto deliver_to(boost::asio::any_completion_handler<void(informer::error, Value)> handler,
                const boost::asio::any_io_executor& fallback, std::string what) {
  namespace asio = boost::asio;
  auto work = asio::prefer(asio::get_associated_executor(handler, fallback), asio::execution::outstanding_work.tracked);
  return [handler = std::move(handler), work = std::move(work), what = std::move(what)](
             std::exception_ptr ep, std::tuple<informer::error, Value> result) mutable {
    if (ep) result = {error_from_exception(ep, what), Value{}};
    asio::dispatch(work, [handler = std::move(handler), result = std::move(result)]() mutable {
      std::apply(std::move(handler), std::move(result));
    });
  };
}

/// True when `body` is a JSON object of kind "Status".
bool is_status_body(std::string_view body);

/// What an answer stands for as a Status: the Kubernetes Status in its body, or one made from the
/// HTTP status line and the body's text. A missing code is the HTTP status; a missing
/// retryAfterSeconds comes from a Retry-After header.
status status_of(const http_response& r);

}  // namespace informer::detail
