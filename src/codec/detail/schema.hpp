// Private part of the protobuf codec: the rendering plan of every Kubernetes message, built once
// from the embedded descriptor set (what is on the wire: field numbers and types) and the Go JSON
// field table (what encoding/json makes of it: names, order, omitempty, inlining, pointer or value).
//
// Thread safety: `schema::instance()` builds the plans on first use (thread-safe static
// initialisation); the schema is immutable afterwards and may be read from any thread.
#pragma once

#include "informer/core/error.hpp"

#include <google/protobuf/descriptor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace informer::codec::detail {

/// encoding/json's view of a Go field type: it decides the zero value and what omitempty drops.
enum class go_kind : std::uint8_t {
  string,
  integer,
  unsigned_integer,
  boolean,
  floating,
  bytes,
  slice,
  map,
  pointer,
  structure,
  interface
};

/// Messages whose JSON comes from a hand-written MarshalJSON (or a named slice type).
enum class special : std::uint8_t {
  none,                    ///< a struct rendered field by field
  time,                    ///< metav1.Time
  micro_time,              ///< metav1.MicroTime
  duration,                ///< metav1.Duration
  int_or_string,           ///< intstr.IntOrString
  quantity,                ///< resource.Quantity
  fields_v1,               ///< metav1.FieldsV1
  raw_extension,           ///< runtime.RawExtension
  unknown,                 ///< runtime.Unknown
  json_raw,                ///< apiextensions JSON
  schema_or_array,         ///< apiextensions JSONSchemaPropsOrArray
  schema_or_bool,          ///< apiextensions JSONSchemaPropsOrBool
  schema_or_string_array,  ///< apiextensions JSONSchemaPropsOrStringArray
  group_version,           ///< metav1.GroupVersion
  slice_wrapper,           ///< a named Go slice (metav1.Verbs, ExtraValue): message {repeated items = 1}
  unsupported,             ///< a custom MarshalJSON the codec does not mirror, or no Go table entry
};

struct message_plan;

struct field_plan {
  std::string json_name;  ///< empty when inlined into the parent (an embedded struct)
  bool omitempty = false;
  bool inlined = false;
  go_kind kind = go_kind::structure;
  /// The protobuf field; nullptr for a Go field the protobuf message lacks (rendered as its zero).
  const google::protobuf::FieldDescriptor* proto = nullptr;
  /// The plan of the field's message type (for a map, of its value type; nullptr for scalars).
  const message_plan* message = nullptr;
  /// For a Go struct field that is not in the protobuf message (TypeMeta): its type's plan.
  const message_plan* go_type = nullptr;
};

struct message_plan {
  const google::protobuf::Descriptor* descriptor = nullptr;
  special kind = special::unsupported;
  std::vector<field_plan> fields;  ///< in Go struct order
  /// Every field number of the protobuf message, ascending: a number on the wire that is not here
  /// belongs to a newer schema.
  std::vector<std::uint32_t> known_numbers;
  /// apiextensions JSONSchemaPropsOr*: the plan of JSONSchemaProps.
  const message_plan* schema_props = nullptr;
};

class schema {
public:
  /// The schema compiled into the library; `schemas_unavailable` without one, or an error saying
  /// why the embedded data could not be loaded.
  static const detailed_result<const schema*>& instance();

  /// The plan of a message by full protobuf name ("k8s.io.api.core.v1.Pod"), or nullptr.
  const message_plan* find(std::string_view full_name) const;

  /// The plan of the top-level kind named by an envelope; `unknown_kind` with the known versions
  /// of the group in the detail otherwise.
  detailed_result<const message_plan*> find_kind(std::string_view api_version, std::string_view kind) const;

  /// metav1.TypeMeta's plan: where the envelope's kind and apiVersion go in a top-level object.
  const message_plan* type_meta() const noexcept { return type_meta_; }

  schema(const schema&) = delete;
  schema& operator=(const schema&) = delete;

private:
  schema() = default;
  static detailed_result<const schema*> load();

  google::protobuf::DescriptorPool pool_;
  std::map<std::string, std::unique_ptr<message_plan>, std::less<>> plans_;
  std::map<std::pair<std::string, std::string>, std::string> packages_;  // (group, version) -> proto package
  const message_plan* type_meta_ = nullptr;
};

}  // namespace informer::codec::detail
