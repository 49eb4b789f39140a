// Private to the library: RFC 3339 times as Kubernetes and Go write them (exec credential
// expiry, leader-election records).
//
// Thread safety: pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace informer::detail {

// RFC 3339 as Go's time.RFC3339 reads it: 2006-01-02T15:04:05[.fraction](Z|+hh:mm|-hh:mm).
inline std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view s) {
  auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    if (at + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  const auto y = digits(0, 4), mo = digits(5, 2), d = digits(8, 2), h = digits(11, 2), mi = digits(14, 2),
             sec = digits(17, 2);
  if (!y || !mo || !d || !h || !mi || !sec || s.size() < 20 || s[4] != '-' || s[7] != '-' ||
      (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' || *h > 23 || *mi > 59 || *sec > 60) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year{*y}, std::chrono::month{static_cast<unsigned>(*mo)},
                                         std::chrono::day{static_cast<unsigned>(*d)}};
  if (!date.ok()) return std::nullopt;
  std::size_t at = 19;
  std::chrono::nanoseconds fraction{0};
  if (s[at] == '.') {
    ++at;
    std::int64_t scale = 100'000'000;
    const std::size_t start = at;
    while (at < s.size() && s[at] >= '0' && s[at] <= '9') {
      fraction += std::chrono::nanoseconds{(s[at] - '0') * scale};
      scale /= 10;
      ++at;
    }
    if (at == start) return std::nullopt;
  }
  std::chrono::minutes offset{0};
  if (at < s.size() && (s[at] == 'Z' || s[at] == 'z') && at + 1 == s.size()) {
    // UTC
  } else if (at + 6 == s.size() && (s[at] == '+' || s[at] == '-') && s[at + 3] == ':') {
    const auto oh = digits(at + 1, 2), om = digits(at + 4, 2);
    if (!oh || !om || *oh > 23 || *om > 59) return std::nullopt;
    offset = std::chrono::minutes{*oh * 60 + *om};
    if (s[at] == '-') offset = -offset;
  } else {
    return std::nullopt;
  }
  return std::chrono::sys_days{date} + std::chrono::hours{*h} + std::chrono::minutes{*mi} + std::chrono::seconds{*sec} -
         offset + std::chrono::duration_cast<std::chrono::system_clock::duration>(fraction);
}

}  // namespace informer::detail
