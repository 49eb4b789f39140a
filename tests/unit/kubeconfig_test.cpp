#include "informer/apiserver/kubeconfig.hpp"

#include <boost/test/unit_test.hpp>

#include "informer/apiserver/config.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include <unistd.h>

namespace fs = std::filesystem;
using informer::errc;
using informer::kubeconfig_options;
using informer::rest_config;

namespace {

struct pem_pair {
  std::string cert;
  std::string key;
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// A self-signed P-256 certificate and its key, as PEM.
pem_pair make_certificate(const std::string& common_name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, key, EVP_sha256());
  BIO* cert_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, x);
  BIO* key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  pem_pair out{bio_text(cert_bio), bio_text(key_bio)};
  BIO_free(cert_bio);
  BIO_free(key_bio);
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

std::string base64(const std::string& in) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  BOOST_TEST_REQUIRE(static_cast<bool>(out), "cannot write " << p);
}

// A fresh folder under $TMPDIR, removed at the end of the test; certificates made once.
struct fixture {
  fixture() {
    std::string pattern = (fs::temp_directory_path() / "kubeconfig-test-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    if (const char* k = std::getenv("KUBECONFIG")) saved_kubeconfig = k;
  }
  ~fixture() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
    if (saved_kubeconfig) {
      ::setenv("KUBECONFIG", saved_kubeconfig->c_str(), 1);
    } else {
      ::unsetenv("KUBECONFIG");
    }
  }

  static const pem_pair& ca() {
    static const pem_pair p = make_certificate("test-ca");
    return p;
  }
  static const pem_pair& client() {
    static const pem_pair p = make_certificate("test-client");
    return p;
  }

  fs::path dir;
  std::optional<std::string> saved_kubeconfig;
};

rest_config must_load(const kubeconfig_options& options) {
  auto r = informer::load_kubeconfig(options);
  BOOST_TEST_REQUIRE(r.has_value(), "load_kubeconfig failed: " << r.error().what());
  return *r;
}

informer::error must_fail(const kubeconfig_options& options) {
  auto r = informer::load_kubeconfig(options);
  BOOST_TEST_REQUIRE(r.has_error(), "load_kubeconfig should have failed");
  return r.error();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Two contexts over one cluster; `user_admin` and `cluster_extra` are spliced into the entries.
std::string two_contexts(const std::string& cluster_extra, const std::string& user_admin) {
  return "apiVersion: v1\nkind: Config\n"
         "clusters:\n"
         "- name: prod\n"
         "  cluster:\n"
         "    server: https://10.1.2.3:6443/k8s\n" +
         cluster_extra +
         "users:\n"
         "- name: admin\n"
         "  user:\n" +
         user_admin +
         "- name: viewer\n"
         "  user:\n"
         "    token: viewer-token\n"
         "contexts:\n"
         "- name: admin@prod\n"
         "  context:\n"
         "    cluster: prod\n"
         "    user: admin\n"
         "    namespace: team-a\n"
         "- name: viewer@prod\n"
         "  context:\n"
         "    cluster: prod\n"
         "    user: viewer\n"
         "current-context: admin@prod\n";
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(kubeconfig, fixture)

BOOST_AUTO_TEST_CASE(data_variants_are_decoded_and_checked) {
  const auto file = dir / "config";
  write(file, two_contexts("    certificate-authority-data: " + base64(ca().cert) +
                               "\n    tls-server-name: kubernetes.default.svc\n",
                           "    client-certificate-data: " + base64(client().cert) +
                               "\n    client-key-data: " + base64(client().key) + "\n    token: admin-token\n"));
  const auto c = must_load({.files = {file}});
  BOOST_TEST(c.server == "https://10.1.2.3:6443/k8s");
  BOOST_TEST(c.tls.ca_data == ca().cert);
  BOOST_TEST(c.tls.ca_file.empty());
  BOOST_TEST(c.tls.cert_data == client().cert);
  BOOST_TEST(c.tls.key_data == client().key);
  BOOST_TEST(c.tls.server_name == "kubernetes.default.svc");
  BOOST_TEST(!c.tls.insecure_skip_tls_verify);
  BOOST_TEST(c.bearer_token == "admin-token");
  BOOST_TEST(c.default_namespace == "team-a");
}

BOOST_AUTO_TEST_CASE(file_variants_resolve_against_the_kubeconfig_folder) {
  write(dir / "kube" / "pki" / "ca.crt", ca().cert);
  write(dir / "kube" / "pki" / "client.crt", client().cert);
  write(dir / "client.key", client().key);
  write(dir / "kube" / "token", "  file-token\n");
  const auto file = dir / "kube" / "config";
  write(file, two_contexts("    certificate-authority: pki/ca.crt\n",
                           "    client-certificate: pki/client.crt\n    client-key: " + (dir / "client.key").string() +
                               "\n    tokenFile: token\n"));
  const auto c = must_load({.files = {file}});
  BOOST_TEST(c.tls.ca_file == dir / "kube" / "pki" / "ca.crt");
  BOOST_TEST(c.tls.cert_file == dir / "kube" / "pki" / "client.crt");
  BOOST_TEST(c.tls.key_file == dir / "client.key");  // absolute stays as written
  BOOST_TEST(c.bearer_token_file == dir / "kube" / "token");
  informer::token_source tokens({.file = c.bearer_token_file});
  auto t = tokens.token();
  BOOST_TEST_REQUIRE(t.has_value());
  BOOST_TEST(*t == "file-token");  // trimmed
}

BOOST_AUTO_TEST_CASE(context_override_and_unknown_names) {
  const auto file = dir / "config";
  write(file, two_contexts("    insecure-skip-tls-verify: true\n", "    token: admin-token\n"));
  const auto viewer = must_load({.files = {file}, .context = "viewer@prod"});
  BOOST_TEST(viewer.bearer_token == "viewer-token");
  BOOST_TEST(viewer.default_namespace.empty());
  BOOST_TEST(viewer.tls.insecure_skip_tls_verify);

  const auto e = must_fail({.files = {file}, .context = "nope"});
  BOOST_TEST(e.code() == make_error_code(errc::not_found));
  BOOST_TEST(contains(e.detail(), "context \"nope\" not found"), e.detail());
  BOOST_TEST(contains(e.detail(), "admin@prod, viewer@prod"), e.detail());
  BOOST_TEST(contains(e.detail(), file.string()), e.detail());

  write(file,
        "clusters: []\nusers: []\ncontexts:\n- name: c\n  context:\n    cluster: gone\n    user: u\n"
        "current-context: c\n");
  const auto no_cluster = must_fail({.files = {file}});
  BOOST_TEST(no_cluster.code() == make_error_code(errc::not_found));
  BOOST_TEST(contains(no_cluster.detail(), "cluster \"gone\" of context \"c\" not found"), no_cluster.detail());

  write(file,
        "clusters:\n- name: k\n  cluster:\n    server: https://k:443\n    insecure-skip-tls-verify: true\n"
        "contexts:\n- name: c\n  context:\n    cluster: k\n    user: ghost\ncurrent-context: c\n");
  const auto no_user = must_fail({.files = {file}});
  BOOST_TEST(no_user.code() == make_error_code(errc::not_found));
  BOOST_TEST(contains(no_user.detail(), "user \"ghost\" of context \"c\" not found"), no_user.detail());

  write(file, "clusters: []\ncontexts: []\n");
  const auto no_current = must_fail({.files = {file}});
  BOOST_TEST(no_current.code() == make_error_code(errc::not_found));
  BOOST_TEST(contains(no_current.detail(), "no current-context"), no_current.detail());
}

BOOST_AUTO_TEST_CASE(missing_and_unreadable_files) {
  const auto e = must_fail({.files = {dir / "absent"}});
  BOOST_TEST(e.code() == make_error_code(boost::system::errc::no_such_file_or_directory));
  BOOST_TEST(contains(e.detail(), (dir / "absent").string()), e.detail());

  const auto file = dir / "config";
  write(file, two_contexts("    certificate-authority: missing-ca.crt\n", "    token: t\n"));
  const auto ca = must_fail({.files = {file}});
  BOOST_TEST(ca.code() == make_error_code(boost::system::errc::no_such_file_or_directory));
  BOOST_TEST(contains(ca.detail(), (dir / "missing-ca.crt").string()), ca.detail());
  BOOST_TEST(contains(ca.detail(), "clusters[\"prod\"]"), ca.detail());

  write(file, two_contexts("    insecure-skip-tls-verify: true\n", "    tokenFile: no-token\n"));
  const auto token = must_fail({.files = {file}});
  BOOST_TEST(token.code() == make_error_code(boost::system::errc::no_such_file_or_directory));
  BOOST_TEST(contains(token.detail(), "tokenFile"), token.detail());

  write(file, "clusters: [unclosed\n");
  const auto yaml = must_fail({.files = {file}});
  BOOST_TEST(yaml.code() == make_error_code(errc::invalid_config));
  BOOST_TEST(contains(yaml.detail(), "not valid YAML"), yaml.detail());
}

BOOST_AUTO_TEST_CASE(bad_base64_and_bad_certificates) {
  const auto file = dir / "config";
  write(file, two_contexts("    certificate-authority-data: bm90!!base64\n", "    token: t\n"));
  auto e = must_fail({.files = {file}});
  BOOST_TEST(e.code() == make_error_code(errc::invalid_config));
  BOOST_TEST(contains(e.detail(), "certificate-authority-data: invalid base64"), e.detail());
  BOOST_TEST(contains(e.detail(), "clusters[\"prod\"]"), e.detail());

  write(file, two_contexts("    certificate-authority-data: " + base64("not a certificate") + "\n", "    token: t\n"));
  e = must_fail({.files = {file}});
  BOOST_TEST(e.code() == make_error_code(errc::invalid_config));
  BOOST_TEST(contains(e.detail(), "no PEM certificate"), e.detail());

  const auto other = make_certificate("other");
  write(file,
        two_contexts("    insecure-skip-tls-verify: true\n", "    client-certificate-data: " + base64(client().cert) +
                                                                 "\n    client-key-data: " + base64(other.key) + "\n"));
  e = must_fail({.files = {file}});
  BOOST_TEST(e.code() == make_error_code(errc::invalid_config));
  BOOST_TEST(contains(e.detail(), "does not match"), e.detail());

  write(file, two_contexts("    insecure-skip-tls-verify: true\n",
                           "    client-certificate-data: " + base64(client().cert) + "\n"));
  e = must_fail({.files = {file}});
  BOOST_TEST(contains(e.detail(), "without a client key"), e.detail());

  write(file,
        two_contexts("    insecure-skip-tls-verify: true\n    certificate-authority-data: " + base64(ca().cert) + "\n",
                     "    token: t\n"));
  e = must_fail({.files = {file}});
  BOOST_TEST(contains(e.detail(), "insecure_skip_tls_verify together with a CA"), e.detail());
}

BOOST_AUTO_TEST_CASE(base64_wrapped_and_unpadded) {
  // A YAML block scalar with the base64 text wrapped every 60 characters and its padding dropped.
  std::string encoded = base64(ca().cert);
  while (!encoded.empty() && encoded.back() == '=') encoded.pop_back();
  std::string block = "    certificate-authority-data: |\n";
  for (std::size_t at = 0; at < encoded.size(); at += 60) block += "      " + encoded.substr(at, 60) + "\n";
  auto c = informer::parse_kubeconfig(two_contexts(block, "    token: t\n"), dir);
  BOOST_TEST_REQUIRE(c.has_value(), c.error().what());
  BOOST_TEST(c->tls.ca_data == ca().cert);
}

BOOST_AUTO_TEST_CASE(unsupported_credentials_are_refused) {
  auto c = informer::parse_kubeconfig(
      two_contexts("    insecure-skip-tls-verify: true\n", "    exec:\n      command: gke-gcloud-auth-plugin\n"), dir);
  BOOST_TEST_REQUIRE(c.has_error());
  BOOST_TEST(c.error().code() == make_error_code(errc::invalid_config));
  BOOST_TEST(contains(c.error().detail(), "exec"), c.error().detail());
}

BOOST_AUTO_TEST_CASE(impersonation_is_read) {
  auto c = informer::parse_kubeconfig(
      two_contexts("    insecure-skip-tls-verify: true\n",
                   "    token: t\n    as: jane\n    as-uid: \"1234\"\n    as-groups: [dev, ops]\n"
                   "    as-user-extra:\n      reason: [on call]\n      scopes.example.com/x: [a, b]\n"),
      dir);
  BOOST_TEST_REQUIRE(c.has_value(), c.error().what());
  BOOST_TEST(c->impersonate.user == "jane");
  BOOST_TEST(c->impersonate.uid == "1234");
  BOOST_TEST(c->impersonate.groups == (std::vector<std::string>{"dev", "ops"}), boost::test_tools::per_element());
  BOOST_TEST(c->impersonate.extra.size() == 2u);
  BOOST_TEST(c->impersonate.extra.at("reason") == (std::vector<std::string>{"on call"}),
             boost::test_tools::per_element());
  BOOST_TEST(c->impersonate.extra.at("scopes.example.com/x") == (std::vector<std::string>{"a", "b"}),
             boost::test_tools::per_element());

  auto bad = informer::parse_kubeconfig(
      two_contexts("    insecure-skip-tls-verify: true\n", "    token: t\n    as: jane\n    as-groups: dev\n"), dir);
  BOOST_TEST_REQUIRE(bad.has_error());
  BOOST_TEST(contains(bad.error().detail(), "as-groups"), bad.error().detail());
  auto bad_key = informer::parse_kubeconfig(
      two_contexts("    insecure-skip-tls-verify: true\n", "    as: jane\n    as-user-extra:\n      [a]: [b]\n"), dir);
  BOOST_TEST_REQUIRE(bad_key.has_error());
  BOOST_TEST(contains(bad_key.error().detail(), "as-user-extra"), bad_key.error().detail());
}

BOOST_AUTO_TEST_CASE(proxy_url_is_read_and_checked) {
  auto c = informer::parse_kubeconfig(
      two_contexts("    insecure-skip-tls-verify: true\n    proxy-url: http://bob:pw@proxy.corp:3128\n",
                   "    token: t\n"),
      dir);
  BOOST_TEST_REQUIRE(c.has_value(), c.error().what());
  BOOST_TEST(c->proxy.url == "http://bob:pw@proxy.corp:3128");
  BOOST_TEST(c->proxy.from_environment);

  auto none = informer::parse_kubeconfig(two_contexts("    insecure-skip-tls-verify: true\n", "    token: t\n"), dir);
  BOOST_TEST_REQUIRE(none.has_value(), none.error().what());
  BOOST_TEST(none->proxy.url.empty());
  BOOST_TEST(none->proxy.from_environment);  // client-go's default: the environment's proxy

  for (const char* url : {"socks5://bob:hunter2@proxy.corp:1080", "https://proxy.corp", "proxy.corp:3128"}) {
    auto bad = informer::parse_kubeconfig(
        two_contexts("    insecure-skip-tls-verify: true\n    proxy-url: " + std::string{url} + "\n", "    token: t\n"),
        dir);
    BOOST_TEST_REQUIRE(bad.has_error(), url);
    BOOST_TEST(bad.error().code() == make_error_code(errc::invalid_config), url);
    BOOST_TEST(contains(bad.error().detail(), "clusters[\"prod\"].proxy-url"), bad.error().detail());
    BOOST_TEST(!contains(bad.error().detail(), "hunter2"), bad.error().detail());
  }
}

// Found by tests/fuzz/kubeconfig_fuzz: a user entry whose body key is misspelt ("user:*") has no
// body at all; reading it threw from yaml-cpp instead of building a config without credentials.
BOOST_AUTO_TEST_CASE(a_user_without_a_body_is_no_crash) {
  const std::string text =
      "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:6443\n"
      "    insecure-skip-tls-verify: true\nusers:\n- name: admin\n  user:*    token: abc.def\n"
      "contexts:\n- name: ctx\n  context: {cluster: local, user: admin, namespace: team-a}\ncurrent-context: ctx\n";
  auto c = informer::parse_kubeconfig(text, dir);
  BOOST_TEST_REQUIRE(c.has_value(), c.error().what());
  BOOST_TEST(c->bearer_token.empty());
  BOOST_TEST(c->default_namespace == "team-a");
}

BOOST_AUTO_TEST_CASE(kubeconfig_variable_skips_missing_files_and_merges) {
  // a.yaml: the cluster and a context, and current-context; b.yaml: the user, and a cluster of the
  // same name that must lose against a.yaml's.
  write(dir / "a.yaml",
        "clusters:\n- name: k\n  cluster:\n    server: https://first:6443\n    insecure-skip-tls-verify: true\n"
        "contexts:\n- name: dev\n  context:\n    cluster: k\n    user: me\n    namespace: dev\n"
        "current-context: dev\n");
  write(dir / "b.yaml",
        "clusters:\n- name: k\n  cluster:\n    server: https://second:6443\n"
        "users:\n- name: me\n  user:\n    token: merged-token\n"
        "current-context: other\n");
  ::setenv(
      "KUBECONFIG",
      ((dir / "missing.yaml").string() + ":" + (dir / "a.yaml").string() + "::" + (dir / "b.yaml").string()).c_str(),
      1);
  const auto c = must_load({});
  BOOST_TEST(c.server == "https://first:6443");
  BOOST_TEST(c.bearer_token == "merged-token");
  BOOST_TEST(c.default_namespace == "dev");

  auto d = informer::load_default_config();
  BOOST_TEST_REQUIRE(d.has_value(), d.error().what());
  BOOST_TEST(d->server == "https://first:6443");

  ::setenv("KUBECONFIG", (dir / "none.yaml").string().c_str(), 1);
  const auto e = must_fail({});
  BOOST_TEST(e.code() == make_error_code(errc::not_found));
  BOOST_TEST(contains(e.detail(), (dir / "none.yaml").string()), e.detail());
}

BOOST_AUTO_TEST_CASE(in_cluster_config_from_a_service_account_folder) {
  const auto root = dir / "serviceaccount";
  write(root / "token", "sa-token-1\n");
  write(root / "ca.crt", ca().cert);
  write(root / "namespace", "payments\n");
  auto c = informer::load_in_cluster_config({.root = root, .host = "10.0.0.1", .port = "443"});
  BOOST_TEST_REQUIRE(c.has_value(), c.error().what());
  BOOST_TEST(c->server == "https://10.0.0.1:443");
  BOOST_TEST(c->bearer_token_file == root / "token");
  BOOST_TEST(c->tls.ca_file == root / "ca.crt");
  BOOST_TEST(c->default_namespace == "payments");

  c = informer::load_in_cluster_config({.root = root, .host = "fd00::1", .port = "6443"});
  BOOST_TEST_REQUIRE(c.has_value(), c.error().what());
  BOOST_TEST(c->server == "https://[fd00::1]:6443");

  fs::remove(root / "namespace");
  ::setenv("KUBERNETES_SERVICE_HOST", "10.0.0.9", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "8443", 1);
  c = informer::load_in_cluster_config({.root = root});
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  BOOST_TEST_REQUIRE(c.has_value(), c.error().what());
  BOOST_TEST(c->server == "https://10.0.0.9:8443");
  BOOST_TEST(c->default_namespace == "default");

  c = informer::load_in_cluster_config({.root = root});
  BOOST_TEST_REQUIRE(c.has_error());
  BOOST_TEST(c.error().code() == make_error_code(errc::not_found));
  BOOST_TEST(contains(c.error().detail(), "KUBERNETES_SERVICE_HOST"), c.error().detail());

  fs::remove(root / "token");
  c = informer::load_in_cluster_config({.root = root, .host = "10.0.0.1", .port = "443"});
  BOOST_TEST_REQUIRE(c.has_error());
  BOOST_TEST(c.error().code() == make_error_code(boost::system::errc::no_such_file_or_directory));
  BOOST_TEST(contains(c.error().detail(), (root / "token").string()), c.error().detail());
}

BOOST_AUTO_TEST_CASE(token_file_rotation) {
  using namespace std::chrono_literals;
  const auto file = dir / "token";
  write(file, "one\n");
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  informer::token_source tokens({.file = file, .check_interval = 1min, .now = [&] { return now; }});
  BOOST_TEST(tokens.token().value() == "one");

  write(file, "two-rotated\n");
  BOOST_TEST(tokens.token().value() == "one");  // not checked again yet
  now += 61s;
  BOOST_TEST(tokens.token().value() == "two-rotated");

  // The kubelet's way: a new file swapped in by renaming a symlink; invalidate() (after a 401)
  // checks at once.
  write(dir / "data-1" / "token", "three\n");
  fs::create_symlink(dir / "data-1" / "token", dir / "link.tmp");
  fs::rename(dir / "link.tmp", file);
  BOOST_TEST(tokens.token().value() == "two-rotated");
  tokens.invalidate();
  BOOST_TEST(tokens.token().value() == "three");

  // A file that vanishes while being replaced keeps the last good token.
  fs::remove(file);
  tokens.invalidate();
  BOOST_TEST(tokens.token().value() == "three");

  informer::token_source never_read({.file = dir / "absent"});
  auto e = never_read.token();
  BOOST_TEST_REQUIRE(e.has_error());
  BOOST_TEST(e.error().code() == make_error_code(boost::system::errc::no_such_file_or_directory));

  informer::token_source fixed({.token = "static"});
  BOOST_TEST(fixed.token().value() == "static");
}

BOOST_AUTO_TEST_SUITE_END()
