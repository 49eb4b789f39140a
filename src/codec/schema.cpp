#include "codec/detail/schema.hpp"

#include "informer/codec/errors.hpp"

#ifdef INFORMER_HAVE_KUBERNETES_PROTO
#include "codec/detail/embedded_schemas.hpp"

#include <google/protobuf/descriptor.pb.h>
#endif

#include <algorithm>
#include <array>
#include <cstdlib>

namespace informer::codec::detail {
namespace {

constexpr std::string_view meta_v1 = "k8s.io.apimachinery.pkg.apis.meta.v1";

#ifdef INFORMER_HAVE_KUBERNETES_PROTO
constexpr std::string_view apiextensions_v1 = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.";
constexpr std::string_view apiextensions_v1beta1 = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.";

// The messages whose Go types have a MarshalJSON that the codec mirrors (see well_known.hpp).
special special_of(std::string_view name) {
  static const std::array<std::pair<std::string_view, special>, 9> fixed{{
      {"k8s.io.apimachinery.pkg.apis.meta.v1.Time", special::time},
      {"k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime", special::micro_time},
      {"k8s.io.apimachinery.pkg.apis.meta.v1.Duration", special::duration},
      {"k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1", special::fields_v1},
      {"k8s.io.apimachinery.pkg.apis.meta.v1.GroupVersion", special::group_version},
      {"k8s.io.apimachinery.pkg.util.intstr.IntOrString", special::int_or_string},
      {"k8s.io.apimachinery.pkg.api.resource.Quantity", special::quantity},
      {"k8s.io.apimachinery.pkg.runtime.RawExtension", special::raw_extension},
      {"k8s.io.apimachinery.pkg.runtime.Unknown", special::unknown},
  }};
  for (const auto& [n, s] : fixed) {
    if (n == name) {
      return s;
    }
  }
  for (const auto prefix : {apiextensions_v1, apiextensions_v1beta1}) {
    if (name.starts_with(prefix)) {
      const auto type = name.substr(prefix.size());
      if (type == "JSON") {
        return special::json_raw;
      }
      if (type == "JSONSchemaPropsOrArray") {
        return special::schema_or_array;
      }
      if (type == "JSONSchemaPropsOrBool") {
        return special::schema_or_bool;
      }
      if (type == "JSONSchemaPropsOrStringArray") {
        return special::schema_or_string_array;
      }
    }
  }
  return special::unsupported;
}

bool parse_go_kind(std::string_view text, go_kind& out) {
  static const std::array<std::pair<std::string_view, go_kind>, 11> kinds{{
      {"string", go_kind::string},
      {"int", go_kind::integer},
      {"uint", go_kind::unsigned_integer},
      {"bool", go_kind::boolean},
      {"float", go_kind::floating},
      {"bytes", go_kind::bytes},
      {"slice", go_kind::slice},
      {"map", go_kind::map},
      {"ptr", go_kind::pointer},
      {"struct", go_kind::structure},
      {"iface", go_kind::interface},
  }};
  for (const auto& [name, kind] : kinds) {
    if (name == text) {
      out = kind;
      return true;
    }
  }
  return false;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  for (;;) {
    const auto at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) {
      return parts;
    }
    text.remove_prefix(at + 1);
  }
}

error load_error(std::string what) {
  return {make_error_code(errc::schemas_unavailable),
          "the embedded Kubernetes schemas are unusable: " + std::move(what)};
}
#endif

}  // namespace

detailed_result<const schema*> schema::load() {
#ifndef INFORMER_HAVE_KUBERNETES_PROTO
  return error(make_error_code(errc::schemas_unavailable),
               "this build of informer has no Kubernetes protobuf schemas: run "
               "scripts/provision-control-plane.sh, then configure with -DINFORMER_KUBERNETES_PROTO=ON");
#else
  static std::unique_ptr<schema> holder;
  std::unique_ptr<schema> s(new schema());

  google::protobuf::FileDescriptorSet set;
  const auto descriptors = embedded_descriptor_set();
  if (!set.ParseFromArray(descriptors.data(), static_cast<int>(descriptors.size()))) {
    return load_error("the descriptor set does not parse");
  }
  for (const auto& file : set.file()) {
    const auto* built = s->pool_.BuildFile(file);
    if (built == nullptr) {
      return load_error("building " + file.name() + " failed");
    }
    for (int i = 0; i < built->message_type_count(); ++i) {
      auto plan = std::make_unique<message_plan>();
      plan->descriptor = built->message_type(i);
      s->plans_.emplace(plan->descriptor->full_name(), std::move(plan));
    }
  }

  // Types first, so that fields can point at any message's plan.
  const auto lines = split(embedded_json_fields(), '\n');
  for (const auto line : lines) {
    const auto cols = split(line, '\t');
    if (cols[0] == "group" && cols.size() == 4) {
      s->packages_[{std::string(cols[1]), std::string(cols[2])}] = std::string(cols[3]);
    } else if (cols[0] == "type" && cols.size() == 4) {
      auto it = s->plans_.find(cols[1]);
      if (it == s->plans_.end()) {
        continue;
      }
      message_plan& plan = *it->second;
      const auto* d = plan.descriptor;
      if (cols[3] == "custom") {
        plan.kind = special_of(cols[1]);
      } else if (cols[2] == "struct") {
        plan.kind = special::none;
      } else if (cols[2] == "slice" && d->field_count() == 1 && d->field(0)->number() == 1 &&
                 d->field(0)->is_repeated() && d->field(0)->type() != google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
        plan.kind = special::slice_wrapper;
      }
    }
  }
  message_plan* current = nullptr;
  for (std::size_t n = 0; n < lines.size(); ++n) {
    const auto cols = split(lines[n], '\t');
    if (cols[0] == "type" && cols.size() == 4) {
      auto it = s->plans_.find(cols[1]);
      current = it == s->plans_.end() ? nullptr : it->second.get();
      if (current != nullptr &&
          (current->kind == special::schema_or_array || current->kind == special::schema_or_bool ||
           current->kind == special::schema_or_string_array)) {
        const int number = current->kind == special::schema_or_bool ? 2 : 1;
        const auto* f = current->descriptor->FindFieldByNumber(number);
        current->schema_props =
            f != nullptr && f->message_type() != nullptr ? s->find(f->message_type()->full_name()) : nullptr;
        if (current->schema_props == nullptr) {
          return load_error(std::string(cols[1]) + " has no JSONSchemaProps field " + std::to_string(number));
        }
      }
    } else if (cols[0] == "field" && cols.size() == 6) {
      if (current == nullptr || current->kind != special::none) {
        continue;
      }
      field_plan f;
      f.inlined = cols[3].find('i') != std::string_view::npos;
      f.omitempty = cols[3].find('o') != std::string_view::npos;
      if (!f.inlined) {
        f.json_name = cols[1];
      }
      if (!parse_go_kind(cols[4], f.kind)) {
        return load_error("line " + std::to_string(n + 1) + ": unknown Go kind " + std::string(cols[4]));
      }
      const int number = std::atoi(std::string(cols[2]).c_str());
      if (number != 0) {
        f.proto = current->descriptor->FindFieldByNumber(number);
        if (f.proto == nullptr) {
          return load_error("line " + std::to_string(n + 1) + ": " + current->descriptor->full_name() +
                            " has no field " + std::to_string(number));
        }
        const google::protobuf::Descriptor* type = f.proto->message_type();
        if (f.proto->is_map()) {
          type = f.proto->message_type()->map_value()->message_type();
        }
        if (type != nullptr) {
          f.message = s->find(type->full_name());
          if (f.message == nullptr) {
            return load_error("no plan for " + type->full_name());
          }
        }
      } else if (cols[5] != "-") {
        f.go_type = s->find(cols[5]);
      }
      current->fields.push_back(std::move(f));
    }
  }
  for (auto& [name, plan] : s->plans_) {
    for (int i = 0; i < plan->descriptor->field_count(); ++i)
      plan->known_numbers.push_back(static_cast<std::uint32_t>(plan->descriptor->field(i)->number()));
    std::sort(plan->known_numbers.begin(), plan->known_numbers.end());
  }
  s->type_meta_ = s->find(std::string(meta_v1) + ".TypeMeta");
  if (s->type_meta_ == nullptr || s->packages_.empty()) {
    return load_error("the JSON field table lacks metav1.TypeMeta or the group table");
  }
  holder = std::move(s);
  return static_cast<const schema*>(holder.get());
#endif
}

const detailed_result<const schema*>& schema::instance() {
  static const detailed_result<const schema*> loaded = load();
  return loaded;
}

const message_plan* schema::find(std::string_view full_name) const {
  const auto it = plans_.find(full_name);
  return it == plans_.end() ? nullptr : it->second.get();
}

detailed_result<const message_plan*> schema::find_kind(std::string_view api_version, std::string_view kind) const {
  const auto slash = api_version.find('/');
  const std::string group(slash == std::string_view::npos ? std::string_view{} : api_version.substr(0, slash));
  const std::string version(slash == std::string_view::npos ? api_version : api_version.substr(slash + 1));
  const auto package = packages_.find({group, version});
  if (package != packages_.end()) {
    if (const auto* plan = find(package->second + "." + std::string(kind))) {
      return plan;
    }
  }
  // metav1.AddToGroupVersion registers these in every group version.
  for (const std::string_view shared : {"Status", "WatchEvent", "ListOptions", "GetOptions", "DeleteOptions",
                                        "CreateOptions", "UpdateOptions", "PatchOptions", "ExportOptions"}) {
    if (kind == shared) {
      if (const auto* plan = find(std::string(meta_v1) + "." + std::string(kind))) {
        return plan;
      }
    }
  }
  if (api_version.empty() || kind.empty()) {
    return error(make_error_code(errc::unknown_kind), "the envelope names no apiVersion or kind (apiVersion \"" +
                                                          std::string(api_version) + "\", kind \"" + std::string(kind) +
                                                          "\")");
  }
  if (package != packages_.end()) {
    return error(make_error_code(errc::unknown_kind),
                 std::string(api_version) + " has no kind " + std::string(kind) + " in " + package->second);
  }
  std::string known;
  for (const auto& [key, value] : packages_) {
    if (key.first == group) {
      known += known.empty() ? "" : ", ";
      known += key.second;
    }
  }
  return error(make_error_code(errc::unknown_kind),
               "no protobuf schema for " + std::string(api_version) + " " + std::string(kind) +
                   (known.empty() ? std::string(" (not a built-in group; custom resources are JSON only)")
                                  : " (known versions of group \"" + group + "\": " + known + ")"));
}

}  // namespace informer::codec::detail
