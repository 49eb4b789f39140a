// Field selectors (`field_selector::parse`): never a crash, whatever parses prints to text that
// parses back equal, and escaped values survive the round trip.
#include "informer/core/field_selector.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using informer::field_selector;
  using informer::fuzz::check;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto selector = field_selector::parse(input)) {
    const std::string text = selector->to_string();
    auto again = field_selector::parse(text);
    check(again.has_value(), "to_string() of a parsed selector does not parse");
    check(*again == *selector, "to_string() of a parsed selector parses to another selector");
    check(again->to_string() == text, "to_string() is not canonical");
  }

  // Any bytes, escaped, are a value that reads back unchanged.
  auto escaped = field_selector::parse("metadata.name=" + field_selector::escape_value(input));
  check(escaped.has_value(), "an escaped value does not parse");
  check(escaped->requirements().size() == 1 && escaped->requirements()[0].value == input,
        "an escaped value does not read back unchanged");
  return 0;
}
