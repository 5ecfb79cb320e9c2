// See broker_list.h.
#include "protocol/broker_list.h"

#include <algorithm>

namespace rma::proto {

namespace {
std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
// Whether `text` holds `endpoint` as a whole word (tcp://h:1 is not named by tcp://h:10).
bool Names(std::string_view text, std::string_view endpoint) {
  for (size_t at = text.find(endpoint); at != std::string_view::npos;
       at = text.find(endpoint, at + 1)) {
    const size_t end = at + endpoint.size();
    const bool starts = at == 0 || text[at - 1] == ' ' || text[at - 1] == ',';
    const bool ends = end == text.size() || text[end] == ' ' || text[end] == ',' ||
                      text[end] == ')' || text[end] == ';';
    if (starts && ends) return true;
  }
  return false;
}
}  // namespace

Result<std::vector<std::string>> ParseBrokerList(std::string_view text) {
  std::vector<std::string> out;
  for (;;) {
    const size_t comma = text.find(',');
    const std::string_view item = Trim(text.substr(0, comma));
    if (item.empty()) {
      return Status::InvalidArgument("empty entry in the broker endpoint list '" +
                                     std::string(text) + "'");
    }
    if (std::find(out.begin(), out.end(), item) != out.end()) {
      return Status::InvalidArgument("broker endpoint " + std::string(item) + " listed twice");
    }
    out.emplace_back(item);
    if (out.size() > kMaxBrokerEndpoints) {
      return Status::InvalidArgument("more than " + std::to_string(kMaxBrokerEndpoints) +
                                     " broker endpoints");
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

BrokerList BrokerList::FromText(const std::string& text) {
  auto list = ParseBrokerList(text);
  return BrokerList(list.ok() ? *list : std::vector<std::string>{text});
}

BrokerList::BrokerList(std::vector<std::string> endpoints) : endpoints_(std::move(endpoints)) {
  if (endpoints_.empty()) endpoints_.push_back("");
}

bool BrokerList::Next(std::string_view hint) {
  size_t next = (index_ + 1) % endpoints_.size();
  if (!hint.empty()) {
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      if (i != index_ && Names(hint, endpoints_[i])) {
        next = i;
        break;
      }
    }
  }
  index_ = next;
  ++tried_;
  if (tried_ >= endpoints_.size()) {
    tried_ = 0;
    return true;
  }
  return false;
}

}  // namespace rma::proto
