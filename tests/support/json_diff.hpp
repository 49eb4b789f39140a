// tests/support/json_diff.hpp
//
// Where two JSON values differ, as lines a failure message can show: ".spec.volumes[5].secret:
// only in <b>: {...}" or ".metadata.name: <a> "x" vs <b> "y"". Object member order is ignored.
#pragma once

#include <boost/json.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace informer::testing {

/// The differences between `a` and `b` (named `a_name` and `b_name` in the lines), path first and
/// a colon after it, at most `max_lines` of them; empty when the values are equal.
inline std::vector<std::string> json_differences(const boost::json::value& a, const boost::json::value& b,
                                                 const std::string& a_name, const std::string& b_name,
                                                 std::size_t max_lines = 30) {
  std::vector<std::string> out;
  const auto walk = [&](const auto& self, const boost::json::value& x, const boost::json::value& y,
                        const std::string& path) -> void {
    if (x == y || out.size() >= max_lines) return;
    if (x.is_object() && y.is_object()) {
      for (const auto& [k, v] : x.get_object()) {
        if (const auto* w = y.get_object().if_contains(k)) {
          self(self, v, *w, path + "." + std::string(k));
        } else {
          out.push_back(path + "." + std::string(k) + ": only in " + a_name + ": " + boost::json::serialize(v));
        }
      }
      for (const auto& [k, v] : y.get_object()) {
        if (!x.get_object().contains(k)) {
          out.push_back(path + "." + std::string(k) + ": only in " + b_name + ": " + boost::json::serialize(v));
        }
      }
    } else if (x.is_array() && y.is_array() && x.get_array().size() == y.get_array().size()) {
      for (std::size_t i = 0; i < x.get_array().size(); ++i) {
        self(self, x.get_array()[i], y.get_array()[i], path + "[" + std::to_string(i) + "]");
      }
    } else {
      out.push_back(path + ": " + a_name + " " + boost::json::serialize(x) + " vs " + b_name + " " +
                    boost::json::serialize(y));
    }
  };
  walk(walk, a, b, "");
  return out;
}

/// The differences as one text, a line each ("" when equal).
inline std::string describe_json_differences(const boost::json::value& a, const boost::json::value& b,
                                             const std::string& a_name, const std::string& b_name) {
  std::string text;
  for (const auto& line : json_differences(a, b, a_name, b_name)) text += "\n  " + line;
  return text;
}

}  // namespace informer::testing
