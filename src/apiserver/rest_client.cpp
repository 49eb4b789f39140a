#include "informer/apiserver/rest_client.hpp"

#include "apiserver/detail/completion.hpp"
#include "apiserver/detail/list_watch_codec.hpp"

#include "informer/apiserver/resource_path.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <random>
#include <tuple>

namespace informer {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using detail::rest_request;

template <class Value>
using outcome = std::tuple<informer::error, Value>;

// "POST https://host/api/v1/..." for details of errors found on our side.
std::string describe(const http_client& http, const rest_request& r) {
  return std::string{http::to_string(r.method)} + " " + http.config().server + r.target;
}

informer::error malformed(const http_client& http, const rest_request& r, const std::string& why) {
  return {errc::malformed_response, why + " (" + describe(http, r) + ")"};
}

asio::awaitable<outcome<http_response>> send(http_client http, const rest_request& r) {
  http::fields headers;
  if (!r.content_type.empty()) headers.set(http::field::content_type, r.content_type);
  co_return co_await http.async_request(r.method, r.target, std::move(headers), r.body,
                                        http_request_options{.list = r.list}, asio::use_awaitable);
}

outcome<object::ptr> to_object(const http_client& http, const rest_request& r, const http_response& response) {
  auto parsed = object::parse(response.body);
  if (!parsed) return {malformed(http, r, "the answer is not an object: " + parsed.error().what()), nullptr};
  return {informer::error{}, std::move(*parsed)};
}

asio::awaitable<outcome<object::ptr>> run_object(http_client http, detailed_result<rest_request> r) {
  if (!r) co_return outcome<object::ptr>{r.error(), nullptr};
  auto [e, response] = co_await send(http, *r);
  if (e) co_return outcome<object::ptr>{std::move(e), nullptr};
  co_return to_object(http, *r, response);
}

asio::awaitable<outcome<object_list>> run_list(http_client http, resource res, detailed_result<rest_request> r) {
  if (!r) co_return outcome<object_list>{r.error(), {}};
  auto [e, response] = co_await send(http, *r);
  if (e) co_return outcome<object_list>{std::move(e), {}};
  // The lister-watcher's decoding: items get the kind and apiVersion a GET shows.
  auto list = detail::decode_list(response.headers[http::field::content_type], response.body, {.res = std::move(res)});
  if (!list)
    co_return outcome<object_list>{{list.error().code(), list.error().detail() + " (" + describe(http, *r) + ")"}, {}};
  co_return outcome<object_list>{informer::error{}, std::move(*list)};
}

asio::awaitable<outcome<delete_result>> run_delete(http_client http, detailed_result<rest_request> r) {
  if (!r) co_return outcome<delete_result>{r.error(), {}};
  auto [e, response] = co_await send(http, *r);
  if (e) co_return outcome<delete_result>{std::move(e), {}};
  if (detail::is_status_body(response.body)) {
    co_return outcome<delete_result>{informer::error{}, {.status = detail::status_of(response)}};
  }
  auto [oe, obj] = to_object(http, *r, response);
  co_return outcome<delete_result>{std::move(oe), {.object = std::move(obj)}};
}

asio::awaitable<outcome<status>> run_status(http_client http, detailed_result<rest_request> r) {
  if (!r) co_return outcome<status>{r.error(), {}};
  auto [e, response] = co_await send(http, *r);
  if (e) co_return outcome<status>{std::move(e), {}};
  if (!detail::is_status_body(response.body)) {
    co_return outcome<status>{malformed(http, *r, "the answer is not a Status"), {}};
  }
  co_return outcome<status>{informer::error{}, detail::status_of(response)};
}

std::string_view content_type(patch_type type) {
  switch (type) {
    case patch_type::json_patch: return "application/json-patch+json";
    case patch_type::merge_patch: return "application/merge-patch+json";
    case patch_type::strategic_merge_patch: return "application/strategic-merge-patch+json";
    case patch_type::apply: return "application/apply-patch+yaml";
  }
  return {};
}

std::string_view policy_name(propagation_policy p) {
  switch (p) {
    case propagation_policy::server_default: return {};
    case propagation_policy::foreground: return "Foreground";
    case propagation_policy::background: return "Background";
    case propagation_policy::orphan: return "Orphan";
  }
  return {};
}

// metav1.DeleteOptions as JSON; sent without kind and apiVersion, which the server then assumes.
json::object delete_options_json(const delete_options& options) {
  json::object o;
  if (!options.uid.empty() || !options.resource_version.empty()) {
    json::object pre;
    if (!options.uid.empty()) pre["uid"] = options.uid;
    if (!options.resource_version.empty()) pre["resourceVersion"] = options.resource_version;
    o["preconditions"] = std::move(pre);
  }
  if (const auto p = policy_name(options.propagation); !p.empty()) o["propagationPolicy"] = p;
  if (options.grace_period_seconds) o["gracePeriodSeconds"] = *options.grace_period_seconds;
  if (options.dry_run) o["dryRun"] = json::array{"All"};
  return o;
}

std::string_view dry_run_value(bool on) { return on ? "All" : ""; }

// `metadata.name` of a body, or "" when it has none.
std::string_view name_of(const json::value& body) {
  const auto* o = body.if_object();
  const auto* meta = o ? o->if_contains("metadata") : nullptr;
  const auto* name = meta && meta->is_object() ? meta->get_object().if_contains("name") : nullptr;
  return name && name->is_string() ? std::string_view{name->get_string()} : std::string_view{};
}

}  // namespace

rest_client::rest_client(http_client http, resource r, std::string ns, rest_client_options options)
    : http_(std::move(http)), resource_(std::move(r)), ns_(std::move(ns)), options_(std::move(options)) {}

detailed_result<std::string> rest_client::object_path(std::string_view name, std::string_view subresource) const {
  if (name.empty()) return informer::error{errc::invalid_argument, "no object name given for " + to_string(resource_)};
  if (auto e = check_path_segment("name", name)) return e;
  if (auto e = check_path_segment("namespace", ns_)) return e;
  if (resource_.namespaced && ns_.empty()) {
    return informer::error{errc::invalid_argument,
                           to_string(resource_) + " \"" + std::string{name} +
                               "\": the resource is namespaced and the client has no namespace"};
  }
  return resource_path(resource_, ns_, name, subresource);
}

rest_client::request rest_client::get_request(std::string_view name, const get_options& options) const {
  auto path = object_path(name, {});
  if (!path) return path.error();
  return rest_request{.target = *path + query_string({{"resourceVersion", options.resource_version}})};
}

rest_client::request rest_client::list_request(const list_options& options) const {
  if (auto e = check_path_segment("namespace", ns_)) return e;
  return rest_request{.target = resource_path(resource_, ns_) + list_query(options), .list = true};
}

rest_client::request rest_client::write_request(http::verb method, const json::value& body,
                                                std::string_view subresource, const write_options& options) const {
  const auto query =
      query_string({{"dryRun", dry_run_value(options.dry_run)}, {"fieldManager", options.field_manager}});
  if (method == http::verb::post) {
    // A create addresses the collection, which for a namespaced resource needs the namespace.
    if (resource_.namespaced && ns_.empty()) {
      return informer::error{errc::invalid_argument,
                             "cannot create " + to_string(resource_) + ": the client has no namespace"};
    }
    if (auto e = check_path_segment("namespace", ns_)) return e;
    return rest_request{
        .method = method, .target = resource_path(resource_, ns_) + query, .body = json::serialize(body)};
  }
  const auto name = name_of(body);
  if (name.empty()) {
    return informer::error{errc::missing_name,
                           "the body to update has no metadata.name (" + to_string(resource_) + ")"};
  }
  auto path = object_path(name, subresource);
  if (!path) return path.error();
  return rest_request{.method = method, .target = *path + query, .body = json::serialize(body)};
}

rest_client::request rest_client::patch_request(std::string_view name, std::string_view subresource, patch_type type,
                                                std::string patch, const patch_options& options) const {
  auto path = object_path(name, subresource);
  if (!path) return path.error();
  return rest_request{.method = http::verb::patch,
                      .target = *path + query_string({{"dryRun", dry_run_value(options.dry_run)},
                                                      {"fieldManager", options.field_manager},
                                                      {"force", options.force ? "true" : ""}}),
                      .content_type = std::string{content_type(type)},
                      .body = std::move(patch)};
}

rest_client::request rest_client::delete_request(std::string_view name, const delete_options& options) const {
  auto path = object_path(name, {});
  if (!path) return path.error();
  auto body = delete_options_json(options);
  return rest_request{.method = http::verb::delete_,
                      .target = std::move(*path),
                      .body = body.empty() ? std::string{} : json::serialize(body)};
}

rest_client::request rest_client::bind_request(std::string_view pod, std::string_view node,
                                               const write_options& options) const {
  if (!resource_.group.empty() || resource_.plural != "pods") {
    return informer::error{errc::invalid_argument,
                           "binding is a subresource of core/v1 pods, not of " + to_string(resource_)};
  }
  auto path = object_path(pod, "binding");
  if (!path) return path.error();
  const json::object binding{
      {"apiVersion", "v1"},
      {"kind", "Binding"},
      {"metadata", {{"name", pod}, {"namespace", ns_}}},
      {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", node}}},
  };
  return rest_request{.method = http::verb::post,
                      .target = *path + query_string({{"dryRun", dry_run_value(options.dry_run)},
                                                      {"fieldManager", options.field_manager}}),
                      .body = json::serialize(binding)};
}

rest_client::request rest_client::evict_request(std::string_view pod, const delete_options& options) const {
  if (!resource_.group.empty() || resource_.plural != "pods") {
    return informer::error{errc::invalid_argument,
                           "eviction is a subresource of core/v1 pods, not of " + to_string(resource_)};
  }
  auto path = object_path(pod, "eviction");
  if (!path) return path.error();
  // Dry run travels in the Eviction's deleteOptions, which every server version reads.
  json::object eviction{
      {"apiVersion", options_.eviction_api_version},
      {"kind", "Eviction"},
      {"metadata", {{"name", pod}, {"namespace", ns_}}},
  };
  if (auto d = delete_options_json(options); !d.empty()) eviction["deleteOptions"] = std::move(d);
  return rest_request{.method = http::verb::post, .target = std::move(*path), .body = json::serialize(eviction)};
}

void rest_client::start(request r, asio::any_completion_handler<object_signature> handler) const {
  detail::spawn_operation(http_.get_executor(), run_object(http_, std::move(r)), std::move(handler),
                          to_string(resource_));
}

void rest_client::start(request r, asio::any_completion_handler<list_signature> handler) const {
  detail::spawn_operation(http_.get_executor(), run_list(http_, resource_, std::move(r)), std::move(handler),
                          to_string(resource_));
}

void rest_client::start(request r, asio::any_completion_handler<delete_signature> handler) const {
  detail::spawn_operation(http_.get_executor(), run_delete(http_, std::move(r)), std::move(handler),
                          to_string(resource_));
}

void rest_client::start(request r, asio::any_completion_handler<status_signature> handler) const {
  detail::spawn_operation(http_.get_executor(), run_status(http_, std::move(r)), std::move(handler),
                          to_string(resource_));
}

namespace {

asio::awaitable<outcome<object::ptr>> retry_on_conflict(rest_client client, std::string name, mutation_function mutate,
                                                        conflict_retry_options options) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> stretch(0.0, std::max(options.jitter, 0.0));
  double delay_ns = static_cast<double>(options.delay.count());
  // Named, not `{}`: g++ 12 destroyed that braced temporary twice here (free(): invalid pointer).
  const get_options latest;
  for (int attempt = 1;; ++attempt) {
    auto [ge, current] = co_await client.async_get(name, latest, asio::use_awaitable);
    if (ge) co_return outcome<object::ptr>{std::move(ge), nullptr};
    auto body = mutate(*current);
    if (!body) co_return outcome<object::ptr>{body.error(), nullptr};
    // The precondition that makes this optimistic: the version `mutate` saw.
    auto* o = body->if_object();
    if (!o) {
      co_return outcome<object::ptr>{
          informer::error{errc::not_an_object, "the mutation of " + name + " returned a body that is not an object"},
          nullptr};
    }
    auto& meta = (*o)["metadata"];
    if (!meta.is_object()) meta.emplace_object();
    meta.get_object()["resourceVersion"] = current->resource_version();
    meta.get_object()["name"] = name;
    outcome<object::ptr> written;
    if (options.status_subresource) {
      written = co_await client.async_update_status(*body, options.write, asio::use_awaitable);
    } else {
      written = co_await client.async_update(*body, options.write, asio::use_awaitable);
    }
    auto& [ue, updated] = written;
    if (!ue || ue.code() != errc::conflict || attempt >= options.steps) {
      co_return outcome<object::ptr>{std::move(ue), std::move(updated)};
    }
    timer.expires_after(std::chrono::nanoseconds(static_cast<std::int64_t>(delay_ns * (1.0 + stretch(rng)))));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    delay_ns *= options.factor;
  }
}

}  // namespace

void rest_client::start_retry(std::string name, mutation_function mutate, conflict_retry_options options,
                              asio::any_completion_handler<object_signature> handler) const {
  detail::spawn_operation(http_.get_executor(),
                          retry_on_conflict(*this, std::move(name), std::move(mutate), std::move(options)),
                          std::move(handler), to_string(resource_));
}

}  // namespace informer
