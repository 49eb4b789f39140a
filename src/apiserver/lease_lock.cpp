#include "informer/apiserver/lease_lock.hpp"

#include "codec/detail/go_json.hpp"
#include "core/detail/async_completion.hpp"
#include "core/detail/rfc3339.hpp"

#include <boost/json.hpp>

#include <utility>

namespace json = boost::json;

namespace informer {

namespace {

resource lease_resource() {
  return resource{.group = "coordination.k8s.io", .version = "v1", .plural = "leases", .kind = "Lease"};
}

std::string micro_time(std::chrono::system_clock::time_point t) {
  const auto since = t.time_since_epoch();
  const auto seconds = std::chrono::floor<std::chrono::seconds>(since);
  return codec::detail::format_micro_time(
      seconds.count(), std::chrono::duration_cast<std::chrono::nanoseconds>(since - seconds).count());
}

json::object spec_of(const lock_record& r) {
  json::object spec{{"holderIdentity", r.holder_identity},
                    {"leaseDurationSeconds", r.lease_duration.count()},
                    {"leaseTransitions", r.leader_transitions}};
  // A zero time is MicroTime's null: left out.
  if (r.acquire_time != std::chrono::system_clock::time_point{}) spec["acquireTime"] = micro_time(r.acquire_time);
  if (r.renew_time != std::chrono::system_clock::time_point{}) spec["renewTime"] = micro_time(r.renew_time);
  return spec;
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
  const auto& s = spec->get_object();
  if (const auto* v = s.if_contains("holderIdentity"); v != nullptr && !v->is_null()) {
    if (!v->is_string()) return malformed("holderIdentity is not a string");
    r.holder_identity = v->get_string();
  }
  if (const auto* v = s.if_contains("leaseDurationSeconds"); v != nullptr && !v->is_null()) {
    if (!v->is_int64()) return malformed("leaseDurationSeconds is not an integer");
    r.lease_duration = std::chrono::seconds(v->get_int64());
  }
  if (const auto* v = s.if_contains("leaseTransitions"); v != nullptr && !v->is_null()) {
    if (!v->is_int64()) return malformed("leaseTransitions is not an integer");
    r.leader_transitions = static_cast<std::int32_t>(v->get_int64());
  }
  for (auto [key, field] : {std::pair{"acquireTime", &r.acquire_time}, std::pair{"renewTime", &r.renew_time}}) {
    const auto* v = s.if_contains(key);
    if (v == nullptr || v->is_null()) continue;
    const auto t = v->is_string() ? detail::parse_rfc3339(v->get_string()) : std::nullopt;
    if (!t) return malformed(std::string(key) + " is not an RFC 3339 time");
    *field = *t;
  }
  return r;
}

}  // namespace

lease_lock::lease_lock(http_client http, std::string ns, std::string name)
    : leases_(std::move(http), lease_resource(), std::move(ns)),
      name_(std::move(name)),
      last_(std::make_shared<last_read>()) {}

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
  const json::value body{{"apiVersion", "coordination.k8s.io/v1"},
                         {"kind", "Lease"},
                         {"metadata", {{"name", name_}, {"namespace", leases_.ns()}}},
                         {"spec", spec_of(record)}};
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
  if (!body.is_object()) {
    body = json::object{{"apiVersion", "coordination.k8s.io/v1"},
                        {"kind", "Lease"},
                        {"metadata", {{"name", name_}, {"namespace", leases_.ns()}}}};
  }
  auto& object = body.get_object();
  object["spec"] = spec_of(record);
  if (auto* metadata = object.if_contains("metadata"); metadata != nullptr && metadata->is_object()) {
    metadata->get_object()["resourceVersion"] = version;
  } else {
    object["metadata"] = json::object{{"name", name_}, {"namespace", leases_.ns()}, {"resourceVersion", version}};
  }
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
