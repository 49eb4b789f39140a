#include "informer/core/log.hpp"

#include "informer/core/mutex.hpp"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <memory>
#include <regex>
#include <vector>

namespace informer {
namespace {

struct logger {
  std::atomic<log_level> level{log_level::warning};
  informer::mutex mu;
  std::shared_ptr<const log_sink> sink INFORMER_GUARDED_BY(mu) = std::make_shared<const log_sink>(stderr_log_sink());
};

logger& the_logger() {
  static logger* const instance = new logger;  // never destroyed: logging may happen during exit
  return *instance;
}

char level_letter(log_level level) {
  switch (level) {
    case log_level::debug: return 'D';
    case log_level::info: return 'I';
    case log_level::warning: return 'W';
    case log_level::error: return 'E';
    case log_level::off: break;
  }
  return '?';
}

struct redaction {
  std::regex pattern;
  const char* replacement;
};

const std::vector<redaction>& redactions() {
  constexpr auto flags = std::regex::ECMAScript | std::regex::icase;
  static const std::vector<redaction> all{
      {std::regex(R"(\b((?:proxy-)?authorization)(\s*:\s*)[^\r\n"]*)", flags), "$1$2[redacted]"},
      {std::regex(R"(\b(bearer|basic)(\s+)[^\s"',;]+)", flags), "$1$2[redacted]"},
      {std::regex(R"(\b([a-z0-9_.-]*(?:token|password|passwd|secret|key-data))("?\s*[:=]\s*"?)[^\s"&,;}]+)", flags),
       "$1$2[redacted]"},
      {std::regex(R"(\b([a-z][a-z0-9+.-]*://)[^/\s@]+@)", flags), "$1[redacted]@"},
  };
  return all;
}

}  // namespace

std::string_view to_string(log_level level) noexcept {
  switch (level) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warning: return "warning";
    case log_level::error: return "error";
    case log_level::off: return "off";
  }
  return "unknown";
}

void set_log_level(log_level level) noexcept { the_logger().level.store(level); }

log_level get_log_level() noexcept { return the_logger().level.load(); }

bool log_enabled(log_level level) noexcept {
  const auto threshold = the_logger().level.load(std::memory_order_relaxed);
  return level != log_level::off && threshold != log_level::off && level >= threshold;
}

log_sink set_log_sink(log_sink sink) {
  auto next = std::make_shared<const log_sink>(std::move(sink));
  auto& l = the_logger();
  informer::lock_guard lock(l.mu);
  std::swap(l.sink, next);
  return next ? *next : log_sink{};
}

log_sink stderr_log_sink() {
  return [](const log_record& r) {
    const auto t = std::chrono::system_clock::to_time_t(r.time);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.time.time_since_epoch()).count() % 1000;
    std::tm utc{};
    gmtime_r(&t, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    // One write per record, so that concurrent records do not interleave within a line.
    std::string line = "informer ";
    line += level_letter(r.level);
    line += ' ';
    line += stamp;
    line += '.';
    const auto millis = std::to_string(ms);
    line.append(3 - millis.size(), '0').append(millis).append("Z ");
    line.append(r.component).append(": ").append(r.message).append("\n");
    std::fwrite(line.data(), 1, line.size(), stderr);
  };
}

void log(log_level level, std::string_view component, std::string_view message) {
  if (!log_enabled(level)) return;
  std::shared_ptr<const log_sink> sink;
  {
    auto& l = the_logger();
    informer::lock_guard lock(l.mu);
    sink = l.sink;
  }
  if (!sink || !*sink) return;
  const std::string text = redact(message);
  try {
    (*sink)(
        log_record{.level = level, .component = component, .message = text, .time = std::chrono::system_clock::now()});
  } catch (...) {
    // A failing sink must not take the SDK's threads down with it.
  }
}

std::string redact(std::string_view text) {
  // libstdc++'s regex recurses per character: bound the text first (a longer message is no
  // longer readable anyway).
  constexpr std::size_t max_length = 4096;
  std::string out(text.substr(0, max_length));
  if (text.size() > max_length) out += "...[truncated]";
  // PEM private keys, whole blocks (an unterminated one to the end).
  for (std::size_t at = 0; (at = out.find("-----BEGIN ", at)) != std::string::npos;) {
    const auto header_end = out.find("-----", at + 11);
    if (header_end == std::string::npos) break;
    if (std::string_view(out).substr(at, header_end - at).ends_with("PRIVATE KEY")) {
      auto end = out.find("-----END ", header_end + 5);
      end = end == std::string::npos ? out.size() : out.find("-----", end + 9);
      end = end == std::string::npos ? out.size() : end + 5;
      out.replace(at, end - at, "[redacted private key]");
    }
    ++at;
  }
  for (const auto& r : redactions()) out = std::regex_replace(out, r.pattern, r.replacement);
  return out;
}

}  // namespace informer
