// core/detail/ascii.hpp
//
// ASCII case folding for protocol text (header names, resource names, environment variable
// names): independent of the C locale, unlike std::tolower.
#pragma once

#include <string>
#include <string_view>

namespace informer::detail {

constexpr char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

}  // namespace informer::detail
