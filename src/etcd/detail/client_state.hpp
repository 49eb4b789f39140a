// What a `client` owns: the connection (endpoints, token), the loop (the client's thread) and the
// asynchronous parts that run on it. Destroying it closes the loop: every watch and keep-alive is
// ended, every stream canceled, and the thread joined, before the rest goes.
#pragma once

#include "etcd/detail/completion_loop.hpp"
#include "etcd/detail/connection.hpp"
#include "etcd/detail/lease_keeper.hpp"
#include "etcd/detail/watch_driver.hpp"

#include <memory>

namespace informer::etcd::detail {

class client_state {
public:
  explicit client_state(std::shared_ptr<connection> connection)
      : conn(std::move(connection)), watches(std::make_shared<watch_driver>(conn, loop)) {}

  ~client_state() {
    loop->close([this] {
      watches->close_on_loop();
      keepers->close_on_loop();
    });
  }

  client_state(const client_state&) = delete;
  client_state& operator=(const client_state&) = delete;

  const std::shared_ptr<connection> conn;
  const std::shared_ptr<completion_loop> loop = std::make_shared<completion_loop>();
  const std::shared_ptr<watch_driver> watches;
  const std::shared_ptr<lease_keepers> keepers = std::make_shared<lease_keepers>();
};

}  // namespace informer::etcd::detail
