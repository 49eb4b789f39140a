#include "informer/cache/lister.hpp"

#include "informer/core/key.hpp"

#include <stdexcept>
#include <utility>

namespace informer {

lister::lister(std::shared_ptr<const indexer> store) : store_(std::move(store)) {
  if (store_ == nullptr) throw std::invalid_argument("lister: null indexer");
}

object::ptr lister::get(std::string_view ns, std::string_view name) const {
  return store_->get_by_key(make_key(ns, name));
}

object::ptr lister::get(std::string_view name) const { return store_->get_by_key(name); }

std::vector<object::ptr> lister::list(const label_selector& selector) const { return store_->list(selector); }

std::vector<object::ptr> lister::list(std::string_view ns, const label_selector& selector) const {
  return store_->list(ns, selector);
}

}  // namespace informer
