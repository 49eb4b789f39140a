#include "informer/apiserver/lister_watcher.hpp"

#include "apiserver/detail/list_watch_codec.hpp"
#include "core/detail/async_completion.hpp"
#include "informer/apiserver/resource_path.hpp"
#include "informer/codec/protobuf.hpp"
#include "informer/core/log.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/http/field.hpp>

#include <atomic>
#include <deque>
#include <stdexcept>
#include <utility>

namespace informer {

namespace asio = boost::asio;
namespace http = boost::beast::http;

struct apiserver_lister_watcher::state {
  http_client client;
  resource res;
  apiserver_lister_watcher_options options;
  detail::decode_settings decode;
  std::string path;  // the collection
  std::string list_accept;
  std::string watch_accept;
  // Set once protobuf brought a field the compiled schemas lack: from then on, JSON only.
  std::shared_ptr<std::atomic<bool>> json_only;
  std::string json_list_accept;
  std::string json_watch_accept;

  const std::string& list_accept_now() const { return json_only->load() ? json_list_accept : list_accept; }
  const std::string& watch_accept_now() const { return json_only->load() ? json_watch_accept : watch_accept; }
};

namespace {

// After a decoding failure `e`: when protobuf lacked a field, switch the source to JSON for good
// (saying so once), so that the relist that follows reads every field.
void fall_back_to_json_on_unknown_fields(const std::shared_ptr<std::atomic<bool>>& json_only, const resource& res,
                                         const informer::error& e) {
  if (!detail::needs_json(e) || json_only->exchange(true)) return;
  log(log_level::warning, "apiserver_lister_watcher",
      to_string(res) + ": " + e.detail() + "; reading it as JSON from now on (the protobuf schemas are 1.20's)");
}

constexpr std::string_view json_media = "application/json";
constexpr std::string_view protobuf_media = "application/vnd.kubernetes.protobuf";

// Media types of the server's PartialObjectMetadata transformation (meta.k8s.io/v1).
std::string partial_metadata(std::string_view media, std::string_view kind) {
  return std::string(media) + ";as=" + std::string(kind) + ";g=meta.k8s.io;v=v1";
}

std::string list_accept(const apiserver_lister_watcher_options& o) {
  if (o.metadata_only) {
    const auto json = partial_metadata(json_media, "PartialObjectMetadataList");
    return o.encoding == wire_encoding::protobuf
               ? partial_metadata(protobuf_media, "PartialObjectMetadataList") + ", " + json
               : json;
  }
  return o.encoding == wire_encoding::protobuf ? std::string(protobuf_media) + ", " + std::string(json_media)
                                               : std::string(json_media);
}

std::string watch_accept(const apiserver_lister_watcher_options& o) {
  if (o.metadata_only) {
    const std::string json = partial_metadata(json_media, "PartialObjectMetadata");
    return o.encoding == wire_encoding::protobuf
               ? partial_metadata(protobuf_media, "PartialObjectMetadata") + ";stream=watch, " + json
               : json;
  }
  // As for lists, JSON is accepted too: a server that cannot stream protobuf answers in JSON.
  return o.encoding == wire_encoding::protobuf
             ? std::string(protobuf_media) + ";stream=watch, " + std::string(json_media)
             : std::string(json_media);
}

// One open watch: reads the body, decodes events, hands them out one async_next at a time. Pending
// reads keep it alive; the user holds it through `apiserver_watch_stream`, whose destruction
// cancels it, so a dropped stream closes its connection even with an async_next pending.
class watch_core final : public std::enable_shared_from_this<watch_core> {
public:
  using handler_type = asio::any_completion_handler<watch_stream::next_signature>;
  using next_completion = detail::async_completion<watch_stream::next_signature>;

  watch_core(std::shared_ptr<http_stream> http, bool protobuf, const detail::decode_settings& settings,
             std::shared_ptr<std::atomic<bool>> json_only, asio::any_io_executor executor)
      : http_(std::move(http)),
        decoder_(protobuf, settings),
        res_(settings.res),
        json_only_(std::move(json_only)),
        executor_(std::move(executor)) {}

  ~watch_core() { http_->cancel(); }

  void cancel() {
    cancelled_.store(true);
    http_->cancel();
  }

  void next(handler_type handler) {
    auto op = next_completion::create(std::move(handler), executor_);
    if (busy_.exchange(true)) {
      op->complete(informer::error(asio::error::already_started, "one async_next at a time"), watch_event{});
      return;
    }
    // A cancellation slot ends the whole watch, as cancel() does. Weak: the slot may outlive it.
    op->on_cancellation([weak = weak_from_this()](asio::cancellation_type) {
      if (auto self = weak.lock()) self->cancel();
    });
    advance(std::move(op));
  }

private:
  // Everything below runs for the one outstanding async_next: from next(), then from the read
  // completions it chains, one after another; so ready_, final_ and decoder_ need no lock.
  void advance(std::shared_ptr<next_completion> op) {
    if (cancelled_.load()) return deliver(*op, aborted(), {});
    if (!ready_.empty()) {
      watch_event event = std::move(ready_.front());
      ready_.pop_front();
      return deliver(*op, {}, std::move(event));
    }
    if (final_) return deliver(*op, final_, {});
    http_->async_read_some(
        [self = shared_from_this(), op = std::move(op)](informer::error e, std::string bytes) mutable {
          self->on_read(std::move(op), std::move(e), bytes);
        });
  }

  void on_read(std::shared_ptr<next_completion> op, informer::error e, const std::string& bytes) {
    if (cancelled_.load()) {
      final_ = aborted();
    } else if (e.code() == make_error_code(errc::end_of_stream)) {
      final_ = decoder_.finish();
      if (!final_) final_ = std::move(e);
    } else if (e) {
      // Also a connection cut mid-body (Beast's partial_message, SSL's stream_truncated): an event
      // cut in half is dropped here, and the reopened watch delivers it again.
      final_ = std::move(e);
    } else {
      decode(bytes);
    }
    advance(std::move(op));
  }

  void decode(const std::string& bytes) {
    try {
      decoder_.feed(bytes);
      for (;;) {
        auto event = decoder_.next();
        if (!event) {
          final_ = event.error();  // after the events decoded before it
          fall_back_to_json_on_unknown_fields(json_only_, res_, final_);
          return;
        }
        if (!*event) return;
        ready_.push_back(std::move(**event));
      }
    } catch (const std::exception& ex) {  // e.g. bad_alloc on a huge event: end the watch, not the run loop
      final_ = {errc::malformed_response, std::string("decoding the watch stream: ") + ex.what()};
    }
  }

  void deliver(next_completion& op, informer::error e, watch_event event) {
    busy_.store(false);
    op.complete(std::move(e), std::move(event));
  }

  static informer::error aborted() { return {asio::error::operation_aborted, "watch cancelled"}; }

  const std::shared_ptr<http_stream> http_;
  detail::watch_decoder decoder_;
  const resource res_;
  const std::shared_ptr<std::atomic<bool>> json_only_;
  std::deque<watch_event> ready_;  // decoded, not yet handed out
  informer::error final_;          // ends the stream once ready_ is drained
  const asio::any_io_executor executor_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> busy_{false};  // an async_next is outstanding
};

// What the user holds: dropping it cancels the watch.
class apiserver_watch_stream final : public watch_stream {
public:
  explicit apiserver_watch_stream(std::shared_ptr<watch_core> core) : core_(std::move(core)) {}
  ~apiserver_watch_stream() override { core_->cancel(); }
  void cancel() override { core_->cancel(); }

protected:
  void next_impl(asio::any_completion_handler<next_signature> handler) override { core_->next(std::move(handler)); }

private:
  const std::shared_ptr<watch_core> core_;
};

}  // namespace

detailed_result<std::shared_ptr<apiserver_lister_watcher>> apiserver_lister_watcher::create(
    http_client client, resource res, apiserver_lister_watcher_options options) {
  const auto invalid = [&](const std::string& why) {
    return informer::error{errc::invalid_argument, "apiserver_lister_watcher for " + to_string(res) + ": " + why};
  };
  if (res.version.empty() || res.plural.empty() || res.kind.empty())
    return invalid("the resource needs a version, a plural and a kind");
  if (!res.namespaced && !options.ns.empty())
    return invalid("namespace \"" + options.ns + "\" given for a cluster-scoped resource");
  if (options.max_frame_bytes == 0) return invalid("max_frame_bytes must be positive");
  if (auto e = check_path_segment("namespace", options.ns)) return invalid(e.detail());
  if (options.encoding == wire_encoding::protobuf && !options.metadata_only) {
    // Asking the codec for the kind's message tells both "schemas compiled in" and "built in".
    auto known = codec::to_json({.api_version = res.api_version(), .kind = res.kind});
    if (!known)
      return invalid(
          "protobuf needs a built-in kind with the Kubernetes schemas compiled in (use JSON, or "
          "metadata_only): " +
          known.error().what());
  }
  auto as_json = options;
  as_json.encoding = wire_encoding::json;
  auto s = std::make_shared<state>(state{
      .client = std::move(client),
      .res = res,
      .options = options,
      .decode = {.res = res,
                 .metadata_only = options.metadata_only,
                 .object = options.object,
                 .max_frame_bytes = options.max_frame_bytes},
      .path = resource_path(res, options.ns),
      .list_accept = list_accept(options),
      .watch_accept = watch_accept(options),
      .json_only = std::make_shared<std::atomic<bool>>(false),
      .json_list_accept = list_accept(as_json),
      .json_watch_accept = watch_accept(as_json),
  });
  return std::make_shared<apiserver_lister_watcher>(passkey{}, std::move(s));
}

apiserver_lister_watcher::apiserver_lister_watcher(passkey, std::shared_ptr<const state> s) : state_(std::move(s)) {}

boost::asio::any_io_executor apiserver_lister_watcher::get_executor() const { return state_->client.get_executor(); }

const resource& apiserver_lister_watcher::get_resource() const noexcept { return state_->res; }

const apiserver_lister_watcher_options& apiserver_lister_watcher::options() const noexcept { return state_->options; }

void apiserver_lister_watcher::list_impl(list_options o, asio::any_completion_handler<list_signature> handler) {
  std::string target = state_->path + list_query(o);
  auto op = detail::async_completion<list_signature>::create(std::move(handler), state_->client.get_executor());
  op->cancel_with({asio::error::operation_aborted, "listing " + to_string(state_->res) + ": cancelled"}, {});
  http::fields headers;
  headers.set(http::field::accept, state_->list_accept_now());
  auto client = state_->client;
  client.async_request(
      http::verb::get, std::move(target), std::move(headers), {}, http_request_options{.list = true},
      [st = state_, op](informer::error e, http_response r) {
        if (op->completed()) return;  // cancelled: nobody waits for the decoding
        if (e) {
          op->complete(std::move(e), {});
          return;
        }
        try {
          auto list = detail::decode_list(r.headers[http::field::content_type], r.body, st->decode);
          if (!list) {
            fall_back_to_json_on_unknown_fields(st->json_only, st->res, list.error());
            op->complete(list.error(), {});
            return;
          }
          op->complete({}, std::move(*list));
        } catch (const std::exception& ex) {  // e.g. bad_alloc: fail the list, not the run loop
          op->complete({errc::malformed_response, "decoding the list of " + to_string(st->res) + ": " + ex.what()}, {});
        }
      });
}

void apiserver_lister_watcher::watch_impl(watch_options o, asio::any_completion_handler<watch_signature> handler) {
  const std::string timeout = o.timeout.count() > 0 ? std::to_string(o.timeout.count()) : std::string{};
  std::string target = state_->path + query_string({{"watch", "1"},
                                                    {"allowWatchBookmarks", o.allow_bookmarks ? "true" : ""},
                                                    {"timeoutSeconds", timeout},
                                                    {"resourceVersion", o.resource_version},
                                                    {"labelSelector", o.label_selector},
                                                    {"fieldSelector", o.field_selector}});
  auto op = detail::async_completion<watch_signature>::create(std::move(handler), state_->client.get_executor());
  op->cancel_with({asio::error::operation_aborted, "watching " + to_string(state_->res) + ": cancelled"}, nullptr);
  http::fields headers;
  headers.set(http::field::accept, state_->watch_accept_now());
  auto client = state_->client;
  client.async_open_stream(
      std::move(target), std::move(headers), [st = state_, op](informer::error e, std::shared_ptr<http_stream> s) {
        if (e) {
          op->complete(std::move(e), nullptr);
          return;
        }
        const bool protobuf = detail::is_protobuf(s->response().headers[http::field::content_type]);
        auto stream = std::make_shared<apiserver_watch_stream>(
            std::make_shared<watch_core>(std::move(s), protobuf, st->decode, st->json_only, st->client.get_executor()));
        op->complete({}, std::move(stream));  // if cancelled meanwhile, dropping it closes the connection
      });
}

namespace {

const resource* find_extra(std::string_view text, const std::vector<resource>& extra) {
  for (const auto& r : extra) {
    if (text == r.plural || text == r.version + "/" + r.plural || text == r.group + "/" + r.version + "/" + r.plural ||
        (!r.group.empty() && text == r.plural + "." + r.group))
      return &r;
  }
  return nullptr;
}

}  // namespace

source_maker apiserver_source_maker(http_client client, apiserver_source_options options) {
  return [client = std::move(client), options = std::move(options)](
             const informer_key& key, const asio::any_io_executor& executor) -> std::shared_ptr<lister_watcher> {
    if (executor != client.get_executor())
      throw std::invalid_argument(
          "apiserver_source_maker: the http_client runs on another executor than the "
          "factory; create it on the factory's get_executor()");
    resource res;
    if (const auto* extra = find_extra(key.resource, options.extra_resources)) {
      res = *extra;
    } else {
      auto parsed = parse_resource(key.resource);
      if (!parsed) throw std::invalid_argument("apiserver_source_maker: " + parsed.error().what());
      res = std::move(*parsed);
    }
    auto o = options.lister_watcher;
    o.ns = key.ns;
    auto lw = apiserver_lister_watcher::create(client, std::move(res), std::move(o));
    if (!lw) throw std::invalid_argument("apiserver_source_maker: " + lw.error().what());
    return *lw;
  };
}

}  // namespace informer
