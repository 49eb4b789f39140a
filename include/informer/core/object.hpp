// informer/core/object.hpp
//
// `object` is one Kubernetes (or Kubernetes-shaped) resource as the cache holds it: immutable,
// shared as `object::ptr` (`std::shared_ptr<const object>`), readable from any thread without a
// lock. Updates never mutate an object; they replace it with a new one.
//
// Storage is built for memory. The body is kept in a compact binary form of its JSON (map keys
// interned process-wide, lengths as varints, no DOM), typically a third of the JSON text. The
// well-known metadata is parsed once, on arrival, into views over that form, so reading a name or
// a label costs no decoding. The full body is decoded on demand by `body()`; single fields are read
// without decoding the rest by `field()`.
//
// Errors: construction fails with `errc::invalid_json` (text is not JSON), `errc::not_an_object`,
// `errc::missing_name` (no non-empty string `metadata.name`), `errc::invalid_field` (a well-known
// metadata field of the wrong type, e.g. labels that are not a map of strings) or
// `errc::object_too_large` (also for nesting deeper than `max_depth`); the
// error's detail says which field.
#pragma once

#include "informer/core/error.hpp"
#include "informer/core/labels.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace informer {

/// One entry of `metadata.ownerReferences`. Views stay valid while the owning object lives.
struct owner_reference {
  std::string_view api_version;
  std::string_view kind;
  std::string_view name;
  std::string_view uid;
  bool controller = false;
  bool block_owner_deletion = false;
};

/// Limits applied while building objects.
struct object_options {
  /// Largest accepted body: bytes of JSON text for `parse`, bytes of the compact form for
  /// `from_json` (about a third of the JSON). kube-apiserver refuses objects over 1.5 MiB by
  /// default; etcd's request limit is similar.
  std::size_t max_bytes = 3 * 1024 * 1024;
};

class object {
public:
  using ptr = std::shared_ptr<const object>;
  /// Deepest nesting accepted (CRDs embedding pod templates, and their managedFields, go deep).
  static constexpr std::size_t max_depth = 256;

  /// Builds an object from JSON text.
  static detailed_result<ptr> parse(std::string_view json_text, const object_options& options = {});
  /// Builds an object from a JSON value.
  static detailed_result<ptr> from_json(const boost::json::value& value, const object_options& options = {});

  object(const object&) = delete;
  object& operator=(const object&) = delete;
  ~object();

  std::string_view api_version() const noexcept { return api_version_; }
  std::string_view kind() const noexcept { return kind_; }
  /// Empty for cluster-scoped objects.
  std::string_view ns() const noexcept { return ns_; }
  std::string_view name() const noexcept { return name_; }
  std::string_view uid() const noexcept { return uid_; }
  std::string_view resource_version() const noexcept { return resource_version_; }
  std::int64_t generation() const noexcept { return generation_; }
  /// RFC 3339 text as the server sent it; empty when absent.
  std::string_view creation_timestamp() const noexcept { return creation_timestamp_; }
  std::string_view deletion_timestamp() const noexcept { return deletion_timestamp_; }
  labels_view labels() const noexcept { return labels_view(labels_); }
  labels_view annotations() const noexcept { return labels_view(annotations_); }
  std::span<const owner_reference> owner_references() const noexcept { return owner_references_; }
  std::span<const std::string_view> finalizers() const noexcept { return finalizers_; }

  /// The full body, decoded from the compact form (a fresh value on every call).
  boost::json::value body() const;
  /// The body as compact JSON text.
  std::string to_json() const;
  /// One field, addressed by a dotted path (`spec.nodeName`, `metadata.labels.app`), decoded
  /// alone; nullopt when any step is missing or not an object. Array elements are addressed by
  /// decimal index (`spec.containers.0.image`).
  std::optional<boost::json::value> field(std::string_view dotted_path) const;

  /// Bytes this object owns on the heap plus its own size (interned keys are shared, not counted).
  std::size_t memory_usage() const noexcept;
  /// Size of the compact body alone.
  std::size_t packed_size() const noexcept { return packed_.size(); }

  /// Same content: equal bodies (map key order ignored).
  friend bool same_content(const object& a, const object& b);

  /// Construction goes through `parse` and `from_json`; the key only they can make keeps the
  /// constructor usable by `std::make_shared` (one allocation for object and control block).
  class passkey {
    passkey() = default;
    friend struct object_builder;
  };
  explicit object(passkey) {}

private:
  friend struct object_builder;

  std::string packed_;  // compact body; every view below points into it or into the key table
  std::string_view api_version_, kind_, ns_, name_, uid_, resource_version_;
  std::string_view creation_timestamp_, deletion_timestamp_;
  std::int64_t generation_ = 0;
  std::vector<label> labels_;
  std::vector<label> annotations_;
  std::vector<owner_reference> owner_references_;
  std::vector<std::string_view> finalizers_;
};

}  // namespace informer
