#include "informer/core/condition.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include <cstring>
#include <string>

namespace informer {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;

// Asio's SSL stream_truncated (a TLS peer gone without close_notify), recognised by its category's
// name and value: asio/ssl/error.hpp would pull OpenSSL's headers into core, which has no TLS.
bool ssl_stream_truncated(const boost::system::error_code& code) {
  return code.value() == 1 && std::strcmp(code.category().name(), "asio.ssl.stream") == 0;
}

// The codes of categories the project cannot give an `equivalent` of its own.
bool foreign_equivalent(const boost::system::error_code& code, condition c) {
  switch (c) {
    case condition::stream_cut:
      return code == asio::error::eof || code == asio::error::connection_reset ||
             code == asio::error::connection_aborted || code == asio::error::broken_pipe ||
             code == asio::error::timed_out || code == beast::error::timeout ||
             code == beast::http::error::partial_message || code == beast::http::error::end_of_stream ||
             ssl_stream_truncated(code);
    case condition::unreachable: return code == asio::error::connection_refused;
    case condition::cancelled: return code == asio::error::operation_aborted;
    default: return false;
  }
}

class category final : public boost::system::error_category {
public:
  const char* name() const noexcept override { return "informer.condition"; }

  std::string message(int ev) const override {
    switch (static_cast<condition>(ev)) {
      case condition::stream_cut: return "the watch stream was cut";
      case condition::unreachable: return "the server is unreachable";
      case condition::relist_required: return "the resource version is gone: relist";
      case condition::throttled: return "throttled by the server";
      case condition::unauthorized: return "unauthorized";
      case condition::forbidden: return "forbidden";
      case condition::not_found: return "not found";
      case condition::conflict: return "conflict";
      case condition::invalid_argument: return "invalid argument";
      case condition::undecodable: return "undecodable data";
      case condition::server_error: return "server error";
      case condition::cancelled: return "cancelled";
    }
    return "unknown informer condition";
  }

  // The project's own categories answer through their `equivalent(int, condition)`; this side
  // answers for the others.
  bool equivalent(const boost::system::error_code& code, int ev) const noexcept override {
    return foreign_equivalent(code, static_cast<condition>(ev));
  }
};

}  // namespace

const boost::system::error_category& condition_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace informer
