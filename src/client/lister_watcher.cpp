#include "informer/client/lister_watcher.hpp"

namespace informer {

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
