// informer/apiserver/rest_client.hpp
//
// Reads and writes of one resource in one namespace through a kube-apiserver: client-go's dynamic
// client (`Resource(gvr).Namespace(ns)`) for this SDK. A controller reads from its informer's
// lister and writes through this: create, update (optimistic concurrency), the four patch kinds,
// delete with preconditions and propagation, the `status` subresource, pod binding and eviction,
// and `async_retry_on_conflict` for read-modify-write loops.
//
//   informer::rest_client config_maps(http, informer::parse_resource("configmaps").value(), "default");
//   auto [e, cm] = co_await config_maps.async_create(body, {}, asio::use_awaitable);
//   auto [pe, patched] = co_await config_maps.async_patch(
//       "settings", informer::patch_type::merge_patch, R"({"data":{"mode":"fast"}})", {}, asio::use_awaitable);
//   auto [re, counted] = co_await config_maps.async_retry_on_conflict(
//       "settings",
//       [](const informer::object& current) -> informer::detailed_result<boost::json::value> {
//         auto body = current.body();
//         body.at("data").as_object()["touched"] = "yes";
//         return body;
//       },
//       {}, asio::use_awaitable);
//
// Every operation is asynchronous, takes an Asio completion token (`use_awaitable`, a callback,
// `use_future`, `deferred`, ...) and completes with `(informer::error, result)`. Blocking code
// passes `boost::asio::use_future` and waits on the future, with the client's executor run by
// another thread.
//
// Objects sent are `boost::json::value` bodies (from `object::body()`, edited, or built by hand);
// objects received are `object::ptr`, parsed by `object::parse`. Listed items get `apiVersion` and
// `kind` from the resource, as client-go's dynamic client does (the server omits them per item).
//
// Errors (`informer::error`):
// - the server's answer to a failed request: the `Status` it sent, mapped by `status::to_error`
//   (409 -> errc::conflict for a stale resourceVersion, an existing name on create, a failed
//   delete precondition and a server-side-apply field conflict; 404 -> not_found; 422 -> invalid;
//   401 -> unauthorized; 403 -> forbidden; 429 -> too_many_requests; ...), the detail holding
//   "<code> <reason>: <message>" and the method and URL;
// - transport failures as `http_client` reports them (connect, TLS, timeout);
// - checked before sending, `errc::invalid_argument`: an empty name, no namespace for a namespaced
//   resource, a name or namespace that is not a path segment (".", "..", or holding
//   '/' or '%', as client-go refuses them: see `check_path_segment`), binding or eviction on a resource other than
//   core/v1 pods; `errc::missing_name`: a body to update without `metadata.name`;
// - `errc::malformed_response`: a 2xx answer whose body is not what the operation returns.
//
// 429 and retries. `http_client` waits out and repeats a 429 only when the answer carries a delay
// (Retry-After or details.retryAfterSeconds): the API server's own overload answers (max in-flight,
// priority and fairness) do. An eviction that a PodDisruptionBudget forbids is a 429 without a
// delay, so it completes at once with errc::too_many_requests and is never repeated: the caller
// decides when to try again (as `kubectl drain` does). kube-apiserver 1.20 sends no delay either
// while the PDB controller has not yet processed the budget; later versions suggest 10 s for that
// case, which http_client then waits out (at most `max_retries_after_429` times).
//
// Threads: requests run on the `http_client`'s executor; completion handlers run on their
// associated executor (the coroutine's for `use_awaitable`), never inside the initiating call.
// The mutation function of `async_retry_on_conflict` runs on the http_client's executor.
// With g++ 12, pass options to a `co_await`ed operation as named variables rather than `{}`
// temporaries in loops: g++ 12 was seen to destroy such a temporary twice.
//
// Thread safety: `rest_client` is immutable after construction: any number of threads may start
// operations on one instance.
//
// Lifetimes: each operation keeps what it needs (a copy of the http_client handle, the resource,
// the namespace, the mutation function), so the rest_client may be destroyed while operations are
// pending. Destroy clients before the execution context they run on.
#pragma once

#include "informer/apiserver/http_client.hpp"
#include "informer/client/lister_watcher.hpp"
#include "informer/client/status.hpp"
#include "informer/core/error.hpp"
#include "informer/core/object.hpp"
#include "informer/core/resource.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace informer {

/// Options of a get.
struct get_options {
  /// "" reads the latest (a quorum read); "0" accepts the server's cache; a version reads at least
  /// that new.
  std::string resource_version{};
};

/// Options of create, update, update_status and bind.
struct write_options {
  /// The server validates and admits the write but does not persist it (dryRun=All).
  bool dry_run = false;
  /// Recorded in managedFields as the writer; "" lets the server derive it from the User-Agent.
  std::string field_manager{};
};

/// The patch formats kube-apiserver accepts.
enum class patch_type {
  json_patch,             ///< RFC 6902 operations (application/json-patch+json)
  merge_patch,            ///< RFC 7386 JSON merge patch (application/merge-patch+json)
  strategic_merge_patch,  ///< Kubernetes' strategic merge patch; built-in kinds only, not CRDs
  apply,                  ///< server-side apply of YAML or JSON (application/apply-patch+yaml)
};

/// Options of patch and patch_status.
struct patch_options {
  bool dry_run = false;
  /// Required by the server for `patch_type::apply` (else 422 -> errc::invalid).
  std::string field_manager{};
  /// Server-side apply only: take over fields another manager owns instead of failing with a
  /// conflict. The server refuses it with other patch types (422).
  bool force = false;
};

/// What happens to the objects a deleted object owns.
enum class propagation_policy {
  server_default,  ///< the resource's default (background for most kinds)
  foreground,      ///< the object stays, with a foregroundDeletion finalizer, until its dependents are gone
  background,      ///< deleted now; the garbage collector deletes the dependents later
  orphan,          ///< dependents are kept, their owner references removed
};

/// Options of delete and of an eviction's deletion.
struct delete_options {
  /// Preconditions: the delete fails with errc::conflict unless the object has this uid / this
  /// resourceVersion. Empty: not checked.
  std::string uid{};
  std::string resource_version{};
  propagation_policy propagation = propagation_policy::server_default;
  /// Seconds a pod gets to terminate; 0 deletes at once. Unset: the object's default.
  std::optional<std::int64_t> grace_period_seconds{};
  bool dry_run = false;
};

/// The answer to a delete: the object when the server returns it (kinds such as pods, and any
/// object whose deletion waits for finalizers or a grace period: then its deletion timestamp is
/// set and it still exists), otherwise the server's success Status (the object is gone).
struct delete_result {
  informer::object::ptr object{};  ///< null when the server answered with a Status
  informer::status status{};       ///< when `object` is null; `code` is the HTTP status if the server left it out
};

/// How `async_retry_on_conflict` retries; the defaults are client-go's retry.DefaultRetry.
struct conflict_retry_options {
  /// Attempts in total (read, mutate, update), at least 1.
  int steps = 5;
  /// Wait before the second attempt; each later wait is `factor` times the previous one.
  std::chrono::nanoseconds delay = std::chrono::milliseconds(10);
  double factor = 1.0;
  /// Each wait is stretched by a random fraction in [0, jitter].
  double jitter = 0.1;
  /// Write through the status subresource (update_status) instead of the object.
  bool status_subresource = false;
  write_options write{};
};

/// Computes the body to write from the object as currently stored (the caller's edit of
/// `current.body()`); an error stops `async_retry_on_conflict` and is its result (an exception
/// too, as errc::api_error with its text).
using mutation_function = std::function<detailed_result<boost::json::value>(const object& current)>;

/// Settings of a rest_client that the server decides.
struct rest_client_options {
  /// The apiVersion of the Eviction `async_evict` posts: what the server takes at pods/eviction,
  /// `discovery_snapshot::eviction_api_version()` ("policy/v1" from Kubernetes 1.22; 1.25 serves
  /// nothing else). The default is what every server up to 1.24 takes.
  std::string eviction_api_version = "policy/v1beta1";
};

namespace detail {
/// One request as an operation builds it (method, path and query, body); internal.
struct rest_request {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string target{};
  std::string content_type{};
  std::string body{};
  bool list = false;  ///< the answer is a collection (http_request_options::list)
};
}  // namespace detail

class rest_client {
public:
  using object_signature = void(informer::error, object::ptr);
  using list_signature = void(informer::error, object_list);
  using delete_signature = void(informer::error, delete_result);
  using status_signature = void(informer::error, status);

  /// Operations on `r` in namespace `ns` (ignored for cluster-scoped resources; "" on a namespaced
  /// resource allows only lists, across all namespaces).
  rest_client(http_client http, resource r, std::string ns = {}, rest_client_options options = {});

  const resource& get_resource() const noexcept { return resource_; }
  const std::string& ns() const noexcept { return ns_; }
  boost::asio::any_io_executor get_executor() const { return http_.get_executor(); }
  /// This client for namespace `ns` (client-go's `Namespace(ns)` on the same resource): for
  /// writes to the namespace of an object read across all namespaces.
  rest_client in_namespace(std::string ns) const { return rest_client(http_, resource_, std::move(ns), options_); }

  /// GET one object.
  template <class CompletionToken>
  auto async_get(std::string_view name, const get_options& options, CompletionToken&& token) const {
    return initiate<object_signature>(get_request(name, options), std::forward<CompletionToken>(token));
  }

  /// GET a page of the collection (every namespace when the client's namespace is "").
  template <class CompletionToken>
  auto async_list(const list_options& options, CompletionToken&& token) const {
    return initiate<list_signature>(list_request(options), std::forward<CompletionToken>(token));
  }

  /// POST a new object; completes with it as stored. errc::conflict when the name exists
  /// (reason "AlreadyExists"). A body with `metadata.generateName` and no name gets a generated one.
  template <class CompletionToken>
  auto async_create(const boost::json::value& body, const write_options& options, CompletionToken&& token) const {
    return initiate<object_signature>(write_request(boost::beast::http::verb::post, body, {}, options),
                                      std::forward<CompletionToken>(token));
  }

  /// PUT `body` over the object named by its `metadata.name`. A `metadata.resourceVersion` in the
  /// body is a precondition: errc::conflict when the stored object has moved on. Without it the
  /// write is unconditional. Changes to `status` are ignored by kinds with a status subresource.
  template <class CompletionToken>
  auto async_update(const boost::json::value& body, const write_options& options, CompletionToken&& token) const {
    return initiate<object_signature>(write_request(boost::beast::http::verb::put, body, {}, options),
                                      std::forward<CompletionToken>(token));
  }

  /// PUT `body` to the `status` subresource: only the status changes (spec edits are ignored).
  /// Same precondition as `async_update`.
  template <class CompletionToken>
  auto async_update_status(const boost::json::value& body, const write_options& options,
                           CompletionToken&& token) const {
    return initiate<object_signature>(write_request(boost::beast::http::verb::put, body, "status", options),
                                      std::forward<CompletionToken>(token));
  }

  /// PATCH the object with `patch` (text in the format `type` names). For `patch_type::apply`
  /// the object is created when absent, `field_manager` is required, and fields owned by another
  /// manager with a different value fail with errc::conflict unless `force`.
  template <class CompletionToken>
  auto async_patch(std::string_view name, patch_type type, std::string patch, const patch_options& options,
                   CompletionToken&& token) const {
    return initiate<object_signature>(patch_request(name, {}, type, std::move(patch), options),
                                      std::forward<CompletionToken>(token));
  }

  /// PATCH the `status` subresource.
  template <class CompletionToken>
  auto async_patch_status(std::string_view name, patch_type type, std::string patch, const patch_options& options,
                          CompletionToken&& token) const {
    return initiate<object_signature>(patch_request(name, "status", type, std::move(patch), options),
                                      std::forward<CompletionToken>(token));
  }

  /// DELETE the object. A failed precondition is errc::conflict; an absent object errc::not_found.
  template <class CompletionToken>
  auto async_delete(std::string_view name, const delete_options& options, CompletionToken&& token) const {
    return initiate<delete_signature>(delete_request(name, options), std::forward<CompletionToken>(token));
  }

  /// POST a v1 Binding that assigns pod `pod` to node `node` (what a scheduler does); completes
  /// with the server's Status. Pods only. errc::conflict when the pod is already bound.
  template <class CompletionToken>
  auto async_bind(std::string_view pod, std::string_view node, const write_options& options,
                  CompletionToken&& token) const {
    return initiate<status_signature>(bind_request(pod, node, options), std::forward<CompletionToken>(token));
  }

  /// POST an Eviction of pod `pod` (of `rest_client_options::eviction_api_version`, policy/v1beta1
  /// unless told): a delete (with `options`) that honours PodDisruptionBudgets. Completes with the
  /// server's Status. Pods only.
  /// errc::too_many_requests when a budget forbids it now (see the file comment on 429).
  template <class CompletionToken>
  auto async_evict(std::string_view pod, const delete_options& options, CompletionToken&& token) const {
    return initiate<status_signature>(evict_request(pod, options), std::forward<CompletionToken>(token));
  }

  /// Optimistic concurrency, as client-go's retry.RetryOnConflict around a get and an update:
  /// reads object `name`, computes the new body with `mutate`, and updates it conditionally on
  /// the resourceVersion just read (set in the body whatever `mutate` left there). On
  /// errc::conflict it waits (`options`) and starts again from a fresh read, `options.steps`
  /// attempts at most. Completes with the object as written, or with the first error that is
  /// not a conflict (the get's, the mutation's, the update's), or with the last conflict.
  template <class CompletionToken>
  auto async_retry_on_conflict(std::string_view name, mutation_function mutate, const conflict_retry_options& options,
                               CompletionToken&& token) const {
    return boost::asio::async_initiate<CompletionToken, object_signature>(
        [self = *this](auto handler, std::string n, mutation_function m, conflict_retry_options o) {
          self.start_retry(std::move(n), std::move(m), std::move(o),
                           boost::asio::any_completion_handler<object_signature>(std::move(handler)));
        },
        token, std::string{name}, std::move(mutate), options);
  }

private:
  using request = detailed_result<detail::rest_request>;

  template <class Signature, class CompletionToken>
  auto initiate(request r, CompletionToken&& token) const {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [self = *this](auto handler, request req) {
          self.start(std::move(req), boost::asio::any_completion_handler<Signature>(std::move(handler)));
        },
        token, std::move(r));
  }

  request get_request(std::string_view name, const get_options& options) const;
  request list_request(const list_options& options) const;
  request write_request(boost::beast::http::verb method, const boost::json::value& body, std::string_view subresource,
                        const write_options& options) const;
  request patch_request(std::string_view name, std::string_view subresource, patch_type type, std::string patch,
                        const patch_options& options) const;
  request delete_request(std::string_view name, const delete_options& options) const;
  request bind_request(std::string_view pod, std::string_view node, const write_options& options) const;
  request evict_request(std::string_view pod, const delete_options& options) const;
  // The path of object `name` (and its subresource), or why it cannot be addressed.
  detailed_result<std::string> object_path(std::string_view name, std::string_view subresource) const;

  void start(request r, boost::asio::any_completion_handler<object_signature> handler) const;
  void start(request r, boost::asio::any_completion_handler<list_signature> handler) const;
  void start(request r, boost::asio::any_completion_handler<delete_signature> handler) const;
  void start(request r, boost::asio::any_completion_handler<status_signature> handler) const;
  void start_retry(std::string name, mutation_function mutate, conflict_retry_options options,
                   boost::asio::any_completion_handler<object_signature> handler) const;

  http_client http_;
  resource resource_;
  std::string ns_;
  rest_client_options options_;
};

}  // namespace informer
