#include "informer/apiserver/config.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>

#include <sys/stat.h>

namespace informer {
namespace {

struct bio_free {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct x509_free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct pkey_free {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};

// The reason OpenSSL queued for the last failure (and an empty queue afterwards).
std::string openssl_reason() {
  std::string reason;
  while (const unsigned long e = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    reason = text;  // the last entry is the most specific
  }
  return reason.empty() ? std::string{"no PEM data found"} : reason;
}

std::unique_ptr<BIO, bio_free> memory_bio(const std::string& text) {
  return std::unique_ptr<BIO, bio_free>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Never prompts on a terminal for an encrypted key's passphrase: such keys are refused.
int no_passphrase(char*, int, int, void*) { return 0; }

informer::error invalid(std::string detail) { return {errc::invalid_config, std::move(detail)}; }

// "ca_data" or "ca_file /path": where a PEM text came from, for error messages.
std::string origin(std::string_view field, const std::filesystem::path& file, const std::string& data) {
  if (!data.empty()) return std::string{field} + "_data";
  return std::string{field} + "_file " + file.string();
}

detailed_result<std::string> pem_text(std::string_view field, const std::filesystem::path& file,
                                      const std::string& data) {
  if (!data.empty()) return data;
  if (file.empty()) return std::string{};
  return read_config_file(file, field);
}

}  // namespace

detailed_result<std::string> read_config_file(const std::filesystem::path& path, std::string_view what) {
  const auto fail = [&](int err) {
    return informer::error{error_code(err, boost::system::generic_category()),
                           "cannot read " + std::string{what} + " " + path.string()};
  };
  std::error_code dir_ec;
  if (std::filesystem::is_directory(path, dir_ec)) return fail(EISDIR);
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(errno != 0 ? errno : ENOENT);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail(EIO);
  return std::move(text).str();
}

detailed_result<tls_pem> load_tls_pem(const tls_config& tls) {
  tls_pem pem;
  auto ca = pem_text("ca", tls.ca_file, tls.ca_data);
  if (!ca) return ca.error();
  auto cert = pem_text("cert", tls.cert_file, tls.cert_data);
  if (!cert) return cert.error();
  auto key = pem_text("key", tls.key_file, tls.key_data);
  if (!key) return key.error();
  pem.ca = std::move(*ca);
  pem.cert = std::move(*cert);
  pem.key = std::move(*key);

  if (tls.insecure_skip_tls_verify && !pem.ca.empty()) {
    return invalid("insecure_skip_tls_verify together with a CA (" + origin("ca", tls.ca_file, tls.ca_data) +
                   "): set one of the two");
  }
  ERR_clear_error();
  if (!pem.ca.empty()) {
    auto bio = memory_bio(pem.ca);
    int count = 0;
    while (std::unique_ptr<X509, x509_free> x{PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)}) {
      ++count;
    }
    if (count == 0) {
      return invalid(origin("ca", tls.ca_file, tls.ca_data) + ": no PEM certificate (" + openssl_reason() + ")");
    }
    ERR_clear_error();  // the loop ends on a "no start line" entry
  }
  if (pem.cert.empty() != pem.key.empty()) {
    return invalid(pem.cert.empty() ? origin("key", tls.key_file, tls.key_data) + " without a client certificate"
                                    : origin("cert", tls.cert_file, tls.cert_data) + " without a client key");
  }
  if (!pem.cert.empty()) {
    auto cert_bio = memory_bio(pem.cert);
    std::unique_ptr<X509, x509_free> x{PEM_read_bio_X509(cert_bio.get(), nullptr, no_passphrase, nullptr)};
    if (!x) {
      return invalid(origin("cert", tls.cert_file, tls.cert_data) + ": not a PEM certificate (" + openssl_reason() +
                     ")");
    }
    auto key_bio = memory_bio(pem.key);
    std::unique_ptr<EVP_PKEY, pkey_free> k{PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr)};
    if (!k) {
      return invalid(origin("key", tls.key_file, tls.key_data) + ": not an unencrypted PEM private key (" +
                     openssl_reason() + ")");
    }
    if (X509_check_private_key(x.get(), k.get()) != 1) {
      return invalid(origin("key", tls.key_file, tls.key_data) + " does not match " +
                     origin("cert", tls.cert_file, tls.cert_data) + " (" + openssl_reason() + ")");
    }
  }
  return pem;
}

token_source::token_source(token_source_options options) : options_(std::move(options)) {}

detailed_result<std::string> token_source::token() {
  if (options_.file.empty()) return options_.token;
  const auto now = options_.now ? options_.now() : std::chrono::steady_clock::now();
  informer::lock_guard lock(mu_);
  if (loaded_ && now < next_check_) return token_;
  return refresh_locked(now);
}

void token_source::invalidate() {
  informer::lock_guard lock(mu_);
  next_check_ = {};
}

detailed_result<std::string> token_source::refresh_locked(std::chrono::steady_clock::time_point now) {
  next_check_ = now + options_.check_interval;
  struct ::stat st {};
  if (::stat(options_.file.c_str(), &st) != 0) {
    if (loaded_) return token_;  // keep the last good token while the file is being replaced
    return informer::error{error_code(errno, boost::system::generic_category()),
                           "cannot read bearer token file " + options_.file.string()};
  }
  const file_id id{.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                   .size = static_cast<std::uint64_t>(st.st_size),
                   .inode = static_cast<std::uint64_t>(st.st_ino)};
  if (loaded_ && id == id_) return token_;
  auto text = read_config_file(options_.file, "bearer token file");
  if (!text) {
    if (loaded_) return token_;
    return text.error();
  }
  std::string& t = *text;
  const auto first = t.find_first_not_of(" \t\r\n");
  const auto last = t.find_last_not_of(" \t\r\n");
  token_ = first == std::string::npos ? std::string{} : t.substr(first, last - first + 1);
  id_ = id;
  loaded_ = true;
  return token_;
}

}  // namespace informer
