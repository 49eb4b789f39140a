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
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace informer
