// informer/apiserver/finalizers.hpp
//
// Finalizers for a controller: controller-runtime's controllerutil.AddFinalizer /
// RemoveFinalizer / ContainsFinalizer, writing to the server, and the reconcile step every
// controller with a finalizer repeats: while the object lives, make sure it carries the finalizer;
// once it is being deleted, clean up, then remove the finalizer so the deletion completes.
//
//   auto [e, action] = co_await informer::async_reconcile_finalizer(
//       client, obj, "example.com/cleanup",
//       [](const informer::object& o, auto done) { release_external_resources(o, std::move(done)); },
//       asio::use_awaitable);
//   if (e == informer::condition::conflict) requeue();  // the object changed since it was read
//
// Writes are JSON merge patches of `metadata.finalizers` carrying the object's resourceVersion:
// the server applies them only to the version the caller read, so a stale object never clobbers
// a finalizer another writer added or removed meanwhile; it completes with errc::conflict
// (condition::conflict), and the caller reads again (its informer will deliver the new version)
// and retries. Nothing is written when the finalizer is already present (add) or absent (remove).
//
// The client addresses the object's resource; the object's own namespace is used whatever the
// client's (a client for all namespaces works). Operations take an Asio completion token and
// complete once on the handler's associated executor, never inside the initiating call.
//
// Errors: those of `rest_client::async_patch` (errc::conflict for a stale object; not_found when
// it is gone; 422 errc::invalid when adding to an object being deleted, which the server refuses);
// `errc::invalid_argument` for an empty finalizer name; for the reconcile step, the cleanup's error
// (the finalizer then stays, so the deletion waits for a later, successful cleanup).
//
// Thread safety: free functions; any number may run at once. Lifetimes: the operations copy what
// they need; `async_reconcile_finalizer` keeps its `object::ptr` until the cleanup has completed.
#pragma once

#include "informer/apiserver/rest_client.hpp"
#include "informer/core/error.hpp"
#include "informer/core/object.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace informer {

/// True when `obj`'s `metadata.finalizers` lists `finalizer`.
bool contains_finalizer(const object& obj, std::string_view finalizer) noexcept;

/// What `async_reconcile_finalizer` did.
enum class finalizer_action {
  none,   ///< nothing to do: the finalizer is there and the object lives, or it is gone and the object is being deleted
  added,  ///< the object lives and lacked the finalizer: added
  finalized,  ///< the object is being deleted: the cleanup ran and the finalizer was removed
};

/// The cleanup run for an object being deleted: release what the object stood for, then call
/// `done` once, with an empty error on success (from any thread, or inline). It must be
/// idempotent: when removing the finalizer afterwards fails (a conflict), the next reconcile runs
/// it again.
using finalizer_cleanup = std::function<void(const object& obj, boost::asio::any_completion_handler<void(error)> done)>;

namespace detail {
using finalizer_signature = void(informer::error, object::ptr);
using reconcile_signature = void(informer::error, finalizer_action);

/// The write that adds or removes a finalizer, prepared from the object when the operation starts.
struct finalizer_patch {
  informer::error invalid{};  ///< set when there is nothing that can be sent
  std::string ns{};
  std::string name{};
  std::string patch{};  ///< empty: nothing to change
};
finalizer_patch prepare_finalizer_patch(const object& obj, std::string_view finalizer, bool add);
void start_finalizer_patch(const rest_client& client, finalizer_patch p,
                           boost::asio::any_completion_handler<finalizer_signature> handler);
void start_reconcile_finalizer(const rest_client& client, object::ptr obj, std::string finalizer,
                               finalizer_cleanup cleanup,
                               boost::asio::any_completion_handler<reconcile_signature> handler);
}  // namespace detail

/// Adds `finalizer` to `obj` on the server, conditionally on `obj`'s resourceVersion. Completes
/// with `(error, object::ptr)`: the object as written, or null when `obj` already had it
/// (nothing sent).
template <class CompletionToken>
auto async_add_finalizer(const rest_client& client, const object& obj, std::string_view finalizer,
                         CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, detail::finalizer_signature>(
      [](auto handler, const rest_client& c, detail::finalizer_patch p) {
        detail::start_finalizer_patch(c, std::move(p), std::move(handler));
      },
      token, client, detail::prepare_finalizer_patch(obj, finalizer, true));
}

/// Removes `finalizer` from `obj` on the server, conditionally on `obj`'s resourceVersion.
/// Completes with the object as written (an object being deleted whose last finalizer this was
/// is gone once the answer arrives), or null when `obj` did not have it (nothing sent).
template <class CompletionToken>
auto async_remove_finalizer(const rest_client& client, const object& obj, std::string_view finalizer,
                            CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, detail::finalizer_signature>(
      [](auto handler, const rest_client& c, detail::finalizer_patch p) {
        detail::start_finalizer_patch(c, std::move(p), std::move(handler));
      },
      token, client, detail::prepare_finalizer_patch(obj, finalizer, false));
}

/// The finalizer step of a reconcile (see the file comment): an object without a deletion
/// timestamp gets `finalizer` (added if missing); one being deleted that still carries it has
/// `cleanup` run, then loses the finalizer. Completes with `(error, finalizer_action)`; on a
/// cleanup error, or when cancelled while the cleanup runs, the finalizer is not removed. A null
/// `obj` completes with errc::invalid_argument.
template <class CompletionToken>
auto async_reconcile_finalizer(const rest_client& client, object::ptr obj, std::string_view finalizer,
                               finalizer_cleanup cleanup, CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, detail::reconcile_signature>(
      [](auto handler, const rest_client& c, object::ptr o, std::string f, finalizer_cleanup cl) {
        detail::start_reconcile_finalizer(c, std::move(o), std::move(f), std::move(cl), std::move(handler));
      },
      token, client, std::move(obj), std::string(finalizer), std::move(cleanup));
}

}  // namespace informer
