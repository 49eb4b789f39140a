#include "informer/metrics/registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace informer::metrics {
namespace {

bool valid_metric_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool valid_label_name(std::string_view s) {
  // Names starting with "__" are reserved for Prometheus itself.
  if (s.empty() || s.starts_with("__")) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// The text format's numbers: shortest round-trip form, and +Inf / -Inf / NaN spelled its way.
void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

// HELP text escapes backslash and newline; label values also escape the double quote.
void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void write_header(std::string& out, const family& f) {
  out += "# HELP ";
  out += f.name();
  out += ' ';
  append_escaped(out, f.help(), false);
  out += "\n# TYPE ";
  out += f.name();
  out += ' ';
  out += f.type();
  out += '\n';
}

template <class Cell>
std::shared_ptr<Cell> find_or_add(std::map<std::vector<std::string>, std::shared_ptr<Cell>>& series,
                                  std::span<const std::string> values, const auto& make) {
  std::vector<std::string> key(values.begin(), values.end());
  auto it = series.find(key);
  if (it == series.end()) it = series.emplace(std::move(key), make()).first;
  return it->second;
}

}  // namespace

void histogram::observe(double v) const noexcept {
  if (!cell_ || std::isnan(v)) return;
  const auto& b = *bounds_;
  // Upper bounds are inclusive ("le"): the first bound >= v.
  const auto i = static_cast<std::size_t>(std::lower_bound(b.begin(), b.end(), v) - b.begin());
  cell_->counts[i].fetch_add(1, std::memory_order_relaxed);
  cell_->sum.fetch_add(v, std::memory_order_relaxed);
}

std::uint64_t histogram::count() const noexcept {
  if (!cell_) return 0;
  std::uint64_t n = 0;
  for (const auto& c : cell_->counts) n += c.load(std::memory_order_relaxed);
  return n;
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  if (!(start > 0) || !(factor > 1) || count < 1) {
    throw std::invalid_argument("exponential_buckets: needs start > 0, factor > 1 and count >= 1");
  }
  std::vector<double> bounds;
  bounds.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i, start *= factor) bounds.push_back(start);
  return bounds;
}

family::family(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {
  if (!valid_metric_name(name_)) throw std::invalid_argument("metrics: invalid metric name \"" + name_ + "\"");
  for (std::size_t i = 0; i < label_names_.size(); ++i) {
    if (!valid_label_name(label_names_[i])) {
      throw std::invalid_argument("metrics: " + name_ + ": invalid label name \"" + label_names_[i] + "\"");
    }
    if (std::find(label_names_.begin(), label_names_.begin() + static_cast<std::ptrdiff_t>(i), label_names_[i]) !=
        label_names_.begin() + static_cast<std::ptrdiff_t>(i)) {
      throw std::invalid_argument("metrics: " + name_ + ": label name \"" + label_names_[i] + "\" given twice");
    }
  }
}

void family::check_arity(std::size_t values) const {
  if (values != label_names_.size()) {
    throw std::invalid_argument("metrics: " + name_ + " has " + std::to_string(label_names_.size()) +
                                " label names, given " + std::to_string(values) + " values");
  }
}

void family::write_series_name(std::string& out, std::string_view suffix, const std::vector<std::string>& values,
                               std::string_view extra) const {
  out += name_;
  out += suffix;
  if (values.empty() && extra.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += label_names_[i];
    out += "=\"";
    append_escaped(out, values[i], true);
    out += '"';
  }
  if (!extra.empty()) {
    if (!values.empty()) out += ',';
    out += extra;
  }
  out += '}';
}

counter counter_family::with(std::span<const std::string> values) {
  check_arity(values.size());
  informer::lock_guard lock(mu_);
  return counter{find_or_add(series_, values, [] { return std::make_shared<detail::counter_cell>(); })};
}

void counter_family::write_prometheus(std::string& out) const {
  write_header(out, *this);
  informer::lock_guard lock(mu_);
  for (const auto& [values, cell] : series_) {
    write_series_name(out, {}, values);
    out += ' ';
    append_number(out, cell->value.load(std::memory_order_relaxed));
    out += '\n';
  }
}

gauge gauge_family::with(std::span<const std::string> values) {
  check_arity(values.size());
  informer::lock_guard lock(mu_);
  return gauge{find_or_add(series_, values, [] { return std::make_shared<detail::gauge_cell>(); })};
}

void gauge_family::set_callback(std::span<const std::string> values, std::function<std::optional<double>()> callback) {
  check_arity(values.size());
  auto shared = std::make_shared<const detail::gauge_callback>(std::move(callback));
  informer::lock_guard lock(mu_);
  find_or_add(series_, values, [] { return std::make_shared<detail::gauge_cell>(); });
  callbacks_[std::vector<std::string>(values.begin(), values.end())] = std::move(shared);
}

void gauge_family::write_prometheus(std::string& out) const {
  // Callbacks run without the lock (they may take locks of their own, e.g. an informer's).
  std::vector<std::pair<std::vector<std::string>, std::shared_ptr<detail::gauge_cell>>> copy;
  std::vector<std::shared_ptr<const detail::gauge_callback>> callbacks;
  {
    informer::lock_guard lock(mu_);
    copy.assign(series_.begin(), series_.end());
    for (const auto& [values, cell] : copy) {
      const auto it = callbacks_.find(values);
      callbacks.push_back(it == callbacks_.end() ? nullptr : it->second);
    }
  }
  write_header(out, *this);
  for (std::size_t i = 0; i < copy.size(); ++i) {
    double v = copy[i].second->value.load(std::memory_order_relaxed);
    if (callbacks[i]) {
      const std::optional<double> read = (*callbacks[i])();
      if (!read) continue;
      v = *read;
    }
    write_series_name(out, {}, copy[i].first);
    out += ' ';
    append_number(out, v);
    out += '\n';
  }
}

histogram_family::histogram_family(std::string name, std::string help, std::vector<std::string> label_names,
                                   std::vector<double> bounds)
    : family(std::move(name), std::move(help), std::move(label_names)),
      bounds_(std::make_shared<const std::vector<double>>(std::move(bounds))) {
  if (std::find(label_names_.begin(), label_names_.end(), "le") != label_names_.end()) {
    throw std::invalid_argument("metrics: " + name_ + ": \"le\" is reserved for histogram buckets");
  }
  for (std::size_t i = 0; i < bounds_->size(); ++i) {
    const double b = (*bounds_)[i];
    if (!std::isfinite(b) || (i > 0 && !(b > (*bounds_)[i - 1]))) {
      throw std::invalid_argument("metrics: " + name_ + ": bucket bounds must be finite and strictly increasing");
    }
  }
}

histogram histogram_family::with(std::span<const std::string> values) {
  check_arity(values.size());
  informer::lock_guard lock(mu_);
  return histogram{
      find_or_add(series_, values, [&] { return std::make_shared<detail::histogram_cell>(bounds_->size()); }), bounds_};
}

void histogram_family::write_prometheus(std::string& out) const {
  write_header(out, *this);
  // The `le` labels, formatted once per scrape rather than once per series.
  std::vector<std::string> les;
  les.reserve(bounds_->size() + 1);
  for (std::size_t i = 0; i <= bounds_->size(); ++i) {
    std::string le = "le=\"";
    append_number(le, i < bounds_->size() ? (*bounds_)[i] : HUGE_VAL);
    les.push_back(std::move(le) + '"');
  }
  informer::lock_guard lock(mu_);
  for (const auto& [values, cell] : series_) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_->size(); ++i) {
      cumulative += cell->counts[i].load(std::memory_order_relaxed);
      write_series_name(out, "_bucket", values, les[i]);
      out += ' ';
      out += std::to_string(cumulative);
      out += '\n';
    }
    write_series_name(out, "_sum", values);
    out += ' ';
    append_number(out, cell->sum.load(std::memory_order_relaxed));
    out += '\n';
    // The +Inf bucket's total, so that _count always equals it.
    write_series_name(out, "_count", values);
    out += ' ';
    out += std::to_string(cumulative);
    out += '\n';
  }
}

family* registry::find_locked(const std::string& name, std::string_view type, const std::string& help,
                              const std::vector<std::string>& label_names) const {
  const auto it = families_.find(name);
  if (it == families_.end()) return nullptr;
  family& f = *it->second;
  if (f.type() != type || f.help() != help || f.label_names() != label_names) {
    throw std::invalid_argument("metrics: " + name + " is already registered as a different " + std::string(f.type()) +
                                " family");
  }
  return &f;
}

counter_family& registry::counter(std::string name, std::string help, std::vector<std::string> label_names) {
  informer::lock_guard lock(mu_);
  if (auto* f = find_locked(name, "counter", help, label_names)) return static_cast<counter_family&>(*f);
  std::unique_ptr<counter_family> f{new counter_family(name, std::move(help), std::move(label_names))};
  auto& ref = *f;
  families_.emplace(std::move(name), std::move(f));
  return ref;
}

gauge_family& registry::gauge(std::string name, std::string help, std::vector<std::string> label_names) {
  informer::lock_guard lock(mu_);
  if (auto* f = find_locked(name, "gauge", help, label_names)) return static_cast<gauge_family&>(*f);
  std::unique_ptr<gauge_family> f{new gauge_family(name, std::move(help), std::move(label_names))};
  auto& ref = *f;
  families_.emplace(std::move(name), std::move(f));
  return ref;
}

histogram_family& registry::histogram(std::string name, std::string help, std::vector<std::string> label_names,
                                      std::vector<double> bounds) {
  informer::lock_guard lock(mu_);
  if (auto* f = find_locked(name, "histogram", help, label_names)) {
    auto& h = static_cast<histogram_family&>(*f);
    if (h.bounds() != bounds) {
      throw std::invalid_argument("metrics: " + name + " is already registered with other bucket bounds");
    }
    return h;
  }
  std::unique_ptr<histogram_family> f{
      new histogram_family(name, std::move(help), std::move(label_names), std::move(bounds))};
  auto& ref = *f;
  families_.emplace(std::move(name), std::move(f));
  return ref;
}

void registry::write_prometheus(std::string& out) const {
  // Families are never removed, so their addresses stay valid after the lock is released; writing
  // without it lets scrape-time callbacks register families of their own without a deadlock.
  std::vector<const family*> families;
  {
    informer::lock_guard lock(mu_);
    families.reserve(families_.size());
    for (const auto& [name, f] : families_) families.push_back(f.get());
  }
  for (const auto* f : families) f->write_prometheus(out);
}

}  // namespace informer::metrics
