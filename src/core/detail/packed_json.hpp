// The compact body format of `object`: a JSON value as a byte string, built for memory.
//
//   value   := tag payload
//   tag     := 0 null | 1 false | 2 true | 3 int64 (zigzag varint) | 4 uint64 (varint)
//            | 5 double (8 bytes, little endian) | 6 string (varint length, bytes)
//            | 7 array (varint content bytes, varint count, value*)
//            | 8 object (varint content bytes, varint count, (keyref value)*)
//            | 9 empty array | 10 empty object   (managedFields are full of `{}`)
//            | 11 shared string (varint id in value_table; the body holds one reference)
//   keyref  := varint k; k > 0: interned key id k-1 (see key_table); k = 0: varint length and
//              the key's bytes follow
//
// Containers carry their byte length so that a reader can step over them without decoding, which
// is what makes `field()` lookups and metadata views cheap. Only this project writes the format,
// so readers trust it (it never crosses a process boundary).
//
// Thread safety: pure functions over immutable bytes.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace informer::detail::packed {

enum class tag : std::uint8_t {
  null = 0,
  false_ = 1,
  true_ = 2,
  int64 = 3,
  uint64 = 4,
  double_ = 5,
  string = 6,
  array = 7,
  object = 8,
  empty_array = 9,
  empty_object = 10,
  shared_string = 11
};

/// Appends the packed form of `v` to `out`. The result holds references to shared strings:
/// pass it to `release_shared` once, before the bytes are discarded.
void encode(const boost::json::value& v, std::string& out);

inline std::uint64_t read_varint(const char*& p) noexcept {
  std::uint64_t result = 0;
  int shift = 0;
  for (;;) {
    const auto byte = static_cast<std::uint8_t>(*p++);
    result |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return result;
    shift += 7;
  }
}

/// A view of one packed value. Cheap to copy; valid while the bytes live.
class value_ref {
public:
  value_ref() = default;
  explicit value_ref(const char* p) noexcept : p_(p) {}

  bool valid() const noexcept { return p_ != nullptr; }
  tag type() const noexcept { return static_cast<tag>(*p_); }
  bool is_string() const noexcept { return valid() && (type() == tag::string || type() == tag::shared_string); }
  bool is_object() const noexcept { return valid() && (type() == tag::object || type() == tag::empty_object); }
  bool is_array() const noexcept { return valid() && (type() == tag::array || type() == tag::empty_array); }
  bool is_null() const noexcept { return !valid() || type() == tag::null; }

  std::string_view as_string() const noexcept {
    if (type() == tag::shared_string) return shared_text();
    const char* q = p_ + 1;
    const auto n = read_varint(q);
    return {q, static_cast<std::size_t>(n)};
  }
  std::int64_t as_int64() const noexcept;
  std::uint64_t as_uint64() const noexcept;
  double as_double() const noexcept;
  bool as_bool() const noexcept { return type() == tag::true_; }
  /// True for int64/uint64 values that fit an int64 (stores it in `out`).
  bool to_int64(std::int64_t& out) const noexcept;

  /// Pointer one past this value.
  const char* end() const noexcept;

  /// Number of members (object) or elements (array).
  std::size_t size() const noexcept {
    if (type() == tag::empty_array || type() == tag::empty_object) return 0;
    const char* q = p_ + 1;
    read_varint(q);
    return static_cast<std::size_t>(read_varint(q));
  }

  /// Calls f(std::string_view key, value_ref value) for each member until f returns false.
  template <class F>
  void for_each_member(F&& f) const {
    if (type() == tag::empty_object) return;
    const char* q = p_ + 1;
    read_varint(q);
    auto n = read_varint(q);
    while (n-- > 0) {
      const std::string_view key = read_key(q);
      value_ref v(q);
      q = v.end();
      if (!f(key, v)) return;
    }
  }
  /// Calls f(value_ref element) for each element until f returns false.
  template <class F>
  void for_each_element(F&& f) const {
    if (type() == tag::empty_array) return;
    const char* q = p_ + 1;
    read_varint(q);
    auto n = read_varint(q);
    while (n-- > 0) {
      value_ref v(q);
      q = v.end();
      if (!f(v)) return;
    }
  }
  /// The member named `key` of an object; invalid when absent or when this is not an object.
  value_ref find(std::string_view key) const noexcept;
  /// Element `i` of an array; invalid when out of range or when this is not an array.
  value_ref at(std::size_t i) const noexcept;

  static std::string_view read_key(const char*& q) noexcept;
  const char* raw() const noexcept { return p_; }

private:
  std::string_view shared_text() const noexcept;

  const char* p_ = nullptr;
};

class value_ref;
/// Drops the shared-string references held by an encoded body.
void release_shared(value_ref v);

/// Decodes a packed value into a JSON value.
boost::json::value decode(value_ref v, boost::json::storage_ptr sp = {});

}  // namespace informer::detail::packed
