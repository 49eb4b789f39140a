#include "codec/detail/go_json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace informer::codec::detail {
namespace {

constexpr std::int64_t seconds_per_day = 86400;
constexpr std::int64_t go_zero_time_unix = -62135596800;  // 0001-01-01T00:00:00Z

struct civil {
  std::int64_t year;
  unsigned month, day, hour, minute, second;
};

// Howard Hinnant's civil_from_days: exact for the whole int64 day range used here.
civil to_civil(std::int64_t unix_seconds) {
  std::int64_t days = unix_seconds / seconds_per_day;
  std::int64_t rem = unix_seconds % seconds_per_day;
  if (rem < 0) {
    rem += seconds_per_day;
    --days;
  }
  const std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
  const auto r = static_cast<unsigned>(rem);
  return {y, m, d, r / 3600, (r / 60) % 60, r % 60};
}

std::string format_civil(const civil& c) {
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02u:%02u:%02u", static_cast<long long>(c.year),
                              c.month, c.day, c.hour, c.minute, c.second);
  return std::string(buf, static_cast<std::size_t>(n));
}

// Go's fmtFrac: the fraction of v/10^prec into the tail of buf, without trailing zeros (and without
// the point when the fraction is zero). Returns the new start; v becomes the integer part.
std::size_t format_fraction(char* buf, std::size_t w, std::uint64_t& v, int prec) {
  bool print = false;
  for (int i = 0; i < prec; ++i) {
    const auto digit = static_cast<char>(v % 10);
    print = print || digit != 0;
    if (print) {
      buf[--w] = static_cast<char>('0' + digit);
    }
    v /= 10;
  }
  if (print) {
    buf[--w] = '.';
  }
  return w;
}

std::size_t format_integer(char* buf, std::size_t w, std::uint64_t v) {
  if (v == 0) {
    buf[--w] = '0';
    return w;
  }
  while (v > 0) {
    buf[--w] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  return w;
}

}  // namespace

std::string format_time(std::int64_t unix_seconds) { return format_civil(to_civil(unix_seconds)) + 'Z'; }

std::string format_micro_time(std::int64_t unix_seconds, std::int64_t nanos) {
  // time.Unix normalises nanoseconds outside [0, 1e9) into the seconds; at the ends of the range
  // the sum wraps around as Go's int64 does (in unsigned arithmetic: no signed overflow).
  std::int64_t carry = nanos / 1000000000;
  nanos %= 1000000000;
  if (nanos < 0) {
    nanos += 1000000000;
    --carry;
  }
  unix_seconds =
      static_cast<std::int64_t>(static_cast<std::uint64_t>(unix_seconds) + static_cast<std::uint64_t>(carry));
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>(nanos / 1000));
  return format_civil(to_civil(unix_seconds)) + frac + 'Z';
}

bool is_go_zero_time(std::int64_t unix_seconds, std::int64_t nanos) noexcept {
  return unix_seconds == go_zero_time_unix && nanos == 0;
}

std::string format_duration(std::int64_t d) {
  // A port of Go's time.Duration.String.
  char buf[32];
  std::size_t w = sizeof buf;
  const bool neg = d < 0;
  std::uint64_t u = neg ? 0 - static_cast<std::uint64_t>(d) : static_cast<std::uint64_t>(d);
  if (u < 1000000000) {
    int prec = 0;
    buf[--w] = 's';
    if (u == 0) {
      return "0s";
    } else if (u < 1000) {
      prec = 0;
      buf[--w] = 'n';
    } else if (u < 1000000) {
      prec = 3;
      buf[--w] = '\xb5';  // U+00B5 MICRO SIGN in UTF-8: C2 B5
      buf[--w] = '\xc2';
    } else {
      prec = 6;
      buf[--w] = 'm';
    }
    w = format_fraction(buf, w, u, prec);
    w = format_integer(buf, w, u);
  } else {
    buf[--w] = 's';
    w = format_fraction(buf, w, u, 9);
    w = format_integer(buf, w, u % 60);
    u /= 60;
    if (u > 0) {
      buf[--w] = 'm';
      w = format_integer(buf, w, u % 60);
      u /= 60;
      if (u > 0) {
        buf[--w] = 'h';
        w = format_integer(buf, w, u);
      }
    }
  }
  if (neg) {
    buf[--w] = '-';
  }
  return std::string(buf + w, sizeof buf - w);
}

namespace {

// The length of the valid UTF-8 sequence at `s[i]` (Go's utf8.DecodeRune: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when the byte there starts none.
std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
  const auto at = [&](std::size_t k) { return i + k < s.size() ? static_cast<std::uint8_t>(s[i + k]) : 0; };
  const auto in = [](std::uint8_t b, std::uint8_t lo, std::uint8_t hi) { return b >= lo && b <= hi; };
  const std::uint8_t b0 = at(0);
  if (b0 < 0x80) return 1;
  if (in(b0, 0xc2, 0xdf)) return in(at(1), 0x80, 0xbf) ? 2 : 0;
  if (in(b0, 0xe0, 0xef)) {
    const std::uint8_t lo = b0 == 0xe0 ? 0xa0 : 0x80;
    const std::uint8_t hi = b0 == 0xed ? 0x9f : 0xbf;
    return in(at(1), lo, hi) && in(at(2), 0x80, 0xbf) ? 3 : 0;
  }
  if (in(b0, 0xf0, 0xf4)) {
    const std::uint8_t lo = b0 == 0xf0 ? 0x90 : 0x80;
    const std::uint8_t hi = b0 == 0xf4 ? 0x8f : 0xbf;
    return in(at(1), lo, hi) && in(at(2), 0x80, 0xbf) && in(at(3), 0x80, 0xbf) ? 4 : 0;
  }
  return 0;
}

}  // namespace

go_text::go_text(std::string_view bytes) : view_(bytes) {
  std::size_t i = 0;
  std::size_t n = 0;
  while (i < bytes.size() && (n = utf8_sequence(bytes, i)) != 0) i += n;
  if (i == bytes.size()) return;
  repaired_.reserve(bytes.size() + 8);
  repaired_.append(bytes.substr(0, i));
  while (i < bytes.size()) {
    n = utf8_sequence(bytes, i);
    if (n == 0) {
      repaired_ += "\xef\xbf\xbd";  // U+FFFD for this one byte, as Go does
      ++i;
    } else {
      repaired_.append(bytes.substr(i, n));
      i += n;
    }
  }
  view_ = repaired_;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[i])) << 16 |
                            static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[i + 1])) << 8 |
                            static_cast<std::uint8_t>(bytes[i + 2]);
    out += alphabet[n >> 18];
    out += alphabet[(n >> 12) & 63];
    out += alphabet[(n >> 6) & 63];
    out += alphabet[n & 63];
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[i])) << 16;
    if (rest == 2) {
      n |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[i + 1])) << 8;
    }
    out += alphabet[n >> 18];
    out += alphabet[(n >> 12) & 63];
    out += rest == 2 ? alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

boost::json::value float64_value(double v) {
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 1e21) {
    if (v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
      return static_cast<std::int64_t>(v);
    }
    if (v >= 0 && v < 18446744073709551616.0) {
      return static_cast<std::uint64_t>(v);
    }
  }
  return v;
}

boost::json::value float32_value(float v) {
  char buf[64];
  const auto printed = std::to_chars(buf, buf + sizeof buf, v);
  double d = v;
  std::from_chars(buf, printed.ptr, d);
  return float64_value(d);
}

}  // namespace informer::codec::detail
