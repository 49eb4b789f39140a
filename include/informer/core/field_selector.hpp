// informer/core/field_selector.hpp
//
// Kubernetes field selectors: the `fieldSelector` query parameter and `kubectl --field-selector`
// form (`metadata.namespace=default,spec.nodeName!=,status.phase==Running`). Use one to restrict a
// list-watch on the server and to apply the same filter to cached objects, or to ask an index
// planner which field values to look up (`requirements()`).
//
// Grammar: terms joined by ',', each `path=value`, `path==value` or `path!=value`. The path is a
// dotted field path (`metadata.name`, `spec.nodeName`, `spec.containers.0.image`) of
// `[-_A-Za-z0-9]` segments; it is split from the value at its first operator, and no whitespace is
// trimmed (Kubernetes trims none either, so `a = b` is a path "a " and is rejected here). The value
// is everything after the operator, possibly empty; in it `\,` `\=` `\\` stand for `,` `=` `\`
// (Kubernetes' escapes), and `\!` for `!` is accepted too; an unescaped `=` or any other escape is
// an error. Empty terms (`a=b,`, `,a=b`) are skipped, as Kubernetes does. The empty string selects
// everything.
//
// Matching resolves each path on the object and compares text: a string field by its text, any
// other JSON value by its compact JSON text (`spec.replicas=3`, `spec.unschedulable=true`); a
// missing field (or JSON null) reads as the empty string, as in Kubernetes, so `spec.nodeName=`
// selects unscheduled pods and `spec.nodeName!=` scheduled ones.
//
// Thread safety: a `field_selector` is immutable after construction; share it between threads
// freely.
#pragma once

#include "informer/core/error.hpp"
#include "informer/core/label_selector.hpp"

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace informer {

class object;

/// One term of a field selector; all of a selector's terms must hold.
struct field_requirement {
  std::string path;
  /// `selector_op::equals` (`=`, `==`) or `selector_op::not_equals` (`!=`).
  selector_op op = selector_op::equals;
  /// Unescaped.
  std::string value;

  friend bool operator==(const field_requirement&, const field_requirement&) = default;
};

class field_selector {
public:
  /// Resolves a dotted path to the field's text, or nullopt when the field is missing.
  using field_getter = std::function<std::optional<std::string>(std::string_view path)>;

  /// The selector that matches everything (no requirements).
  field_selector() = default;

  /// Same as the default constructor; reads better at call sites.
  static field_selector everything() { return {}; }

  /// Parses the text form (see the grammar above).
  /// Errors: `errc::invalid_selector`, with a detail naming the 0-based byte position and the
  /// offending text, e.g. `at position 9: invalid escape sequence "\x" in value`.
  static detailed_result<field_selector> parse(std::string_view text);

  /// Escapes `value` for use after an operator: `\` `,` `=` become `\\` `\,` `\=`.
  static std::string escape_value(std::string_view value);

  /// True when the selector has no requirements and so matches everything.
  bool empty() const noexcept { return requirements_.empty(); }

  /// True when `obj` satisfies every requirement, each path read with `object::field`.
  bool matches(const object& obj) const;

  /// True when the fields `getter` reports satisfy every requirement; a nullopt from `getter`
  /// reads as the empty string. `getter` is called once per requirement, on the calling thread.
  bool matches(const field_getter& getter) const;

  /// The requirements, sorted by path, then operator, then value.
  std::span<const field_requirement> requirements() const noexcept { return requirements_; }

  /// Canonical text: requirements in `requirements()` order, `path=value` / `path!=value` with
  /// values escaped by `escape_value`, joined by ','. `parse(to_string())` yields an equal selector.
  std::string to_string() const;

  /// Equal requirements (order of the source text is irrelevant).
  friend bool operator==(const field_selector&, const field_selector&) = default;

private:
  explicit field_selector(std::vector<field_requirement> requirements);

  std::vector<field_requirement> requirements_;
};

}  // namespace informer
