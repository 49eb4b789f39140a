#include "informer/codec/protobuf.hpp"

#include "codec/detail/wire.hpp"

#include <cstdio>

namespace informer::codec {
namespace {

constexpr std::string_view encrypted_prefix = "k8s:enc:";

std::string hex_prefix(std::string_view bytes) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < 8; ++i) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(static_cast<std::uint8_t>(bytes[i])));
    if (i > 0) {
      out += ' ';
    }
    out += buf;
  }
  return out;
}

error missing_magic(std::string_view bytes) {
  if (bytes.starts_with(encrypted_prefix)) {
    const auto rest = bytes.substr(encrypted_prefix.size());
    const auto provider = rest.substr(0, std::min(rest.find(':'), std::size_t{64}));
    return {make_error_code(errc::encrypted),
            "the value starts with \"k8s:enc:" + std::string(provider) +
                ":\": it was encrypted at rest by kube-apiserver and only the server's key can read it"};
  }
  if (!bytes.empty() && bytes.size() < protobuf_magic.size() && protobuf_magic.starts_with(bytes)) {
    return {make_error_code(errc::truncated), "only " + std::to_string(bytes.size()) + " of the 4 bytes of \"k8s\\0\""};
  }
  const auto first = bytes.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && (bytes[first] == '{' || bytes[first] == '[')) {
    return {make_error_code(errc::not_protobuf),
            "the bytes start with '" + std::string(1, bytes[first]) +
                "': this is JSON, not the k8s\\0 protobuf envelope (custom resources are stored as JSON)"};
  }
  return {make_error_code(errc::not_protobuf), bytes.empty()
                                                   ? std::string("no bytes at all, expected \"k8s\\0\"")
                                                   : "expected the 4 bytes \"k8s\\0\", found " + hex_prefix(bytes)};
}

void append_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void append_bytes_field(std::string& out, std::uint32_t number, std::string_view bytes) {
  append_varint(out, (std::uint64_t{number} << 3) | 2);
  append_varint(out, bytes.size());
  out.append(bytes);
}

bool read_string(const detail::wire_field& f, std::string_view& out, detail::decode_context& ctx) {
  if (!detail::expect_wire_type(f, detail::wire_type::length_delimited, ctx)) {
    return false;
  }
  out = f.bytes;
  return true;
}

bool parse_type_meta(std::string_view bytes, envelope& env, detail::decode_context& ctx) {
  detail::path_segment segment(ctx, "typeMeta");
  detail::wire_reader reader(bytes);
  detail::wire_field f;
  while (!reader.done()) {
    if (!reader.next(f, ctx)) {
      return false;
    }
    if (f.number == 1 && !read_string(f, env.api_version, ctx)) {
      return false;
    }
    if (f.number == 2 && !read_string(f, env.kind, ctx)) {
      return false;
    }
  }
  return true;
}

}  // namespace

detailed_result<envelope> unwrap_envelope(std::string_view bytes) {
  if (!bytes.starts_with(protobuf_magic)) {
    return missing_magic(bytes);
  }
  detail::decode_context ctx;
  detail::path_segment segment(ctx, "runtime.Unknown");
  envelope env;
  detail::wire_reader reader(bytes.substr(protobuf_magic.size()));
  detail::wire_field f;
  bool ok = true;
  while (ok && !reader.done()) {
    ok = reader.next(f, ctx);
    if (!ok) {
      break;
    }
    switch (f.number) {
      case 1:
        ok =
            detail::expect_wire_type(f, detail::wire_type::length_delimited, ctx) && parse_type_meta(f.bytes, env, ctx);
        break;
      case 2: ok = read_string(f, env.raw, ctx); break;
      case 3: ok = read_string(f, env.content_encoding, ctx); break;
      case 4: ok = read_string(f, env.content_type, ctx); break;
      default: break;  // unknown fields are skipped, as protobuf does
    }
  }
  if (!ok) {
    return ctx.failure();
  }
  return env;
}

std::string wrap_envelope(const envelope& env) {
  std::string type_meta;
  append_bytes_field(type_meta, 1, env.api_version);
  append_bytes_field(type_meta, 2, env.kind);
  std::string out(protobuf_magic);
  out.reserve(out.size() + type_meta.size() + env.raw.size() + env.content_encoding.size() + env.content_type.size() +
              24);
  append_bytes_field(out, 1, type_meta);
  append_bytes_field(out, 2, env.raw);
  append_bytes_field(out, 3, env.content_encoding);
  append_bytes_field(out, 4, env.content_type);
  return out;
}

}  // namespace informer::codec
