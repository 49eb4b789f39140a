#include "informer/apiserver/rest_mapper.hpp"

#include "apiserver/detail/completion.hpp"
#include "core/detail/ascii.hpp"

#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <optional>
#include <tuple>
#include <vector>

namespace informer {
namespace {

namespace asio = boost::asio;

template <class Value>
using outcome = std::tuple<informer::error, Value>;

using informer::detail::ascii_lower;

// One reading of the text: a name, perhaps restricted to a group and a version (lower case).
struct reading {
  std::string name;
  std::optional<std::string> group{};
  std::optional<std::string> version{};
};

// The readings of `text` in the order they are tried.
detailed_result<std::vector<reading>> readings_of(std::string_view text) {
  const auto malformed = [&] {
    return informer::error{errc::invalid_argument, "resource \"" + std::string{text} +
                                                       "\": expected name, name.group, name.version.group, "
                                                       "version/plural or group/version/plural"};
  };
  const auto t = ascii_lower(text);
  if (t.empty()) return malformed();
  if (t.find('/') != std::string::npos) {
    std::vector<std::string_view> parts;
    std::string_view rest = t;
    for (auto slash = rest.find('/');; slash = rest.find('/')) {
      parts.push_back(rest.substr(0, slash));
      if (slash == std::string_view::npos) break;
      rest.remove_prefix(slash + 1);
    }
    if (parts.size() > 3 || std::ranges::any_of(parts, [](std::string_view p) { return p.empty(); })) {
      return malformed();
    }
    const bool with_group = parts.size() == 3;
    return std::vector<reading>{{.name = std::string{parts.back()},
                                 .group = std::string{with_group ? parts[0] : std::string_view{}},
                                 .version = std::string{parts[parts.size() - 2]}}};
  }
  const auto dot = t.find('.');
  if (dot == 0 || t.back() == '.') return malformed();
  if (dot == std::string::npos) return std::vector<reading>{{.name = t}};
  const std::string name = t.substr(0, dot);
  const std::string qualifier = t.substr(dot + 1);
  std::vector<reading> out;
  // kubectl's order: "name.version.group" first, then the whole qualifier as a group.
  if (const auto second = qualifier.find('.'); second != std::string::npos) {
    out.push_back({.name = name, .group = qualifier.substr(second + 1), .version = qualifier.substr(0, second)});
  }
  out.push_back({.name = name, .group = qualifier});
  return out;
}

enum class tier { name, short_name, kind };

bool matches(const api_resource& r, const reading& q, tier how) {
  if (q.group && ascii_lower(r.res.group) != *q.group) return false;
  if (q.version && ascii_lower(r.res.version) != *q.version) return false;
  switch (how) {
    case tier::name: return ascii_lower(r.res.plural) == q.name || ascii_lower(r.singular) == q.name;
    case tier::short_name:
      return std::ranges::any_of(r.short_names, [&](const std::string& s) { return ascii_lower(s) == q.name; });
    case tier::kind: return ascii_lower(r.res.kind) == q.name;
  }
  return false;
}

std::string describe(const api_resource& r) {
  return (r.res.group.empty() ? r.res.version : r.res.group + "/" + r.res.version) + " " + r.res.plural + " (" +
         r.res.kind + ")";
}

}  // namespace

detailed_result<api_resource> resolve_resource(const discovery_snapshot& snapshot, std::string_view text) {
  auto readings = readings_of(text);
  if (!readings) return readings.error();
  for (const auto& q : *readings) {
    for (const auto how : {tier::name, tier::short_name, tier::kind}) {
      // Resources are in priority order: the first match names the winning group-version.
      const api_resource* best = nullptr;
      std::vector<const api_resource*> rivals;
      for (const auto& r : snapshot.resources) {
        if (!matches(r, q, how)) continue;
        if (!best) {
          best = &r;
        } else if (r.res.group == best->res.group && r.res.version == best->res.version &&
                   r.res.plural != best->res.plural) {
          rivals.push_back(&r);
        }
      }
      if (!best) continue;
      if (rivals.empty()) return *best;
      std::string list = describe(*best);
      for (const auto* r : rivals) list += ", " + describe(*r);
      return informer::error{errc::invalid_argument,
                             "resource \"" + std::string{text} + "\" is ambiguous: it matches " + list};
    }
  }
  return informer::error{errc::not_found,
                         "resource \"" + std::string{text} + "\" is not served (no such name, short name or kind)"};
}

namespace {

// g++ 12 reports the coroutine frame's own operator delete as mismatched here (a false positive,
// as in tests/integration/rest_client_test.cpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
asio::awaitable<outcome<api_resource>> resolve(discovery_client discovery, rest_mapper_options options,
                                               std::shared_ptr<std::atomic<std::uint64_t>> fallbacks,
                                               std::string text) {
  if (auto r = readings_of(text); !r) co_return outcome<api_resource>{r.error(), {}};
  auto [e, snap] = co_await discovery.async_get(asio::use_awaitable);
  if (e) {
    if (!options.builtin_fallback) co_return outcome<api_resource>{std::move(e), {}};
    auto builtin = resolve_resource(*builtin_discovery_snapshot(), text);
    if (!builtin) {
      co_return outcome<api_resource>{
          informer::error{e.code(), e.detail() + "; offline, the built-in table does not resolve it either (" +
                                        builtin.error().detail() + ")"},
          {}};
    }
    fallbacks->fetch_add(1, std::memory_order_relaxed);
    co_return outcome<api_resource>{informer::error{}, std::move(*builtin)};
  }
  auto found = resolve_resource(*snap, text);
  if (found || found.error().code() != errc::not_found) {
    if (!found) co_return outcome<api_resource>{found.error(), {}};
    co_return outcome<api_resource>{informer::error{}, std::move(*found)};
  }
  // A miss: the server may serve it since the snapshot was taken (a custom resource just defined).
  auto [re, fresh] = co_await discovery.async_refresh_after_miss(asio::use_awaitable);
  if (re) {
    co_return outcome<api_resource>{
        informer::error{errc::not_found, found.error().detail() + " (refreshing discovery failed: " + re.what() + ")"},
        {}};
  }
  if (fresh != snap) found = resolve_resource(*fresh, text);
  if (!found) co_return outcome<api_resource>{found.error(), {}};
  co_return outcome<api_resource>{informer::error{}, std::move(*found)};
}
#pragma GCC diagnostic pop

}  // namespace

rest_mapper::rest_mapper(discovery_client discovery, rest_mapper_options options)
    : discovery_(std::move(discovery)),
      options_(options),
      fallbacks_(std::make_shared<std::atomic<std::uint64_t>>(0)) {}

void rest_mapper::start(std::string text, asio::any_completion_handler<resolve_signature> handler) const {
  const auto what = "resolving resource \"" + text + "\"";
  detail::spawn_operation(discovery_.http().get_executor(), resolve(discovery_, options_, fallbacks_, std::move(text)),
                          std::move(handler), what);
}

}  // namespace informer
