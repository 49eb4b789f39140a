// Private to the API-server rooms: how an asynchronous operation hands its outcome to a
// completion handler, and how an HTTP answer is read as a Kubernetes Status. Shared by
// http_client, rest_client and the lister-watcher so that all three agree.
//
// Thread safety: pure functions; `spawn_operation` completes its handler once, on the handler's executor.
#pragma once

#include "informer/apiserver/http_client.hpp"
#include "informer/client/status.hpp"
#include "informer/core/error.hpp"

#include "core/detail/async_completion.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/http/fields.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

namespace informer::detail {

/// An exception caught from a coroutine as an error: system errors keep their code, anything else
/// (bad_alloc, a throwing user callback) is `errc::api_error`; `what` names the operation.
informer::error error_from_exception(const std::exception_ptr& ep, const std::string& what);

/// A co_spawn completion that completes `op` with the coroutine's (error, value), or with the
/// error an exception stands for (see `error_from_exception`).
template <class Value>
auto completing(std::shared_ptr<async_completion<void(informer::error, Value)>> op, std::string what) {
  return
      [op = std::move(op), what = std::move(what)](std::exception_ptr ep, std::tuple<informer::error, Value> result) {
        if (ep) result = {error_from_exception(ep, what), Value{}};
        std::apply([&](informer::error& e, Value& v) { op->complete(std::move(e), std::move(v)); }, result);
      };
}

/// Runs `coroutine` on `executor` and hands its (error, value) to `handler` through an
/// `async_completion` (dispatched to the handler's executor, `executor` when it has none). An
/// exception from the coroutine becomes the error (see `error_from_exception`), never escapes into
/// a run loop. A connected cancellation slot completes the handler at once with operation_aborted;
/// the coroutine runs on and its late result is dropped.
template <class Value>
void spawn_operation(const boost::asio::any_io_executor& executor,
                     boost::asio::awaitable<std::tuple<informer::error, Value>> coroutine,
                     boost::asio::any_completion_handler<void(informer::error, Value)> handler, std::string what) {
  auto op = async_completion<void(informer::error, Value)>::create(std::move(handler), executor, delivery::dispatch);
  op->cancel_with({boost::asio::error::operation_aborted, what + ": cancelled"}, Value{});
  boost::asio::co_spawn(executor, std::move(coroutine), completing(std::move(op), std::move(what)));
}

/// True when `body` is a JSON object of kind "Status".
bool is_status_body(std::string_view body);

/// What an answer stands for as a Status: the Kubernetes Status in its body, or one made from the
/// HTTP status line and the body's text. A missing code is the HTTP status; a missing
/// retryAfterSeconds comes from a Retry-After header.
status status_of(const http_response& r);

}  // namespace informer::detail
