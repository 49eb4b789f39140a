#include "informer/core/label_selector.hpp"

#include <boost/json/value.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <utility>

namespace informer {
namespace {

// ---- label key and value rules -------------------------------------------------------------

constexpr std::size_t max_name_length = 63;
constexpr std::size_t max_prefix_length = 253;

bool is_alnum(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// The name rule shared by key names and values; returns why `s` breaks it, or "" when it holds.
std::string name_problem(std::string_view s) {
  if (s.size() > max_name_length) return "is longer than 63 characters";
  if (!is_alnum(s.front()) || !is_alnum(s.back())) return "must begin and end with an alphanumeric character";
  for (char c : s) {
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.') {
      return std::string("character '") + c + "' is not allowed (only alphanumerics, '-', '_' and '.')";
    }
  }
  return {};
}

// A DNS-1123 subdomain: dot-separated labels of [a-z0-9-], each starting and ending [a-z0-9].
std::string prefix_problem(std::string_view s) {
  if (s.empty()) return "prefix before '/' must not be empty";
  if (s.size() > max_prefix_length) return "prefix is longer than 253 characters";
  std::size_t start = 0;
  while (true) {
    std::size_t dot = s.find('.', start);
    std::string_view part = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    auto lower_alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (part.empty() || !lower_alnum(part.front()) || !lower_alnum(part.back())) {
      return "prefix must be a DNS subdomain (lowercase alphanumerics, '-' and '.', each part starting and "
             "ending alphanumeric)";
    }
    for (char c : part) {
      if (!lower_alnum(c) && c != '-') {
        return "prefix must be a DNS subdomain (lowercase alphanumerics, '-' and '.', each part starting and "
               "ending alphanumeric)";
      }
    }
    if (dot == std::string_view::npos) return {};
    start = dot + 1;
  }
}

std::string key_problem(std::string_view key) {
  if (key.empty()) return "key must not be empty";
  std::size_t slash = key.find('/');
  std::string_view name = key;
  if (slash != std::string_view::npos) {
    if (key.find('/', slash + 1) != std::string_view::npos) return "key has more than one '/'";
    if (auto p = prefix_problem(key.substr(0, slash)); !p.empty()) return p;
    name = key.substr(slash + 1);
  }
  if (name.empty()) return "name part must not be empty";
  if (auto p = name_problem(name); !p.empty()) return "name " + p;
  return {};
}

std::string value_problem(std::string_view value) {
  if (value.empty()) return {};
  return name_problem(value);
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// ---- text form ------------------------------------------------------------------------------

enum class tok { identifier, bang, equals, double_equals, not_equals, open, close, comma, less, greater, end };

struct token {
  tok kind = tok::end;
  std::string_view text;
  std::size_t pos = 0;
};

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_special(char c) noexcept {
  return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '<' || c == '>';
}

// Splits the text into tokens. Anything that is neither whitespace nor one of `=!(),<>` is part of
// an identifier; whether an identifier is a valid key or value is checked by the parser, so a bad
// character is reported with the whole key or value it sits in. `in` and `notin` come out as
// identifiers; the parser decides from context whether they are operators.
class lexer {
public:
  explicit lexer(std::string_view text) noexcept : text_(text) {}

  token peek() const noexcept {
    std::size_t i = pos_;
    while (i < text_.size() && is_space(text_[i])) ++i;
    if (i == text_.size()) return {tok::end, {}, i};
    char c = text_[i];
    if (is_special(c)) {
      char n = i + 1 < text_.size() ? text_[i + 1] : '\0';
      if (c == '!' && n == '=') return {tok::not_equals, text_.substr(i, 2), i};
      if (c == '=' && n == '=') return {tok::double_equals, text_.substr(i, 2), i};
      tok kind = c == '='   ? tok::equals
                 : c == '!' ? tok::bang
                 : c == '(' ? tok::open
                 : c == ')' ? tok::close
                 : c == ',' ? tok::comma
                 : c == '<' ? tok::less
                            : tok::greater;
      return {kind, text_.substr(i, 1), i};
    }
    std::size_t end = i;
    while (end < text_.size() && !is_space(text_[end]) && !is_special(text_[end])) ++end;
    return {tok::identifier, text_.substr(i, end - i), i};
  }

  token next() noexcept {
    token t = peek();
    pos_ = t.pos + t.text.size();
    return t;
  }

private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

std::string found(const token& t) { return t.kind == tok::end ? "end of selector" : quoted(t.text); }

error syntax_error(const token& t, std::string_view expected) {
  return {errc::invalid_selector,
          "at position " + std::to_string(t.pos) + ": expected " + std::string(expected) + ", found " + found(t)};
}

error bad_key(const token& t, const std::string& why) {
  return {errc::invalid_label,
          "at position " + std::to_string(t.pos) + ": invalid label key " + quoted(t.text) + ": " + why};
}

error bad_value(const token& t, const std::string& why) {
  return {errc::invalid_label,
          "at position " + std::to_string(t.pos) + ": invalid label value " + quoted(t.text) + ": " + why};
}

void sort_unique(std::vector<std::string>& values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
}

class parser {
public:
  explicit parser(std::string_view text) noexcept : lex_(text) {}

  error run(std::vector<label_requirement>& out) {
    if (lex_.peek().kind == tok::end) return {};
    bool after_comma = false;
    while (true) {
      token t = lex_.peek();
      if (t.kind != tok::identifier && t.kind != tok::bang) {
        return syntax_error(t, after_comma ? "a label key or '!' after ','" : "a label key or '!'");
      }
      label_requirement req;
      if (auto e = requirement(req)) return e;
      out.push_back(std::move(req));
      t = lex_.next();
      if (t.kind == tok::end) return {};
      if (t.kind != tok::comma) return syntax_error(t, "',' or end of selector");
      after_comma = true;
    }
  }

private:
  error requirement(label_requirement& req) {
    token t = lex_.next();
    if (t.kind == tok::bang) {
      t = lex_.next();
      if (t.kind != tok::identifier) return syntax_error(t, "a label key after '!'");
      if (auto why = key_problem(t.text); !why.empty()) return bad_key(t, why);
      req = {std::string(t.text), selector_op::does_not_exist, {}};
      return {};
    }
    if (auto why = key_problem(t.text); !why.empty()) return bad_key(t, why);
    req.key = std::string(t.text);

    token op = lex_.peek();
    if (op.kind == tok::end || op.kind == tok::comma) {
      req.op = selector_op::exists;
      return {};
    }
    lex_.next();
    switch (op.kind) {
      case tok::equals:
      case tok::double_equals: req.op = selector_op::equals; return exact_value(req);
      case tok::not_equals: req.op = selector_op::not_equals; return exact_value(req);
      case tok::identifier:
        if (op.text == "in" || op.text == "notin") {
          req.op = op.text == "in" ? selector_op::in : selector_op::not_in;
          return value_set(req, op.text);
        }
        break;
      case tok::less:
      case tok::greater:
        return {errc::invalid_selector, "at position " + std::to_string(op.pos) + ": operator " + quoted(op.text) +
                                            " is not supported (use '=', '==', '!=', 'in' or 'notin')"};
      default: break;
    }
    return syntax_error(op, "an operator ('=', '==', '!=', 'in' or 'notin'), ',' or end of selector");
  }

  // The value after `=`, `==` or `!=`; absent means the empty value.
  error exact_value(label_requirement& req) {
    token t = lex_.peek();
    if (t.kind == tok::end || t.kind == tok::comma) {
      req.values = {std::string()};
      return {};
    }
    lex_.next();
    if (t.kind != tok::identifier) return syntax_error(t, "a label value, ',' or end of selector");
    if (auto why = value_problem(t.text); !why.empty()) return bad_value(t, why);
    req.values = {std::string(t.text)};
    return {};
  }

  // `( v, v, ... )`. Empty members are empty values, as Kubernetes reads `()`, `(,a)`, `(a,,b)`.
  error value_set(label_requirement& req, std::string_view op) {
    token t = lex_.next();
    if (t.kind != tok::open) return syntax_error(t, "'(' after '" + std::string(op) + "'");
    while (true) {
      t = lex_.next();
      if (t.kind == tok::identifier) {
        if (auto why = value_problem(t.text); !why.empty()) return bad_value(t, why);
        req.values.emplace_back(t.text);
        t = lex_.next();
        if (t.kind == tok::comma) continue;
        if (t.kind == tok::close) break;
        return syntax_error(t, "',' or ')'");
      }
      if (t.kind == tok::comma) {
        req.values.emplace_back();
        continue;
      }
      if (t.kind == tok::close) {
        req.values.emplace_back();
        break;
      }
      return syntax_error(t, "a label value, ',' or ')'");
    }
    sort_unique(req.values);
    return {};
  }

  lexer lex_;
};

// ---- JSON form ------------------------------------------------------------------------------

error json_error(errc code, const std::string& path, const std::string& what) { return {code, path + ": " + what}; }

error from_expression(const boost::json::value& v, const std::string& path, label_requirement& req) {
  const auto* obj = v.if_object();
  if (!obj) return json_error(errc::invalid_selector, path, "must be an object");

  const auto* key = obj->if_contains("key");
  if (!key || !key->is_string()) return json_error(errc::invalid_selector, path + ".key", "must be a string");
  std::string_view key_text = key->get_string();
  if (auto why = key_problem(key_text); !why.empty()) {
    return json_error(errc::invalid_label, path + ".key", "invalid label key " + quoted(key_text) + ": " + why);
  }
  req.key = std::string(key_text);

  const auto* op = obj->if_contains("operator");
  if (!op || !op->is_string()) return json_error(errc::invalid_selector, path + ".operator", "must be a string");
  std::string_view op_text = op->get_string();
  if (op_text == "In")
    req.op = selector_op::in;
  else if (op_text == "NotIn")
    req.op = selector_op::not_in;
  else if (op_text == "Exists")
    req.op = selector_op::exists;
  else if (op_text == "DoesNotExist")
    req.op = selector_op::does_not_exist;
  else {
    return json_error(errc::invalid_selector, path + ".operator",
                      quoted(op_text) + " is not a valid operator (In, NotIn, Exists or DoesNotExist)");
  }

  const auto* values = obj->if_contains("values");
  if (values && !values->is_null()) {
    const auto* arr = values->if_array();
    if (!arr) return json_error(errc::invalid_selector, path + ".values", "must be an array of strings");
    for (std::size_t i = 0; i < arr->size(); ++i) {
      std::string at = path + ".values[" + std::to_string(i) + "]";
      const auto& item = (*arr)[i];
      if (!item.is_string()) return json_error(errc::invalid_selector, at, "must be a string");
      std::string_view text = item.get_string();
      if (auto why = value_problem(text); !why.empty()) {
        return json_error(errc::invalid_label, at, "invalid label value " + quoted(text) + ": " + why);
      }
      req.values.emplace_back(text);
    }
  }
  bool wants_values = req.op == selector_op::in || req.op == selector_op::not_in;
  if (wants_values && req.values.empty()) {
    return json_error(errc::invalid_selector, path + ".values",
                      "operator " + std::string(op_text) + " needs at least one value");
  }
  if (!wants_values && !req.values.empty()) {
    return json_error(errc::invalid_selector, path + ".values",
                      "operator " + std::string(op_text) + " takes no values");
  }
  sort_unique(req.values);
  return {};
}

bool requirement_less(const label_requirement& a, const label_requirement& b) {
  if (a.key != b.key) return a.key < b.key;
  if (a.op != b.op) return a.op < b.op;
  return a.values < b.values;
}

bool contains(const std::vector<std::string>& sorted, std::string_view v) noexcept {
  return std::binary_search(sorted.begin(), sorted.end(), v);
}

void append_values(std::string& out, const std::vector<std::string>& values) {
  out += " (";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += values[i];
  }
  out += ')';
}

}  // namespace

bool label_requirement::matches(labels_view labels) const noexcept {
  std::optional<std::string_view> v = labels.get(key);
  switch (op) {
    case selector_op::equals:
    case selector_op::in: return v && contains(values, *v);
    case selector_op::not_equals:
    case selector_op::not_in: return !v || !contains(values, *v);
    case selector_op::exists: return v.has_value();
    case selector_op::does_not_exist: return !v;
  }
  return false;
}

label_selector::label_selector(std::vector<label_requirement> requirements) : requirements_(std::move(requirements)) {
  std::sort(requirements_.begin(), requirements_.end(), requirement_less);
}

detailed_result<label_selector> label_selector::parse(std::string_view text) {
  std::vector<label_requirement> reqs;
  if (auto e = parser(text).run(reqs)) return e;
  return label_selector(std::move(reqs));
}

detailed_result<label_selector> label_selector::from_json(const boost::json::value& json) {
  if (json.is_null()) return label_selector();
  const auto* obj = json.if_object();
  if (!obj) return error(errc::invalid_selector, "label selector must be a JSON object or null");

  std::vector<label_requirement> reqs;
  if (const auto* ml = obj->if_contains("matchLabels"); ml && !ml->is_null()) {
    const auto* map = ml->if_object();
    if (!map) return error(errc::invalid_selector, "matchLabels: must be an object of strings");
    for (const auto& [k, v] : *map) {
      std::string at = "matchLabels[" + quoted(k) + "]";
      if (auto why = key_problem(k); !why.empty()) {
        return json_error(errc::invalid_label, at, "invalid label key " + quoted(k) + ": " + why);
      }
      if (!v.is_string()) return json_error(errc::invalid_selector, at, "must be a string");
      std::string_view text = v.get_string();
      if (auto why = value_problem(text); !why.empty()) {
        return json_error(errc::invalid_label, at, "invalid label value " + quoted(text) + ": " + why);
      }
      reqs.push_back({std::string(k), selector_op::equals, {std::string(text)}});
    }
  }
  if (const auto* me = obj->if_contains("matchExpressions"); me && !me->is_null()) {
    const auto* arr = me->if_array();
    if (!arr) return error(errc::invalid_selector, "matchExpressions: must be an array");
    for (std::size_t i = 0; i < arr->size(); ++i) {
      label_requirement req;
      if (auto e = from_expression((*arr)[i], "matchExpressions[" + std::to_string(i) + "]", req)) return e;
      reqs.push_back(std::move(req));
    }
  }
  return label_selector(std::move(reqs));
}

bool label_selector::matches(labels_view labels) const noexcept {
  return std::all_of(requirements_.begin(), requirements_.end(),
                     [&](const label_requirement& r) { return r.matches(labels); });
}

std::string label_selector::to_string() const {
  std::string out;
  for (const auto& r : requirements_) {
    if (!out.empty()) out += ',';
    switch (r.op) {
      case selector_op::equals: out += r.key + "=" + r.values.front(); break;
      case selector_op::not_equals: out += r.key + "!=" + r.values.front(); break;
      case selector_op::in:
        out += r.key + " in";
        append_values(out, r.values);
        break;
      case selector_op::not_in:
        out += r.key + " notin";
        append_values(out, r.values);
        break;
      case selector_op::exists: out += r.key; break;
      case selector_op::does_not_exist: out += "!" + r.key; break;
    }
  }
  return out;
}

}  // namespace informer
