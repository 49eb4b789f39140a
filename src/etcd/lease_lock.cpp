#include "informer/etcd/lease_lock.hpp"

#include "core/detail/async_completion.hpp"
#include "leaderelection/detail/record_json.hpp"

#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include <charconv>
#include <utility>

namespace json = boost::json;
namespace asio = boost::asio;

namespace informer::etcd {

namespace {

std::string encode(const lock_record& r) {
  return json::serialize(informer::detail::record_to_json(r, "leaderTransitions"));
}

detailed_result<lock_record> decode(const key_value& kv) {
  const auto malformed = [&](std::string_view what) {
    return informer::error(informer::errc::malformed_response, "etcd key " + kv.key + ": " + std::string(what));
  };
  boost::system::error_code ec;
  const auto value = json::parse(kv.value, ec);
  if (ec || !value.is_object()) return malformed("not a JSON leader-election record");
  lock_record r;
  if (auto wrong = informer::detail::record_from_json(value.get_object(), "leaderTransitions", r))
    return malformed(*wrong);
  return r;
}

}  // namespace

lease_lock::lease_lock(client& c, std::string key) : client_(c), key_(std::move(key)) {}

lease_lock::~lease_lock() { thread_.join(); }

std::string lease_lock::describe() const { return "etcd key " + key_; }

void lease_lock::async_get(asio::any_completion_handler<get_signature> handler) {
  auto op = informer::detail::async_completion<get_signature>::create(std::move(handler), thread_.get_executor());
  asio::post(thread_, [this, op] {
    auto got = client_.get(key_);
    if (!got) {
      op->complete(std::move(got.error()), std::nullopt);
      return;
    }
    if (!*got) {
      op->complete({}, std::nullopt);
      return;
    }
    auto record = decode(**got);
    if (!record) {
      op->complete(std::move(record.error()), std::nullopt);
      return;
    }
    op->complete({}, versioned_lock_record{std::move(*record), std::to_string((*got)->mod_revision)});
  });
}

void lease_lock::async_create(const lock_record& record, asio::any_completion_handler<write_signature> handler) {
  write(txn_request{.compares = {compare::create_revision(key_, compare_op::equal, 0)},
                    .success = {txn_op::put(key_, encode(record))}},
        std::move(handler));
}

void lease_lock::async_update(const lock_record& record, const std::string& version,
                              asio::any_completion_handler<write_signature> handler) {
  std::int64_t revision = 0;
  const auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), revision);
  if (ec != std::errc{} || end != version.data() + version.size() || revision <= 0) {
    informer::detail::async_completion<write_signature>::create(std::move(handler), thread_.get_executor())
        ->complete(informer::error(informer::errc::invalid_argument,
                                   "etcd key " + key_ + ": version \"" + version + "\" is not a mod_revision"),
                   {});
    return;
  }
  write(txn_request{.compares = {compare::mod_revision(key_, compare_op::equal, revision)},
                    .success = {txn_op::put(key_, encode(record))}},
        std::move(handler));
}

void lease_lock::write(txn_request request, asio::any_completion_handler<write_signature> handler) {
  auto op = informer::detail::async_completion<write_signature>::create(std::move(handler), thread_.get_executor());
  asio::post(thread_, [this, op, request = std::move(request)] {
    auto done = client_.txn(request);
    if (!done) {
      op->complete(std::move(done.error()), {});
    } else if (!done->succeeded) {
      op->complete(informer::error(informer::errc::conflict, "etcd key " + key_ + " changed since it was read"), {});
    } else {
      op->complete({}, std::to_string(done->revision));
    }
  });
}

}  // namespace informer::etcd
