// informer/core/log.hpp
//
// What the SDK tells its user about itself: failed lists and watches, relists, backoffs, retries,
// throttling, credential refreshes, objects it could not decode. Without it a 401, a 403 or a bad
// certificate shows up only as an informer that never syncs.
//
// One process-wide logger with a level and a sink:
// - the level: records below it are dropped before their text is built (`log_enabled`); default
//   `warning`;
// - the sink: a function given each record; default: one line on stderr,
//   "informer W 2026-11-30T04:52:35.123Z reflector: configmaps in default: ... \n". Route records
//   into your own logging (spdlog, glog, syslog) with `set_log_sink`; an empty sink drops them.
//
// Secrets never reach the sink: every message passes `redact`, which masks bearer tokens,
// Authorization, Proxy-Authorization and Cookie header values, `token=`/`password=` style
// parameters, URL credentials and PEM private keys, whatever wrote them. The SDK also never puts a credential
// into a message on purpose; the mask is a second guard.
//
//   informer::set_log_level(informer::log_level::info);
//   informer::set_log_sink([](const informer::log_record& r) { my_log(r.level, r.component, r.message); });
//
// Thread safety: every function is thread-safe. The sink is called from whatever thread logs
// (the I/O executors included), possibly concurrently: it must be thread-safe and quick. It may be
// called while the SDK holds a lock of its own (an informer reporting a failing indexer does), so
// it must not call back into informers or clients; it may log again or change the level or sink
// (the logger's own lock is not held). An exception thrown by the sink is swallowed.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace informer {

enum class log_level { debug, info, warning, error, off };

/// "debug", "info", "warning", "error" or "off".
std::string_view to_string(log_level level) noexcept;

struct log_record {
  log_level level = log_level::info;
  std::string_view component;  ///< "reflector", "http_client", "etcd", ...
  std::string_view message;    ///< already redacted
  std::chrono::system_clock::time_point time{};
};

using log_sink = std::function<void(const log_record&)>;

/// Records below `level` are dropped; `log_level::off` drops all.
void set_log_level(log_level level) noexcept;
log_level get_log_level() noexcept;
/// True when a record of `level` would reach the sink; check it before building costly text.
bool log_enabled(log_level level) noexcept;

/// Replaces the sink (an empty one drops every record). Returns the previous sink.
log_sink set_log_sink(log_sink sink);
/// The default sink: one line per record on stderr.
log_sink stderr_log_sink();

/// Sends `message`, redacted, to the sink when `level` is enabled.
void log(log_level level, std::string_view component, std::string_view message);

/// `text` (its first 4 KiB) with credentials masked as "[redacted]": the value after "Bearer " or
/// "Basic ", after an Authorization, Proxy-Authorization, Cookie or Set-Cookie header name, after
/// keys ending in token, password, passwd, secret, key-data, apikey, accesskey, private-key or
/// credential(s) (`=`, `:` or `": "` separated; a quoted value to its closing quote), the
/// user-info of URLs (`https://user:pass@host`), and whole PEM private key blocks. Linear in the
/// text.
std::string redact(std::string_view text);

}  // namespace informer
