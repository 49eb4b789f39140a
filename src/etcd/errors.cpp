#include "informer/etcd/errors.hpp"

#include <string>

namespace informer::etcd {
namespace {

class category final : public boost::system::error_category {
public:
  const char* name() const noexcept override { return "etcd"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok: return "success";
      case errc::unavailable: return "etcd unavailable";
      case errc::deadline_exceeded: return "etcd request timed out";
      case errc::canceled: return "etcd call canceled";
      case errc::resource_exhausted: return "etcd resource exhausted";
      case errc::failed_precondition: return "etcd failed precondition";
      case errc::unimplemented: return "method not implemented by the server";
      case errc::watch_canceled: return "etcd canceled the watch";
      case errc::invalid_options: return "invalid etcd client options";
    }
    return "unknown etcd error";
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
      // The watch stream or the connection broke; the watch itself is still good.
      case errc::unavailable:
      case errc::deadline_exceeded: return condition::stream_cut;
      // gRPC's RESOURCE_EXHAUSTED is what HTTP says with 429.
      case errc::resource_exhausted: return condition::throttled;
      case errc::canceled: return condition::cancelled;
      case errc::invalid_options: return condition::invalid_argument;
      case errc::ok:
      case errc::failed_precondition:
      case errc::unimplemented:
      case errc::watch_canceled: break;
    }
    return condition{};
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace informer::etcd
