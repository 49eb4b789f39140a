// The Kubernetes schemas compiled into the library by cmake/kubernetes_proto.cmake (only when
// INFORMER_HAVE_KUBERNETES_PROTO is defined): a serialized google.protobuf.FileDescriptorSet of
// every generated.proto with its imports, and the Go JSON field table (go-json-fields.tsv, format
// described in scripts/provision-control-plane.sh).
#pragma once

#include <string_view>

namespace informer::codec::detail {

std::string_view embedded_descriptor_set() noexcept;
std::string_view embedded_json_fields() noexcept;

}  // namespace informer::codec::detail
