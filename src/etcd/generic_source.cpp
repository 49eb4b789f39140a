#include "informer/etcd/generic_source.hpp"

#include "informer/core/key.hpp"

#include "etcd/detail/object_json.hpp"

#include <stdexcept>

namespace informer::etcd {

namespace {

namespace json = boost::json;

class generic_decoder final : public object_decoder {
public:
  explicit generic_decoder(const generic_source_options& options)
      : prefix_(options.prefix), layout_(options.layout), decode_(options.decode), labels_(options.labels) {}

  detailed_result<object::ptr> decode(const key_value& kv, std::int64_t resource_version) const override {
    json::value body;
    if (decode_) {
      auto decoded = decode_(kv.key, kv.value);
      if (!decoded) {
        return detail::keyed(kv.key, kv.mod_revision, decoded.error());
      }
      body = std::move(*decoded);
      if (auto e = detail::prepare_body(body, resource_version, false)) {
        return detail::keyed(kv.key, kv.mod_revision, e);
      }
    } else {
      auto parsed = detail::parse_body(kv.key, kv.mod_revision, kv.value, resource_version);
      if (!parsed) {
        return parsed.error();
      }
      body = std::move(*parsed);
    }
    auto& metadata = body.get_object()["metadata"].get_object();
    if (auto named = name_metadata(kv.key, metadata); named) {
      return detail::keyed(kv.key, kv.mod_revision, named);
    }
    if (labels_) {
      const label_set extracted = labels_(kv.key, body);
      json::object labels;
      for (const auto& l : extracted.view()) {
        labels[l.key] = l.value;
      }
      metadata["labels"] = std::move(labels);
    }
    return detail::keyed_object(kv.key, kv.mod_revision, body);
  }

  detailed_result<object::ptr> placeholder(std::string_view key, std::int64_t resource_version) const override {
    json::object metadata;
    if (auto named = name_metadata(key, metadata); named) {
      return named;
    }
    metadata["resourceVersion"] = std::to_string(resource_version);
    json::object body;
    body["metadata"] = std::move(metadata);
    return object::from_json(body);
  }

private:
  // Sets name (and namespace) from the key; an error when the key does not fit the layout.
  informer::error name_metadata(std::string_view key, json::object& metadata) const {
    if (!key.starts_with(prefix_) || key.size() == prefix_.size()) {
      return {informer::errc::invalid_key, "the key names no object below the prefix '" + prefix_ + "'"};
    }
    const std::string_view rest = key.substr(prefix_.size());
    if (layout_ == key_layout::name) {
      if (rest.find('/') != std::string_view::npos) {
        return {informer::errc::invalid_key,
                "'" + std::string{rest} + "' below the prefix holds '/' (use key_layout::namespace_name for ns/name)"};
      }
      metadata["name"] = rest;
      metadata.erase("namespace");
      return {};
    }
    auto parts = split_key(rest);  // "name" or "namespace/name"
    if (!parts) {
      return {informer::errc::invalid_key, "'" + std::string{rest} + "' below the prefix is not <namespace>/<name>"};
    }
    if (parts->ns.empty()) {
      metadata.erase("namespace");
    } else {
      metadata["namespace"] = parts->ns;
    }
    metadata["name"] = parts->name;
    return {};
  }

  const std::string prefix_;
  const key_layout layout_;
  const std::function<detailed_result<json::value>(std::string_view, std::string_view)> decode_;
  const std::function<label_set(std::string_view, const json::value&)> labels_;
};

}  // namespace

std::shared_ptr<const object_decoder> make_generic_decoder(const generic_source_options& options) {
  return std::make_shared<generic_decoder>(options);
}

std::shared_ptr<source> make_generic_source(std::shared_ptr<client> etcd, boost::asio::any_io_executor executor,
                                            generic_source_options options) {
  auto decoder = make_generic_decoder(options);
  return source::create(std::move(etcd), std::move(executor),
                        {.prefix = std::move(options.prefix),
                         .decoder = std::move(decoder),
                         .on_decode_error = std::move(options.on_decode_error),
                         .watch_buffer_bytes = options.watch_buffer_bytes});
}

}  // namespace informer::etcd
