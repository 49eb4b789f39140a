#include "apiserver/detail/event_correlator.hpp"

#include <algorithm>
#include <cstdio>

namespace informer::detail {

namespace {

// Fields are joined with a byte no Kubernetes name, kind or reason holds.
void append_field(std::string& key, std::string_view field) {
  key.push_back('\x1f');
  key.append(field);
}

}  // namespace

event_correlator::event_correlator(const event_recorder_options& options)
    : max_similar_(options.max_similar_events),
      similar_window_(options.similar_events_window),
      spam_bucket_{.qps = 1.0 / std::chrono::duration<double>(options.spam_refill_interval).count(),
                   .burst = options.spam_burst},
      similar_(options.cache_size),
      observed_(options.cache_size),
      spam_(options.cache_size) {
  source_ = options.component;
  append_field(source_, options.host);
}

std::string event_correlator::event_name(const std::string& involved_name, std::chrono::system_clock::time_point t) {
  const std::int64_t nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  last_nanos_ = std::max(nanos, last_nanos_ + 1);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(last_nanos_));
  return involved_name + "." + hex;
}

std::optional<correlated_event> event_correlator::correlate(const event_occurrence& e) {
  // client-go's keys: the spam key names the source and the object; the similar-events key adds
  // type and reason; an identical event's key adds the message.
  std::string spam_key = source_;
  for (const std::string* f :
       {&e.involved.kind, &e.involved.ns, &e.involved.name, &e.involved.uid, &e.involved.api_version}) {
    append_field(spam_key, *f);
  }
  std::string similar_key = spam_key;
  append_field(similar_key, e.type);
  append_field(similar_key, e.reason);

  correlated_event out{.message = e.message};
  std::string observed_key;
  {
    similar_events* similar = similar_.find(similar_key);
    if (similar == nullptr || similar->last + similar_window_ < e.time) {
      similar = &similar_.put(similar_key, similar_events{});
    }
    if (similar->messages.size() < max_similar_) similar->messages.insert(e.message);
    similar->last = e.time;
    observed_key = std::move(similar_key);
    if (similar->messages.size() >= max_similar_) {
      // One Event for them all, under the key without the message (one field shorter than any
      // identical-event key, so never equal to one).
      out.message = "(combined from similar events): " + e.message;
    } else {
      append_field(observed_key, e.message);
    }
  }

  if (observation* seen = observed_.find(observed_key)) {
    seen->count += 1;
    out.patch = true;
    out.name = seen->name;
    out.count = seen->count;
    out.first_timestamp = seen->first_timestamp;
  } else {
    out.name = event_name(e.involved.name, e.time);
    out.first_timestamp = e.time;
    observed_.put(observed_key, observation{.name = out.name, .count = 1, .first_timestamp = e.time});
  }

  std::unique_ptr<token_bucket>* bucket = spam_.find(spam_key);
  if (bucket == nullptr) bucket = &spam_.put(spam_key, std::make_unique<token_bucket>(spam_bucket_));
  if (!(*bucket)->try_take()) return std::nullopt;
  return out;
}

}  // namespace informer::detail
