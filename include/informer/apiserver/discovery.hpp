// informer/apiserver/discovery.hpp
//
// What a kube-apiserver serves, read from its discovery documents (client-go's discovery client):
// `/api` (the core group's versions), `/apis` (every group, its versions and the preferred one)
// and each group-version's APIResourceList (`/api/v1`, `/apis/apps/v1`, ...). The REST mapper
// (rest_mapper.hpp) resolves names such as "deploy" or "cronjobs.batch" against it, and the
// eviction subresource tells which Eviction version to post (`rest_client_options`).
//
//   informer::discovery_client discovery(http);
//   auto [e, snapshot] = co_await discovery.async_get(asio::use_awaitable);
//   const auto* pods = snapshot->find("", "v1", "pods");
//   informer::rest_client client(http, pods->res, "default",
//                                {.eviction_api_version = snapshot->eviction_api_version()});
//
// Contract:
// - A fetch reads `/api` and `/apis`, then every group-version's list at once. The snapshot keeps
//   the groups in the server's order with the core group first, and the resources in client-go's
//   priority order: core v1, then each group's preferred version followed by its other versions.
// - A group-version whose document fails (an aggregated API that is down answers 503) is left out
//   and reported in `discovery_snapshot::failures`; the others are kept (client-go's
//   ErrGroupDiscoveryFailed). Only a failure of `/api` or `/apis` fails the fetch.
// - The last good snapshot is cached: `async_get` answers from it, `async_refresh` fetches anew,
//   `async_refresh_after_miss` fetches anew unless the last fetch started less than
//   `discovery_options::min_refresh_interval` ago (a name the server does not know must not turn
//   every lookup into a round of discovery requests), `invalidate` drops it. Concurrent callers
//   share one fetch in flight. A failed fetch leaves the cached snapshot as it was.
// - Offline: when discovery cannot be reached, nothing here guesses. `builtin_discovery_snapshot`
//   is the built-in table of core/resource.hpp (Kubernetes 1.20's versions) in the same shape;
//   the REST mapper falls back to it.
//
// Errors (`informer::error`, on a failed fetch): those of `http_client` for `/api` or `/apis`
// (transport failures, 401 -> errc::unauthorized, 403 -> forbidden, 5xx -> server_error, ...), or
// errc::malformed_response for a 2xx answer that is not the expected document. Per group-version
// failures carry the same kinds of errors, in the snapshot.
//
// Threads: fetches run on the http_client's executor (through a strand); completion handlers run
// on their associated executor, never inside the initiating call. A connected cancellation slot
// completes that caller at once with operation_aborted; the fetch runs on for the others.
//
// Thread safety: `discovery_client` is thread-safe; copies are handles to the same cache.
// Snapshots are immutable and shared (`std::shared_ptr<const discovery_snapshot>`): read them from
// any thread.
//
// Lifetimes: a fetch in flight keeps the client's state alive. Destroy clients before the
// execution context they run on.
#pragma once

#include "informer/apiserver/http_client.hpp"
#include "informer/core/error.hpp"
#include "informer/core/resource.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace informer {

namespace detail {
struct discovery_state;  // the cache and the fetch in flight (src/apiserver/discovery.cpp)
}  // namespace detail

/// A subresource as the server lists it ("pods/eviction" -> name "eviction"). `group` and
/// `version` are those of the object posted to it when the server says (policy/v1beta1 for an
/// Eviction in 1.20, policy/v1 from 1.22), else the parent's.
struct api_subresource {
  std::string name{};
  std::string group{};
  std::string version{};
  std::string kind{};
  std::vector<std::string> verbs{};
};

/// One resource of one group-version.
struct api_resource {
  informer::resource res{};  ///< group, version, plural, kind, namespaced
  /// As the server says; servers before 1.27 leave it empty for built-ins, so then the lower-case
  /// kind (client-go's guess).
  std::string singular{};
  std::vector<std::string> verbs{};
  std::vector<std::string> short_names{};  ///< "po", "deploy", ...
  std::vector<api_subresource> subresources{};

  /// The subresource called `name` ("status", "scale", "eviction"), or null.
  const api_subresource* subresource(std::string_view name) const noexcept;
};

/// A group and its versions as the server lists them ("" is the core group).
struct api_group {
  std::string name{};
  std::vector<std::string> versions{};
  std::string preferred_version{};
};

/// A group-version whose resource list could not be read.
struct group_version_failure {
  std::string group_version{};  ///< "v1", "metrics.k8s.io/v1beta1"
  informer::error error{};
};

/// What the server served at one fetch. Immutable once made.
struct discovery_snapshot {
  std::vector<api_group> groups{};        ///< core first, then the server's order
  std::vector<api_resource> resources{};  ///< in priority order (see the file comment)
  std::vector<group_version_failure> failures{};
  std::chrono::steady_clock::time_point fetched_at{};

  /// The resource `plural` of `group`/`version` (exact, lower-case names), or null.
  const api_resource* find(std::string_view group, std::string_view version, std::string_view plural) const noexcept;
  /// The group called `name`, or null.
  const api_group* group(std::string_view name) const noexcept;
  /// "group/version" of the Eviction the server takes at pods/eviction ("policy/v1beta1" in 1.20,
  /// "policy/v1" from 1.22); "policy/v1beta1" when it does not say.
  std::string eviction_api_version() const;
};

/// The built-in table (core/resource.hpp: Kubernetes 1.20's versions) as a snapshot: one version
/// per resource, no short names, singulars guessed from the kinds. The offline fallback.
std::shared_ptr<const discovery_snapshot> builtin_discovery_snapshot();

struct discovery_options {
  /// The least time between the starts of two fetches `async_refresh_after_miss` makes.
  std::chrono::nanoseconds min_refresh_interval = std::chrono::seconds(10);
};

/// Counters since the client was created (copies share them).
struct discovery_stats {
  std::uint64_t fetches = 0;         ///< fetches started
  std::uint64_t failed_fetches = 0;  ///< of which `/api` or `/apis` failed
};

class discovery_client {
public:
  using snapshot_ptr = std::shared_ptr<const discovery_snapshot>;
  using snapshot_signature = void(informer::error, snapshot_ptr);

  explicit discovery_client(http_client http, discovery_options options = {});

  const http_client& http() const noexcept;

  /// The cached snapshot, fetched first when there is none.
  template <class CompletionToken>
  auto async_get(CompletionToken&& token) const {
    return initiate(mode::cached, std::forward<CompletionToken>(token));
  }

  /// A fresh snapshot (joins a fetch in flight).
  template <class CompletionToken>
  auto async_refresh(CompletionToken&& token) const {
    return initiate(mode::refresh, std::forward<CompletionToken>(token));
  }

  /// For a lookup that missed: a fresh snapshot, unless the last fetch started less than
  /// `min_refresh_interval` ago: then the cached one.
  template <class CompletionToken>
  auto async_refresh_after_miss(CompletionToken&& token) const {
    return initiate(mode::after_miss, std::forward<CompletionToken>(token));
  }

  /// The cached snapshot without fetching; null when there is none.
  snapshot_ptr cached() const;

  /// Drops the cached snapshot: the next `async_get` fetches. A fetch in flight still completes
  /// and is cached.
  void invalidate();

  discovery_stats stats() const;

private:
  enum class mode { cached, refresh, after_miss };

  template <class CompletionToken>
  auto initiate(mode m, CompletionToken&& token) const {
    return boost::asio::async_initiate<CompletionToken, snapshot_signature>(
        [state = state_, m](auto handler) {
          start(state, m, boost::asio::any_completion_handler<snapshot_signature>(std::move(handler)));
        },
        token);
  }

  static void start(const std::shared_ptr<detail::discovery_state>& state, mode m,
                    boost::asio::any_completion_handler<snapshot_signature> handler);

  std::shared_ptr<detail::discovery_state> state_;
};

}  // namespace informer
