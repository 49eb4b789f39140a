#include "informer/core/condition.hpp"

#include "informer/codec/errors.hpp"
#include "informer/core/error.hpp"
#include "informer/etcd/errors.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/system/errc.hpp>
#include <boost/test/unit_test.hpp>

#include <initializer_list>
#include <string>
#include <vector>

using boost::system::error_code;
using informer::condition;
namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {

constexpr condition all_conditions[] = {
    condition::stream_cut,       condition::unreachable, condition::relist_required, condition::throttled,
    condition::unauthorized,     condition::forbidden,   condition::not_found,       condition::conflict,
    condition::invalid_argument, condition::undecodable, condition::server_error,    condition::cancelled,
};

// The conditions `code` belongs to, by name, to compare in one assertion.
std::vector<std::string> conditions_of(const error_code& code) {
  std::vector<std::string> out;
  for (const condition c : all_conditions) {
    if (code == c) out.push_back(informer::condition_category().message(static_cast<int>(c)));
  }
  return out;
}

std::vector<std::string> named(std::initializer_list<condition> cs) {
  std::vector<std::string> out;
  for (const condition c : cs) out.push_back(informer::condition_category().message(static_cast<int>(c)));
  return out;
}

void expect(const error_code& code, std::initializer_list<condition> expected) {
  BOOST_TEST(conditions_of(code) == named(expected), code.category().name()
                                                         << ":" << code.value() << " (" << code.message() << ")");
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_category_names_its_conditions) {
  BOOST_TEST(std::string(informer::condition_category().name()) == "informer.condition");
  for (const condition c : all_conditions) {
    BOOST_TEST(informer::make_error_condition(c).message() != "unknown informer condition");
  }
  BOOST_TEST((informer::make_error_condition(condition::stream_cut).category() == informer::condition_category()));
}

BOOST_AUTO_TEST_CASE(informer_codes) {
  using informer::errc;
  expect(errc::end_of_stream, {condition::stream_cut});
  expect(errc::expired, {condition::relist_required});
  expect(errc::resource_version_too_large, {condition::relist_required});
  expect(errc::too_many_requests, {condition::throttled});
  expect(errc::unauthorized, {condition::unauthorized});
  expect(errc::forbidden, {condition::forbidden});
  expect(errc::not_found, {condition::not_found});
  expect(errc::index_not_found, {condition::not_found});
  expect(errc::conflict, {condition::conflict});
  expect(errc::already_exists, {condition::conflict});
  for (const errc e : {errc::invalid_argument, errc::invalid_url, errc::invalid_config, errc::invalid_key,
                       errc::invalid_selector, errc::invalid_label, errc::bad_request, errc::invalid}) {
    expect(e, {condition::invalid_argument});
  }
  for (const errc e : {errc::invalid_json, errc::not_an_object, errc::missing_name, errc::invalid_field,
                       errc::object_too_large, errc::malformed_response}) {
    expect(e, {condition::undecodable});
  }
  expect(errc::server_error, {condition::server_error});
  expect(errc::server_timeout, {condition::server_error});
  expect(errc::closed, {});
  expect(errc::api_error, {});
  expect(error_code{}, {});
}

BOOST_AUTO_TEST_CASE(etcd_codes) {
  using informer::etcd::errc;
  expect(errc::unavailable, {condition::stream_cut});
  expect(errc::deadline_exceeded, {condition::stream_cut});
  expect(errc::resource_exhausted, {condition::throttled});
  expect(errc::canceled, {condition::cancelled});
  expect(errc::invalid_options, {condition::invalid_argument});
  expect(errc::failed_precondition, {});
  expect(errc::unimplemented, {});
  expect(errc::watch_canceled, {});
}

BOOST_AUTO_TEST_CASE(codec_codes) {
  using informer::codec::errc;
  for (const errc e : {errc::not_protobuf, errc::encrypted, errc::truncated, errc::malformed, errc::frame_too_large,
                       errc::unknown_kind, errc::unsupported}) {
    expect(e, {condition::undecodable});
  }
  expect(errc::schemas_unavailable, {});
}

BOOST_AUTO_TEST_CASE(asio_and_system_codes) {
  expect(asio::error::eof, {condition::stream_cut});
  expect(asio::error::connection_reset, {condition::stream_cut});
  expect(asio::error::connection_aborted, {condition::stream_cut});
  expect(asio::error::broken_pipe, {condition::stream_cut});
  expect(asio::error::timed_out, {condition::stream_cut});
  expect(asio::error::connection_refused, {condition::unreachable});
  expect(asio::error::operation_aborted, {condition::cancelled});
  expect(asio::error::host_not_found, {});
  expect(asio::error::already_started, {});
  expect(make_error_code(boost::system::errc::no_such_file_or_directory), {});
}

BOOST_AUTO_TEST_CASE(beast_codes) {
  expect(beast::http::error::partial_message, {condition::stream_cut});
  expect(beast::http::error::end_of_stream, {condition::stream_cut});
  expect(beast::error::timeout, {condition::stream_cut});
  expect(beast::http::error::bad_version, {});
  expect(beast::http::error::body_limit, {});
}

BOOST_AUTO_TEST_CASE(ssl_codes) {
  expect(asio::ssl::error::stream_truncated, {condition::stream_cut});
  expect(asio::ssl::error::unspecified_system_error, {});
}

BOOST_AUTO_TEST_CASE(an_error_compares_with_a_condition) {
  const informer::error cut{asio::error::eof, "watch"};
  BOOST_TEST((cut == condition::stream_cut));
  BOOST_TEST((condition::stream_cut == cut));
  BOOST_TEST((cut != condition::relist_required));
  BOOST_TEST((informer::error{informer::errc::expired, "410"} == condition::relist_required));
  BOOST_TEST((informer::error{} != condition::stream_cut));
}
