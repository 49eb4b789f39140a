// informer/apiserver/rest_mapper.hpp
//
// Turns the names people type into the resource a server serves (client-go's discovery REST
// mapper, kubectl's name resolution): "pods", "pod", "Pod", "po", "deploy", "Deployment",
// "deployments.apps", "deployments.v1.apps", "cronjobs.batch", "apps/v1/deployments", and custom
// resources as soon as the server serves them.
//
//   informer::rest_mapper mapper(informer::discovery_client(http));
//   auto [e, cron] = co_await mapper.async_resolve("cj", asio::use_awaitable);  // batch/v1 on 1.21+
//
// Contract (`resolve_resource`, on one snapshot):
// - Names compare case-insensitively, as kubectl's. "name.group" and "name.version.group"
//   restrict the group (and version); "name.version.group" is tried first, then the whole
//   qualifier as a group ("ingresses.networking.k8s.io"). "group/version/plural" and
//   "version/plural" (core) name one group-version exactly.
// - A name is looked up as a plural or singular first, then as a short name, then as a kind, and
//   the first of these that matches anything decides.
// - Among matches, client-go's priority decides, as kubectl: the core group first, then the
//   groups in the server's order (Kubernetes' own before aggregated and custom ones), and within
//   a group its preferred version before the others. "events" is core/v1 events, not
//   events.k8s.io; "cronjobs" on 1.20 is batch/v1beta1 (batch/v1 has none), on 1.21+ batch/v1.
// - Two different resources matching in the same group-version are ambiguous.
//
// `rest_mapper::async_resolve` resolves against the discovery client's cached snapshot; on a miss
// it refreshes discovery (at most once per `discovery_options::min_refresh_interval`) and tries
// again, so a custom resource defined a moment ago is found. When discovery cannot be reached at
// all (`/api` or `/apis` fails and nothing is cached), it falls back to the built-in table of
// core/resource.hpp (Kubernetes 1.20's versions: no short names, and resources removed since, such
// as batch/v1beta1 cronjobs, resolve to paths a current server does not serve); the fallback is
// counted in `fallbacks()` and can be turned off.
//
// Errors (`informer::error`): errc::invalid_argument for empty or malformed text, and for an
// ambiguous name (the detail lists the candidates); errc::not_found when nothing matches (the
// detail names the text, and a refresh that failed); without the fallback, or when the fallback
// does not know the name either, the discovery failure itself (see discovery.hpp).
//
// Threads and thread safety: as `discovery_client` (thread-safe; completion handlers run on their
// associated executor, never inside the initiating call). `resolve_resource` is a pure function.
#pragma once

#include "informer/apiserver/discovery.hpp"
#include "informer/core/error.hpp"
#include "informer/core/resource.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace informer {

/// Resolves `text` against one snapshot (see the file comment for the rules and errors).
detailed_result<api_resource> resolve_resource(const discovery_snapshot& snapshot, std::string_view text);

struct rest_mapper_options {
  /// Resolve against `builtin_discovery_snapshot()` when discovery cannot be reached.
  bool builtin_fallback = true;
};

class rest_mapper {
public:
  using resolve_signature = void(informer::error, api_resource);

  explicit rest_mapper(discovery_client discovery, rest_mapper_options options = {});

  const discovery_client& discovery() const noexcept { return discovery_; }

  /// Resolves `text` (see the file comment); completes with the resource and what the server says
  /// of it (verbs, short names, subresources).
  template <class CompletionToken>
  auto async_resolve(std::string_view text, CompletionToken&& token) const {
    return boost::asio::async_initiate<CompletionToken, resolve_signature>(
        [self = *this](auto handler, std::string t) {
          self.start(std::move(t), boost::asio::any_completion_handler<resolve_signature>(std::move(handler)));
        },
        token, std::string{text});
  }

  /// Resolutions answered from the built-in table because discovery could not be reached.
  std::uint64_t fallbacks() const noexcept { return fallbacks_->load(std::memory_order_relaxed); }

private:
  void start(std::string text, boost::asio::any_completion_handler<resolve_signature> handler) const;

  discovery_client discovery_;
  rest_mapper_options options_;
  std::shared_ptr<std::atomic<std::uint64_t>> fallbacks_;
};

}  // namespace informer
