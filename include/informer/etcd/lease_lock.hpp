// informer/etcd/lease_lock.hpp
//
// The lock of a leader election (informer/leaderelection/leader_elector.hpp) as one etcd key, for
// controllers that run against etcd without a kube-apiserver. The key's value is the record as JSON
// in client-go's LeaderElectionRecord form ({"holderIdentity", "leaseDurationSeconds",
// "acquireTime", "renewTime" (RFC 3339 with microseconds), "leaderTransitions"}); the version is
// the key's mod_revision. Create is a Txn on create_revision == 0, update a Txn on mod_revision ==
// version, both putting the new value; a failed compare completes with errc::conflict
// (condition::conflict). The key has no etcd lease attached: expiry is the elector's business,
// judged by each candidate's own clock.
//
//   auto lock = std::make_shared<informer::etcd::lease_lock>(client, "/locks/my-controller");
//
// Threads: `etcd::client`'s Get and Txn are synchronous, so the lock runs them on a thread of its
// own (one per lock, operations in order) and never blocks the elector's executor, which may also
// serve watches. Each call is bounded by the client's `request_timeout`; keep it below the
// elector's renew_deadline so a hung member costs a renewal, not the leadership.
//
// Errors: the client's (unavailable, deadline_exceeded, unauthorized, ...); errc::malformed_response
// for a value that is not such a record.
//
// Thread safety: thread-safe. Lifetime: `client` must outlive the lock; the destructor waits for
// operations already started (each completes normally).
#pragma once

#include "informer/etcd/client.hpp"
#include "informer/leaderelection/leader_elector.hpp"

#include <boost/asio/thread_pool.hpp>

#include <string>

namespace informer::etcd {

class lease_lock : public resource_lock {
public:
  lease_lock(client& c, std::string key);
  ~lease_lock() override;
  lease_lock(const lease_lock&) = delete;
  lease_lock& operator=(const lease_lock&) = delete;

  void async_get(boost::asio::any_completion_handler<get_signature> handler) override;
  void async_create(const lock_record& record, boost::asio::any_completion_handler<write_signature> handler) override;
  void async_update(const lock_record& record, const std::string& version,
                    boost::asio::any_completion_handler<write_signature> handler) override;
  /// "etcd key <key>".
  std::string describe() const override;

private:
  void write(txn_request request, boost::asio::any_completion_handler<write_signature> handler);

  client& client_;
  std::string key_;
  boost::asio::thread_pool thread_{1};
};

}  // namespace informer::etcd
