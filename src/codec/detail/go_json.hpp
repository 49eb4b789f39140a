// Private helpers of the protobuf codec: the JSON text forms Go and Kubernetes give to values
// whose encoding/json rendering is not the obvious one (times, durations, bytes, floats).
//
// Thread safety: pure functions.
#pragma once

#include <boost/json/string_view.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace informer::codec::detail {

/// metav1.Time: RFC 3339 in UTC with seconds precision ("2021-01-13T13:14:26Z").
std::string format_time(std::int64_t unix_seconds);

/// metav1.MicroTime: RFC 3339 in UTC with exactly six fractional digits
/// ("2021-01-13T13:14:26.123456Z"); `nanos` may be outside [0, 1e9) (normalised like time.Unix).
std::string format_micro_time(std::int64_t unix_seconds, std::int64_t nanos);

/// Go's time.Time.IsZero for time.Unix(seconds, nanos): January 1, year 1, 00:00:00 UTC.
bool is_go_zero_time(std::int64_t unix_seconds, std::int64_t nanos) noexcept;

/// Go's time.Duration.String: "1h2m3.5s", "1.5ms", "0s".
std::string format_duration(std::int64_t nanoseconds);

/// A protobuf string as Go's encoding/json writes it: Go strings may hold any bytes (protobuf
/// hands them over unchecked) and the encoder writes each byte that is not part of valid UTF-8 as
/// U+FFFD. A view of `bytes` itself when they are valid (the usual case), else of a repaired copy;
/// non-copyable, use it within the expression that makes it.
class go_text {
public:
  explicit go_text(std::string_view bytes);
  go_text(const go_text&) = delete;
  go_text& operator=(const go_text&) = delete;
  operator boost::json::string_view() const noexcept { return view_; }

private:
  std::string repaired_;
  std::string_view view_;
};

/// Standard base64 with padding, as encoding/json writes []byte.
std::string base64_encode(std::string_view bytes);

/// A float64 as a JSON parser reads Go's rendering of it: Go writes integral values below 1e21
/// without a fraction or exponent ("3", not "3.0"), which parse back as integers.
boost::json::value float64_value(double v);

/// A float32 likewise: Go prints the shortest text that round-trips as a float32.
boost::json::value float32_value(float v);

}  // namespace informer::codec::detail
