// Values read straight from etcd, through the decoders the etcd sources use: kube-apiserver's
// storage (`make_kubernetes_decoder`: `k8s\0` protobuf or JSON) and the generic source (JSON
// named by its key). Never a crash; a decoded object has the name its key implies and the
// revision it was given.
#include "informer/etcd/generic_source.hpp"
#include "informer/etcd/kubernetes_source.hpp"

#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

namespace {

namespace etcd = informer::etcd;

const std::shared_ptr<const etcd::object_decoder>& pods() {
  static const auto decoder = etcd::make_kubernetes_decoder({.resource = informer::parse_resource("pods").value()});
  return decoder;
}

const std::shared_ptr<const etcd::object_decoder>& generic() {
  static const auto decoder =
      etcd::make_generic_decoder({.prefix = "/config/", .layout = etcd::key_layout::namespace_name});
  return decoder;
}

void decode(const etcd::object_decoder& decoder, const etcd::key_value& kv) {
  auto obj = decoder.decode(kv, 42);
  if (!obj) return;
  informer::fuzz::check((*obj)->resource_version() == "42", "a decoded object lost its revision");
  // The object's JSON text is JSON again (e.g. bytes that are not UTF-8 in a protobuf string).
  boost::system::error_code ec;
  (void)boost::json::parse((*obj)->to_json(), ec);
  informer::fuzz::check(!ec, "a decoded object's JSON text does not parse");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view value(reinterpret_cast<const char*>(data), size);
  decode(*pods(),
         {.key = "/registry/pods/default/web-0", .value = std::string(value), .create_revision = 7, .mod_revision = 9});
  decode(*generic(),
         {.key = "/config/default/web", .value = std::string(value), .create_revision = 7, .mod_revision = 9});
  // Keys are input too (a deleted key's stand-in is built from it alone).
  (void)pods()->placeholder(value, 42);
  (void)generic()->placeholder(value, 42);
  return 0;
}
