#include "informer/core/log.hpp"

#include "informer/core/mutex.hpp"

#include "core/detail/ascii.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string_view>
#include <utility>
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

constexpr std::string_view mask = "[redacted]";

using informer::detail::ascii_lower;
bool is_word(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; }
bool is_space(char c) { return c == ' ' || c == '\t'; }

// Positions of `word` in `lowered` (the text in lower case) that start a word.
template <class F>
void for_each_word(std::string_view lowered, std::string_view word, F f) {
  for (std::size_t at = lowered.find(word); at != std::string_view::npos; at = lowered.find(word, at + 1)) {
    if (at > 0 && is_word(lowered[at - 1])) continue;
    f(at);
  }
}

// Ranges to replace by the mask, possibly overlapping; applied in one pass at the end.
struct masks {
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  void add(std::size_t begin, std::size_t end) {
    if (end > begin) ranges.emplace_back(begin, end);
  }
  // The value starting at `from`: inside its quotes when it opens with one, else up to the first
  // character in `stops`.
  void add_value(std::string_view text, std::size_t from, std::string_view stops) {
    if (from < text.size() && (text[from] == '"' || text[from] == '\'')) {
      const auto close = text.find(text[from], from + 1);
      add(from + 1, close == std::string_view::npos ? text.size() : close);
      return;
    }
    const auto end = text.find_first_of(stops, from);
    add(from, end == std::string_view::npos ? text.size() : end);
  }
  std::string apply(std::string_view text) {
    std::sort(ranges.begin(), ranges.end());
    std::string out;
    std::size_t at = 0;
    for (auto [begin, end] : ranges) {
      if (end <= at) continue;
      if (begin < at) begin = at;
      out.append(text.substr(at, begin - at)).append(mask);
      at = end;
    }
    return out.append(text.substr(at));
  }
};

// After a key (`at` just past it): optional closing quote, spaces, then `separators`, spaces and
// an optional opening quote. Returns where the value starts, or npos when no separator follows.
std::size_t value_start(std::string_view text, std::size_t at, std::string_view separators) {
  if (at < text.size() && (text[at] == '"' || text[at] == '\'')) ++at;
  while (at < text.size() && is_space(text[at])) ++at;
  if (at >= text.size() || separators.find(text[at]) == std::string_view::npos) return std::string_view::npos;
  ++at;
  while (at < text.size() && is_space(text[at])) ++at;
  return at;
}

// Every rule is a forward scan: linear in the text, whatever it holds.
void find_secrets(std::string_view text, masks& m) {
  std::string lowered(text);
  for (char& c : lowered) c = ascii_lower(c);
  // Header values, whole (a scheme and its credentials): to the end of the line or the quote.
  for (std::string_view header : {"authorization", "proxy-authorization", "cookie", "set-cookie"}) {
    for_each_word(lowered, header, [&](std::size_t at) {
      const auto from = value_start(text, at + header.size(), ":=");
      if (from != std::string_view::npos) m.add_value(text, from, "\r\n\"'");
    });
  }
  // Credentials after an authentication scheme, wherever they appear.
  for (std::string_view scheme : {"bearer", "basic"}) {
    for_each_word(lowered, scheme, [&](std::size_t at) {
      auto from = at + scheme.size();
      if (from >= text.size() || !is_space(text[from])) return;
      while (from < text.size() && is_space(text[from])) ++from;
      m.add_value(text, from, " \t\r\n\"',;");
    });
  }
  // Values of keys that name a secret: "token", "bearer_token", "client-key-data", "password",
  // "secretAccessKey", ... (the key ends with one of these words).
  for (std::string_view key : {"token", "password", "passwd", "secret", "key-data", "apikey", "api-key", "api_key",
                               "accesskey", "private-key", "privatekey", "credential", "credentials"}) {
    for (std::size_t at = lowered.find(key); at != std::string_view::npos; at = lowered.find(key, at + 1)) {
      const auto end = at + key.size();
      if (end < text.size() && std::isalnum(static_cast<unsigned char>(text[end]))) continue;  // "tokens"
      auto start = at;                                                                         // of the whole key
      while (start > 0 && is_word(text[start - 1])) --start;
      if (start > 0 && text[start - 1] == '/') continue;  // a path: ".../token: no such file"
      const auto from = value_start(text, end, ":=");
      if (from != std::string_view::npos) m.add_value(text, from, " \t\r\n\"&,;}");
    }
  }
  // User-info of URLs: scheme://user:password@host.
  for (std::size_t at = text.find("://"); at != std::string_view::npos; at = text.find("://", at + 3)) {
    const auto from = at + 3;
    const auto end = text.find_first_of("/ \t\r\n@?#\"'", from);
    if (end != std::string_view::npos && text[end] == '@') m.add(from, end);
  }
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
  // A longer message is no longer readable anyway.
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
  masks m;
  find_secrets(out, m);
  return m.apply(out);
}

}  // namespace informer
