#include "informer/codec/errors.hpp"

#include "informer/core/condition.hpp"

#include <string>

namespace informer::codec {
namespace {

class category final : public boost::system::error_category {
public:
  const char* name() const noexcept override { return "informer.codec"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok: return "success";
      case errc::not_protobuf: return "not a Kubernetes protobuf envelope";
      case errc::encrypted: return "value is encrypted at rest";
      case errc::truncated: return "truncated protobuf data";
      case errc::malformed: return "malformed protobuf data";
      case errc::frame_too_large: return "watch frame too large";
      case errc::unknown_kind: return "no protobuf schema for this kind";
      case errc::schemas_unavailable: return "built without the Kubernetes protobuf schemas";
      case errc::unsupported: return "value not supported by the codec";
      case errc::unknown_field: return "field unknown to the compiled schemas";
    }
    return "unknown codec error";
  }

  // Every answer but a build without schemas says the data could not be read.
  bool equivalent(int ev, const boost::system::error_condition& cond) const noexcept override {
    if (cond == condition::undecodable) {
      return ev != static_cast<int>(errc::ok) && ev != static_cast<int>(errc::schemas_unavailable);
    }
    return default_error_condition(ev) == cond;
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace informer::codec
