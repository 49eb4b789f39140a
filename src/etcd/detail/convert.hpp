// Conversions between etcd's generated messages and the plain structs of the public API. The
// `&&` overloads move the bytes out of the message (a list of thousands of objects is not copied).
#pragma once

#include "informer/etcd/client.hpp"
#include "informer/etcd/watch.hpp"

#include "etcd/kv.pb.h"
#include "etcd/rpc.pb.h"

#include <string_view>
#include <utility>

namespace informer::etcd::detail {

inline key_value to_key_value(mvccpb::KeyValue&& kv) {
  key_value out;
  out.key = std::move(*kv.mutable_key());
  out.value = std::move(*kv.mutable_value());
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.version = kv.version();
  out.lease = kv.lease();
  return out;
}

inline std::vector<key_value> to_key_values(google::protobuf::RepeatedPtrField<mvccpb::KeyValue>& kvs) {
  std::vector<key_value> out;
  out.reserve(static_cast<std::size_t>(kvs.size()));
  for (auto& kv : kvs) {
    out.push_back(to_key_value(std::move(kv)));
  }
  return out;
}

inline event to_event(mvccpb::Event&& ev) {
  event out;
  out.type = ev.type() == mvccpb::Event::DELETE ? event_type::del : event_type::put;
  out.kv = to_key_value(std::move(*ev.mutable_kv()));
  if (ev.has_prev_kv()) {
    out.prev_kv = to_key_value(std::move(*ev.mutable_prev_kv()));
  }
  return out;
}

inline void fill_range_request(etcdserverpb::RangeRequest& request, std::string_view key, std::string_view range_end,
                               const range_options& options) {
  request.set_key(std::string{key});
  request.set_range_end(std::string{range_end});
  request.set_limit(options.limit);
  request.set_revision(options.revision);
  request.set_keys_only(options.keys_only);
  request.set_count_only(options.count_only);
  request.set_serializable(options.serializable);
}

inline range_result to_range_result(etcdserverpb::RangeResponse& response) {
  range_result out;
  out.kvs = to_key_values(*response.mutable_kvs());
  out.more = response.more();
  out.count = response.count();
  out.revision = response.header().revision();
  return out;
}

}  // namespace informer::etcd::detail
