// informer::apiserver alone: reads a kubeconfig (yaml-cpp) and creates an HTTPS client (OpenSSL),
// without linking gRPC (run.cmake checks the binary).
#include <informer/apiserver/http_client.hpp>
#include <informer/apiserver/kubeconfig.hpp>

#include <boost/asio/io_context.hpp>

#include <iostream>

int main() {
  constexpr const char* kubeconfig =
      "clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true\n"
      "users:\n- name: me\n  user:\n    token: t\n"
      "contexts:\n- name: dev\n  context:\n    cluster: k\n    user: me\n"
      "current-context: dev\n";
  auto config = informer::parse_kubeconfig(kubeconfig, ".");
  if (!config) {
    std::cerr << config.error().what() << "\n";
    return 1;
  }
  boost::asio::io_context io;
  auto client = informer::http_client::create(io.get_executor(), *config);
  if (!client) {
    std::cerr << client.error().what() << "\n";
    return 1;
  }
  std::cout << "consumer configured a client for " << config->server << "\n";
  return 0;
}
