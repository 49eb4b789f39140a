// informer::etcd alone: creates an etcd client (gRPC; no network I/O until the first call).
#include <informer/etcd/client.hpp>

#include <iostream>

int main() {
  auto client = informer::etcd::client::connect({.endpoints = {"http://127.0.0.1:2379"}});
  if (!client) {
    std::cerr << client.error().what() << "\n";
    return 1;
  }
  std::cout << "consumer created an etcd client\n";
  return 0;
}
