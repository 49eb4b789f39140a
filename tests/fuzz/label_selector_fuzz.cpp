// Label selectors from text (`label_selector::parse`) and from a LabelSelector's JSON
// (`from_json`): never a crash, and whatever parses prints to text that parses back equal.
#include "informer/core/label_selector.hpp"

#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

namespace {

void check_round_trip(const informer::label_selector& selector) {
  const std::string text = selector.to_string();
  auto again = informer::label_selector::parse(text);
  informer::fuzz::check(again.has_value(), "to_string() of a parsed selector does not parse");
  informer::fuzz::check(*again == selector, "to_string() of a parsed selector parses to another selector");
  informer::fuzz::check(again->to_string() == text, "to_string() is not canonical");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto selector = informer::label_selector::parse(input)) check_round_trip(*selector);

  boost::system::error_code ec;
  const auto json = boost::json::parse(input, ec);
  if (!ec) {
    if (auto selector = informer::label_selector::from_json(json)) check_round_trip(*selector);
  }
  return 0;
}
