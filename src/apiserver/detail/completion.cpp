#include "apiserver/detail/completion.hpp"

#include <boost/beast/http/status.hpp>
#include <boost/json/parse.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <charconv>

namespace informer::detail {

namespace http = boost::beast::http;

informer::error error_from_exception(const std::exception_ptr& ep, const std::string& what) {
  try {
    std::rethrow_exception(ep);
  } catch (const boost::system::system_error& e) {
    return {e.code(), what + ": " + e.what()};
  } catch (const std::exception& e) {
    return {errc::api_error, what + ": " + e.what()};
  } catch (...) {
    return {errc::api_error, what + ": unknown exception"};
  }
}

namespace {

std::string trimmed(std::string_view s, std::size_t max) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  std::string out{s.substr(first, last - first + 1)};
  if (out.size() > max) out = out.substr(0, max) + "...";
  return out;
}

std::optional<std::chrono::seconds> retry_after_header(const http::fields& headers) {
  const auto it = headers.find(http::field::retry_after);
  if (it == headers.end()) return std::nullopt;
  const auto v = it->value();
  long long seconds = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
  if (ec == std::errc::result_out_of_range && v.front() != '-' && end == v.data() + v.size())
    return status::retry_after_limit;  // a number too large for any clock
  if (ec != std::errc{} || end != v.data() + v.size() || seconds < 0)
    return std::nullopt;  // HTTP dates: not used by Kubernetes
  return std::min(std::chrono::seconds(seconds), status::retry_after_limit);
}

bool is_status(const boost::json::value& v) {
  const auto* o = v.if_object();
  const auto* kind = o ? o->if_contains("kind") : nullptr;
  return kind && kind->is_string() && kind->get_string() == "Status";
}

}  // namespace

status status_of(const http_response& r) {
  status st;
  boost::system::error_code ec;
  const auto v = boost::json::parse(r.body, ec);
  if (!ec && is_status(v)) {
    st = status::from_json(v);
  } else {
    st.reason = std::string{http::obsolete_reason(http::int_to_status(r.status_code))};
    st.message = trimmed(r.body, 512);
  }
  if (st.code == 0) st.code = static_cast<std::int32_t>(r.status_code);
  if (!st.retry_after) st.retry_after = retry_after_header(r.headers);
  return st;
}

bool is_status_body(std::string_view body) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(body, ec);
  return !ec && is_status(v);
}

}  // namespace informer::detail
