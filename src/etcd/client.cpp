#include "informer/etcd/client.hpp"

#include "etcd/detail/client_state.hpp"
#include "etcd/detail/convert.hpp"

#include <utility>

namespace informer::etcd {

using detail::call_kind;
using detail::describe_range;

std::string prefix_end(std::string_view prefix) {
  std::string end{prefix};
  while (!end.empty()) {
    const auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

// --- txn building blocks -------------------------------------------------------------------------

namespace {

compare make_compare(std::string key, compare_target target, compare_op op, std::int64_t number,
                     std::string bytes = {}) {
  compare c;
  c.key = std::move(key);
  c.target = target;
  c.op = op;
  c.number = number;
  c.bytes = std::move(bytes);
  return c;
}

etcdserverpb::Compare::CompareResult to_proto(compare_op op) {
  switch (op) {
    case compare_op::equal: return etcdserverpb::Compare::EQUAL;
    case compare_op::not_equal: return etcdserverpb::Compare::NOT_EQUAL;
    case compare_op::greater: return etcdserverpb::Compare::GREATER;
    case compare_op::less: return etcdserverpb::Compare::LESS;
  }
  return etcdserverpb::Compare::EQUAL;
}

void fill_compare(etcdserverpb::Compare& out, const compare& c) {
  out.set_key(c.key);
  out.set_range_end(c.range_end);
  out.set_result(to_proto(c.op));
  switch (c.target) {
    case compare_target::version:
      out.set_target(etcdserverpb::Compare::VERSION);
      out.set_version(c.number);
      break;
    case compare_target::create_revision:
      out.set_target(etcdserverpb::Compare::CREATE);
      out.set_create_revision(c.number);
      break;
    case compare_target::mod_revision:
      out.set_target(etcdserverpb::Compare::MOD);
      out.set_mod_revision(c.number);
      break;
    case compare_target::value:
      out.set_target(etcdserverpb::Compare::VALUE);
      out.set_value(c.bytes);
      break;
    case compare_target::lease:
      out.set_target(etcdserverpb::Compare::LEASE);
      out.set_lease(c.number);
      break;
  }
}

void fill_op(etcdserverpb::RequestOp& out, const txn_op& op) {
  switch (op.type) {
    case txn_op::kind::range:
      detail::fill_range_request(*out.mutable_request_range(), op.key, op.range_end, op.range);
      break;
    case txn_op::kind::put: {
      auto& put = *out.mutable_request_put();
      put.set_key(op.key);
      put.set_value(op.value);
      put.set_lease(op.lease);
      put.set_prev_kv(op.prev_kv);
      break;
    }
    case txn_op::kind::del: {
      auto& del = *out.mutable_request_delete_range();
      del.set_key(op.key);
      del.set_range_end(op.range_end);
      del.set_prev_kv(op.prev_kv);
      break;
    }
  }
}

txn_op_result to_op_result(etcdserverpb::ResponseOp& response) {
  txn_op_result out;
  switch (response.response_case()) {
    case etcdserverpb::ResponseOp::kResponseRange: {
      auto& range = *response.mutable_response_range();
      out.type = txn_op::kind::range;
      out.kvs = detail::to_key_values(*range.mutable_kvs());
      out.more = range.more();
      out.count = range.count();
      break;
    }
    case etcdserverpb::ResponseOp::kResponsePut: {
      auto& put = *response.mutable_response_put();
      out.type = txn_op::kind::put;
      if (put.has_prev_kv()) {
        out.kvs.push_back(detail::to_key_value(std::move(*put.mutable_prev_kv())));
      }
      break;
    }
    case etcdserverpb::ResponseOp::kResponseDeleteRange: {
      auto& del = *response.mutable_response_delete_range();
      out.type = txn_op::kind::del;
      out.kvs = detail::to_key_values(*del.mutable_prev_kvs());
      out.count = del.deleted();
      break;
    }
    default: break;  // nested transactions are not built by this client
  }
  return out;
}

}  // namespace

compare compare::version(std::string key, compare_op op, std::int64_t version) {
  return make_compare(std::move(key), compare_target::version, op, version);
}
compare compare::create_revision(std::string key, compare_op op, std::int64_t revision) {
  return make_compare(std::move(key), compare_target::create_revision, op, revision);
}
compare compare::mod_revision(std::string key, compare_op op, std::int64_t revision) {
  return make_compare(std::move(key), compare_target::mod_revision, op, revision);
}
compare compare::value(std::string key, compare_op op, std::string value) {
  return make_compare(std::move(key), compare_target::value, op, 0, std::move(value));
}
compare compare::lease(std::string key, compare_op op, std::int64_t lease) {
  return make_compare(std::move(key), compare_target::lease, op, lease);
}

txn_op txn_op::get(std::string key, std::string range_end, range_options options) {
  txn_op op;
  op.type = kind::range;
  op.key = std::move(key);
  op.range_end = std::move(range_end);
  op.range = options;
  return op;
}
txn_op txn_op::put(std::string key, std::string value, std::int64_t lease) {
  txn_op op;
  op.type = kind::put;
  op.key = std::move(key);
  op.value = std::move(value);
  op.lease = lease;
  return op;
}
txn_op txn_op::del(std::string key, std::string range_end) {
  txn_op op;
  op.type = kind::del;
  op.key = std::move(key);
  op.range_end = std::move(range_end);
  return op;
}

// --- lease_keep_alive ----------------------------------------------------------------------------

lease_keep_alive& lease_keep_alive::operator=(lease_keep_alive&& other) noexcept {
  if (this != &other) {
    if (auto keeper = keeper_.lock()) {
      keeper->stop(true);
    }
    keeper_ = std::move(other.keeper_);
  }
  return *this;
}

lease_keep_alive::~lease_keep_alive() {
  if (auto keeper = keeper_.lock()) {
    keeper->stop(true);
  }
}

void lease_keep_alive::stop() noexcept {
  if (auto keeper = keeper_.lock()) {
    keeper->stop(false);
  }
}

// --- client --------------------------------------------------------------------------------------

detailed_result<client> client::connect(client_options options) {
  auto conn = detail::connection::create(std::move(options));
  if (!conn) {
    return conn.error();
  }
  return client{std::make_unique<detail::client_state>(std::move(*conn))};
}

client::client(std::unique_ptr<detail::client_state> state) : state_(std::move(state)) {}
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;
client::~client() = default;

const client_options& client::options() const noexcept { return state_->conn->options(); }

detailed_result<range_result> client::range(std::string_view key, std::string_view range_end,
                                            const range_options& options) {
  etcdserverpb::RangeRequest request;
  detail::fill_range_request(request, key, range_end, options);
  etcdserverpb::RangeResponse response;
  const error failure = state_->conn->unary("Range " + describe_range(key, range_end), call_kind::read,
                                            [&](detail::endpoint& ep, grpc::ClientContext& context) {
                                              response.Clear();
                                              return ep.kv->Range(&context, request, &response);
                                            });
  if (failure) {
    return failure;
  }
  return detail::to_range_result(response);
}

detailed_result<std::optional<key_value>> client::get(std::string_view key, std::int64_t revision) {
  auto result = range(key, {}, range_options{.revision = revision});
  if (!result) {
    return result.error();
  }
  if (result->kvs.empty()) {
    return std::optional<key_value>{};
  }
  return std::optional<key_value>{std::move(result->kvs.front())};
}

detailed_result<std::int64_t> client::list_prefix_paged(
    std::string_view prefix, std::int64_t page_size,
    const std::function<void(std::vector<key_value>&& page)>& on_page) {
  const std::string end = prefix_end(prefix);
  // etcd rejects an empty key; "\0" is the smallest one.
  std::string from = prefix.empty() ? std::string(1, '\0') : std::string{prefix};
  std::int64_t revision = 0;  // the snapshot: the first page's revision
  for (;;) {
    auto page = range(from, end, range_options{.limit = std::max<std::int64_t>(page_size, 0), .revision = revision});
    if (!page) {
      return page.error();
    }
    if (revision == 0) {
      revision = page->revision;
    }
    const bool more = page->more && !page->kvs.empty();
    if (more) {
      from = page->kvs.back().key;
      from.push_back('\0');  // the smallest key after the last one
    }
    on_page(std::move(page->kvs));
    if (!more) {
      return revision;
    }
  }
}

detailed_result<range_result> client::list_prefix_paged(std::string_view prefix, std::int64_t page_size) {
  range_result all;
  auto revision = list_prefix_paged(prefix, page_size, [&](std::vector<key_value>&& page) {
    if (all.kvs.empty()) {
      all.kvs = std::move(page);
    } else {
      all.kvs.insert(all.kvs.end(), std::make_move_iterator(page.begin()), std::make_move_iterator(page.end()));
    }
  });
  if (!revision) {
    return revision.error();
  }
  all.revision = *revision;
  all.count = static_cast<std::int64_t>(all.kvs.size());
  return all;
}

detailed_result<std::int64_t> client::put(std::string_view key, std::string_view value, std::int64_t lease) {
  etcdserverpb::PutRequest request;
  request.set_key(std::string{key});
  request.set_value(std::string{value});
  request.set_lease(lease);
  etcdserverpb::PutResponse response;
  const error failure = state_->conn->unary("Put " + describe_range(key), call_kind::write,
                                            [&](detail::endpoint& ep, grpc::ClientContext& context) {
                                              response.Clear();
                                              return ep.kv->Put(&context, request, &response);
                                            });
  if (failure) {
    return failure;
  }
  return response.header().revision();
}

detailed_result<delete_result> client::delete_range(std::string_view key, std::string_view range_end, bool prev_kv) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(std::string{key});
  request.set_range_end(std::string{range_end});
  request.set_prev_kv(prev_kv);
  etcdserverpb::DeleteRangeResponse response;
  const error failure = state_->conn->unary("DeleteRange " + describe_range(key, range_end), call_kind::write,
                                            [&](detail::endpoint& ep, grpc::ClientContext& context) {
                                              response.Clear();
                                              return ep.kv->DeleteRange(&context, request, &response);
                                            });
  if (failure) {
    return failure;
  }
  delete_result out;
  out.deleted = response.deleted();
  out.prev_kvs = detail::to_key_values(*response.mutable_prev_kvs());
  out.revision = response.header().revision();
  return out;
}

detailed_result<txn_result> client::txn(const txn_request& t) {
  etcdserverpb::TxnRequest request;
  for (const auto& c : t.compares) {
    fill_compare(*request.add_compare(), c);
  }
  for (const auto& op : t.success) {
    fill_op(*request.add_success(), op);
  }
  for (const auto& op : t.failure) {
    fill_op(*request.add_failure(), op);
  }
  std::string what = "Txn";
  if (!t.compares.empty()) {
    what += " on " + describe_range(t.compares.front().key);
  }
  etcdserverpb::TxnResponse response;
  const error failure =
      state_->conn->unary(what, call_kind::write, [&](detail::endpoint& ep, grpc::ClientContext& context) {
        response.Clear();
        return ep.kv->Txn(&context, request, &response);
      });
  if (failure) {
    return failure;
  }
  txn_result out;
  out.succeeded = response.succeeded();
  out.revision = response.header().revision();
  out.results.reserve(static_cast<std::size_t>(response.responses_size()));
  for (auto& r : *response.mutable_responses()) {
    out.results.push_back(to_op_result(r));
  }
  return out;
}

detailed_result<std::int64_t> client::put_if_mod_revision(std::string_view key, std::string_view value,
                                                          std::int64_t expected_mod_revision) {
  txn_request t;
  t.compares.push_back(compare::mod_revision(std::string{key}, compare_op::equal, expected_mod_revision));
  t.success.push_back(txn_op::put(std::string{key}, std::string{value}));
  t.failure.push_back(txn_op::get(std::string{key}, {}, range_options{.keys_only = true}));
  auto result = txn(t);
  if (!result) {
    return result.error();
  }
  if (result->succeeded) {
    return result->revision;
  }
  std::int64_t current = 0;
  if (!result->results.empty() && !result->results.front().kvs.empty()) {
    current = result->results.front().kvs.front().mod_revision;
  }
  auto describe = [](std::int64_t revision) {
    return revision == 0 ? std::string{"0 (absent)"} : std::to_string(revision);
  };
  return error{informer::errc::conflict, "Put " + describe_range(key) + ": its mod_revision is " + describe(current) +
                                             ", expected " + describe(expected_mod_revision)};
}

detailed_result<void> client::compact(std::int64_t revision, bool physical) {
  etcdserverpb::CompactionRequest request;
  request.set_revision(revision);
  request.set_physical(physical);
  etcdserverpb::CompactionResponse response;
  const error failure = state_->conn->unary(
      "Compact to revision " + std::to_string(revision), call_kind::write,
      [&](detail::endpoint& ep, grpc::ClientContext& context) { return ep.kv->Compact(&context, request, &response); });
  if (failure) {
    return failure;
  }
  return {};
}

detailed_result<lease_grant_result> client::lease_grant(std::int64_t ttl_seconds) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl_seconds);
  etcdserverpb::LeaseGrantResponse response;
  const std::string what = "LeaseGrant of " + std::to_string(ttl_seconds) + " s";
  const error failure =
      state_->conn->unary(what, call_kind::write, [&](detail::endpoint& ep, grpc::ClientContext& context) {
        response.Clear();
        return ep.lease->LeaseGrant(&context, request, &response);
      });
  if (failure) {
    return failure;
  }
  if (!response.error().empty()) {
    return error{informer::errc::server_error, what + ": " + response.error()};
  }
  return lease_grant_result{.id = response.id(), .ttl = response.ttl()};
}

detailed_result<void> client::lease_revoke(std::int64_t lease_id) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease_id);
  etcdserverpb::LeaseRevokeResponse response;
  const error failure = state_->conn->unary("LeaseRevoke of lease " + std::to_string(lease_id), call_kind::write,
                                            [&](detail::endpoint& ep, grpc::ClientContext& context) {
                                              return ep.lease->LeaseRevoke(&context, request, &response);
                                            });
  if (failure) {
    return failure;
  }
  return {};
}

lease_keep_alive client::keep_alive(std::int64_t lease_id, keep_alive_options options) {
  auto keeper =
      std::make_shared<detail::lease_keeper>(state_->conn, state_->loop, state_->keepers, lease_id, std::move(options));
  keeper->start();
  return lease_keep_alive{keeper};
}

watch_handle client::watch(std::string key, const watch_options& options, watch_callback callback) {
  const std::uint64_t id = state_->watches->add(std::move(key), options, std::move(callback));
  return watch_handle{state_->watches, id};
}

void client::request_progress() { state_->watches->request_progress(); }

}  // namespace informer::etcd
