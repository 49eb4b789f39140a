// informer/core/label_selector.hpp
//
// Kubernetes label selectors: the text form that `kubectl -l` and the `labelSelector` query
// parameter take (`app=web,tier in (a,b),!legacy`), and the structured `metav1.LabelSelector`
// form that Deployments, Services' owners and NetworkPolicies carry (`matchLabels`,
// `matchExpressions`). Both become the same `label_selector`, which matches label maps exactly as
// Kubernetes does, prints itself in Kubernetes' canonical text form, and exposes its requirements
// so an index planner can pick an index (`equals` and `in` name the values to look up; `exists`
// names a key whose values are all candidates).
//
// Grammar of the text form (whitespace between tokens is ignored, as in Kubernetes):
//   selector    := "" | requirement ("," requirement)*
//   requirement := "!" key | key | key ("=" | "==" | "!=") value? | key ("in" | "notin") set
//   set         := "(" [value ("," value)*] ")"
// A missing value means the empty value (`k=` matches `k: ""`); empty set members are empty values
// (`k in ()` is `k in ("")`), as in Kubernetes. Kubernetes' `>` and `<` are not supported.
// One deliberate leniency: the words `in` and `notin` are accepted as label keys (Kubernetes'
// parser rejects them there although they are valid keys), so every selector prints to text that
// parses back.
//
// Label keys are `[prefix/]name`: prefix a DNS subdomain (lowercase, at most 253 characters), name
// at most 63 characters of `[-_.A-Za-z0-9]` starting and ending alphanumeric. Values are empty or
// follow the name rule.
//
// Thread safety: a `label_selector` is immutable after construction; share it between threads
// freely. All functions here are pure.
#pragma once

#include "informer/core/error.hpp"
#include "informer/core/labels.hpp"

#include <boost/json/fwd.hpp>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace informer {

/// The operator of one selector requirement. Field selectors use only `equals` and `not_equals`.
enum class selector_op {
  equals,          ///< `k=v`, `k==v`; matchLabels entries. Key present with that value.
  not_equals,      ///< `k!=v`. Key absent, or present with another value.
  in,              ///< `k in (a,b)`. Key present with one of the values.
  not_in,          ///< `k notin (a,b)`. Key absent, or present with none of the values.
  exists,          ///< `k`. Key present, any value.
  does_not_exist,  ///< `!k`. Key absent.
};

/// One requirement of a label selector; all of a selector's requirements must hold.
struct label_requirement {
  std::string key;
  selector_op op = selector_op::exists;
  /// Sorted and unique. One value for `equals`/`not_equals`, at least one for `in`/`not_in`,
  /// none for `exists`/`does_not_exist`.
  std::vector<std::string> values;

  /// True when `labels` satisfies this requirement alone.
  bool matches(labels_view labels) const noexcept;

  friend bool operator==(const label_requirement&, const label_requirement&) = default;
};

class label_selector {
public:
  /// The selector that matches everything (no requirements).
  label_selector() = default;

  /// Same as the default constructor; reads better at call sites.
  static label_selector everything() { return {}; }

  /// Parses the text form. The empty (or all-whitespace) string matches everything.
  /// Errors: `errc::invalid_selector` for a syntax error, `errc::invalid_label` for a key or value
  /// that breaks the label rules. The detail names the 0-based byte position of the offending
  /// token and quotes it, e.g. `at position 7: expected ',' or end of selector, found "foo"`.
  static detailed_result<label_selector> parse(std::string_view text);

  /// Builds a selector from the JSON of a `metav1.LabelSelector`: `matchLabels` (a map of
  /// key to value, each an `equals` requirement) and `matchExpressions` (objects with `key`,
  /// `operator` one of `In`, `NotIn`, `Exists`, `DoesNotExist`, and `values`). Null, `{}` or a
  /// selector with both lists empty matches everything. Unknown members are ignored.
  /// Errors: `errc::invalid_selector` for a wrong shape, an unknown operator, values given to
  /// `Exists`/`DoesNotExist` or missing for `In`/`NotIn`; `errc::invalid_label` for a bad key or
  /// value. The detail names the JSON path, e.g. `matchExpressions[1].operator`.
  static detailed_result<label_selector> from_json(const boost::json::value& json);

  /// True when the selector has no requirements and so matches everything.
  bool empty() const noexcept { return requirements_.empty(); }

  /// True when `labels` satisfies every requirement. `!=` and `notin` hold for absent keys.
  bool matches(labels_view labels) const noexcept;

  /// The requirements, sorted by key (then operator, then values).
  std::span<const label_requirement> requirements() const noexcept { return requirements_; }

  /// Kubernetes' canonical text: requirements sorted by key, set values sorted, joined by ','
  /// with no spaces except around `in`/`notin` (`a=b,c!=d,e in (x,y),!f,g`). The empty selector
  /// prints as "". `parse(to_string())` yields an equal selector.
  std::string to_string() const;

  /// Equal requirements (the selectors are canonical, so order of the source text is irrelevant).
  friend bool operator==(const label_selector&, const label_selector&) = default;

private:
  explicit label_selector(std::vector<label_requirement> requirements);

  std::vector<label_requirement> requirements_;
};

}  // namespace informer
