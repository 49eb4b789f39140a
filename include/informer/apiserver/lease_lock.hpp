// informer/apiserver/lease_lock.hpp
//
// The lock of a leader election (informer/leaderelection/leader_elector.hpp) as a
// `coordination.k8s.io/v1` Lease in kube-apiserver, client-go's resourcelock.LeaseLock: the record
// is the Lease's spec (holderIdentity, leaseDurationSeconds, acquireTime, renewTime as MicroTime,
// leaseTransitions), the version its resourceVersion. Reads, creates and conditional updates go
// through `rest_client`; a stale resourceVersion or an existing Lease on create completes with
// errc::conflict (condition::conflict), which the elector takes as a lost race.
//
//   auto lock = std::make_shared<informer::lease_lock>(http, "kube-system", "my-controller");
//
// An update writes the Lease as last read with its spec replaced, so labels and annotations others
// put on it are kept.
//
// Errors: those of `rest_client` (transport, 401/403, 5xx); errc::malformed_response for a Lease
// whose spec cannot be read. RBAC: get, create and update on leases in the namespace.
//
// Thread safety: thread-safe; operations run on the http_client's executor and complete on the
// handler's associated executor. Lifetime: operations keep what they need; the lock may be
// destroyed while they are pending.
#pragma once

#include "informer/apiserver/rest_client.hpp"
#include "informer/core/mutex.hpp"
#include "informer/leaderelection/leader_elector.hpp"

#include <boost/json/object.hpp>

#include <memory>
#include <string>

namespace informer {

class lease_lock : public resource_lock {
public:
  /// The Lease `name` in namespace `ns`.
  lease_lock(http_client http, std::string ns, std::string name);

  void async_get(boost::asio::any_completion_handler<get_signature> handler) override;
  void async_create(const lock_record& record, boost::asio::any_completion_handler<write_signature> handler) override;
  void async_update(const lock_record& record, const std::string& version,
                    boost::asio::any_completion_handler<write_signature> handler) override;
  /// "lease <ns>/<name>".
  std::string describe() const override;

private:
  boost::json::object skeleton() const;  // apiVersion, kind, name and namespace of the Lease

  struct last_read {
    mutex mu;
    object::ptr lease INFORMER_GUARDED_BY(mu);
  };

  rest_client leases_;
  std::string name_;
  std::shared_ptr<last_read> last_;  // shared with pending operations
};

}  // namespace informer
