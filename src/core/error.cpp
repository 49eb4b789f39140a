#include "informer/core/error.hpp"

namespace informer {
namespace {

class category final : public boost::system::error_category {
public:
  const char* name() const noexcept override { return "informer"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok: return "success";
      case errc::invalid_json: return "invalid JSON";
      case errc::not_an_object: return "not a JSON object";
      case errc::missing_name: return "object has no metadata.name";
      case errc::invalid_field: return "field has the wrong type";
      case errc::invalid_argument: return "invalid argument";
      case errc::invalid_url: return "invalid URL";
      case errc::invalid_config: return "invalid configuration";
      case errc::invalid_key: return "invalid object key";
      case errc::invalid_selector: return "invalid selector";
      case errc::invalid_label: return "invalid label";
      case errc::object_too_large: return "object too large";
      case errc::not_found: return "not found";
      case errc::already_exists: return "already exists";
      case errc::index_not_found: return "no such index";
      case errc::closed: return "closed";
      case errc::end_of_stream: return "the watch ended";
      case errc::expired: return "resource version expired (410 Gone)";
      case errc::resource_version_too_large: return "resource version too large";
      case errc::bad_request: return "bad request (400)";
      case errc::unauthorized: return "unauthorized (401)";
      case errc::forbidden: return "forbidden (403)";
      case errc::conflict: return "conflict (409)";
      case errc::invalid: return "invalid (422)";
      case errc::too_many_requests: return "too many requests (429)";
      case errc::server_error: return "server error (5xx)";
      case errc::server_timeout: return "server timeout";
      case errc::api_error: return "API error";
      case errc::malformed_response: return "malformed response";
    }
    return "unknown informer error";
  }

  bool equivalent(int ev, const boost::system::error_condition& cond) const noexcept override {
    if (cond.category() == condition_category()) {
      return cond.value() == static_cast<int>(condition_of(static_cast<errc>(ev)));
    }
    return default_error_condition(ev) == cond;
  }

private:
  // 0 (no condition) for codes no policy acts on.
  static condition condition_of(errc e) noexcept {
    switch (e) {
      case errc::end_of_stream: return condition::stream_cut;
      case errc::expired:
      case errc::resource_version_too_large: return condition::relist_required;
      case errc::too_many_requests: return condition::throttled;
      case errc::unauthorized: return condition::unauthorized;
      case errc::forbidden: return condition::forbidden;
      case errc::not_found:
      case errc::index_not_found: return condition::not_found;
      case errc::conflict:
      case errc::already_exists: return condition::conflict;
      case errc::invalid_argument:
      case errc::invalid_url:
      case errc::invalid_config:
      case errc::invalid_key:
      case errc::invalid_selector:
      case errc::invalid_label:
      case errc::bad_request:
      case errc::invalid: return condition::invalid_argument;
      case errc::invalid_json:
      case errc::not_an_object:
      case errc::missing_name:
      case errc::invalid_field:
      case errc::object_too_large:
      case errc::malformed_response: return condition::undecodable;
      case errc::server_error:
      case errc::server_timeout: return condition::server_error;
      case errc::ok:
      case errc::closed:
      case errc::api_error: break;
    }
    return condition{};
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace informer
