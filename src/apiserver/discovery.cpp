#include "informer/apiserver/discovery.hpp"

#include "apiserver/detail/completion.hpp"
#include "core/detail/ascii.hpp"

#include "informer/core/mutex.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <exception>
#include <optional>
#include <tuple>
#include <utility>

namespace informer {

namespace detail {

struct discovery_state {
  using completion = async_completion<discovery_client::snapshot_signature>;

  discovery_state(http_client h, discovery_options o) : http(std::move(h)), options(o) {}

  const http_client http;
  const discovery_options options;
  mutable informer::mutex mutex;
  discovery_client::snapshot_ptr snapshot INFORMER_GUARDED_BY(mutex);
  bool fetching INFORMER_GUARDED_BY(mutex) = false;
  std::optional<std::chrono::steady_clock::time_point> last_fetch INFORMER_GUARDED_BY(mutex);
  std::vector<std::shared_ptr<completion>> waiters INFORMER_GUARDED_BY(mutex);
  discovery_stats stats INFORMER_GUARDED_BY(mutex);
};

}  // namespace detail

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using snapshot_ptr = discovery_client::snapshot_ptr;

template <class Value>
using outcome = std::tuple<informer::error, Value>;

using informer::detail::ascii_lower;

std::string string_at(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string{v->get_string()} : std::string{};
}

std::vector<std::string> strings_at(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  const auto* v = o.if_contains(key);
  if (!v || !v->is_array()) return out;
  for (const auto& item : v->get_array()) {
    if (item.is_string()) out.emplace_back(item.get_string());
  }
  return out;
}

std::string group_version(std::string_view group, std::string_view version) {
  return group.empty() ? std::string{version} : std::string{group} + "/" + std::string{version};
}

std::string path_of(std::string_view group, std::string_view version) {
  return group.empty() ? "/api/" + std::string{version} : "/apis/" + group_version(group, version);
}

// GET `path` and parse its body as a JSON object.
asio::awaitable<outcome<json::object>> get_object(http_client http, std::string path) {
  auto [e, response] = co_await http.async_request(http::verb::get, path, {}, {}, asio::use_awaitable);
  if (e) co_return outcome<json::object>{std::move(e), {}};
  boost::system::error_code ec;
  auto v = json::parse(response.body, ec);
  if (ec || !v.is_object()) {
    co_return outcome<json::object>{
        informer::error{errc::malformed_response,
                        "discovery document GET " + http.config().server + path + " is not a JSON object"},
        {}};
  }
  co_return outcome<json::object>{informer::error{}, std::move(v.get_object())};
}

// The resources of one APIResourceList; subresources ("pods/eviction") join their parent.
std::vector<api_resource> parse_resource_list(const json::object& list, std::string_view group,
                                              std::string_view version) {
  std::vector<api_resource> out;
  const auto* items = list.if_contains("resources");
  if (!items || !items->is_array()) return out;
  std::vector<std::pair<std::string, api_subresource>> subs;  // parent plural, subresource
  for (const auto& item : items->get_array()) {
    const auto* o = item.if_object();
    if (!o) continue;
    const auto name = string_at(*o, "name");
    if (name.empty()) continue;
    if (const auto slash = name.find('/'); slash != std::string::npos) {
      subs.emplace_back(name.substr(0, slash), api_subresource{.name = name.substr(slash + 1),
                                                               .group = string_at(*o, "group"),
                                                               .version = string_at(*o, "version"),
                                                               .kind = string_at(*o, "kind"),
                                                               .verbs = strings_at(*o, "verbs")});
      continue;
    }
    const auto* namespaced = o->if_contains("namespaced");
    api_resource r{.res = {.group = std::string{group},
                           .version = std::string{version},
                           .plural = name,
                           .kind = string_at(*o, "kind"),
                           .namespaced = namespaced && namespaced->is_bool() && namespaced->get_bool()},
                   .singular = string_at(*o, "singularName"),
                   .verbs = strings_at(*o, "verbs"),
                   .short_names = strings_at(*o, "shortNames")};
    if (r.singular.empty()) r.singular = ascii_lower(r.res.kind);
    out.push_back(std::move(r));
  }
  for (auto& entry : subs) {
    auto& sub = entry.second;
    const auto it = std::ranges::find_if(out, [&](const api_resource& r) { return r.res.plural == entry.first; });
    if (it == out.end()) continue;
    // Only a group-less answer means "the parent's group-version".
    if (sub.group.empty() && sub.version.empty()) {
      sub.group = it->res.group;
      sub.version = it->res.version;
    }
    if (sub.kind.empty()) sub.kind = it->res.kind;
    it->subresources.push_back(std::move(sub));
  }
  return out;
}

// The group-versions to read, in client-go's priority order.
struct group_version_ref {
  std::string group;
  std::string version;
};

std::vector<group_version_ref> priority_order(const std::vector<api_group>& groups) {
  std::vector<group_version_ref> out;
  for (const auto& g : groups) {
    if (!g.preferred_version.empty()) out.push_back({g.name, g.preferred_version});
    for (const auto& v : g.versions) {
      if (v != g.preferred_version) out.push_back({g.name, v});
    }
  }
  return out;
}

// Every group-version's list at once, on this coroutine's strand; waits for all.
struct fan_out {
  explicit fan_out(const asio::any_io_executor& ex, std::size_t n)
      : done(ex, std::chrono::steady_clock::time_point::max()), pending(n), results(n) {}
  asio::steady_timer done;
  std::size_t pending;
  std::vector<outcome<json::object>> results;
};

asio::awaitable<outcome<snapshot_ptr>> fetch(http_client http) {
  auto [ce, core] = co_await get_object(http, "/api");
  if (ce) co_return outcome<snapshot_ptr>{std::move(ce), nullptr};
  auto [ge, apis] = co_await get_object(http, "/apis");
  if (ge) co_return outcome<snapshot_ptr>{std::move(ge), nullptr};

  auto snap = std::make_shared<discovery_snapshot>();
  auto core_versions = strings_at(core, "versions");
  if (!core_versions.empty()) {
    snap->groups.push_back({.name = "", .versions = core_versions, .preferred_version = core_versions.front()});
  }
  if (const auto* list = apis.if_contains("groups"); list && list->is_array()) {
    for (const auto& item : list->get_array()) {
      const auto* o = item.if_object();
      if (!o) continue;
      api_group g{.name = string_at(*o, "name")};
      if (const auto* vs = o->if_contains("versions"); vs && vs->is_array()) {
        for (const auto& v : vs->get_array()) {
          if (v.is_object()) g.versions.push_back(string_at(v.get_object(), "version"));
        }
      }
      if (const auto* p = o->if_contains("preferredVersion"); p && p->is_object()) {
        g.preferred_version = string_at(p->get_object(), "version");
      }
      if (g.preferred_version.empty() && !g.versions.empty()) g.preferred_version = g.versions.front();
      if (!g.name.empty()) snap->groups.push_back(std::move(g));
    }
  }

  const auto order = priority_order(snap->groups);
  const auto ex = co_await asio::this_coro::executor;
  auto fan = std::make_shared<fan_out>(ex, order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    asio::co_spawn(ex, get_object(http, path_of(order[i].group, order[i].version)),
                   asio::bind_executor(ex, [fan, i](std::exception_ptr ep, outcome<json::object> r) {
                     if (ep) r = {detail::error_from_exception(ep, "discovery"), {}};
                     fan->results[i] = std::move(r);
                     if (--fan->pending == 0) fan->done.cancel();
                   }));
  }
  if (fan->pending > 0) co_await fan->done.async_wait(asio::as_tuple(asio::use_awaitable));

  for (std::size_t i = 0; i < order.size(); ++i) {
    auto& [e, list] = fan->results[i];
    if (e) {
      snap->failures.push_back({group_version(order[i].group, order[i].version), std::move(e)});
      continue;
    }
    for (auto& r : parse_resource_list(list, order[i].group, order[i].version)) snap->resources.push_back(std::move(r));
  }
  snap->fetched_at = std::chrono::steady_clock::now();
  co_return outcome<snapshot_ptr>{informer::error{}, std::move(snap)};
}

void finish_fetch(const std::shared_ptr<detail::discovery_state>& state, informer::error e, snapshot_ptr snap) {
  std::vector<std::shared_ptr<detail::discovery_state::completion>> waiters;
  {
    informer::lock_guard lock(state->mutex);
    if (e) {
      ++state->stats.failed_fetches;
    } else {
      state->snapshot = snap;
    }
    state->fetching = false;
    waiters.swap(state->waiters);
  }
  for (auto& w : waiters) w->complete(e, snap);
}

}  // namespace

const api_subresource* api_resource::subresource(std::string_view name) const noexcept {
  const auto it = std::ranges::find_if(subresources, [&](const api_subresource& s) { return s.name == name; });
  return it == subresources.end() ? nullptr : &*it;
}

const api_resource* discovery_snapshot::find(std::string_view group, std::string_view version,
                                             std::string_view plural) const noexcept {
  const auto it = std::ranges::find_if(resources, [&](const api_resource& r) {
    return r.res.group == group && r.res.version == version && r.res.plural == plural;
  });
  return it == resources.end() ? nullptr : &*it;
}

const api_group* discovery_snapshot::group(std::string_view name) const noexcept {
  const auto it = std::ranges::find_if(groups, [&](const api_group& g) { return g.name == name; });
  return it == groups.end() ? nullptr : &*it;
}

std::string discovery_snapshot::eviction_api_version() const {
  const auto* core = group("");
  const auto* pods = find("", core ? core->preferred_version : "v1", "pods");
  const auto* eviction = pods ? pods->subresource("eviction") : nullptr;
  if (!eviction || eviction->group.empty() || eviction->version.empty()) return "policy/v1beta1";
  return group_version(eviction->group, eviction->version);
}

std::shared_ptr<const discovery_snapshot> builtin_discovery_snapshot() {
  static const auto snap = [] {
    auto s = std::make_shared<discovery_snapshot>();
    for (const auto& r : builtin_resources()) {
      auto g = std::ranges::find_if(s->groups, [&](const api_group& x) { return x.name == r.group; });
      if (g == s->groups.end()) g = s->groups.insert(g, api_group{.name = r.group, .preferred_version = r.version});
      if (std::ranges::find(g->versions, r.version) == g->versions.end()) g->versions.push_back(r.version);
    }
    // The table lists the core group first; keep the resources grouped in that order too.
    for (const auto& g : s->groups) {
      for (const auto& r : builtin_resources()) {
        if (r.group == g.name) s->resources.push_back({.res = r, .singular = ascii_lower(r.kind)});
      }
    }
    return std::shared_ptr<const discovery_snapshot>(std::move(s));
  }();
  return snap;
}

discovery_client::discovery_client(http_client http, discovery_options options)
    : state_(std::make_shared<detail::discovery_state>(std::move(http), options)) {}

const http_client& discovery_client::http() const noexcept { return state_->http; }

discovery_client::snapshot_ptr discovery_client::cached() const {
  informer::lock_guard lock(state_->mutex);
  return state_->snapshot;
}

void discovery_client::invalidate() {
  informer::lock_guard lock(state_->mutex);
  state_->snapshot = nullptr;
}

discovery_stats discovery_client::stats() const {
  informer::lock_guard lock(state_->mutex);
  return state_->stats;
}

void discovery_client::start(const std::shared_ptr<detail::discovery_state>& state, mode m,
                             asio::any_completion_handler<snapshot_signature> handler) {
  const auto& executor = state->http.get_executor();
  auto op = detail::discovery_state::completion::create(std::move(handler), executor, detail::delivery::post);
  op->cancel_with({asio::error::operation_aborted, "discovery: cancelled"}, nullptr);
  snapshot_ptr answer;
  bool launch = false;
  {
    informer::lock_guard lock(state->mutex);
    const auto now = std::chrono::steady_clock::now();
    const bool recent = state->last_fetch && now - *state->last_fetch < state->options.min_refresh_interval;
    // A miss while a fetch is in flight waits for that fetch, which may know the name.
    if (state->snapshot && (m == mode::cached || (m == mode::after_miss && recent && !state->fetching))) {
      answer = state->snapshot;
    } else {
      state->waiters.push_back(op);
      if (!state->fetching) {
        state->fetching = true;
        state->last_fetch = now;
        ++state->stats.fetches;
        launch = true;
      }
    }
  }
  if (answer) {
    op->complete(informer::error{}, std::move(answer));
    return;
  }
  if (!launch) return;
  asio::co_spawn(asio::make_strand(executor), fetch(state->http),
                 [state](std::exception_ptr ep, outcome<snapshot_ptr> r) {
                   auto& [e, snap] = r;
                   if (ep) e = detail::error_from_exception(ep, "discovery");
                   finish_fetch(state, std::move(e), std::move(snap));
                 });
}

}  // namespace informer
