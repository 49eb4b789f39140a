#include "informer/client/lister_watcher.hpp"

namespace informer {

std::string_view to_string(resource_version_match match) noexcept {
  switch (match) {
    case resource_version_match::unset: return "";
    case resource_version_match::not_older_than: return "NotOlderThan";
    case resource_version_match::exact: return "Exact";
  }
  return "";
}

std::string_view to_string(watch_event_type type) noexcept {
  switch (type) {
    case watch_event_type::added: return "ADDED";
    case watch_event_type::modified: return "MODIFIED";
    case watch_event_type::deleted: return "DELETED";
    case watch_event_type::bookmark: return "BOOKMARK";
    case watch_event_type::error: return "ERROR";
  }
  return "UNKNOWN";
}

}  // namespace informer
