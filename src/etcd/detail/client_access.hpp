// Private to the library: calls of `client` that only the library's own components make.
#pragma once

#include "informer/etcd/client.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/execution_context.hpp>

#include <string>
#include <utility>

namespace informer::etcd::detail {

struct client_access {
  /// `client::async_range` for a handler whose executor is type-erased (so the client cannot ask it
  /// for its execution context): `target` is that context, named by the caller (see
  /// `async_completion`'s target).
  static void async_range(client& c, std::string key, std::string range_end, range_options options,
                          boost::asio::any_completion_handler<client::range_signature> handler,
                          boost::asio::execution_context& target) {
    c.async_range_impl(std::move(key), std::move(range_end), options, std::move(handler), &target);
  }
};

}  // namespace informer::etcd::detail
