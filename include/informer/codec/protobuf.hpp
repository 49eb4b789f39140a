// informer/codec/protobuf.hpp
//
// Kubernetes' protobuf encoding, decoded into the JSON the API server would have sent for the same
// object, so that an object read as protobuf (from kube-apiserver with
// `Accept: application/vnd.kubernetes.protobuf`, or straight from etcd) compares equal to the one
// read as JSON. Use it in a source (API-server or etcd list-watcher) between the bytes and
// `informer::object`.
//
// The layers, each usable alone:
//   - `unwrap_envelope`: a body or an etcd value is the 4 bytes `k8s\0` and a `runtime.Unknown`
//     {typeMeta{apiVersion, kind}, raw, contentEncoding, contentType}; `raw` is the object's message.
//   - `watch_frame_reader` + `decode_watch_event`: a protobuf watch stream is a sequence of frames
//     (4-byte big-endian length, then a `metav1.WatchEvent` {type, object{raw}}) whose object is
//     again an envelope.
//   - `metadata_to_json`: just the object's `metadata` (ObjectMeta), decoded by hand-written code
//     that needs no schema: always available, and cheap (the body is skipped, not parsed).
//   - `to_json` / `message_to_json`: the whole object. Needs the Kubernetes schemas compiled in
//     (CMake option INFORMER_KUBERNETES_PROTO; `has_schemas()` tells): the `.proto` files of the
//     built-in kinds, plus a table of how Go's encoding/json renders each of their fields (JSON name,
//     omitempty, inlined structs, pointer or value), both read from the Kubernetes 1.20 source by
//     scripts/provision-control-plane.sh. The output follows Kubernetes' JSON exactly: field names
//     and order, omitted empties vs. kept zeros and nulls, `metav1.Time` (RFC 3339, seconds) and
//     `MicroTime` (microseconds), `intstr.IntOrString`, `resource.Quantity`, `metav1.Duration`,
//     `FieldsV1` and `runtime.RawExtension` (embedded JSON), bytes as base64, maps, lists.
//     Known limit: protobuf cannot tell an empty list from an absent one; both decode as Go's nil
//     (omitted, or `null` where the field has no omitempty), which is also what the API server
//     renders for an object it read from etcd. The one place the server itself differs is the
//     `items` of a list response, always `[]`, which `to_json` reproduces.
//
// Reading etcd directly: values are stored in the resource's storage version (1.20: Leases as
// coordination.k8s.io/v1beta1, Events as core v1, CustomResourceDefinitions as JSON), without
// metadata.resourceVersion (the server sets it from the key's mod_revision), and before the
// defaulting kube-apiserver applies whenever it decodes from etcd: a field a mutating admission
// plugin added without its defaults (the ServiceAccount token volume's `secret.defaultMode`) is
// absent from etcd but present in the server's answer. Everything else decodes identically.
//
// Lifetimes: `envelope` and `watch_event` hold views into the bytes they were decoded from; keep
// those bytes alive while using them. JSON values returned own their data.
//
// Errors: `informer::error` values with `codec::errc` codes (informer/codec/errors.hpp) and a
// detail naming the offending field path, offset or kind. Bad input never throws or crashes.
//
// Thread safety: all functions are thread-safe (the schemas are loaded once, on first use, and
// immutable afterwards). A `watch_frame_reader` is not thread-safe: confine it to one strand.
#pragma once

#include "informer/codec/errors.hpp"
#include "informer/core/error.hpp"

#include <boost/json/value.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace informer::codec {

/// The 4 bytes that open every Kubernetes protobuf body and etcd value.
inline constexpr std::string_view protobuf_magic{"k8s\0", 4};

/// The `runtime.Unknown` behind the magic: the object's type and its encoded message. Views into
/// the decoded bytes (or whatever the caller points them at when building one).
struct envelope {
  std::string_view api_version{};       ///< e.g. "v1", "apps/v1"
  std::string_view kind{};              ///< e.g. "Pod", "PodList"
  std::string_view raw{};               ///< the object's protobuf message (e.g. a k8s.io.api.core.v1.Pod)
  std::string_view content_encoding{};  ///< empty in practice
  std::string_view content_type{};      ///< empty in practice (Kubernetes leaves it unset)
};

/// Splits `bytes` (`k8s\0` + runtime.Unknown) into its parts, without copying.
/// Errors: `not_protobuf` (no magic; the detail says when the bytes look like JSON),
/// `encrypted` (`k8s:enc:` prefix), `truncated`, `malformed`.
detailed_result<envelope> unwrap_envelope(std::string_view bytes);

/// The inverse of `unwrap_envelope`: `k8s\0` + runtime.Unknown, as kube-apiserver writes it
/// (empty contentEncoding/contentType are written as empty strings, like Go's non-nullable fields).
std::string wrap_envelope(const envelope& env);

struct watch_frame_reader_options {
  /// Largest accepted frame (the WatchEvent after the 4-byte length). kube-apiserver limits objects
  /// to 1.5 MiB by default; a length far beyond that means a corrupt or misaligned stream.
  std::size_t max_frame_bytes = 16 * 1024 * 1024;
};

/// Splits a protobuf watch stream (`Accept: application/vnd.kubernetes.protobuf;stream=watch`) into
/// frames, incrementally: feed it the bytes as they arrive, in any chunking, and take the complete
/// frames out. A frame is a 4-byte big-endian length followed by that many bytes.
///
/// Errors: `frame_too_large` when a header announces more than `max_frame_bytes` (the stream cannot
/// be resynchronised: the reader stays failed, reopen the watch); `truncated` from `finish()` when
/// the stream ended inside a frame.
///
/// Thread safety: not thread-safe; one reader per stream, confined to one strand.
class watch_frame_reader {
public:
  explicit watch_frame_reader(watch_frame_reader_options options = {});

  /// Appends bytes read from the stream. Invalidates the view returned by `next()`.
  void feed(std::string_view bytes);

  /// The next complete frame (without its length prefix), or `std::nullopt` when more bytes are
  /// needed. The view stays valid until the next call to `feed()` or `next()`.
  detailed_result<std::optional<std::string_view>> next();

  /// Call when the stream has ended: an error if it ended inside a frame (`truncated`), or if the
  /// reader had failed (`frame_too_large`).
  error finish() const;

  /// Bytes received and not yet returned as frames.
  std::size_t buffered() const noexcept { return buffer_.size() - consumed_; }

private:
  watch_frame_reader_options options_;
  std::string buffer_;
  std::size_t consumed_ = 0;  // bytes at the front of buffer_ already returned
  error failure_;
};

/// One event of a protobuf watch: `type` is "ADDED", "MODIFIED", "DELETED", "BOOKMARK" or "ERROR"
/// (whose object is a `Status`, e.g. 410 Expired). Views into the frame.
struct watch_event {
  std::string_view type{};
  envelope object{};
};

/// Decodes one frame from `watch_frame_reader` (a `metav1.WatchEvent`) and unwraps its object.
/// Errors: those of `unwrap_envelope` for the object, `malformed`/`truncated` for the event.
detailed_result<watch_event> decode_watch_event(std::string_view frame);

/// `{"kind", "apiVersion", "metadata"}` of the object in `env`: the metadata exactly as in the
/// full JSON, decoded without any schema (field 1 of every built-in kind is its ObjectMeta; for a
/// list kind that is the ListMeta, which this does not decode: use `to_json`). Cheap: the rest of
/// the body is skipped. Errors: `truncated`, `malformed` (with the field path).
detailed_result<boost::json::value> metadata_to_json(const envelope& env);

/// True when the full schemas are compiled in (so `to_json` can decode the built-in kinds).
bool has_schemas() noexcept;

struct to_json_options {
  /// A field number the compiled (1.20) schemas lack fails the decode with `unknown_field`
  /// instead of being left out. An API-server source sets it and reads such a resource as JSON;
  /// a reader with no other encoding to turn to (etcd) leaves it off and keeps the known fields.
  bool reject_unknown_fields = false;
};

/// The object in `env` as the JSON kube-apiserver sends for it: `kind` and `apiVersion` from the
/// envelope, then the body rendered field by field (see the header comment).
/// Errors: `schemas_unavailable` (built without them), `unknown_kind` (no message for this
/// apiVersion/kind, e.g. a custom resource), `truncated`/`malformed` (bad bytes, bad embedded
/// JSON), `unsupported` (a value Kubernetes' own JSON encoder would refuse), `unknown_field` (see
/// `to_json_options`); the detail names the field path.
detailed_result<boost::json::value> to_json(const envelope& env, const to_json_options& options = {});

/// One message of a named protobuf type (e.g. "k8s.io.api.core.v1.PodSpec") as Kubernetes renders
/// it in JSON; no kind/apiVersion are added. Errors as for `to_json`.
detailed_result<boost::json::value> message_to_json(std::string_view message_name, std::string_view bytes,
                                                    const to_json_options& options = {});

}  // namespace informer::codec
