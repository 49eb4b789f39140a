#include "informer/client/status.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace informer {

status status::from_json(const boost::json::value& v) {
  status s;
  const auto* o = v.if_object();
  if (!o) return s;
  if (const auto* c = o->if_contains("code"); c && c->is_int64()) s.code = static_cast<std::int32_t>(c->get_int64());
  if (const auto* r = o->if_contains("reason"); r && r->is_string()) s.reason = std::string(r->get_string());
  if (const auto* m = o->if_contains("message"); m && m->is_string()) s.message = std::string(m->get_string());
  if (const auto* d = o->if_contains("details")) {
    s.details = *d;
    if (const auto* dd = d->if_object()) {
      if (const auto* ra = dd->if_contains("retryAfterSeconds"); ra && ra->is_int64() && ra->get_int64() > 0)
        s.retry_after = std::chrono::seconds(std::min(ra->get_int64(), std::int64_t{retry_after_limit.count()}));
    }
  }
  return s;
}

error_code status::to_error_code() const {
  // The reason is more specific than the code where Kubernetes sets both.
  if (reason == "Expired" || reason == "Gone" || code == 410) return make_error_code(errc::expired);
  if (reason == "Timeout" || code == 504) {
    // "Too large resource version" is a 504 Timeout whose cause says so.
    if (message.find("Too large resource version") != std::string::npos ||
        message.find("too large resource version") != std::string::npos)
      return make_error_code(errc::resource_version_too_large);
    if (const auto* d = details.if_object()) {
      if (const auto* causes = d->if_contains("causes"); causes && causes->is_array()) {
        for (const auto& c : causes->get_array()) {
          const auto* co = c.if_object();
          if (!co) continue;
          const auto* r = co->if_contains("reason");
          if (r && r->is_string() && r->get_string() == "ResourceVersionTooLarge")
            return make_error_code(errc::resource_version_too_large);
        }
      }
    }
    return make_error_code(errc::server_timeout);
  }
  switch (code) {
    case 400: return make_error_code(errc::bad_request);
    case 401: return make_error_code(errc::unauthorized);
    case 403: return make_error_code(errc::forbidden);
    case 404: return make_error_code(errc::not_found);
    case 409: return make_error_code(errc::conflict);
    case 422: return make_error_code(errc::invalid);
    case 429: return make_error_code(errc::too_many_requests);
    default: break;
  }
  if (code >= 500) return make_error_code(errc::server_error);
  return make_error_code(errc::api_error);
}

informer::error status::to_error() const {
  std::string detail = std::to_string(code);
  if (!reason.empty()) detail += " " + reason;
  if (!message.empty()) detail += ": " + message;
  return {to_error_code(), std::move(detail)};
}

}  // namespace informer
