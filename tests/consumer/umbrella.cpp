// informer::informer: every component in one program.
#include <informer/apiserver/kubeconfig.hpp>
#include <informer/cache/indexer.hpp>
#include <informer/codec/protobuf.hpp>
#include <informer/core/object.hpp>
#include <informer/etcd/client.hpp>

#include <iostream>

int main() {
  informer::indexer store;
  auto pod = informer::object::parse(R"({"metadata":{"name":"p","namespace":"n"}})");
  if (!pod) return 1;
  store.add(*pod);
  auto config = informer::parse_kubeconfig(
      "clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true\n"
      "users:\n- name: me\n  user:\n    token: t\n"
      "contexts:\n- name: dev\n  context:\n    cluster: k\n    user: me\n"
      "current-context: dev\n",
      ".");
  if (!config) return 1;
  auto etcd = informer::etcd::client::connect({});
  if (!etcd) return 1;
  // Not a `k8s\0` envelope: the codec must say so.
  if (informer::codec::unwrap_envelope("not protobuf")) return 1;
  std::cout << "consumer used every component\n";
  return 0;
}
