#include "informer/apiserver/finalizers.hpp"

#include "core/detail/async_completion.hpp"

#include <boost/asio/error.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <exception>
#include <memory>
#include <utility>

namespace asio = boost::asio;
namespace json = boost::json;

namespace informer {

namespace {

informer::error cancelled() { return {asio::error::operation_aborted, "finalizer: cancelled"}; }

}  // namespace

bool contains_finalizer(const object& obj, std::string_view finalizer) noexcept {
  const auto list = obj.finalizers();
  return std::find(list.begin(), list.end(), finalizer) != list.end();
}

namespace detail {

finalizer_patch prepare_finalizer_patch(const object& obj, std::string_view finalizer, bool add) {
  finalizer_patch p{.ns = std::string(obj.ns()), .name = std::string(obj.name())};
  if (finalizer.empty()) {
    p.invalid = {errc::invalid_argument, "an empty finalizer name"};
    return p;
  }
  if (contains_finalizer(obj, finalizer) == add) return p;
  if (obj.resource_version().empty()) {
    // Without it the write would be unconditional and could undo a concurrent change.
    p.invalid = {errc::invalid_argument, "the object " + p.ns + "/" + p.name + " has no resourceVersion"};
    return p;
  }
  json::array list;
  for (const auto f : obj.finalizers()) {
    if (f != finalizer) list.emplace_back(f);
  }
  if (add) list.emplace_back(finalizer);
  // A merge patch replaces the whole list; the resourceVersion makes it apply to the list read.
  json::object metadata{{"resourceVersion", obj.resource_version()}};
  if (list.empty()) {
    metadata["finalizers"] = nullptr;
  } else {
    metadata["finalizers"] = std::move(list);
  }
  p.patch = json::serialize(json::object{{"metadata", std::move(metadata)}});
  return p;
}

void start_finalizer_patch(const rest_client& client, finalizer_patch p,
                           asio::any_completion_handler<finalizer_signature> handler) {
  auto op = async_completion<finalizer_signature>::create(std::move(handler), client.get_executor());
  if (p.invalid) {
    op->complete(std::move(p.invalid), nullptr);
    return;
  }
  if (p.patch.empty()) {
    op->complete({}, nullptr);
    return;
  }
  op->cancel_with(cancelled(), nullptr);
  const rest_client target = client.get_resource().namespaced ? client.in_namespace(p.ns) : client;
  target.async_patch(p.name, patch_type::merge_patch, std::move(p.patch), {},
                     [op](informer::error e, object::ptr written) { op->complete(std::move(e), std::move(written)); });
}

void start_reconcile_finalizer(const rest_client& client, object::ptr obj, std::string finalizer,
                               finalizer_cleanup cleanup, asio::any_completion_handler<reconcile_signature> handler) {
  auto op = async_completion<reconcile_signature>::create(std::move(handler), client.get_executor());
  if (finalizer.empty() || !obj) {
    op->complete({errc::invalid_argument, obj ? "an empty finalizer name" : "no object"}, finalizer_action::none);
    return;
  }
  const bool present = contains_finalizer(*obj, finalizer);
  if (obj->deletion_timestamp().empty()) {
    if (present) {
      op->complete({}, finalizer_action::none);
      return;
    }
    start_finalizer_patch(client, prepare_finalizer_patch(*obj, finalizer, true), [op](informer::error e, object::ptr) {
      const auto action = e ? finalizer_action::none : finalizer_action::added;
      op->complete(std::move(e), action);
    });
    return;
  }
  if (!present) {
    op->complete({}, finalizer_action::none);
    return;
  }
  op->cancel_with(cancelled(), finalizer_action::none);
  // The cleanup may call `done` inline, which releases the lambda's hold before the cleanup returns.
  const object::ptr target = obj;
  auto done = [op, client, obj = std::move(obj), finalizer](informer::error e) {
    if (e) {
      op->complete(std::move(e), finalizer_action::none);
      return;
    }
    if (op->completed()) return;  // cancelled during the cleanup: release nothing
    start_finalizer_patch(client, prepare_finalizer_patch(*obj, finalizer, false),
                          asio::any_completion_handler<finalizer_signature>([op](informer::error pe, object::ptr) {
                            const auto action = pe ? finalizer_action::none : finalizer_action::finalized;
                            op->complete(std::move(pe), action);
                          }));
  };
  try {
    cleanup(*target, asio::any_completion_handler<void(informer::error)>(std::move(done)));
  } catch (const std::exception& ex) {
    op->complete({errc::api_error, std::string("the cleanup threw: ") + ex.what()}, finalizer_action::none);
  }
}

}  // namespace detail

}  // namespace informer
