// informer/metrics/registry.hpp
//
// A small metrics registry for a controller process: counters, gauges and histograms with labels,
// written out in the Prometheus text exposition format 0.0.4 (what `/metrics` serves; see
// informer/metrics/endpoint.hpp). The adapters in informer/metrics/adapters.hpp wire the library's
// hooks (workqueue, reflector, informer) to one.
//
// Model (Prometheus client_golang's): a family has a name, a help text and fixed label names; a
// series is one tuple of label values in it. `family.with({"a", "b"})` finds or creates a series and
// returns a handle. Looking a series up takes the family's lock; a held handle updates its series
// with atomics and no lock, so hot paths keep the handle. Series are never removed (a handle stays
// valid); a scrape-time gauge (`gauge_family::set_callback`) whose callback returns nullopt is left
// out of the output, which is how a series for something gone (a stopped informer) disappears.
//
// Errors: registering a family with an invalid metric or label name, with the reserved label name
// "le" on a histogram, with histogram bounds that are not strictly increasing and finite, or under
// a name already registered with another type, help or label names, throws
// `std::invalid_argument`; registering the same family again returns the existing one. `with`
// throws `std::invalid_argument` when the number of values is not the number of label names.
//
// Thread safety: everything is thread-safe. Handles update without locks; a scrape reads each
// value atomically but not all values at one instant (a histogram observed during a scrape may show
// a `_sum` that includes an observation its buckets do not yet, never a `_count` that disagrees with
// its `+Inf` bucket). Scrape-time callbacks are called by `write_prometheus` without any registry
// lock held, so they may take their own locks; they must not throw.
// Lifetimes: families live as long as the registry; a handle shares ownership of its series and
// may outlive both.
#pragma once

#include "informer/core/mutex.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace informer::metrics {

namespace detail {

struct counter_cell {
  std::atomic<double> value{0};
};

struct gauge_cell {
  std::atomic<double> value{0};
};

using gauge_callback = std::function<std::optional<double>()>;

struct histogram_cell {
  explicit histogram_cell(std::size_t buckets) : counts(buckets + 1) {}
  // Non-cumulative counts, one per upper bound, then one for +Inf.
  std::vector<std::atomic<std::uint64_t>> counts;
  std::atomic<double> sum{0};
};

}  // namespace detail

/// A monotonically increasing value. Cheap to copy; a default-constructed handle does nothing.
class counter {
public:
  counter() = default;
  /// Adds `v`; a negative `v` is ignored (counters only go up).
  void inc(double v = 1) const noexcept {
    if (cell_ && v > 0) cell_->value.fetch_add(v, std::memory_order_relaxed);
  }
  double value() const noexcept { return cell_ ? cell_->value.load(std::memory_order_relaxed) : 0; }

private:
  friend class counter_family;
  explicit counter(std::shared_ptr<detail::counter_cell> cell) : cell_(std::move(cell)) {}
  std::shared_ptr<detail::counter_cell> cell_;
};

/// A value that goes up and down. Cheap to copy; a default-constructed handle does nothing.
class gauge {
public:
  gauge() = default;
  void set(double v) const noexcept {
    if (cell_) cell_->value.store(v, std::memory_order_relaxed);
  }
  void inc(double v = 1) const noexcept {
    if (cell_) cell_->value.fetch_add(v, std::memory_order_relaxed);
  }
  void dec(double v = 1) const noexcept { inc(-v); }
  double value() const noexcept { return cell_ ? cell_->value.load(std::memory_order_relaxed) : 0; }

private:
  friend class gauge_family;
  explicit gauge(std::shared_ptr<detail::gauge_cell> cell) : cell_(std::move(cell)) {}
  std::shared_ptr<detail::gauge_cell> cell_;
};

/// Counts observations into buckets by upper bound. Cheap to copy; a default-constructed handle
/// does nothing.
class histogram {
public:
  histogram() = default;
  /// Records `v` (NaN is ignored).
  void observe(double v) const noexcept;
  std::uint64_t count() const noexcept;
  double sum() const noexcept { return cell_ ? cell_->sum.load(std::memory_order_relaxed) : 0; }

private:
  friend class histogram_family;
  histogram(std::shared_ptr<detail::histogram_cell> cell, std::shared_ptr<const std::vector<double>> bounds)
      : cell_(std::move(cell)), bounds_(std::move(bounds)) {}
  std::shared_ptr<detail::histogram_cell> cell_;
  std::shared_ptr<const std::vector<double>> bounds_;
};

/// `count` bounds: start, start*factor, ... (client_golang's ExponentialBuckets). Throws
/// `std::invalid_argument` unless start > 0, factor > 1 and count >= 1.
std::vector<double> exponential_buckets(double start, double factor, int count);

/// What the families have in common; see the file comment.
class family {
public:
  virtual ~family() = default;
  family(const family&) = delete;
  family& operator=(const family&) = delete;

  const std::string& name() const noexcept { return name_; }
  const std::string& help() const noexcept { return help_; }
  const std::vector<std::string>& label_names() const noexcept { return label_names_; }
  /// "counter", "gauge" or "histogram".
  virtual std::string_view type() const noexcept = 0;

  /// Appends this family (HELP, TYPE and one line per series, in label-value order) to `out`.
  virtual void write_prometheus(std::string& out) const = 0;

protected:
  family(std::string name, std::string help, std::vector<std::string> label_names);
  // Throws std::invalid_argument unless values.size() == label_names_.size().
  void check_arity(std::size_t values) const;
  // `name{a="x",b="y"` + extra (already formatted, e.g. `le="1"`) + `}`, or just `name` without labels.
  void write_series_name(std::string& out, std::string_view suffix, const std::vector<std::string>& values,
                         std::string_view extra = {}) const;

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  mutable informer::mutex mu_;
};

class counter_family final : public family {
public:
  /// The series for `values` (one per label name, in order), created at 0 on first use.
  counter with(std::span<const std::string> values);
  counter with(std::initializer_list<std::string> values) { return with(std::span{values.begin(), values.size()}); }
  std::string_view type() const noexcept override { return "counter"; }
  void write_prometheus(std::string& out) const override;

private:
  friend class registry;
  using family::family;
  std::map<std::vector<std::string>, std::shared_ptr<detail::counter_cell>> series_ INFORMER_GUARDED_BY(mu_);
};

class gauge_family final : public family {
public:
  /// The series for `values`, created at 0 on first use.
  gauge with(std::span<const std::string> values);
  gauge with(std::initializer_list<std::string> values) { return with(std::span{values.begin(), values.size()}); }
  /// Makes the series for `values` read `callback()` at each scrape instead of its stored value
  /// (nullopt: the series is left out). Replaces an earlier callback of that series. The callback
  /// is called without registry locks, on the scraping thread; it must be quick and not throw.
  void set_callback(std::span<const std::string> values, std::function<std::optional<double>()> callback);
  void set_callback(std::initializer_list<std::string> values, std::function<std::optional<double>()> callback) {
    set_callback(std::span{values.begin(), values.size()}, std::move(callback));
  }
  std::string_view type() const noexcept override { return "gauge"; }
  void write_prometheus(std::string& out) const override;

private:
  friend class registry;
  using family::family;
  std::map<std::vector<std::string>, std::shared_ptr<detail::gauge_cell>> series_ INFORMER_GUARDED_BY(mu_);
  // Scrape-time callbacks by series (kept here, not in the cells, so that the family's lock can
  // guard them); copied under the lock at a scrape and called outside it.
  std::map<std::vector<std::string>, std::shared_ptr<const detail::gauge_callback>> callbacks_ INFORMER_GUARDED_BY(mu_);
};

class histogram_family final : public family {
public:
  /// The series for `values`, created empty on first use.
  histogram with(std::span<const std::string> values);
  histogram with(std::initializer_list<std::string> values) { return with(std::span{values.begin(), values.size()}); }
  /// The upper bounds (without +Inf).
  const std::vector<double>& bounds() const noexcept { return *bounds_; }
  std::string_view type() const noexcept override { return "histogram"; }
  void write_prometheus(std::string& out) const override;

private:
  friend class registry;
  histogram_family(std::string name, std::string help, std::vector<std::string> label_names,
                   std::vector<double> bounds);
  const std::shared_ptr<const std::vector<double>> bounds_;
  std::map<std::vector<std::string>, std::shared_ptr<detail::histogram_cell>> series_ INFORMER_GUARDED_BY(mu_);
};

/// Bucket bounds of a histogram that is given none: client_golang's DefBuckets (5 ms to 10 s).
inline const std::vector<double>& default_buckets() {
  static const std::vector<double> bounds{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
  return bounds;
}

/// The families of a process (or of a part of it); see the file comment.
class registry {
public:
  registry() = default;
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  /// Registers (or finds, see the file comment) a family. The reference is valid while the
  /// registry lives.
  counter_family& counter(std::string name, std::string help, std::vector<std::string> label_names = {});
  gauge_family& gauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  histogram_family& histogram(std::string name, std::string help, std::vector<std::string> label_names = {},
                              std::vector<double> bounds = default_buckets());

  /// Appends every family, in name order, in the text format 0.0.4 to `out`.
  void write_prometheus(std::string& out) const;

private:
  // Finds `name`; throws std::invalid_argument if it differs from (type, help, label names).
  family* find_locked(const std::string& name, std::string_view type, const std::string& help,
                      const std::vector<std::string>& label_names) const INFORMER_REQUIRES(mu_);

  mutable informer::mutex mu_;
  std::map<std::string, std::unique_ptr<family>, std::less<>> families_ INFORMER_GUARDED_BY(mu_);
};

/// The content type of the text format, for an HTTP response.
inline constexpr std::string_view prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace informer::metrics
