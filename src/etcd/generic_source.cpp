#include "informer/etcd/generic_source.hpp"

#include "etcd/detail/object_json.hpp"

#include <boost/json/parse.hpp>

#include <stdexcept>

namespace informer::etcd {

namespace {

namespace json = boost::json;

informer::error keyed(std::string_view key, std::int64_t mod_revision, const informer::error& e) {
  return {e.code(),
          "etcd key '" + std::string{key} + "' (mod_revision " + std::to_string(mod_revision) + "): " + e.detail()};
}

class generic_decoder final : public object_decoder {
public:
  explicit generic_decoder(const generic_source_options& options)
      : prefix_(options.prefix), layout_(options.layout), decode_(options.decode), labels_(options.labels) {}

  detailed_result<object::ptr> decode(const key_value& kv, std::int64_t resource_version) const override {
    json::value body;
    if (decode_) {
      auto decoded = decode_(kv.key, kv.value);
      if (!decoded) {
        return keyed(kv.key, kv.mod_revision, decoded.error());
      }
      body = std::move(*decoded);
    } else {
      boost::system::error_code ec;
      body = json::parse(kv.value, ec);
      if (ec) {
        return keyed(kv.key, kv.mod_revision,
                     informer::error{informer::errc::invalid_json, "the value is not valid JSON: " + ec.message()});
      }
    }
    if (!body.is_object()) {
      return keyed(kv.key, kv.mod_revision, informer::error{informer::errc::not_an_object, "the value is not a JSON object"});
    }
    if (!detail::set_resource_version(body, resource_version, false)) {
      return keyed(kv.key, kv.mod_revision, informer::error{informer::errc::invalid_field, "metadata is not an object"});
    }
    auto& metadata = body.get_object()["metadata"].get_object();
    if (auto named = name_metadata(kv.key, metadata); named) {
      return keyed(kv.key, kv.mod_revision, named);
    }
    if (labels_) {
      const label_set extracted = labels_(kv.key, body);
      json::object labels;
      for (const auto& l : extracted.view()) {
        labels[l.key] = l.value;
      }
      metadata["labels"] = std::move(labels);
    }
    auto obj = object::from_json(body);
    if (!obj) {
      return keyed(kv.key, kv.mod_revision, obj.error());
    }
    return std::move(*obj);
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
    const auto slash = rest.find('/');
    if (layout_ == key_layout::name || slash == std::string_view::npos) {
      if (slash != std::string_view::npos) {
        return {informer::errc::invalid_key,
                "'" + std::string{rest} + "' below the prefix holds '/' (use key_layout::namespace_name for ns/name)"};
      }
      metadata["name"] = rest;
      metadata.erase("namespace");
      return {};
    }
    const std::string_view ns = rest.substr(0, slash);
    const std::string_view name = rest.substr(slash + 1);
    if (ns.empty() || name.empty() || name.find('/') != std::string_view::npos) {
      return {informer::errc::invalid_key, "'" + std::string{rest} + "' below the prefix is not <namespace>/<name>"};
    }
    metadata["namespace"] = ns;
    metadata["name"] = name;
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
                         .on_decode_error = std::move(options.on_decode_error)});
}

}  // namespace informer::etcd
