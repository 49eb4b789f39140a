#include "informer/apiserver/resource_path.hpp"

namespace informer {

std::string url_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' || u == '.' ||
        u == '_' || u == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 0xf];
    }
  }
  return out;
}

std::string resource_path(const resource& r, std::string_view ns, std::string_view name, std::string_view subresource) {
  std::string path = r.group.empty() ? "/api/" + r.version : "/apis/" + r.group + "/" + r.version;
  if (r.namespaced && !ns.empty()) {
    path += "/namespaces/";
    path += url_encode(ns);
  }
  path += '/';
  path += r.plural;
  if (!name.empty()) {
    path += '/';
    path += url_encode(name);
    if (!subresource.empty()) {
      path += '/';
      path += url_encode(subresource);
    }
  }
  return path;
}

std::string query_string(std::initializer_list<std::pair<std::string_view, std::string_view>> params) {
  std::string out;
  for (const auto& [key, value] : params) {
    if (value.empty()) continue;
    out += out.empty() ? '?' : '&';
    out += key;
    out += '=';
    out += url_encode(value);
  }
  return out;
}

std::string list_query(const list_options& options) {
  const std::string limit = options.limit > 0 ? std::to_string(options.limit) : std::string{};
  return query_string({{"labelSelector", options.label_selector},
                       {"fieldSelector", options.field_selector},
                       {"limit", limit},
                       {"continue", options.continue_token},
                       {"resourceVersion", options.resource_version},
                       {"resourceVersionMatch", to_string(options.match)}});
}

}  // namespace informer
