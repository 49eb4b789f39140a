#include "informer/apiserver/kubeconfig.hpp"

#include "apiserver/detail/proxy.hpp"

#include <boost/json.hpp>
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <system_error>

namespace informer {
namespace {

namespace fs = std::filesystem;

informer::error invalid(std::string detail) { return {errc::invalid_config, std::move(detail)}; }
informer::error missing(std::string detail) { return {errc::not_found, std::move(detail)}; }

std::string quote_name(std::string_view s) { return "\"" + std::string{s} + "\""; }

// Standard base64 (RFC 4648 section 4), as Go decodes []byte fields of a kubeconfig. Whitespace
// (line breaks of a wrapped value) is skipped; padding may be omitted.
detailed_result<std::string> decode_base64(std::string_view text, const std::string& where) {
  static constexpr auto table = [] {
    std::array<signed char, 256> t{};
    t.fill(-1);
    constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (std::size_t i = 0; i < alphabet.size(); ++i)
      t[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
    return t;
  }();
  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::uint32_t bits = 0;
  int count = 0;  // sextets in `bits`
  std::size_t padding = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const int v = table[static_cast<unsigned char>(c)];
    if (v < 0 || padding > 0) {
      return invalid(where + ": invalid base64 (" +
                     (padding > 0 ? std::string{"data after padding"} : "character '" + std::string(1, c) + "'") +
                     " at offset " + std::to_string(i) + ")");
    }
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    if (++count == 4) {
      out += static_cast<char>((bits >> 16) & 0xff);
      out += static_cast<char>((bits >> 8) & 0xff);
      out += static_cast<char>(bits & 0xff);
      bits = 0;
      count = 0;
    }
  }
  if (count == 1 || padding > 2 || (padding > 0 && count + padding != 4)) {
    return invalid(where + ": invalid base64 (truncated: " + std::to_string(text.size()) + " characters)");
  }
  if (count == 2) {
    out += static_cast<char>((bits >> 4) & 0xff);
  } else if (count == 3) {
    out += static_cast<char>((bits >> 10) & 0xff);
    out += static_cast<char>((bits >> 2) & 0xff);
  }
  return out;
}

// One named cluster, user or context, with the place it came from (for relative paths and errors).
struct entry {
  YAML::Node body;    // the `cluster:`/`user:`/`context:` map (may be null)
  fs::path base_dir;  // folder of the kubeconfig that defined it
  std::string where;  // e.g. `/home/me/.kube/config: users["admin"]`
};

struct merged_config {
  std::map<std::string, entry> clusters;
  std::map<std::string, entry> users;
  std::map<std::string, entry> contexts;
  std::string current_context;
  std::vector<std::string> sources;

  std::string source_list() const {
    std::string s;
    for (const auto& src : sources) s += (s.empty() ? "" : ", ") + src;
    return s;
  }
};

std::string known_names(const std::map<std::string, entry>& m) {
  if (m.empty()) return "none defined";
  std::string s = "known: ";
  bool first = true;
  for (const auto& [name, _] : m) {
    s += (first ? "" : ", ") + name;
    first = false;
  }
  return s;
}

// A string field of a map; nullopt when absent or null. Errors for a non-scalar value.
detailed_result<std::optional<std::string>> string_field(const YAML::Node& map, const char* key,
                                                         const std::string& where) {
  if (!map || !map.IsMap()) return std::optional<std::string>{};
  const YAML::Node v = map[key];
  if (!v || v.IsNull()) return std::optional<std::string>{};
  if (!v.IsScalar()) return invalid(where + "." + key + ": expected a string");
  return std::optional<std::string>{v.Scalar()};
}

// A list of strings; empty when absent or null.
detailed_result<std::vector<std::string>> string_list_field(const YAML::Node& map, const char* key,
                                                            const std::string& where) {
  std::vector<std::string> out;
  if (!map || !map.IsMap()) return out;
  const YAML::Node v = map[key];
  if (!v || v.IsNull()) return out;
  if (!v.IsSequence()) return invalid(where + "." + key + ": expected a list of strings");
  for (const auto& item : v) {
    if (!item.IsScalar()) return invalid(where + "." + key + ": expected a list of strings");
    out.push_back(item.Scalar());
  }
  return out;
}

detailed_result<bool> bool_field(const YAML::Node& map, const char* key, const std::string& where) {
  if (!map || !map.IsMap()) return false;
  const YAML::Node v = map[key];
  if (!v || v.IsNull()) return false;
  bool b = false;
  if (!v.IsScalar() || !YAML::convert<bool>::decode(v, b)) {
    return detailed_result<bool>(boost::system::in_place_error,
                                 invalid(where + "." + key + ": expected true or false"));
  }
  return b;
}

// Adds the named entries of `list` (clusters, users or contexts) that are not defined yet.
informer::error merge_list(const YAML::Node& root, const char* list, const char* body_key, const fs::path& base_dir,
                           const std::string& source, std::map<std::string, entry>& into) {
  const YAML::Node items = root[list];
  if (!items || items.IsNull()) return {};
  if (!items.IsSequence()) return invalid(source + ": " + list + " must be a list");
  std::size_t index = 0;
  for (const auto& item : items) {
    const std::string at = source + ": " + list + "[" + std::to_string(index++) + "]";
    if (!item.IsMap()) return invalid(at + " must be a map with name and " + body_key);
    auto name = string_field(item, "name", at);
    if (!name) return name.error();
    if (!*name || (*name)->empty()) return invalid(at + " has no name");
    const YAML::Node body = item[body_key];
    if (body && !body.IsNull() && !body.IsMap()) return invalid(at + "." + body_key + " must be a map");
    into.try_emplace(**name, entry{body, base_dir, source + ": " + list + "[" + quote_name(**name) + "]"});
  }
  return {};
}

informer::error merge_text(std::string_view yaml, const fs::path& base_dir, const std::string& source,
                           merged_config& into) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string{yaml});
  } catch (const YAML::Exception& e) {
    return invalid(source + ": not valid YAML: " + e.what());
  }
  into.sources.push_back(source);
  if (!root || root.IsNull()) return {};  // an empty file defines nothing
  if (!root.IsMap()) return invalid(source + ": a kubeconfig must be a YAML map");
  if (auto e = merge_list(root, "clusters", "cluster", base_dir, source, into.clusters)) return e;
  if (auto e = merge_list(root, "users", "user", base_dir, source, into.users)) return e;
  if (auto e = merge_list(root, "contexts", "context", base_dir, source, into.contexts)) return e;
  auto current = string_field(root, "current-context", source);
  if (!current) return current.error();
  if (into.current_context.empty() && *current) into.current_context = **current;
  return {};
}

fs::path resolve(const fs::path& base_dir, const std::string& file) {
  const fs::path p{file};
  return p.is_relative() ? base_dir / p : p;
}

// `<key>-data` (base64) into `data`, else `<key>` (a path) into `file`.
informer::error file_or_data(const entry& e, const std::string& key, fs::path& file, std::string& data) {
  const std::string data_key = key + "-data";
  auto d = string_field(e.body, data_key.c_str(), e.where);
  if (!d) return d.error();
  if (*d && !(*d)->empty()) {
    auto decoded = decode_base64(**d, e.where + "." + data_key);
    if (!decoded) return decoded.error();
    data = std::move(*decoded);
    return {};
  }
  auto f = string_field(e.body, key.c_str(), e.where);
  if (!f) return f.error();
  if (*f && !(*f)->empty()) file = resolve(e.base_dir, **f);
  return {};
}

// A YAML node as JSON, its scalars typed as YAML 1.1 resolves plain ones (as kubectl reads an
// extension): quoted text stays a string.
boost::json::value yaml_to_json(const YAML::Node& n) {
  if (!n || n.IsNull()) return nullptr;
  if (n.IsSequence()) {
    boost::json::array a;
    for (const auto& item : n) a.push_back(yaml_to_json(item));
    return a;
  }
  if (n.IsMap()) {
    boost::json::object o;
    for (const auto& item : n) o[item.first.Scalar()] = yaml_to_json(item.second);
    return o;
  }
  const std::string& text = n.Scalar();
  if (n.Tag() == "!") return boost::json::string{text};
  bool b = false;
  if (YAML::convert<bool>::decode(n, b)) return b;
  std::int64_t i = 0;
  if (YAML::convert<std::int64_t>::decode(n, i)) return i;
  double d = 0;
  if (YAML::convert<double>::decode(n, d)) return d;
  return boost::json::string{text};
}

// The cluster's `extensions` entry for exec plugins, as JSON text ("" when absent).
detailed_result<std::string> exec_cluster_extension(const entry& cluster) {
  if (!cluster.body || !cluster.body.IsMap()) return std::string{};
  const YAML::Node list = cluster.body["extensions"];
  if (!list || list.IsNull()) return std::string{};
  if (!list.IsSequence()) return invalid(cluster.where + ".extensions: expected a list");
  for (const auto& item : list) {
    if (!item.IsMap()) return invalid(cluster.where + ".extensions: expected a list of name and extension");
    auto name = string_field(item, "name", cluster.where + ".extensions[]");
    if (!name) return name.error();
    if (*name && **name == "client.authentication.k8s.io/exec")
      return boost::json::serialize(yaml_to_json(item["extension"]));
  }
  return std::string{};
}

// A user's `exec` block (client-go's ExecConfig).
detailed_result<exec_config> exec_field(const YAML::Node& node, const fs::path& base_dir, const std::string& where,
                                        const entry& cluster) {
  if (!node.IsMap()) return invalid(where + ": expected a map");
  exec_config e;
  auto api_version = string_field(node, "apiVersion", where);
  if (!api_version) return api_version.error();
  e.api_version = api_version->value_or("");
  if (e.api_version.empty()) return invalid(where + ".apiVersion is required");
  const bool v1 = e.api_version == "client.authentication.k8s.io/v1";
  if (!v1 && e.api_version != "client.authentication.k8s.io/v1beta1") {
    return invalid(where + ".apiVersion \"" + e.api_version +
                   "\" is not supported (client.authentication.k8s.io/v1 or v1beta1)");
  }
  auto command = string_field(node, "command", where);
  if (!command) return command.error();
  e.command = command->value_or("");
  if (e.command.empty()) return invalid(where + ".command is required");
  // A path with a slash is taken from the kubeconfig's folder; a bare name is looked up in $PATH.
  if (e.command.find('/') != std::string::npos) e.command = resolve(base_dir, e.command).string();
  auto args = string_list_field(node, "args", where);
  if (!args) return args.error();
  e.args = std::move(*args);
  if (const YAML::Node env = node["env"]; env && !env.IsNull()) {
    if (!env.IsSequence()) return invalid(where + ".env: expected a list of name and value");
    std::size_t index = 0;
    for (const auto& item : env) {
      const std::string at = where + ".env[" + std::to_string(index++) + "]";
      if (!item.IsMap()) return invalid(at + ": expected a map with name and value");
      auto name = string_field(item, "name", at);
      if (!name) return name.error();
      if (!*name || (*name)->empty()) return invalid(at + " has no name");
      auto value = string_field(item, "value", at);
      if (!value) return value.error();
      e.env.emplace_back(**name, value->value_or(""));
    }
  }
  auto hint = string_field(node, "installHint", where);
  if (!hint) return hint.error();
  e.install_hint = hint->value_or("");
  auto provide = bool_field(node, "provideClusterInfo", where);
  if (!provide) return provide.error();
  e.provide_cluster_info = *provide;
  auto mode = string_field(node, "interactiveMode", where);
  if (!mode) return mode.error();
  if (!*mode || (*mode)->empty()) {
    // client-go: required from v1 on; v1beta1 defaults to IfAvailable.
    if (v1)
      return invalid(where + ".interactiveMode is required with " + e.api_version + " (Never, IfAvailable or Always)");
    e.interactive_mode = exec_interactive_mode::if_available;
  } else if (**mode == "Never") {
    e.interactive_mode = exec_interactive_mode::never;
  } else if (**mode == "IfAvailable") {
    e.interactive_mode = exec_interactive_mode::if_available;
  } else if (**mode == "Always") {
    e.interactive_mode = exec_interactive_mode::always;
  } else {
    return invalid(where + ".interactiveMode \"" + **mode + "\" is not one of Never, IfAvailable, Always");
  }
  auto extension = exec_cluster_extension(cluster);
  if (!extension) return extension.error();
  e.cluster_config = std::move(*extension);
  return e;
}

detailed_result<rest_config> build(const merged_config& m, std::string_view context_override) {
  const std::string context_name = context_override.empty() ? m.current_context : std::string{context_override};
  if (context_name.empty()) {
    return missing("no current-context in " + m.source_list() + " and no context given");
  }
  const auto ctx = m.contexts.find(context_name);
  if (ctx == m.contexts.end()) {
    return missing("context " + quote_name(context_name) + " not found in " + m.source_list() + " (" +
                   known_names(m.contexts) + ")");
  }
  const entry& c = ctx->second;
  auto cluster_name = string_field(c.body, "cluster", c.where);
  if (!cluster_name) return cluster_name.error();
  auto user_name = string_field(c.body, "user", c.where);
  if (!user_name) return user_name.error();
  auto ns = string_field(c.body, "namespace", c.where);
  if (!ns) return ns.error();
  if (!*cluster_name || (*cluster_name)->empty()) return invalid(c.where + " names no cluster");

  const auto cl = m.clusters.find(**cluster_name);
  if (cl == m.clusters.end()) {
    return missing("cluster " + quote_name(**cluster_name) + " of context " + quote_name(context_name) +
                   " not found in " + m.source_list() + " (" + known_names(m.clusters) + ")");
  }
  const entry& cluster = cl->second;

  rest_config config;
  config.default_namespace = ns->value_or("");
  auto server = string_field(cluster.body, "server", cluster.where);
  if (!server) return server.error();
  if (!*server || (*server)->empty()) return invalid(cluster.where + " has no server");
  config.server = **server;
  if (auto e = file_or_data(cluster, "certificate-authority", config.tls.ca_file, config.tls.ca_data)) return e;
  auto insecure = bool_field(cluster.body, "insecure-skip-tls-verify", cluster.where);
  if (!insecure) return insecure.error();
  config.tls.insecure_skip_tls_verify = *insecure;
  auto server_name = string_field(cluster.body, "tls-server-name", cluster.where);
  if (!server_name) return server_name.error();
  config.tls.server_name = server_name->value_or("");
  auto proxy_url = string_field(cluster.body, "proxy-url", cluster.where);
  if (!proxy_url) return proxy_url.error();
  if (*proxy_url && !(*proxy_url)->empty()) {
    // Checked here so the error names the kubeconfig entry; http_client parses it again.
    if (auto p = detail::parse_proxy_url(**proxy_url, cluster.where + ".proxy-url", false); !p) return p.error();
    config.proxy.url = **proxy_url;
  }
  std::string tls_where = cluster.where;

  if (*user_name && !(*user_name)->empty()) {
    const auto us = m.users.find(**user_name);
    if (us == m.users.end()) {
      return missing("user " + quote_name(**user_name) + " of context " + quote_name(context_name) + " not found in " +
                     m.source_list() + " (" + known_names(m.users) + ")");
    }
    const entry& user = us->second;
    tls_where += " / " + user.where;
    if (auto e = file_or_data(user, "client-certificate", config.tls.cert_file, config.tls.cert_data)) return e;
    if (auto e = file_or_data(user, "client-key", config.tls.key_file, config.tls.key_data)) return e;
    auto token = string_field(user.body, "token", user.where);
    if (!token) return token.error();
    config.bearer_token = token->value_or("");
    auto token_file = string_field(user.body, "tokenFile", user.where);
    if (!token_file) return token_file.error();
    if (*token_file && !(*token_file)->empty()) {
      config.bearer_token_file = resolve(user.base_dir, **token_file);
      if (auto t = read_config_file(config.bearer_token_file, user.where + ".tokenFile"); !t) return t.error();
    }
    auto as = string_field(user.body, "as", user.where);
    if (!as) return as.error();
    config.impersonate.user = as->value_or("");
    auto as_uid = string_field(user.body, "as-uid", user.where);
    if (!as_uid) return as_uid.error();
    config.impersonate.uid = as_uid->value_or("");
    auto as_groups = string_list_field(user.body, "as-groups", user.where);
    if (!as_groups) return as_groups.error();
    config.impersonate.groups = std::move(*as_groups);
    // (A user entry without a body is an invalid node: test it before asking its type.)
    if (const YAML::Node extra = user.body && user.body.IsMap() ? user.body["as-user-extra"] : YAML::Node{};
        extra && !extra.IsNull()) {
      if (!extra.IsMap()) return invalid(user.where + ".as-user-extra: expected a map of lists of strings");
      for (const auto& item : extra) {
        if (!item.first.IsScalar()) return invalid(user.where + ".as-user-extra: keys must be strings");
        const std::string key = item.first.Scalar();
        auto values = string_list_field(extra, key.c_str(), user.where + ".as-user-extra");
        if (!values) return values.error();
        config.impersonate.extra[key] = std::move(*values);
      }
    }
    if (const YAML::Node exec = user.body && user.body.IsMap() ? user.body["exec"] : YAML::Node{};
        exec && !exec.IsNull()) {
      auto parsed = exec_field(exec, user.base_dir, user.where + ".exec", cluster);
      if (!parsed) return parsed.error();
      config.exec = std::move(*parsed);
    }
    const bool has_credentials = !config.bearer_token.empty() || !config.bearer_token_file.empty() ||
                                 !config.tls.cert_data.empty() || !config.tls.cert_file.empty() ||
                                 config.exec.has_value();
    if (!has_credentials && user.body && user.body.IsMap()) {
      for (const char* key : {"auth-provider", "username", "password"}) {
        if (user.body[key]) {
          return invalid(user.where + "." + key +
                         ": this kind of credential is not supported (use a token, a "
                         "token file or a client certificate)");
        }
      }
    }
  }

  if (auto pem = load_tls_pem(config.tls); !pem) {
    return informer::error{pem.error().code(), tls_where + ": " + pem.error().detail()};
  }
  return config;
}

std::string getenv_string(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string{v} : std::string{};
}

// $KUBECONFIG's entries in order (duplicates dropped), or ~/.kube/config.
std::vector<fs::path> default_kubeconfig_files() {
  std::vector<fs::path> files;
  const std::string env = getenv_string("KUBECONFIG");
  if (!env.empty()) {
    std::set<std::string> seen;
    std::string_view rest = env;
    while (true) {
      const auto colon = rest.find(':');
      const std::string item{rest.substr(0, colon)};
      if (!item.empty() && seen.insert(item).second) files.emplace_back(item);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
    return files;
  }
  if (const std::string home = getenv_string("HOME"); !home.empty()) {
    files.push_back(fs::path{home} / ".kube" / "config");
  }
  return files;
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

std::string trim(std::string s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  const auto last = s.find_last_not_of(" \t\r\n");
  return first == std::string::npos ? std::string{} : s.substr(first, last - first + 1);
}

}  // namespace

detailed_result<rest_config> parse_kubeconfig(std::string_view yaml, const fs::path& base_dir, std::string_view context,
                                              std::string_view source) {
  merged_config m;
  if (auto e = merge_text(yaml, base_dir, std::string{source}, m)) return e;
  return build(m, context);
}

detailed_result<rest_config> load_kubeconfig(const kubeconfig_options& options) {
  std::vector<fs::path> files = options.files;
  if (files.empty()) {
    const auto candidates = default_kubeconfig_files();
    for (const auto& f : candidates) {
      if (path_exists(f)) files.push_back(f);
    }
    if (files.empty()) {
      std::string looked;
      for (const auto& f : candidates) looked += (looked.empty() ? "" : ", ") + f.string();
      return missing(
          "no kubeconfig file found (looked for: " + (looked.empty() ? "$KUBECONFIG and $HOME unset" : looked) + ")");
    }
  }
  merged_config m;
  for (const auto& f : files) {
    auto text = read_config_file(f, "kubeconfig");
    if (!text) return text.error();
    const fs::path absolute = fs::absolute(f);
    if (auto e = merge_text(*text, absolute.parent_path(), f.string(), m)) return e;
  }
  return build(m, options.context);
}

detailed_result<rest_config> load_in_cluster_config(const in_cluster_options& options) {
  const std::string host = options.host.empty() ? getenv_string("KUBERNETES_SERVICE_HOST") : options.host;
  const std::string port = options.port.empty() ? getenv_string("KUBERNETES_SERVICE_PORT") : options.port;
  if (host.empty() || port.empty()) {
    return missing("not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  }
  rest_config config;
  config.server = "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  config.bearer_token_file = options.root / "token";
  if (auto t = read_config_file(config.bearer_token_file, "service account token"); !t) return t.error();
  config.tls.ca_file = options.root / "ca.crt";
  if (auto pem = load_tls_pem(config.tls); !pem) return pem.error();
  config.default_namespace = "default";
  if (const fs::path ns = options.root / "namespace"; path_exists(ns)) {
    auto text = read_config_file(ns, "service account namespace");
    if (!text) return text.error();
    if (auto n = trim(std::move(*text)); !n.empty()) config.default_namespace = std::move(n);
  }
  return config;
}

detailed_result<rest_config> load_default_config(const kubeconfig_options& options) {
  if (!options.files.empty()) return load_kubeconfig(options);
  for (const auto& f : default_kubeconfig_files()) {
    if (path_exists(f)) return load_kubeconfig(options);
  }
  auto in_cluster = load_in_cluster_config();
  if (!in_cluster && in_cluster.error().code() == make_error_code(errc::not_found)) {
    return missing("no kubeconfig ($KUBECONFIG, ~/.kube/config) and " + in_cluster.error().detail());
  }
  return in_cluster;
}

}  // namespace informer
