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
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace informer::etcd
