// Kubernetes `Status` bodies and Retry-After: what a server suggests is read, and a hostile value
// is clamped (a huge retryAfterSeconds or Retry-After once overflowed the conversion to a
// nanosecond timer).
#include "informer/client/status.hpp"

#include "apiserver/detail/completion.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

using informer::status;
using namespace std::chrono_literals;

namespace {

informer::http_response answer(unsigned code, std::string body, std::string retry_after = "") {
  informer::http_response r;
  r.status_code = code;
  r.body = std::move(body);
  if (!retry_after.empty()) r.headers.set(boost::beast::http::field::retry_after, retry_after);
  return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(retry_after_seconds_is_read_and_clamped) {
  auto s = status::from_json(boost::json::parse(
      R"({"kind":"Status","code":429,"reason":"TooManyRequests","details":{"retryAfterSeconds":3}})"));
  BOOST_TEST(s.code == 429);
  BOOST_REQUIRE(s.retry_after.has_value());
  BOOST_TEST(s.retry_after->count() == 3);

  auto huge = status::from_json(
      boost::json::parse(R"({"kind":"Status","code":429,"details":{"retryAfterSeconds":9223372036854775807}})"));
  BOOST_REQUIRE(huge.retry_after.has_value());
  BOOST_TEST(huge.retry_after->count() == status::retry_after_limit.count());
  // What http_exchange does with it must not overflow.
  BOOST_TEST((std::min<std::chrono::nanoseconds>(*huge.retry_after, 60s) == 60s));

  auto negative = status::from_json(boost::json::parse(R"({"code":429,"details":{"retryAfterSeconds":-5}})"));
  BOOST_TEST(!negative.retry_after.has_value());
}

BOOST_AUTO_TEST_CASE(retry_after_header_is_read_and_clamped) {
  const std::string not_status = "slow down";
  BOOST_TEST(informer::detail::status_of(answer(429, not_status, "7")).retry_after->count() == 7);
  BOOST_TEST(informer::detail::status_of(answer(429, not_status, "99999999999999999999999")).retry_after->count() ==
             status::retry_after_limit.count());
  BOOST_TEST(informer::detail::status_of(answer(429, not_status, "9223372036854775807")).retry_after->count() ==
             status::retry_after_limit.count());
  BOOST_TEST(!informer::detail::status_of(answer(429, not_status, "-99999999999999999999999")).retry_after);
  BOOST_TEST(!informer::detail::status_of(answer(429, not_status, "Wed, 21 Oct 2015 07:28:00 GMT")).retry_after);
  BOOST_TEST(!informer::detail::status_of(answer(429, not_status, "12abc")).retry_after);
  // The body's retryAfterSeconds wins over the header.
  const auto both = informer::detail::status_of(
      answer(429, R"({"kind":"Status","code":429,"details":{"retryAfterSeconds":2}})", "30"));
  BOOST_TEST(both.retry_after->count() == 2);
}
