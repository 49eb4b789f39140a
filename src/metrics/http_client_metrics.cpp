#include "informer/metrics/http_client_metrics.hpp"

#include <chrono>
#include <string>

namespace informer::metrics {
namespace {

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

// client-go's request latency buckets.
const std::vector<double>& latency_buckets() {
  static const std::vector<double> bounds{0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0};
  return bounds;
}

std::string code_label(unsigned status) { return status == 0 ? "<error>" : std::to_string(status); }

}  // namespace

informer::http_client_metrics rest_client_metrics(registry& r) {
  auto* requests = &r.counter("rest_client_requests_total",
                              "Number of HTTP requests, partitioned by status code and method.", {"code", "method"});
  auto* duration = &r.histogram("rest_client_request_duration_seconds",
                                "Request latency in seconds. Broken down by verb.", {"verb"}, latency_buckets());
  auto* limiter =
      &r.histogram("rest_client_rate_limiter_duration_seconds",
                   "Client side rate limiter latency in seconds. Broken down by verb.", {"verb"}, latency_buckets());
  auto* retries = &r.counter("rest_client_request_retries_total",
                             "Number of request retries, partitioned by status code and verb.", {"code", "verb"});
  informer::http_client_metrics m;
  m.on_request = [requests, duration](boost::beast::http::verb verb, unsigned status, std::chrono::nanoseconds took) {
    const std::string method(boost::beast::http::to_string(verb));
    requests->with({code_label(status), method}).inc();
    duration->with({method}).observe(seconds(took));
  };
  m.on_rate_limiter_wait = [limiter](boost::beast::http::verb verb, std::chrono::nanoseconds wait) {
    limiter->with({std::string(boost::beast::http::to_string(verb))}).observe(seconds(wait));
  };
  m.on_retry = [retries](boost::beast::http::verb verb, unsigned status) {
    retries->with({code_label(status), std::string(boost::beast::http::to_string(verb))}).inc();
  };
  return m;
}

}  // namespace informer::metrics
