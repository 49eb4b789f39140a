// Standard base64 with padding (RFC 4648 section 4), through OpenSSL: the Basic credentials sent
// to a proxy, the CA data handed to an exec plugin.
//
// Thread safety: a pure function.
#pragma once

#include <openssl/evp.h>

#include <string>
#include <string_view>

namespace informer::detail {

inline std::string encode_base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');  // EVP_EncodeBlock adds a NUL
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace informer::detail
