#include "informer/apiserver/lease_lock.hpp"

#include "core/detail/async_completion.hpp"
#include "leaderelection/detail/record_json.hpp"

#include <boost/json.hpp>

#include <utility>

namespace json = boost::json;

namespace informer {

namespace {

resource lease_resource() {
  return resource{.group = "coordination.k8s.io", .version = "v1", .plural = "leases", .kind = "Lease"};
}

detailed_result<lock_record> record_of(const object& lease) {
  const auto malformed = [&](std::string_view what) {
    return informer::error(errc::malformed_response, "lease " + std::string(lease.ns()) + "/" +
                                                         std::string(lease.name()) + ": " + std::string(what));
  };
  lock_record r;
  const json::value body = lease.body();
  const auto* spec = body.is_object() ? body.get_object().if_contains("spec") : nullptr;
  if (spec == nullptr || spec->is_null()) return r;
  if (!spec->is_object()) return malformed("spec is not an object");
  if (auto wrong = detail::record_from_json(spec->get_object(), "leaseTransitions", r)) return malformed(*wrong);
  return r;
}

}  // namespace

lease_lock::lease_lock(http_client http, std::string ns, std::string name)
    : leases_(std::move(http), lease_resource(), std::move(ns)),
      name_(std::move(name)),
      last_(std::make_shared<last_read>()) {}

json::object lease_lock::skeleton() const {
  return json::object{{"apiVersion", "coordination.k8s.io/v1"},
                      {"kind", "Lease"},
                      {"metadata", {{"name", name_}, {"namespace", leases_.ns()}}}};
}

std::string lease_lock::describe() const { return "lease " + leases_.ns() + "/" + name_; }

void lease_lock::async_get(boost::asio::any_completion_handler<get_signature> handler) {
  auto op = detail::async_completion<get_signature>::create(std::move(handler), leases_.get_executor());
  leases_.async_get(name_, {}, [op, last = last_](informer::error e, object::ptr lease) {
    if (e == condition::not_found) {
      op->complete({}, std::nullopt);
      return;
    }
    if (e) {
      op->complete(std::move(e), std::nullopt);
      return;
    }
    auto record = record_of(*lease);
    if (!record) {
      op->complete(std::move(record.error()), std::nullopt);
      return;
    }
    std::string version(lease->resource_version());
    {
      lock_guard lock(last->mu);
      last->lease = std::move(lease);
    }
    op->complete({}, versioned_lock_record{std::move(*record), std::move(version)});
  });
}

void lease_lock::async_create(const lock_record& record, boost::asio::any_completion_handler<write_signature> handler) {
  auto op = detail::async_completion<write_signature>::create(std::move(handler), leases_.get_executor());
  json::object body = skeleton();
  body["spec"] = detail::record_to_json(record, "leaseTransitions");
  leases_.async_create(body, {}, [op, last = last_](informer::error e, object::ptr lease) {
    if (e) {
      op->complete(std::move(e), {});
      return;
    }
    std::string version(lease->resource_version());
    {
      lock_guard lock(last->mu);
      last->lease = std::move(lease);
    }
    op->complete({}, std::move(version));
  });
}

void lease_lock::async_update(const lock_record& record, const std::string& version,
                              boost::asio::any_completion_handler<write_signature> handler) {
  auto op = detail::async_completion<write_signature>::create(std::move(handler), leases_.get_executor());
  json::value body;
  {
    lock_guard lock(last_->mu);
    if (last_->lease && last_->lease->resource_version() == version) body = last_->lease->body();
  }
  if (!body.is_object()) body = skeleton();
  // (An object always has its metadata, and so has the skeleton.)
  auto& object = body.get_object();
  object["spec"] = detail::record_to_json(record, "leaseTransitions");
  object["metadata"].as_object()["resourceVersion"] = version;
  leases_.async_update(body, {}, [op, last = last_](informer::error e, object::ptr lease) {
    if (e) {
      op->complete(std::move(e), {});
      return;
    }
    std::string written(lease->resource_version());
    {
      lock_guard lock(last->mu);
      last->lease = std::move(lease);
    }
    op->complete({}, std::move(written));
  });
}

}  // namespace informer
