// informer::core alone: the cache and selectors, with Boost as the only dependency.
#include <informer/cache/indexer.hpp>
#include <informer/core/label_selector.hpp>
#include <informer/core/object.hpp>

#include <iostream>

int main() {
  informer::indexer store;
  auto pod = informer::object::parse(R"({"metadata":{"name":"p","namespace":"n","labels":{"app":"web"}}})");
  if (!pod) return 1;
  store.add(*pod);
  auto selector = informer::label_selector::parse("app=web");
  if (!selector) return 1;
  const auto found = store.list(*selector).size();
  std::cout << "consumer found " << found << " object(s)\n";
  return found == 1 ? 0 : 1;
}
