#include "core/detail/packed_json.hpp"

#include "core/detail/key_table.hpp"
#include "core/detail/value_table.hpp"

#include <boost/json.hpp>

namespace informer::detail::packed {
namespace {

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_tag(std::string& out, tag t) { out.push_back(static_cast<char>(t)); }

// The key ids of the encoder double as the key table's parent ids.
constexpr std::uint32_t no_key = key_table::inline_parent;
constexpr std::uint32_t root_key = key_table::root_parent;

// Returns the key's interned id, or no_key when it is stored inline. `parent` is the id of the key
// holding the map, or no_key / root_key.
std::uint32_t put_key(std::string& out, std::string_view key, std::uint32_t parent) {
  if (auto id = key_table::instance().intern(key, parent)) {
    put_varint(out, std::uint64_t{*id} + 1);
    return *id;
  }
  out.push_back('\0');
  put_varint(out, key.size());
  out.append(key);
  return no_key;
}

// Writes a container: tag, content length, count, then the content produced by `body`. The
// content is written in place after a maximal length slot and shifted left once its size is known.
template <class Body>
void put_container(std::string& out, tag t, std::size_t count, Body&& body) {
  put_tag(out, t);
  const std::size_t slot = out.size();
  constexpr std::size_t reserve = 10;
  out.append(reserve, '\0');
  const std::size_t content_start = out.size();
  put_varint(out, count);
  body();
  const std::size_t content = out.size() - content_start;
  std::string len;
  put_varint(len, content);
  out.replace(slot, reserve, len);
}

// One object's encoding. A string's position is (the key of the object that holds it, its own
// key); array elements take the position of the array.
struct encoder {
  std::string& out;
  value_table::session shared;

  void value(const boost::json::value& v, std::uint32_t context, std::uint32_t key) {
    switch (v.kind()) {
      case boost::json::kind::null: put_tag(out, tag::null); break;
      case boost::json::kind::bool_: put_tag(out, v.get_bool() ? tag::true_ : tag::false_); break;
      case boost::json::kind::int64: {
        put_tag(out, tag::int64);
        const std::int64_t i = v.get_int64();
        put_varint(out, (static_cast<std::uint64_t>(i) << 1) ^ static_cast<std::uint64_t>(i >> 63));
        break;
      }
      case boost::json::kind::uint64:
        put_tag(out, tag::uint64);
        put_varint(out, v.get_uint64());
        break;
      case boost::json::kind::double_: {
        put_tag(out, tag::double_);
        const double d = v.get_double();
        char bytes[8];
        std::memcpy(bytes, &d, 8);
        out.append(bytes, 8);
        break;
      }
      case boost::json::kind::string: {
        const std::string_view text = v.get_string();
        if (context != no_key && key != no_key) {
          if (auto id = shared.acquire((std::uint64_t{context} << 32) | key, text)) {
            put_tag(out, tag::shared_string);
            put_varint(out, *id);
            break;
          }
        }
        put_tag(out, tag::string);
        put_varint(out, text.size());
        out.append(text);
        break;
      }
      case boost::json::kind::array: {
        const auto& a = v.get_array();
        if (a.empty()) {
          put_tag(out, tag::empty_array);
          break;
        }
        put_container(out, tag::array, a.size(), [&] {
          for (const auto& e : a) value(e, context, key);
        });
        break;
      }
      case boost::json::kind::object: {
        const auto& o = v.get_object();
        if (o.empty()) {
          put_tag(out, tag::empty_object);
          break;
        }
        put_container(out, tag::object, o.size(), [&] {
          for (const auto& m : o) {
            const auto member = put_key(out, m.key(), key);
            value(m.value(), key, member);
          }
        });
        break;
      }
    }
  }
};

}  // namespace

void encode(const boost::json::value& v, std::string& out) {
  encoder e{out, value_table::session(value_table::instance())};
  e.value(v, no_key, root_key);
}

void release_shared(value_ref v) {
  std::vector<std::uint32_t> ids;
  auto collect = [&ids](auto& self, value_ref x) -> void {
    switch (x.type()) {
      case tag::shared_string: {
        const char* q = x.raw() + 1;
        ids.push_back(static_cast<std::uint32_t>(read_varint(q)));
        break;
      }
      case tag::array:
        x.for_each_element([&](value_ref e) {
          self(self, e);
          return true;
        });
        break;
      case tag::object:
        x.for_each_member([&](std::string_view, value_ref e) {
          self(self, e);
          return true;
        });
        break;
      default: break;
    }
  };
  collect(collect, v);
  value_table::instance().release(ids);
}

std::string_view value_ref::shared_text() const noexcept {
  const char* q = p_ + 1;
  return value_table::instance().lookup(static_cast<std::uint32_t>(read_varint(q)));
}

std::string_view value_ref::read_key(const char*& q) noexcept {
  const auto k = read_varint(q);
  if (k != 0) return key_table::instance().lookup(static_cast<std::uint32_t>(k - 1));
  // The length first: in `key(q, read_varint(q))` the order of the arguments is unspecified, and
  // clang reads `q` before the length moves it (found by list_page_fuzz).
  const auto size = static_cast<std::size_t>(read_varint(q));
  const std::string_view key(q, size);
  q += size;
  return key;
}

std::int64_t value_ref::as_int64() const noexcept {
  const char* q = p_ + 1;
  const auto z = read_varint(q);
  return static_cast<std::int64_t>((z >> 1) ^ (~(z & 1) + 1));
}

std::uint64_t value_ref::as_uint64() const noexcept {
  const char* q = p_ + 1;
  return read_varint(q);
}

double value_ref::as_double() const noexcept {
  double d;
  std::memcpy(&d, p_ + 1, 8);
  return d;
}

bool value_ref::to_int64(std::int64_t& out) const noexcept {
  if (type() == tag::int64) {
    out = as_int64();
    return true;
  }
  if (type() == tag::uint64 && as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    out = static_cast<std::int64_t>(as_uint64());
    return true;
  }
  return false;
}

const char* value_ref::end() const noexcept {
  const char* q = p_ + 1;
  switch (type()) {
    case tag::null:
    case tag::false_:
    case tag::true_:
    case tag::empty_array:
    case tag::empty_object: return q;
    case tag::int64:
    case tag::uint64:
    case tag::shared_string: read_varint(q); return q;
    case tag::double_: return q + 8;
    case tag::string:
    case tag::array:
    case tag::object: {
      const auto n = read_varint(q);
      return q + n;
    }
  }
  return q;
}

value_ref value_ref::find(std::string_view key) const noexcept {
  if (!is_object()) return {};
  value_ref found;
  for_each_member([&](std::string_view k, value_ref v) {
    if (k != key) return true;
    found = v;
    return false;
  });
  return found;
}

value_ref value_ref::at(std::size_t i) const noexcept {
  if (!is_array()) return {};
  value_ref found;
  std::size_t index = 0;
  for_each_element([&](value_ref v) {
    if (index++ != i) return true;
    found = v;
    return false;
  });
  return found;
}

boost::json::value decode(value_ref v, boost::json::storage_ptr sp) {
  switch (v.type()) {
    case tag::null: return boost::json::value(nullptr, sp);
    case tag::false_: return boost::json::value(false, sp);
    case tag::true_: return boost::json::value(true, sp);
    case tag::int64: return boost::json::value(v.as_int64(), sp);
    case tag::uint64: return boost::json::value(v.as_uint64(), sp);
    case tag::double_: return boost::json::value(v.as_double(), sp);
    case tag::string:
    case tag::shared_string: return boost::json::value(boost::json::string_view(v.as_string()), sp);
    case tag::empty_array: return boost::json::array(sp);
    case tag::empty_object: return boost::json::object(sp);
    case tag::array: {
      boost::json::array a(sp);
      a.reserve(v.size());
      v.for_each_element([&](value_ref e) {
        a.push_back(decode(e, sp));
        return true;
      });
      return a;
    }
    case tag::object: {
      boost::json::object o(sp);
      o.reserve(v.size());
      v.for_each_member([&](std::string_view k, value_ref e) {
        o.emplace(k, decode(e, sp));
        return true;
      });
      return o;
    }
  }
  return boost::json::value(nullptr, sp);
}

}  // namespace informer::detail::packed
