#include "informer/core/field_selector.hpp"

#include "informer/core/object.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <utility>

namespace informer {
namespace {

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

error at(std::size_t pos, const std::string& what) {
  return {errc::invalid_selector, "at position " + std::to_string(pos) + ": " + what};
}

bool is_path_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// `path` starts at byte `pos` of the selector text.
error check_path(std::string_view path, std::size_t pos) {
  if (path.empty()) return at(pos, "empty field path before the operator");
  for (std::size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '.') {
      if (i == 0 || i + 1 == path.size() || path[i + 1] == '.') {
        return at(pos + i, "empty segment in field path " + quoted(path));
      }
    } else if (!is_path_char(c)) {
      return at(pos + i, std::string("invalid character '") + c + "' in field path " + quoted(path));
    }
  }
  return {};
}

// `raw` starts at byte `pos` of the selector text.
error unescape(std::string_view raw, std::size_t pos, std::string& out) {
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '\\') {
      if (i + 1 == raw.size()) return at(pos + i, "value ends in a lone '\\'");
      char n = raw[i + 1];
      if (n != '\\' && n != ',' && n != '=' && n != '!') {
        return at(pos + i, "invalid escape sequence " + quoted(raw.substr(i, 2)) +
                               " in value (only \\\\ \\, \\= and \\! are recognised)");
      }
      out += n;
      ++i;
    } else if (c == '=') {
      return at(pos + i, "unescaped '=' in value " + quoted(raw) + " (write it as \\=)");
    } else {
      out += c;
    }
  }
  return {};
}

error parse_term(std::string_view term, std::size_t pos, field_requirement& req) {
  // Split at the first operator; `!=` and `==` are tried before `=` so the value keeps no '='.
  std::size_t i = 0;
  std::size_t op_len = 0;
  for (; i < term.size(); ++i) {
    if (term.substr(i, 2) == "!=") {
      req.op = selector_op::not_equals;
      op_len = 2;
    } else if (term.substr(i, 2) == "==") {
      req.op = selector_op::equals;
      op_len = 2;
    } else if (term[i] == '=') {
      req.op = selector_op::equals;
      op_len = 1;
    }
    if (op_len) break;
  }
  if (!op_len) return at(pos, "expected '=', '==' or '!=' in term " + quoted(term));
  std::string_view path = term.substr(0, i);
  if (auto e = check_path(path, pos)) return e;
  req.path = std::string(path);
  return unescape(term.substr(i + op_len), pos + i + op_len, req.value);
}

bool requirement_less(const field_requirement& a, const field_requirement& b) {
  if (a.path != b.path) return a.path < b.path;
  if (a.op != b.op) return a.op < b.op;
  return a.value < b.value;
}

bool term_matches(const field_requirement& r, std::string_view actual) noexcept {
  return (actual == r.value) == (r.op == selector_op::equals);
}

// The text a field compares by: strings by their content, other values by compact JSON text.
std::string field_text(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::string: return std::string(v.get_string());
    case boost::json::kind::null: return {};
    case boost::json::kind::double_: {
      // Shortest round-trip form (`1.5`, not boost::json's `1.5E0`).
      std::array<char, 32> buf;
      auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v.get_double());
      return std::string(buf.data(), r.ptr);
    }
    default: return boost::json::serialize(v);
  }
}

}  // namespace

field_selector::field_selector(std::vector<field_requirement> requirements) : requirements_(std::move(requirements)) {
  std::sort(requirements_.begin(), requirements_.end(), requirement_less);
}

detailed_result<field_selector> field_selector::parse(std::string_view text) {
  std::vector<field_requirement> reqs;
  std::size_t start = 0;
  std::size_t i = 0;
  while (true) {
    bool at_end = i >= text.size();
    if (!at_end && text[i] == '\\') {
      i += 2;  // the escaped character is data, even a ','
      continue;
    }
    if (!at_end && text[i] != ',') {
      ++i;
      continue;
    }
    std::string_view term = text.substr(start, std::min(i, text.size()) - start);
    if (!term.empty()) {
      field_requirement req;
      if (auto e = parse_term(term, start, req)) return e;
      reqs.push_back(std::move(req));
    }
    if (at_end) break;
    start = ++i;
  }
  return field_selector(std::move(reqs));
}

std::string field_selector::escape_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == ',' || c == '=') out += '\\';
    out += c;
  }
  return out;
}

bool field_selector::matches(const object& obj) const {
  return std::all_of(requirements_.begin(), requirements_.end(), [&](const field_requirement& r) {
    std::optional<boost::json::value> v = obj.field(r.path);
    return term_matches(r, v ? field_text(*v) : std::string());
  });
}

bool field_selector::matches(const field_getter& getter) const {
  return std::all_of(requirements_.begin(), requirements_.end(), [&](const field_requirement& r) {
    std::optional<std::string> v = getter(r.path);
    return term_matches(r, v ? std::string_view(*v) : std::string_view());
  });
}

std::string field_selector::to_string() const {
  std::string out;
  for (const auto& r : requirements_) {
    if (!out.empty()) out += ',';
    out += r.path;
    out += r.op == selector_op::equals ? "=" : "!=";
    out += escape_value(r.value);
  }
  return out;
}

}  // namespace informer
